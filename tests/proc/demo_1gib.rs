//! The demo of the copy engine ("The grid, part 2", done-when), as a test: a grid like
//! `vtgrid grid up cluster-config/three-site-ha-dr.toml`, 1 GiB with STANDARD (R-R-D) at C0.
//!
//! It moves about 1.5 GiB through three debug-build processes and takes minutes, so it runs only
//! with `VTGRID_DEMO_1GIB=1`; otherwise it prints how to run it and passes.

use std::time::{Duration, Instant};

use futures::future::join_all;
use vtgrid_tests::support::copy_watch::{
    count_runs, is_consistent_at, queue_counts_until_drained, queued_count, read_sha256,
    shipped_classes_and_copy, wait_for_copy_in_progress,
};
use vtgrid_tests::support::host::{ok, scratch, write_job};
use vtgrid_tests::support::wait::POLL;
use vtgrid_tests::support::{wait_until, Payload, ProcessGrid, SCRATCH_CATEGORY, STANDARD_CLASS};

/// The environment variable that turns the demo on.
const DEMO_VAR: &str = "VTGRID_DEMO_1GIB";
/// The volumes written after the first one, at once, so C2 has a backlog to crash in.
const BACKLOG_VOLUMES: u64 = 4;
const BACKLOG_MIB: u64 = 128;
/// Bounds for the long steps of a debug build on a small machine.
const BIG_READ: Duration = Duration::from_secs(600);
const SETTLE: Duration = Duration::from_secs(300);

