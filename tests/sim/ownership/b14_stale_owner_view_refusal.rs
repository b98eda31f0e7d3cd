//! B14 when the asked owner's view is the stale one: a mount whose handshake cannot complete
//! fails with a retryable reason (OWNER_UNREACHABLE, or CATALOG_UNAVAILABLE while the catalog
//! cannot answer), never with NOT_OWNER, which tells the host nothing it can act on; after the
//! heal the same mount succeeds.
//!
//! Sequence: c0, c1, c2 form one Raft group; L is the leader, Cr and Cw the followers → Cr inserts
//! A00000 (V, Cr owns it) → the grid is quiet → the driver arms a tripwire on L's Raft log → the
//! host mounts V at Cw: Cw asks Cr, Cr forwards `Transfer { V, r → w }` to L; the step L appends
//! it, the driver cuts the Cw↔L link (Cw still reaches Cr) → L and Cr commit and apply it: Cr's
//! view says Cw owns V at epoch 2; Cw never learns (it hears nothing from L) and its mount fails
//! → the host mounts V at Cr: Cr asks Cw, whose stale view says Cr owns V → the mount fails, and
//! its reason must be retryable → the link heals and the grid is quiet → the mount at Cr succeeds
//! (Cw surrenders V).
//!
//! Found by the first random schedules with jobs anywhere (seed 107): the host got
//! `NOT_OWNER` ("C2 refused: catalog rejected the change: volume P10000 is owned by C1, not C2").

use std::time::Duration;

use vtgrid_proto::pb::Reason;
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, wait_for};
use vtgrid_sim::grid::{GridControl, LogTripwire, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[14, 140];

const V: &str = "A00000";

async fn scenario(
    control: GridControl,
    trip: LogTripwire,
) -> Result<(), Box<dyn std::error::Error>> {
    let v: vtgrid_core::Volser = V.parse()?;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let mut leader = None;
    wait_for(
        "one leader all voters agree on",
        Duration::from_secs(20),
        || {
            let seen: Vec<_> = (0..3u8)
                .filter_map(|id| control.cluster(id))
                .map(|c| c.probe().leader())
                .collect();
            leader = seen[0];
            leader.is_some() && seen.len() == 3 && seen.iter().all(|l| *l == leader)
        },
    )
    .await?;
    let l = leader.map(|l| l.get()).ok_or("no leader")?;
    let followers: Vec<u8> = (0..3).filter(|c| *c != l).collect();
    let (r, w) = (followers[0], followers[1]);
    client::insert(r, V, "000F").await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    // The requester's read barrier comes first (it asks only while a leader answers), then
    // the Transfer the tripwire is for.
    trip.arm_after(&control, l, 1, vec![(w, l)]);
    let first = client::deadline(client::host(w).mount(client::specific(V))).await;
    if !trip.fired() {
        return Err(format!("the tripwire never fired (mount at C{w}: {first:?})").into());
    }
    let cr = control.cluster(r).ok_or("Cr not running")?;
    wait_for(
        "Cr applies the Transfer to Cw",
        Duration::from_secs(20),
        || cr.effective(&v).is_ok_and(|rec| rec.token.owner.get() == w),
    )
    .await?;

    let mut at_r = client::host(r);
    match client::deadline(at_r.mount(client::specific(V))).await {
        Err(s)
            if matches!(
                reason_of(&s),
                Some(Reason::OwnerUnreachable | Reason::CatalogUnavailable)
            ) => {}
        Err(s) => {
            return Err(format!(
                "L = C{l}, Cr = C{r}, Cw = C{w}: the mount at Cr of {V}, which Cw's stale view \
                 says Cr owns, failed with {:?} ({:?}: {}); expected a retryable reason",
                reason_of(&s),
                s.code(),
                s.message()
            )
            .into())
        }
        Ok(m) => {
            client::unload(&mut at_r, &m.get_ref().mount_id).await?;
        }
    }

    control.heal();
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    let (m, _) = client::read_job(r, V).await?;
    if m.volser != V {
        return Err(format!("mounted {} instead of {V}", m.volser).into());
    }
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut grid = SimGrid::new(seed, 3, 0);
    let trip = LogTripwire::default();
    grid.client("tape-host", scenario(grid.control(), trip.clone()));
    let invariants = Invariants::new(Ledger::new());
    grid.run(|g| {
        invariants.after_step(g)?;
        trip.check(g);
        Ok(())
    })?;
    invariants.at_end(&grid).map_err(|e| grid.failure(&e))
}

#[test]
fn b14_refusal_by_an_owner_with_a_stale_view_is_retryable() {
    for_each_seed(
        "b14_refusal_by_an_owner_with_a_stale_view_is_retryable",
        SEEDS,
        run,
    );
}
