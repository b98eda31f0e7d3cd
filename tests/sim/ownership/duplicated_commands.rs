//! Duplicated messages (issue 9 §2; DESIGN §3, §4): a catalog command that reaches the leader a
//! second time, late (a retry whose first try had arrived, or a copy of it the network kept),
//! changes nothing: versions, tokens and copies are fenced by version number and epoch.
//!
//! Grid c0 (made leader), c1 (writes V), c2; V's class RRD (RUN at C0 and C1, Deferred at C2).
//! Sequence: c1 inserts A00000 (V) → taps armed on c1 → c0 for its first `UpdateVolume` (the
//! publish of v1) and first `Transfer`, and on c2 → c0 for its first `CopyDone` → the host writes
//! v1 at c1 (published; C2's deferred copy reported) → v2 at c1 → the v1 publish is delivered
//! again: refused, the catalog stays at v2 → the host mounts V at c2 (c1's Transfer, epoch 1 → 2)
//! and unloads it, then mounts V at c1 (c2 surrenders, epoch 3) and holds the mount while the
//! epoch-1 Transfer is delivered again: refused, V stays at c1 → v3 at c1 → C2's CopyDone of v1
//! delivered again: refused, C2 is not counted for v3 until its own copy → settle. B10 and the
//! acknowledged-version checks hold at every step; at the end every catalog has V at v3, owned by
//! C1 at epoch 3, and every copy it counts is verified (B45).

use std::time::Duration;

use vtgrid_core::Volser;
use vtgrid_sim::client::{self, ensure, wait_for};
use vtgrid_sim::cluster::host_name;
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::Invariants;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::net::Tap;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[61, 161];

const V: &str = "A00000";
const CLASS: &str = "RRD";

fn request() -> vtgrid_proto::pb::MountRequest {
    client::with_class(client::specific(V), CLASS)
}

/// Deliver `tap`'s message again and wait until the leader has applied something after it.
async fn deliver_again(control: &GridControl, tap: &Tap, what: &str) -> Result<(), String> {
    let before = client::applied_index(control, 0);
    tap.duplicate();
    wait_for(what, Duration::from_secs(10), || tap.delivered()).await?;
    client::wait_applied_past(control, 0, before, Duration::from_secs(10)).await?;
    client::wait_quiescent(control, Duration::from_secs(30)).await
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    let v: Volser = V.parse()?;
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::make_leader(&control, 0, Duration::from_secs(60)).await?;
    client::insert(1, V, "000F").await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;
    let (c1, c2) = (host_name(1), host_name(2));
    let publish = Tap::arm(&c1, &host_name(0), b"\"UpdateVolume\"");
    let transfer = Tap::arm(&c1, &host_name(0), b"\"Transfer\"");
    let copy_done = Tap::arm(&c2, &host_name(0), b"\"CopyDone\"");

    client::write_job(1, request(), b"V v1", &ledger).await?;
    client::wait_copies_settled(&control, Duration::from_secs(60)).await?;
    ensure(
        publish.caught() && copy_done.caught(),
        "the taps saw c1's publish and c2's CopyDone",
    )?;
    client::write_job(1, request(), b"V v2", &ledger).await?;
    deliver_again(&control, &publish, "the v1 publish arrives again").await?;
    let seen = client::volume(0, V).await?;
    ensure(
        seen.version == 2 && seen.digest == client::digest_hex(b"V v2"),
        &format!("a duplicated publish of v1 changes nothing: {seen:?}"),
    )?;

    let mut at_2 = client::host(2);
    let m = client::deadline(at_2.mount(client::specific(V)))
        .await?
        .into_inner();
    client::unload(&mut at_2, &m.mount_id).await?;
    ensure(transfer.caught(), "the tap saw c1's Transfer to c2")?;
    let mut at_1 = client::host(1);
    let m = client::deadline(at_1.mount(client::specific(V)))
        .await?
        .into_inner();
    let epoch = control
        .cluster(1)
        .ok_or("c1 not running")?
        .effective(&v)?
        .token;
    deliver_again(&control, &transfer, "the epoch-1 Transfer arrives again").await?;
    let now = control
        .cluster(1)
        .ok_or("c1 not running")?
        .effective(&v)?
        .token;
    ensure(
        now == epoch && now.owner.get() == 1,
        &format!("a duplicated Transfer changes nothing: {epoch:?} before, {now:?} after"),
    )?;
    client::write(&mut at_1, &m.mount_id, b"V v3").await?;
    let done = client::unload(&mut at_1, &m.mount_id).await?;
    ledger.acknowledge_unload(v, &done, 1);

    deliver_again(&control, &copy_done, "C2's CopyDone of v1 arrives again").await?;
    let seen = client::volume(0, V).await?;
    ensure(
        seen.version == 3,
        &format!("V is at v3 after the duplicated CopyDone: {seen:?}"),
    )?;
    client::wait_settled(&control).await?;
    for at in 0..3 {
        let seen = client::volume(at, V).await?;
        ensure(
            seen.version == 3 && seen.owner == 1,
            &format!("C{at} sees V at v3, owned by C1: {seen:?}"),
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
fn duplicated_publish_transfer_and_copy_done_change_nothing() {
    for_each_seed(
        "duplicated_publish_transfer_and_copy_done_change_nothing",
        SEEDS,
        run,
    );
}
