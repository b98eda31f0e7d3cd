//! DESIGN §3 and §4 "Retention": a quarantined version lives under its own identity (its digest,
//! in the volume store's quarantine area), so no copy, adopt step or later write of the same
//! version number touches it, and reading it back is checked against the digest the quarantine
//! recorded.
//!
//! Class RRD: C0 and C1 RUN, C2 Deferred. V is exempt from B10 and from the owner side of B37:
//! the forced transfer gives C1 a token for V while the cut-off C0 still holds one (as in
//! `ownership::b15_stale_epoch_quarantine`).

use std::time::Duration;

use futures::StreamExt;
use vtgrid_core::catalog::{Applied, CatalogCommand};
use vtgrid_core::{ClusterId, Volser};
use vtgrid_proto::pb;
use vtgrid_sim::client::{self, deadline, ensure, wait_for};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const V: &str = "Q00001";

/// Commit a fenced `Transfer { V, from: c0, to: c1 }` at the majority's leader (a stand-in
/// for a write takeover while c0 is cut off), retrying while the majority elects one.
async fn force_transfer_to_c1(control: &GridControl) -> Result<(), Box<dyn std::error::Error>> {
    let v: Volser = V.parse()?;
    let c1 = control.cluster(1).ok_or("c1 not running")?;
    let epoch = c1.probe().view().read(|s| s.volumes[&v].token.epoch);
    let transfer = CatalogCommand::Transfer {
        volser: v,
        from: ClusterId::new(0)?,
        to: ClusterId::new(1)?,
        epoch,
    };
    // Only the leader makes a fenced Transfer for an owner that is cut off: commit it there.
    match control
        .propose_at_leader(transfer, Duration::from_secs(30))
        .await
    {
        Ok(Applied::Transferred { .. }) => Ok(()),
        Ok(other) => Err(format!("the forced transfer answered {other:?}").into()),
        Err(e) => Err(format!("the forced transfer never committed: {e}").into()),
    }
}

/// `ReadQuarantined` of V `version` at c0, to the end.
async fn read_quarantined(version: u64) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = deadline(
        client::admin(0).read_quarantined(pb::ReadQuarantinedRequest {
            volser: V.into(),
            version,
        }),
    )
    .await?
    .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = deadline(async { Ok(stream.next().await) }).await? {
        bytes.extend_from_slice(&chunk?.data);
    }
    Ok(bytes)
}

/// Sequence: c0, c1, c2 → c0 inserts Q00000-Q00002 and writes V v1 with RRD, settled → c0 is
/// cut off → c0 writes V v2 = A (its RUN copy deferred) → the majority moves V to c1 → c1 writes
/// V v2 = B with RRD (its RUN copy to c0 deferred) → the grid heals → c0 quarantines its v2 (A)
/// and its copy engine then makes its owed copy of the catalog's v2 (B), the same number → every
/// copy settles: c0's cache holds v2 = B, and `ReadQuarantined` of v2 at c0 still returns A,
/// listed with A's digest.
async fn later_write_scenario(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    let v: Volser = V.parse()?;
    let (v1, a, b) = (
        vec![1u8; 30_000],
        b"Q00001 v2 written by c0 cut off".repeat(1000),
        b"Q00001 v2 written by c1, the new owner".repeat(900),
    );
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "Q00000-Q00002", "000F").await?;
    let rrd = |at: &str| client::with_class(client::specific(at), "RRD");
    client::write_job(0, rrd(V), &v1, &ledger).await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.isolate(0);
    let done = client::write_job(0, rrd(V), &a, &ledger).await?;
    ensure(done.version == 2, &format!("c0 acknowledged {done:?}"))?;
    force_transfer_to_c1(&control).await?;
    let done = client::write_job(1, rrd(V), &b, &ledger).await?;
    ensure(done.version == 2, &format!("c1 acknowledged {done:?}"))?;

    control.heal();
    let c0 = control.cluster(0).ok_or("c0 not running")?;
    wait_for("c0 quarantines its V v2", Duration::from_secs(30), || {
        c0.probe()
            .journal_store()
            .quarantined()
            .is_ok_and(|q| q.iter().any(|r| r.volser == v && r.version == 2))
    })
    .await?;
    client::wait_copies_settled(&control, Duration::from_secs(90)).await?;
    client::wait_consistent(0, V, &[0, 1, 2], Duration::from_secs(30)).await?;
    let cached = c0
        .probe()
        .store()
        .open(v, 2)
        .map(|r| r.meta().digest.to_hex())
        .map_err(|e| format!("c0's cache lacks the catalog's v2: {e}"))?;
    ensure(
        cached == client::digest_hex(&b),
        "c0's cache holds the catalog's v2 (B)",
    )?;
    let listed = deadline(client::admin(0).list_quarantine(pb::ListQuarantineRequest {}))
        .await?
        .into_inner()
        .versions;
    ensure(
        listed.len() == 1 && listed[0].version == 2 && listed[0].digest == client::digest_hex(&a),
        &format!("ListQuarantine at c0: {listed:?}"),
    )?;
    let read = read_quarantined(2).await?;
    ensure(
        read == a,
        &format!(
            "ReadQuarantined returns c0's own v2 (A), not the copy of the same number ({} bytes, \
             digest {})",
            read.len(),
            client::digest_hex(&read)
        ),
    )?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client(
        "tape-host",
        later_write_scenario(grid.control(), ledger.clone()),
    );
    let exempt = V.parse().map_err(|e| format!("{e}"))?;
    Invariants::new(ledger).exempt(exempt).run(&mut grid)
}

