//! Seeds: fixed in CI, swept on demand, printed on failure.
//!
//! - `VTGRID_SIM_SEED=<n>` replays one seed.
//! - `VTGRID_SIM_SEEDS=<n>` sweeps seeds `0..n` instead of the test's fixed list.
//! - A seed that runs longer than `VTGRID_SIM_WATCHDOG_SECS` of wall-clock time (300 by default)
//!   is named on stderr while it runs, so a sweep that hangs says which seed to replay.

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
    let watchdog = Watchdog::new(threads.max(1));
    std::thread::scope(|scope| {
        scope.spawn(|| watchdog.watch(test));
        for worker in 0..threads.max(1) {
            let (next, seeds, failures, watchdog, body) =
                (&next, &seeds, &failures, &watchdog, &body);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else {
                    watchdog.finished(worker);
                    break;
                };
                watchdog.started(worker, seed);
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

/// Names, on stderr, every seed that has run longer than its wall-clock allowance; ends when
/// every worker has finished. Only reports: a hung seed is for a person to replay.
/// A worker's slot before it has taken its first seed.
const NOT_STARTED: u64 = u64::MAX;

struct Watchdog {
    /// Per worker: the seed it runs and since when; `None` once it has no more seeds.
    running: std::sync::Mutex<Vec<Option<(u64, std::time::Instant)>>>,
    done: std::sync::Condvar,
    allowance: std::time::Duration,
}

impl Watchdog {
    fn new(workers: usize) -> Self {
        let secs = std::env::var("VTGRID_SIM_WATCHDOG_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        Self::with_allowance(workers, std::time::Duration::from_secs(secs))
    }

    fn with_allowance(workers: usize, allowance: std::time::Duration) -> Self {
        let start = std::time::Instant::now();
        Watchdog {
            running: std::sync::Mutex::new(vec![Some((NOT_STARTED, start)); workers]),
            done: std::sync::Condvar::new(),
            allowance,
        }
    }

    /// The seeds running longer than the allowance, each once over the watchdog's life.
    fn overdue(
        &self,
        running: &[Option<(u64, std::time::Instant)>],
        reported: &mut std::collections::BTreeSet<u64>,
    ) -> Vec<(u64, std::time::Duration)> {
        running
            .iter()
            .flatten()
            .filter(|(seed, since)| *seed != NOT_STARTED && since.elapsed() > self.allowance)
            .filter(|(seed, _)| reported.insert(*seed))
            .map(|(seed, since)| (*seed, since.elapsed()))
            .collect()
    }

    fn started(&self, worker: usize, seed: u64) {
        self.lock()[worker] = Some((seed, std::time::Instant::now()));
    }

    fn finished(&self, worker: usize) {
        self.lock()[worker] = None;
        self.done.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<(u64, std::time::Instant)>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn watch(&self, test: &str) {
        let mut reported = std::collections::BTreeSet::new();
        let mut running = self.lock();
        while running.iter().any(Option::is_some) {
            for (seed, elapsed) in self.overdue(&running, &mut reported) {
                eprintln!(
                    "{test}: seed {seed} still running after {elapsed:?} of wall-clock time \
                     (VTGRID_SIM_WATCHDOG_SECS); replay: VTGRID_SIM_SEED={seed}"
                );
            }
            running = self
                .done
                .wait_timeout(running, std::time::Duration::from_secs(10))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_names_each_overdue_seed_once_and_ends_when_workers_finish() {
        let dog = Watchdog::with_allowance(2, std::time::Duration::ZERO);
        let mut reported = std::collections::BTreeSet::new();
        assert!(
            dog.overdue(&dog.lock(), &mut reported).is_empty(),
            "nothing started yet"
        );
        dog.started(0, 17);
        dog.started(1, 4);
        std::thread::sleep(std::time::Duration::from_millis(2)); // past the zero allowance
        let named: Vec<u64> = dog
            .overdue(&dog.lock(), &mut reported)
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(named, vec![17, 4]);
        assert!(
            dog.overdue(&dog.lock(), &mut reported).is_empty(),
            "each seed once"
        );
        dog.finished(0);
        dog.finished(1);
        dog.watch("t"); // returns: every worker has finished
    }
}
