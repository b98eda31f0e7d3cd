//! Sequence A of issue 9 (B10; DESIGN §3, spec T18): a late Transfer after the owner settled its
//! doubt. The owner Cj forwards `Transfer{V, j → i, e}` to the leader L; that one message stalls
//! in the network (its own connection, while every later connection between Cj and L goes through);
//! Cj's proposal times out and V is in doubt; Cj settles the doubt and the host mounts V at Cj;
//! then the stalled Transfer reaches L. Settled with a read barrier, the doubt left epoch e in
//! force, so the late Transfer committed and Ci owned V while Cj had it mounted: two writable
//! owners. Settled with `Reclaim{V, j, e}` (epoch e+1), the late Transfer is stale and refused.
//!
//! Sequence: c0, c1, c2 form one Raft group; L is the leader, Cj and Ci the followers → Cj inserts
//! A00000 (V) and writes v1 → quiet → a stall is armed on the first connection from Cj to L that
//! carries a Transfer → the host mounts V at Ci: Ci asks Cj to surrender, Cj's Transfer stalls,
//! its proposal times out, the mount at Ci fails → Cj settles its doubt → the host mounts V at
//! Cj and writes v2 → the stalled Transfer is delivered to L, and L applies what it appended →
//! B10 holds at every step (no exemption); Ci may not write V, Cj still holds the mount → the
//! host unloads v2 at Cj → heal, settle: V is owned by Cj at v2 in every catalog.
//!
//! Before the fix (commit "Settle an ownership doubt with Reclaim", which replaced the barrier)
//! this failed at the step L applied the late Transfer: "B10 violated: A00000 could be written at
//! Cj (... has job) and at Ci". Checked by hand by putting the barrier back in `settle_doubt`.

use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_sim::client::{self, ensure, wait_for};
use vtgrid_sim::cluster::host_name;
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::net::Stall;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[41, 141];

const V: &str = "A00000";

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    let v: Volser = V.parse()?;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let mut leader = None;
    wait_for(
        "one leader all voters agree on",
        Duration::from_secs(20),
        || {
            leader = client::agreed_leader(&control);
            leader.is_some()
        },
    )
    .await?;
    let l = leader.ok_or("no leader")?;
    let followers: Vec<u8> = (0..3).filter(|c| *c != l).collect();
    let (j, i) = (followers[0], followers[1]);

    client::insert(j, V, "000F").await?;
    client::write_job(j, client::specific(V), b"V v1, written at Cj", &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let (cj, ci) = (
        control.cluster(j).ok_or("Cj not running")?,
        control.cluster(i).ok_or("Ci not running")?,
    );
    let epoch_before = cj.effective(&v)?.token.epoch;

    let stall = Stall::arm(&host_name(j), &host_name(l), b"\"Transfer\"");
    let at_i = client::deadline(client::host(i).mount(client::specific(V))).await;
    ensure(
        stall.fired(),
        &format!("Cj's Transfer never stalled (mount at C{i}: {at_i:?})"),
    )?;
    ensure(
        at_i.is_err(),
        &format!("the mount at C{i} failed while Cj's Transfer stalled: {at_i:?}"),
    )?;
    wait_for(
        "Cj settles its doubt about V",
        Duration::from_secs(30),
        || !cj.in_doubt(&v),
    )
    .await?;

    let mut at_j = client::host(j);
    let m = client::deadline(at_j.mount(client::specific(V)))
        .await?
        .into_inner();
    let v2 = b"V v2, written at Cj after its doubt";
    client::write(&mut at_j, &m.mount_id, v2).await?;

    let applied_before = client::applied_index(&control, l);
    stall.release();
    wait_for(
        "the stalled Transfer reaches L",
        Duration::from_secs(10),
        || stall.delivered(),
    )
    .await?;
    // The late Transfer is appended and applied (as a refusal, once the fix is in).
    client::wait_applied_past(&control, l, applied_before, Duration::from_secs(10)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    ensure(
        !ci.may_write(&v),
        &format!("B10: C{i} may write {V} while C{j} has it mounted"),
    )?;
    let record = cj.effective(&v)?;
    ensure(
        record.token.owner == cj.id && record.token.epoch > epoch_before,
        &format!("V stays at C{j} under a newer epoch than {epoch_before}: {record:?}"),
    )?;
    let done = client::unload(&mut at_j, &m.mount_id).await?;
    ledger.acknowledge_unload(v, &done, j);
    ensure(
        done.version == 2 && done.digest == client::digest_hex(v2),
        &format!("Cj commits v2: {done:?}"),
    )?;
    client::wait_settled(&control).await?;
    for at in 0..3 {
        let seen = client::volume(at, V).await?;
        ensure(
            seen.owner == u32::from(j) && seen.version == 2,
            &format!("C{at} sees {V} owned by C{j} at v2: {seen:?}"),
        )?;
    }
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn a_late_transfer_after_the_owner_settled_its_doubt_is_stale() {
    for_each_seed(
        "a_late_transfer_after_the_owner_settled_its_doubt_is_stale",
        SEEDS,
        run,
    );
}
