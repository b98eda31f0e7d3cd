//! B37: the writer crashes while a RUN cluster is pulling the new version. The host is never told
//! the version is safe (its unload fails), nothing half-copied is ever served or counted, and
//! the version does not exist: a version is committed to the catalog only once its RUN copies
//! are made (so the catalog never shows it without them), and this one never got that far. The
//! volume stays at its last version everywhere, and the next write of the same version number
//! replaces the files the crash left.
//!
//! Sequence: c0, c1, c2 → c0 inserts R00000-R00003 → c0 writes R00001 v1 with class RRD (C1 RUN,
//! C2 Deferred), acknowledged with copies at C0 and C1 → c0 writes v2 (8 MiB) with RRD; while the
//! host waits on its unload, C1 starts pulling v2 (bytes arrive in C1's store, v2 not committed
//! there) and c0 is crashed at that moment → the unload fails (v2 is in doubt for the host) →
//! c0 restarts → the grid converges: R00001 is still v1 on C0, C1 and C2 and reads back as v1
//! through c1 → c0 writes v2 again (other bytes): acknowledged with its RUN copy, consistent
//! everywhere with the new digest, and read back through c1. Checked throughout: no acknowledged
//! version lost, acknowledged copies held; at the end: every copy verified.

use std::sync::Arc;
use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_sim::client::{self, digest_hex, ensure};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[3, 37, 370];

const V2_LEN: usize = 8 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 10) as u8)
        .collect()
}

/// Bytes C1's store holds or is writing, and whether (V, version) is committed there.
fn c1_store(control: &GridControl, volser: Volser, version: u64) -> Option<(u64, bool)> {
    let c1 = control.cluster(1)?;
    let store = c1.probe().store();
    let committed = store.versions().ok()?.contains(&(volser, version));
    Some((store.usage().used_bytes, committed))
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "R00000-R00003", "000F").await?;
    let volser: Volser = "R00001".parse()?;
    let rrd = || client::with_class(client::specific("R00001"), "RRD");
    let v1 = client::write_job(0, rrd(), b"R00001 version 1", &ledger).await?;
    ensure(
        v1.copies == [0, 1] && !v1.immediate_copy_deferred,
        &format!("v1 acknowledged with its RUN copy at C1: {v1:?}"),
    )?;
    client::wait_copies_settled(&control, Duration::from_secs(30)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let (baseline, _) = c1_store(&control, volser, 2).ok_or("c1 runs")?;
    let v2 = Arc::new(pattern(V2_LEN, 2));
    let job = {
        let (ledger, v2) = (ledger.clone(), v2.clone());
        tokio::spawn(async move { client::write_job(0, rrd(), &v2, &ledger).await })
    };
    // Crash the source once C1 has part of v2 and has not committed it: mid RUN copy.
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match c1_store(&control, volser, 2) {
            Some((used, false)) if used >= baseline + (1 << 20) => break,
            Some((_, true)) => return Err("C1 committed v2 before the crash could hit".into()),
            _ => {}
        }
        ensure(
            tokio::time::Instant::now() < until && !job.is_finished(),
            "C1 starts pulling v2 while the host waits on its unload",
        )?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    control.crash(0).await;
    let answer = job.await?;
    ensure(
        answer.is_err(),
        &format!("B37: an unload whose RUN copy was cut short is not acknowledged: {answer:?}"),
    )?;
    ensure(
        ledger.wrote(volser, &digest_hex(&v2)),
        "the host holds v2 in doubt",
    )?;
    ensure(
        c1_store(&control, volser, 2).is_some_and(|(_, committed)| !committed),
        "C1 holds no v2 after its source died mid-copy",
    )?;

    control.restart(0).await;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    let v = client::volume(1, "R00001").await?;
    ensure(
        v.version == 1 && [0, 1, 2].iter().all(|c| v.consistent_at.get(c) == Some(&1)),
        &format!("the crashed job committed nothing; v1 stays everywhere: {v:?}"),
    )?;
    let (_, bytes) = client::read_job(1, "R00001").await?;
    ensure(
        bytes == b"R00001 version 1",
        "R00001 reads back through c1 as v1",
    )?;

    // The same version number again, other bytes: the crash's leftovers are replaced.
    let again = pattern(V2_LEN / 4, 7);
    let done = client::write_job(0, rrd(), &again, &ledger).await?;
    ensure(
        done.version == 2 && done.copies == [0, 1] && !done.immediate_copy_deferred,
        &format!("v2 written again, with its RUN copy: {done:?}"),
    )?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    let v = client::volume(1, "R00001").await?;
    ensure(
        v.digest == digest_hex(&again)
            && [0, 1, 2].iter().all(|c| v.consistent_at.get(c) == Some(&2)),
        &format!("the new v2 is consistent everywhere: {v:?}"),
    )?;
    let (_, bytes) = client::read_job(1, "R00001").await?;
    ensure(bytes == again, "R00001 reads back through c1 as the new v2")?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn b37_source_crash_during_a_run_copy_acknowledges_nothing_and_recovers() {
    for_each_seed(
        "b37_source_crash_during_a_run_copy_acknowledges_nothing_and_recovers",
        SEEDS,
        run,
    );
}
