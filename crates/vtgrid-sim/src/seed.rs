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
    init_logging();
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

/// [`for_each_seed`] over `threads` OS threads (each simulation is single-threaded and owns its
/// own turmoil world, so seeds run side by side). Every seed runs; the lowest failing seed is
/// reported, with how to replay it, and the count of the others.
pub fn for_each_seed_in_parallel(
    test: &str,
    fixed: &[u64],
    threads: usize,
    body: impl Fn(u64) -> Result<(), String> + Sync,
) {
    init_logging();
    let seeds = seeds(fixed);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::<(u64, String)>::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let failure = match catch_unwind(AssertUnwindSafe(|| body(seed))) {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e,
                    Err(panic) => panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".into()),
                };
                eprintln!("{test}: seed {seed} failed: {failure}");
                failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((seed, failure));
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|(seed, _)| *seed);
    if let Some((seed, failure)) = failures.first() {
        let others: Vec<u64> = failures[1..].iter().map(|(s, _)| *s).collect();
        panic!(
            "{test} failed with seed {seed}: {failure}\nother failing seeds: {others:?}\n\
             replay: VTGRID_SIM_SEED={seed} cargo test -p vtgrid-tests --test grid {test}"
        );
    }
}

/// Log the simulated clusters' tracing events to stderr when `VTGRID_SIM_LOG` is set (an
/// `EnvFilter`, e.g. `VTGRID_SIM_LOG=vtgrid_node=info`); a no-op otherwise, or when a subscriber
/// is already installed. Each line carries the simulated host (turmoil's `node` span) and the
/// simulated time since the start of the simulation.
pub fn init_logging() {
    let Ok(filter) = std::env::var("VTGRID_SIM_LOG") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_timer(SimTime)
        .with_writer(std::io::stderr)
        .try_init();
}

/// turmoil's simulated time, for log lines.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>9.3}s", t.as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}
