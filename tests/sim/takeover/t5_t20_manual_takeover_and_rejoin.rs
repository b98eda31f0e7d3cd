//! T5 (B14, B20, B21, B24, B25, B67) then T20 (B22): a crashed cluster's volumes under no mode,
//! read takeover and write takeover, and the cluster's return.
//!
//! Sequence, three clusters: c0 inserts private R00000 and N00000 and scratch S00000-S00001, c1
//! scratch T00000 → c0 writes R00000 with RRD (a RUN copy at c1) and N00000 with STANDARD (No
//! Copy: only at c0) → quiet → WOT at c1 for the live c0 → PEER_ALIVE (B25) → c0 crashes:
//! - no mode: R00000 at c1 → OWNER_UNREACHABLE; c1's own scratch T00000 mounts, the next
//!   scratch mount → NO_SCRATCH_AVAILABLE (c0's scratch volumes cannot be had);
//! - ROT at c1 for c0: R00000 reads back byte for byte at c1; a write of it, an append mount and
//!   a category change → WRITE_PROTECTED; a scratch mount still finds nothing; N00000 →
//!   NO_VALID_COPY (B24);
//! - WOT at c1: R00000 is written at c1 (v2), a scratch mount gets c0's S00000, N00000 is still
//!   NO_VALID_COPY;
//! - T20: c0 restarts; its view named it the owner of R00000 at v1, but it catches up before it
//!   serves: the catalog still has R00000 and S00000 at c1, the grant for c0 is gone (c1's status
//!   lists no takeover), and R00000 read through c0 is c1's v2.
//!
//! B10 and B37 after every step (a volume taken from c0 may lack what c0 never published).

use std::time::Duration;

use vtgrid_proto::pb::{self, Reason};
use vtgrid_sim::client::{self, ensure, expect_reason};
use vtgrid_sim::grid::GridControl;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::scenario;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[5, 20];

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "R00000", "000F").await?;
    client::insert(0, "N00000", "000F").await?;
    client::insert(0, "S00000-S00001", "0001").await?;
    client::insert(1, "T00000", "0001").await?;
    let v1 = b"R00000 v1, written at c0, RUN copy at c1".to_vec();
    let done = client::write_job(
        0,
        client::with_class(client::specific("R00000"), "RRD"),
        &v1,
        &ledger,
    )
    .await?;
    ensure(done.copies.contains(&1), "R00000's RUN copy is at c1")?;
    client::write_job(
        0,
        client::with_class(client::specific("N00000"), "STANDARD"),
        b"N00000, only at c0",
        &ledger,
    )
    .await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    expect_reason(
        "B25: WOT at c1 for c0, which answers",
        client::set_takeover(1, 0, pb::TakeoverMode::Wot, false).await,
        Reason::PeerAlive,
    )?;

    control.crash(0).await;
    expect_reason(
        "B14: R00000 at c1, no mode",
        client::read_job(1, "R00000").await,
        Reason::OwnerUnreachable,
    )?;
    let own = client::write_job(1, client::scratch("0001"), b"c1's own scratch", &ledger).await?;
    ensure(own.volser == "T00000", "c1 mounts its own scratch volume")?;
    expect_reason(
        "B8/T5: a scratch mount at c1 with only c0's scratch volumes left",
        client::deadline(client::host(1).mount(client::scratch("0001"))).await,
        Reason::NoScratchAvailable,
    )?;

    // ROT: no quorum needed, reads only.
    client::set_takeover(1, 0, pb::TakeoverMode::Rot, false).await?;
    let held = client::cluster_status(1).await?.takeovers;
    ensure(
        held.len() == 1 && held[0].for_cluster == 0 && held[0].mode == "rot",
        "c1's status lists ROT for c0",
    )?;
    let (_, bytes) = client::read_job(1, "R00000").await?;
    ensure(bytes == v1, "B20: R00000 reads back at c1 under ROT")?;
    {
        let mut host = client::host(1);
        let m = client::deadline(host.mount(client::specific("R00000")))
            .await?
            .into_inner();
        expect_reason(
            "B20: a write under ROT",
            client::write(&mut host, &m.mount_id, b"not allowed").await,
            Reason::WriteProtected,
        )?;
        client::unload(&mut host, &m.mount_id).await?;
    }
    let mut append = client::specific("R00000");
    append.append = true;
    expect_reason(
        "B20: an append mount under ROT",
        client::deadline(client::host(1).mount(append)).await,
        Reason::WriteProtected,
    )?;
    expect_reason(
        "B20: a category change under ROT",
        client::change_category(1, "R00000", "0001").await,
        Reason::WriteProtected,
    )?;
    expect_reason(
        "B20: a scratch mount under ROT",
        client::deadline(client::host(1).mount(client::scratch("0001"))).await,
        Reason::NoScratchAvailable,
    )?;
    expect_reason(
        "B24: a No Copy volume under ROT",
        client::read_job(1, "N00000").await,
        Reason::NoValidCopy,
    )?;

    // WOT: the grant commits through the majority (c1, c2); c0 does not answer any more.
    client::set_takeover(1, 0, pb::TakeoverMode::Wot, false).await?;
    let v2 = b"R00000 v2, written at c1 after the takeover".to_vec();
    let rewritten = client::write_job(1, client::specific("R00000"), &v2, &ledger).await?;
    ensure(rewritten.version == 2, "B21: c1 writes R00000 v2 under WOT")?;
    let taken = client::write_job(1, client::scratch("0001"), b"c0's scratch", &ledger).await?;
    ensure(
        taken.volser.starts_with('S'),
        "B21: a scratch mount at c1 takes one of c0's scratch volumes",
    )?;
    expect_reason(
        "B24: a No Copy volume under WOT",
        client::read_job(1, "N00000").await,
        Reason::NoValidCopy,
    )?;

    // T20: c0 is back. It learns the epochs before it serves anything.
    control.restart(0).await;
    client::wait_ready(0, Duration::from_secs(60)).await?;
    let r = client::volume(0, "R00000").await?;
    ensure(
        r.owner == 1 && r.version == 2,
        "T20: c0 sees R00000 at c1, v2",
    )?;
    let s = client::volume(0, &taken.volser).await?;
    ensure(s.owner == 1, "T20: the scratch volume c1 took stays at c1")?;
    client::wait_grants_cleared(&control, 1).await?;
    let (_, bytes) = client::read_job(0, "R00000").await?;
    ensure(bytes == v2, "T20: R00000 read through c0 is c1's v2")?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