/// The demo: `grid up` of the three-site HA/DR grid (its classes and its copy throttle,
/// 100 MiB/s and 2 at once, on free ports); 1 GiB written at C0 with STANDARD; when
/// rewind-unload returns, C1 holds the version and reads back identical; C2 holds it shortly
/// after while `vtgrid copies` at C2 drains to 0; then a backlog of deferred copies, kill -9 of
/// C2 with a copy in progress, restart, and the queue completes with no operator action.
///
/// Sequence: `grid up` (C0, C1, C2) → write 1 GiB (A) at C0 → the unload lists C0 and C1 →
/// `vtgrid volume read A` through C1 has A's SHA-256, while `vtgrid copies` at C2 is polled until
/// A is consistent at C2 and the queue is 0 (counts never rise once C2 has queued A) → four
/// 128 MiB volumes written at C0 at once → C2 pulls one with another queued → kill -9 C2 (a child
/// of `grid up`) → restart it as `vtgrid node --id 2` → `vtgrid copies` at C2 counts down, never
/// up, to 0 → every volume is consistent at C2 and reads back through C2 with its SHA-256.
#[tokio::test(flavor = "multi_thread")]
async fn demo_1gib_run_copy_to_c1_deferred_to_c2_and_kill9_of_c2_during_its_backlog() {
    if std::env::var(DEMO_VAR).as_deref() != Ok("1") {
        eprintln!(
            "skipped: the 1 GiB copy demo runs with {DEMO_VAR}=1 \
             (cargo build -p vtgrid-cli && {DEMO_VAR}=1 cargo test -p vtgrid-tests --test grid \
             -- proc::demo_1gib --nocapture)"
        );
        return;
    }
    let began = Instant::now();
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    let lap = |what: &'static str, phases: &mut Vec<(&str, Duration)>| {
        phases.push((what, began.elapsed()));
        eprintln!("demo: {what} at {:?}", began.elapsed());
    };

    let (classes, copy) = shipped_classes_and_copy("three-site-ha-dr");
    let mut grid = ProcessGrid::start_configured(3, 0, true, |layout| {
        layout.management_classes = Some(classes);
        layout.extra_toml = format!("\n{copy}");
    })
    .await;
    let (c1, c2) = (grid.endpoint(1), grid.endpoint(2));
    let c2_dir = grid.voter(2).data_dir.clone();
    grid.insert(0, "D00000-D00019", SCRATCH_CATEGORY).await;
    lap("grid up", &mut phases);

    // 1 GiB with R-R-D at C0; its SHA-256 is computed meanwhile on another thread.
    let big = Payload::mib(0x1_0000_0000, 1024, 0);
    let big_sha = tokio::task::spawn_blocking(move || big.sha256());
    let mut host = grid.host(0).await;
    let done = ok(
        write_job(&mut host, scratch(SCRATCH_CATEGORY, STANDARD_CLASS), big).await,
        "write 1 GiB at C0",
    );
    let big_sha = big_sha.await.expect("hashing the 1 GiB payload");
    assert!(
        done.written && done.copies.contains(&1) && !done.immediate_copy_deferred,
        "C1 holds the 1 GiB version durably when rewind-unload returns: {done:?}"
    );
    let a = done.volser.clone();
    lap("1 GiB written; the unload lists C1", &mut phases);

    // C1's copy reads back identical, while C2 pulls its deferred copy and its queue drains.
    let read_at_c1 = read_sha256(&c1, &a, BIG_READ);
    let c2_drains = async {
        let deadline = Instant::now() + SETTLE;
        let mut counts = Vec::new();
        loop {
            let count = queued_count(&c2).await;
            counts.push(count);
            if count == 0 && is_consistent_at(&c2, &a, 2).await {
                return counts;
            }
            assert!(
                Instant::now() < deadline,
                "{a} not consistent at C2 with its queue empty within {SETTLE:?}: {counts:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    };
    let ((sha, len), counts) = tokio::join!(read_at_c1, c2_drains);
    assert_eq!(
        (sha, len),
        (big_sha, big.len()),
        "{a} read through C1 is what was written"
    );
    let queued_from = counts.iter().position(|c| *c > 0).unwrap_or(counts.len());
    assert!(
        counts[queued_from..].windows(2).all(|w| w[1] <= w[0]),
        "C2's queue drains once it has queued {a}: {counts:?}"
    );
    eprintln!(
        "demo: vtgrid copies at C2 while it pulled {a}: {}",
        count_runs(&counts)
    );
    lap("C1 read back; C2 consistent, its queue empty", &mut phases);

    // A backlog: four volumes written at once, so C2 owes several copies together.
    let backlog: Vec<Payload> = (0..BACKLOG_VOLUMES)
        .map(|i| Payload::mib(0xB0_0000 + i, BACKLOG_MIB, 0))
        .collect();
    let writes = backlog.iter().map(|payload| {
        let grid = &grid;
        async move {
            let mut host = grid.host(0).await;
            let done = ok(
                write_job(
                    &mut host,
                    scratch(SCRATCH_CATEGORY, STANDARD_CLASS),
                    *payload,
                )
                .await,
                "write a backlog volume at C0",
            );
            assert!(done.copies.contains(&1), "{done:?}");
            (done.volser, *payload)
        }
    });
    let mut written: Vec<(String, Payload)> = join_all(writes).await;
    lap("backlog written", &mut phases);

    let queued = wait_for_copy_in_progress(&c2, &c2_dir, 2, SETTLE).await;
    grid.kill9_grid_up_voter(2);
    lap("kill -9 of C2", &mut phases);
    eprintln!("demo: C2 killed pulling a copy, {queued} queued");
    grid.restart(2).await;
    lap("C2 restarted", &mut phases);
    let counts = queue_counts_until_drained(&c2, SETTLE).await;
    assert!(
        counts.windows(2).all(|w| w[1] <= w[0]),
        "C2's queue drains after the restart with no operator action: {counts:?}"
    );
    eprintln!(
        "demo: vtgrid copies at C2 after its restart: {}",
        count_runs(&counts)
    );
    lap("C2's queue drained", &mut phases);

    written.insert(0, (a, big));
    for (volser, payload) in &written {
        let what = format!("{volser} consistent at C2");
        wait_until(&what, SETTLE, || is_consistent_at(&c2, volser, 2)).await;
        let (sha, len) = read_sha256(&c2, volser, BIG_READ).await;
        let want = if *payload == big {
            big_sha
        } else {
            payload.sha256()
        };
        assert_eq!(
            (sha, len),
            (want, payload.len()),
            "{volser} read through C2 is what was written"
        );
    }
    lap("every volume read back through C2", &mut phases);
    eprintln!(
        "demo: {} MiB written, done in {:?}: {phases:?}",
        1024 + BACKLOG_VOLUMES * BACKLOG_MIB,
        began.elapsed()
    );
}
