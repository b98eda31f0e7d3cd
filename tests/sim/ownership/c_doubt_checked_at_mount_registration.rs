//! Sequence C of issue 9 (B10, B50; DESIGN §3): the doubt is checked where a mount registers, not
//! only where a mount starts. With `force_local_copy` (B50) a whole copy runs between obtaining
//! the token and registering the mount, and nothing holds the volume meanwhile: a surrender can
//! start, lose its outcome and leave the volume in doubt. A mount registered then would stand
//! beside a Transfer that may still commit.
//!
//! Grid c0 (made leader, owner of V), c1 (force-local copies), c2. Sequence: c0 inserts A00000
//! (V) and writes v1..v3 with class STANDARD (kept at C0 only) → quiet → stalls armed on c1 → c0:
//! the copy's ReadVersion of v3, c1's Transfer, and c1's next Reclaims → host A mounts V at c1:
//! c1 obtains V (epoch 2), its copy from c0 stalls → host B mounts V at c2: c1 surrenders
//! (nothing holds V), its Transfer stalls, its proposal times out, V is in doubt at c1 and host
//! B's mount fails → while nothing holds V at c1, the copy is let through: c1 registers host A's
//! mount → it must refuse (in doubt: OWNER_UNREACHABLE) → the stalled Transfer and Reclaims
//! arrive: the Transfer commits (C2 owns V at epoch 3), the Reclaims are stale → B10 at every
//! step → heal, settle: a write at c2 works.
//!
//! Before the fix (the gate in `register_mount`, `vtgrid_core::gate`) the mount registered at c1
//! in doubt, and the late Transfer would give V to C2 beside it: checked by hand by passing
//! `in_doubt: false` to the standing `register_mount` checks, which fails seed 51 at step 8478
//! ("a mount registered at c1 while V is in doubt there must be refused, got Ok(C1-0-1)").

use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_proto::pb::Reason;
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, ensure, wait_for};
use vtgrid_sim::cluster::{host_name, sim_grid};
use vtgrid_sim::grid::{GridControl, SimGrid, DEFAULT_DURATION, DEFAULT_TICK};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::net::Stall;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[51, 151];

const V: &str = "A00000";
/// Owner and leader (O), the force-local mount cluster (M), the requester (R).
const O: u8 = 0;
const M: u8 = 1;
const R: u8 = 2;

/// The protobuf of `ReadVersionRequest { volser: V, version: 3 }`: only the copy's request carries
/// these bytes (a `SurrenderRequest` for V names a cluster id below 3 in its field 2).
fn read_version_3() -> Vec<u8> {
    let mut b = vec![0x0a, 0x06];
    b.extend_from_slice(V.as_bytes());
    b.extend_from_slice(&[0x10, 0x03]);
    b
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    let v: Volser = V.parse()?;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::make_leader(&control, O, Duration::from_secs(60)).await?;
    client::insert(O, V, "000F").await?;
    for n in 1..=3u8 {
        let data = vec![n; 1000];
        client::write_job(
            O,
            client::with_class(client::specific(V), "STANDARD"),
            &data,
            &ledger,
        )
        .await?;
    }
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let cm = control.cluster(M).ok_or("c1 not running")?;

    let (m, o) = (host_name(M), host_name(O));
    let copy = Stall::arm(&m, &o, &read_version_3());
    let transfer = Stall::arm(&m, &o, b"\"Transfer\"");
    let reclaims: Vec<Stall> = (0..6).map(|_| Stall::arm(&m, &o, b"\"Reclaim\"")).collect();

    // Host A: no client deadline, so the mount call outlives the stalled copy.
    let host_a = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_secs(120),
            client::host(M).mount(client::specific(V)),
        )
        .await
    });
    wait_for(
        "c1's force-local copy stalls",
        Duration::from_secs(20),
        || copy.fired(),
    )
    .await?;
    ensure(
        cm.effective(&v)?.token.owner == cm.id,
        "c1 obtained V before copying it",
    )?;

    let at_r = client::deadline(client::host(R).mount(client::specific(V))).await;
    ensure(
        transfer.fired(),
        &format!("c1 never forwarded a Transfer of V (mount at c2: {at_r:?})"),
    )?;
    ensure(at_r.is_err(), &format!("the mount at c2 failed: {at_r:?}"))?;
    wait_for(
        "V in doubt at c1 and nothing holding it",
        Duration::from_secs(20),
        || cm.in_doubt(&v) && !cm.probe().mounts().held_volsers().contains(&v),
    )
    .await?;
    copy.release();
    let a = host_a.await?.map_err(|_| "host A's mount never answered")?;
    match &a {
        Err(status) if reason_of(status) == Some(Reason::OwnerUnreachable) => {}
        other => {
            return Err(format!(
                "C: a mount registered at c1 while V is in doubt there must be refused \
                 (OWNER_UNREACHABLE), got {other:?}"
            )
            .into())
        }
    }

    transfer.release();
    for r in &reclaims {
        r.release();
    }
    wait_for(
        "the stalled Transfer reaches c0",
        Duration::from_secs(10),
        || transfer.delivered(),
    )
    .await?;
    Stall::disarm_all();
    client::wait_settled(&control).await?;
    let seen = client::volume(O, V).await?;
    ensure(
        seen.owner == u32::from(R) && seen.version == 3,
        &format!("the late Transfer gave V to c2, at v3: {seen:?}"),
    )?;
    client::write_job(R, client::specific(V), b"v4 at c2", &ledger).await?;
    client::wait_settled(&control).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let mut config = sim_grid(3, 0);
    config.clusters[usize::from(M)].overrides.force_local_copy = true;
    let mut grid = SimGrid::with_config(seed, config, DEFAULT_DURATION, DEFAULT_TICK);
    let ledger = Ledger::new();
    grid.client("tape-host", scenario(grid.control(), ledger.clone()));
    Invariants::new(ledger).run(&mut grid)
}

#[test]
fn c_a_mount_registered_while_in_doubt_is_refused() {
    for_each_seed("c_a_mount_registered_while_in_doubt_is_refused", SEEDS, run);
}