#[test]
fn t5_t20_manual_takeover_of_a_crashed_cluster_and_its_return() {
    for_each_seed(
        "t5_t20_manual_takeover_of_a_crashed_cluster_and_its_return",
        SEEDS,
        |seed| scenario::run_host(seed, 3, 0, scenario),
    );
}

/// T14a (B37): c0 crashes right after the host heard the RUN unload; WOT at c1; the version reads
/// back at c1 byte for byte. The unload answers once the catalog has the version (a leader
/// answers), so the takeover sees it.
async fn t14a_scenario(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "R00001", "000F").await?;
    let data = b"R00001, acknowledged by a RUN unload just before c0 dies".repeat(40);
    let done = client::write_job(
        0,
        client::with_class(client::specific("R00001"), "RRD"),
        &data,
        &ledger,
    )
    .await?;
    ensure(done.copies.contains(&1), "R00001's RUN copy is at c1")?;
    control.crash(0).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client::set_takeover(1, 0, pb::TakeoverMode::Wot, false).await {
            Ok(()) => break,
            // c1 still has c0 as answering for a moment after the crash.
            Err(s)
                if vtgrid_proto::reason_of(&s) == Some(Reason::PeerAlive)
                    && tokio::time::Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(s) => return Err(s.into()),
        }
    }
    let (_, bytes) = client::read_job(1, "R00001").await?;
    ensure(bytes == data, "T14a: R00001 reads back at c1 byte for byte")?;
    control.restart(0).await;
    client::wait_ready(0, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

#[test]
fn t14a_a_run_version_acknowledged_just_before_the_owner_dies_survives_the_takeover() {
    for_each_seed(
        "t14a_a_run_version_acknowledged_just_before_the_owner_dies_survives_the_takeover",
        &[14, 140],
        |seed| scenario::run_host(seed, 3, 0, t14a_scenario),
    );
}

/// T15 (B40, B134): c0 = RD. c0 writes D00000 v1 (its deferred copy reaches c1), is cut off,
/// writes v2 (journalled at c0 only) and crashes; WOT at c1: D00000 there is v1, the older
/// version. c0 comes back: its v2 is refused by epoch and quarantined at c0 (OWNERSHIP_CONFLICT),
/// never published over c1's.
async fn t15_scenario(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "D00000", "000F").await?;
    let v1 = b"D00000 v1, copied to c1 later".to_vec();
    client::write_job(
        0,
        client::with_class(client::specific("D00000"), "RDN"),
        &v1,
        &ledger,
    )
    .await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    client::make_leader(&control, 1, Duration::from_secs(30)).await?;
    control.isolate(0);
    let v2 = b"D00000 v2, written cut off, never published".to_vec();
    let done = client::write_job(0, client::specific("D00000"), &v2, &ledger).await?;
    ensure(done.version == 2, "c0 acknowledges v2 from its journal")?;
    control.crash(0).await;
    control.heal();
    client::set_takeover(1, 0, pb::TakeoverMode::Wot, true).await?;
    let (_, bytes) = client::read_job(1, "D00000").await?;
    ensure(bytes == v1, "T15: at c1 D00000 is the older version, v1")?;
    control.restart(0).await;
    client::wait_ready(0, Duration::from_secs(60)).await?;
    client::wait_quarantined(&control, 0, "D00000", 2).await?;
    let v = client::volume(1, "D00000").await?;
    ensure(
        v.owner == 1 && v.version == 1,
        "the catalog keeps c1 as owner at v1",
    )?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

#[test]
fn t15_a_deferred_version_written_cut_off_is_lost_to_the_takeover_and_quarantined() {
    for_each_seed(
        "t15_a_deferred_version_written_cut_off_is_lost_to_the_takeover_and_quarantined",
        &[15, 150],
        |seed| scenario::run_host(seed, 3, 0, t15_scenario),
    );
}