#[test]
fn quarantine_survives_a_later_write_of_the_same_number() {
    for_each_seed(
        "quarantine_survives_a_later_write_of_the_same_number",
        &[9, 90],
        run,
    );
}

/// The publisher writes the quarantine record (atomically with dropping the journal entry) and
/// then moves the file. Sequence: c0, c1, c2 → c0 writes V v1 → c1 leads → c0 is cut off → c0 writes V v2 =
/// A (journalled, acknowledged) → the test writes c0's quarantine record for it exactly as the
/// publisher does, and c0 crashes before the move → c0 restarts and the grid heals → c0 finishes
/// the move on its own: its quarantine area holds (V, 2, A), its cache no longer holds V v2, and
/// `ReadQuarantined` returns A. Nothing of c0's acknowledged v2 is lost on the way (B37 runs
/// after every step).
async fn crash_before_move_scenario(
    control: GridControl,
    ledger: Ledger,
) -> Result<(), Box<dyn std::error::Error>> {
    let v: Volser = V.parse()?;
    let a = b"Q00001 v2, quarantined just before a crash".repeat(500);
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "Q00000-Q00002", "000F").await?;
    client::write_job(0, client::specific(V), &[5u8; 1000], &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    // c0 must not lead: a leader appends its publisher's proposal of V v2 to its own log at
    // once, cut off or not, and that entry may still commit once the cut heals, whatever the
    // journal says afterwards. A follower's forward never leaves it.
    client::make_leader(&control, 1, Duration::from_secs(30)).await?;

    control.isolate(0);
    client::write_job(0, client::specific(V), &a, &ledger).await?;
    let c0 = control.cluster(0).ok_or("c0 not running")?;
    let journal = c0.probe().journal_store().clone();
    let entry = journal
        .entries()?
        .into_iter()
        .find(|e| e.command.volume_keys().first() == Some(&v))
        .ok_or("c0's journal holds V v2")?;
    let record = vtgrid_catalog::QuarantineRecord {
        volser: v,
        version: 2,
        size: a.len() as u64,
        digest: vtgrid_core::Digest(*blake3::hash(&a).as_bytes()),
        epoch: vtgrid_core::Epoch(1),
        rejection: vtgrid_core::CatalogRejection::StaleEpoch {
            volser: v,
            held: vtgrid_core::Epoch(1),
            current: vtgrid_core::Epoch(2),
        },
    };
    journal.quarantine(entry.seq, &record)?;
    drop(c0);
    control.crash(0).await;
    control.restart(0).await;
    control.heal();
    client::wait_ready(0, Duration::from_secs(60)).await?;
    let c0 = control.cluster(0).ok_or("c0 not running")?;
    wait_for(
        "c0 finishes the move into its quarantine area",
        Duration::from_secs(60),
        || {
            c0.probe().store().quarantined().is_ok_and(|q| {
                q.iter()
                    .any(|q| q.volser == v && q.version == 2 && q.digest == record.digest)
            })
        },
    )
    .await?;
    ensure(
        c0.probe().store().open(v, 2).is_err(),
        "c0's cache no longer holds V v2",
    )?;
    ensure(
        read_quarantined(2).await? == a,
        "ReadQuarantined returns V v2",
    )?;
    let seen = client::volume(0, V).await?;
    ensure(
        seen.version == 1,
        &format!("the catalog still has V v1: {seen:?}"),
    )?;
    Ok(())
}

fn run_crash_before_move(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client(
        "tape-host",
        crash_before_move_scenario(grid.control(), ledger.clone()),
    );
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn quarantine_move_finishes_after_a_crash_between_record_and_move() {
    for_each_seed(
        "quarantine_move_finishes_after_a_crash_between_record_and_move",
        &[19, 91],
        run_crash_before_move,
    );
}
