//! DESIGN §3, local autonomy (B15) meets epoch fencing: a version an owner wrote while cut off,
//! after the majority moved its volume on, is refused by the catalog for a stale epoch and
//! quarantined at the writer, never dropped and never published over the new owner's.
//!
//! Sequence: c0, c1, c2 form one Raft group → c0 inserts A00000-A00002 and writes A00001 (V) v1
//! → the grid is quiet → c0 is cut off → c0, still believing it owns V, writes V v2 and A00002
//! v1 (journalled, acknowledged) → on the majority side, the test commits a fenced
//! `Transfer { V, from: c0, to: c1, epoch: 1 }` through c1's `catalog.propose` (a stand-in for
//! a write takeover: the majority moved V on while c0 was cut off) → the partition heals → c0's
//! publisher gets StaleEpoch for V v2: V v2 is in c0's quarantine (ListQuarantine at c0 shows it
//! with its digest, ReadQuarantined returns its bytes), c0 lists an OWNERSHIP_CONFLICT event for
//! V, and c0 no longer may write V → nothing else is lost: the journal drains, every catalog is
//! the same, A00002 v1 is published and reads back through c1, V is owned by c1 at epoch 2 at
//! v1 and reads back v1's bytes (from c0's TVC), and c0's status reports one quarantined version.
//!
//! Invariants: V is exempt from B10 and from the owner side of B37 in this test only. The forced
//! transfer breaks B10 for V on purpose: until c0 hears of it, c0 (epoch 1, cut off) and c1
//! (epoch 2) both hold a token for V, and c1 owns V at v1 while c0's acknowledged v2 waits in
//! c0's journal. The writer side of B37 still holds for V: c0 keeps v2 in its journal, then in
//! its quarantine.

use std::time::Duration;

use futures::StreamExt;
use vtgrid_core::catalog::{Applied, CatalogCommand};
use vtgrid_core::{ClusterId, Volser};
use vtgrid_proto::pb;
use vtgrid_sim::client::{self, deadline, wait_for};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[6, 66, 666];

const V: &str = "A00001";

fn check(cond: bool, what: String) -> Result<(), Box<dyn std::error::Error>> {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    let v: Volser = V.parse()?;
    let (v1, v2, other) = (
        b"A00001 v1, grid whole".to_vec(),
        b"A00001 v2, written by c0 cut off".to_vec(),
        b"A00002 v1, written by c0 cut off".to_vec(),
    );
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "A00000-A00002", "000F").await?;
    client::write_job(0, client::specific(V), &v1, &ledger).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    control.isolate(0);
    let done = client::write_job(0, client::specific(V), &v2, &ledger).await?;
    check(
        done.version == 2,
        format!("c0 acknowledged V v{}", done.version),
    )?;
    client::write_job(0, client::specific("A00002"), &other, &ledger).await?;

    // The majority moves V on: a fenced Transfer at the epoch the catalog holds, at its leader.
    let c1 = control.cluster(1).ok_or("c1 not running")?;
    let epoch = c1.probe().view().read(|s| s.volumes[&v].token.epoch);
    let transfer = CatalogCommand::Transfer {
        volser: v,
        from: ClusterId::new(0)?,
        to: ClusterId::new(1)?,
        epoch,
    };
    // Only the leader makes a fenced Transfer for an owner that is cut off: commit it there,
    // retrying while the majority elects one.
    match control
        .propose_at_leader(transfer, Duration::from_secs(30))
        .await
    {
        Ok(Applied::Transferred { token }) => check(
            token.owner.get() == 1 && token.epoch == epoch.next(),
            format!("the forced transfer gave {token:?}"),
        )?,
        Ok(other) => return Err(format!("the forced transfer answered {other:?}").into()),
        Err(e) => return Err(format!("the forced transfer never committed: {e}").into()),
    }

    control.heal();
    let c0 = control.cluster(0).ok_or("c0 not running")?;
    wait_for("c0 quarantines V v2", Duration::from_secs(30), || {
        c0.probe()
            .journal_store()
            .quarantined()
            .is_ok_and(|q| q.iter().any(|r| r.volser == v && r.version == 2))
    })
    .await?;

    let listed = deadline(client::admin(0).list_quarantine(pb::ListQuarantineRequest {}))
        .await?
        .into_inner()
        .versions;
    check(
        listed.len() == 1
            && listed[0].volser == V
            && listed[0].version == 2
            && listed[0].digest == client::digest_hex(&v2),
        format!("ListQuarantine at c0: {listed:?}"),
    )?;
    let mut stream = deadline(
        client::admin(0).read_quarantined(pb::ReadQuarantinedRequest {
            volser: V.into(),
            version: 2,
        }),
    )
    .await?
    .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = deadline(async { Ok(stream.next().await) }).await? {
        bytes.extend_from_slice(&chunk?.data);
    }
    check(bytes == v2, "ReadQuarantined returns V v2's bytes".into())?;
    let events = deadline(
        pb::status_service_client::StatusServiceClient::new(client::channel(0))
            .list_events(pb::ListEventsRequest::default()),
    )
    .await?
    .into_inner()
    .events;
    check(
        events
            .iter()
            .any(|e| e.code == "OWNERSHIP_CONFLICT" && e.volser == V),
        format!("c0 lists an OWNERSHIP_CONFLICT event for V: {events:?}"),
    )?;
    wait_for("c0 no longer may write V", Duration::from_secs(10), || {
        !c0.may_write(&v)
    })
    .await?;

    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    let a2 = client::volume(1, "A00002").await?;
    check(
        a2.version == 1 && a2.owner == 0,
        format!("A00002 after the heal: {a2:?}"),
    )?;
    let (_, read) = client::read_job(1, "A00002").await?;
    check(read == other, "A00002 v1 reads back through c1".into())?;
    let seen = client::volume(1, V).await?;
    check(
        (seen.version, seen.owner, seen.epoch) == (1, 1, 2),
        format!("V after the heal: {seen:?}"),
    )?;
    let (_, read) = client::read_job(1, V).await?;
    check(
        read == v1,
        "V reads back v1 through its new owner c1".into(),
    )?;
    let status = deadline(
        pb::status_service_client::StatusServiceClient::new(client::channel(0))
            .get_status(pb::GetStatusRequest {}),
    )
    .await?
    .into_inner();
    check(
        status.quarantined == 1 && status.journal_pending == 0,
        format!(
            "c0's status: quarantined {}, journal pending {}",
            status.quarantined, status.journal_pending
        ),
    )?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    let exempt = V.parse().map_err(|e| format!("{e}"))?;
    Invariants::new(ledger).exempt(exempt).run(&mut grid)
}

#[test]
fn b15_version_written_under_a_stale_epoch_is_quarantined() {
    for_each_seed(
        "b15_version_written_under_a_stale_epoch_is_quarantined",
        SEEDS,
        run,
    );
}
