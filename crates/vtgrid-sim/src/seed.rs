//! Seeds: fixed in CI, swept on demand, printed on failure.
//!
//! - `VTGRID_SIM_SEED=<n>` replays one seed.
//! - `VTGRID_SIM_SEEDS=<n>` sweeps seeds `0..n` instead of the test's fixed list.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// The seeds a test runs: the replayed one, a sweep, or the test's own fixed list.
pub fn seeds(fixed: &[u64]) -> Vec<u64> {
    if let Some(one) = std::env::var("VTGRID_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![one];
    }
    if let Some(n) = std::env::var("VTGRID_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        return (0..n).collect();
    }
    fixed.to_vec()
}

/// Run `body` once per seed; on failure print the seed and how to replay it, then fail.
pub fn for_each_seed(test: &str, fixed: &[u64], body: impl Fn(u64) -> Result<(), String>) {
    for seed in seeds(fixed) {
        let outcome = catch_unwind(AssertUnwindSafe(|| body(seed)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        panic!("{test} failed with seed {seed}: {failure}\nreplay: VTGRID_SIM_SEED={seed} cargo test -p vtgrid-tests --test grid {test}");
    }
}
