//! The copy engine across a crash of the cluster pulling deferred copies (DESIGN §4; the issue's
//! "kill -9 of C2 during deferred copies and restart: the queue completes with no operator
//! action"), on three real processes with the classes of `cluster-config/three-site-ha-dr.toml`:
//! STANDARD is RUN at C0 and C1 and Deferred to C2 (R-R-D).
//!
//! C2's copy throttle is set low, one copy at a time, so its deferred copies queue up behind each
//! other and there is a backlog to crash in the middle of.

use std::time::{Duration, Instant};

use vtgrid_proto::pb;
use vtgrid_tests::support::copy_watch::{
    count_runs, is_consistent_at, partial_versions, queue_counts_until_drained, read_sha256,
    shipped_classes_and_copy, wait_for_copy_in_progress,
};
use vtgrid_tests::support::host::{ok, scratch, status_client, write_job};
use vtgrid_tests::support::{
    wait_until, Payload, ProcessGrid, MIB, SCRATCH_CATEGORY, STANDARD_CLASS,
};

/// Volumes written, and the size of each.
const VOLUMES: u64 = 4;
const VOLUME_MIB: u64 = 16;
/// C2's copy throttle: each 16 MiB deferred copy holds C2's share of the links for 4 s (the
/// throttle spaces copies' starts), so most copies still wait when the writes are done.
const BYTES_PER_SEC: u64 = 4 * MIB;
/// How long C2 may take, after its restart, to drain the queue: the throttle's 4 s per remaining
/// copy, and margin for a loaded machine.
const DRAIN: Duration = Duration::from_secs(60);

/// The event codes the cluster at `endpoint` lists (`StatusService.ListEvents`).
async fn event_codes(endpoint: &str) -> Vec<String> {
    status_client(endpoint)
        .await
        .list_events(pb::ListEventsRequest::default())
        .await
        .unwrap_or_else(|s| panic!("ListEvents at {endpoint}: {s:?}"))
        .into_inner()
        .events
        .into_iter()
        .map(|e| e.code)
        .collect()
}

/// Until every code in `want` is among the events of the cluster at `endpoint`.
async fn wait_for_events(endpoint: &str, want: &[&str], timeout: Duration) {
    let what = format!("events {want:?} at {endpoint}");
    wait_until(&what, timeout, || async {
        let codes = event_codes(endpoint).await;
        want.iter().all(|w| codes.iter().any(|c| c == w))
    })
    .await;
}

/// kill -9 of the puller in the middle of its deferred copies, and a restart: its durable queue
/// completes with no operator action, every volume ends consistent at C2 with the bytes that were
/// written, and C0 reports the outage and its end with the seed's codes (B59, B62).
///
/// Sequence: C0, C1, C2 as `vtgrid node` (STANDARD = RRD, C2 throttled to 2 MiB/s, one copy at a
/// time) → four 16 MiB volumes written at C0; each rewind-unload lists C1 among the clusters
/// holding it (B37) and not C2 → C2 has a version in `.partial` (a copy in progress) and a
/// non-empty queue → kill -9 C2 → C0 raises CBR3786E, CBR3785E and CALL_HOME → restart C2 →
/// `vtgrid copies --json` at C2 counts down, never up, to 0, from at least 1 (the queue survived
/// the crash) → every volume is consistent at C2 (`vtgrid volume show --json`) → `vtgrid volume
/// read` through C2 gives each volume's SHA-256 → no partial version is left → C0 raised
/// COPY_OPERATIONS_RESTORED and VTS_OPERATIONS_RESTORED.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_puller_during_deferred_copies_then_restart_drains_the_queue() {
    let began = Instant::now();
    let (classes, _) = shipped_classes_and_copy("three-site-ha-dr");
    let mut grid = ProcessGrid::start_configured(3, 0, false, |layout| {
        layout.management_classes = Some(classes);
        layout.extra_toml = format!("\n[copy]\nbytes_per_sec = {BYTES_PER_SEC}\nconcurrency = 1\n");
    })
    .await;
    let (c0, c2) = (grid.endpoint(0), grid.endpoint(2));
    let c2_dir = grid.voter(2).data_dir.clone();
    grid.insert(0, "R00000-R00009", SCRATCH_CATEGORY).await;

    let mut host = grid.host(0).await;
    let mut written = Vec::new();
    for seed in 0..VOLUMES {
        let payload = Payload::mib(0xD0_0000 + seed, VOLUME_MIB, 0);
        let done = ok(
            write_job(
                &mut host,
                scratch(SCRATCH_CATEGORY, STANDARD_CLASS),
                payload,
            )
            .await,
            "write an R-R-D volume at C0",
        );
        assert!(
            done.written && !done.immediate_copy_deferred,
            "every RUN cluster answered: {done:?}"
        );
        assert!(
            done.copies.contains(&0) && done.copies.contains(&1),
            "B37: C1 holds {} durably when rewind-unload returns: {done:?}",
            done.volser
        );
        assert!(
            !done.copies.contains(&2),
            "C2 is Deferred: the unload does not wait for it: {done:?}"
        );
        written.push((done.volser, payload));
    }
    let writes_done = began.elapsed();

    let queued_at_kill = wait_for_copy_in_progress(&c2, &c2_dir, 1, Duration::from_secs(60)).await;
    grid.kill9(2);
    let partials_left = partial_versions(&c2_dir);
    wait_for_events(
        &c0,
        &["CBR3786E", "CBR3785E", "CALL_HOME"],
        Duration::from_secs(20),
    )
    .await;

    grid.restart(2).await;
    let restarted = began.elapsed();
    let counts = queue_counts_until_drained(&c2, DRAIN).await;
    // The restarted cluster queues every copy the catalog says it still owes before it pulls
    // one, so the first count may exceed the queue at the kill (copies owed but not yet queued
    // then), never the volumes written.
    assert!(
        (1..=VOLUMES).contains(&counts[0]),
        "the queue survived the crash: {queued_at_kill} queued at the kill, counts after the \
         restart {counts:?}"
    );
    assert!(
        counts.windows(2).all(|w| w[1] <= w[0]),
        "the queue only drains after the restart: {counts:?}"
    );

    for (volser, payload) in &written {
        let what = format!("{volser} consistent at C2");
        wait_until(&what, Duration::from_secs(30), || {
            is_consistent_at(&c2, volser, 2)
        })
        .await;
        let (sha, len) = read_sha256(&c2, volser, Duration::from_secs(120)).await;
        assert_eq!(len, payload.len(), "bytes of {volser} read through C2");
        assert_eq!(sha, payload.sha256(), "SHA-256 of {volser} read through C2");
    }
    assert_eq!(
        partial_versions(&c2_dir),
        0,
        "no partial version outlives the restart and the drain"
    );
    wait_for_events(
        &c0,
        &["COPY_OPERATIONS_RESTORED", "VTS_OPERATIONS_RESTORED"],
        Duration::from_secs(20),
    )
    .await;
    eprintln!(
        "copies_restart: writes done at {writes_done:?}; kill with {queued_at_kill} queued and \
         {partials_left} partial version(s) left on disk; restarted at {restarted:?}; queue counts \
         {}; all verified at {:?}",
        count_runs(&counts),
        began.elapsed()
    );
}
