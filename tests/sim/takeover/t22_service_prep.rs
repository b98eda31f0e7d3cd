//! T22 (B23): service prep drains a cluster, service mode opens its volumes to the others with
//! no takeover mode, and leaving service reclaims nothing.
//!
//! Sequence, two clusters and a witness: c0 inserts V00000 (written with RRD, so c1 holds a
//! copy), P00000 and Q00000 → a job at c0 mounts P00000 and writes, not unloaded yet → service
//! prep for c0, asked at c1 → a new mount at c0 → SERVICE_MODE → the job in flight unloads and
//! commits → c0, drained, enters service mode by itself → c1 writes V00000 (full access, no
//! ROT/WOT) → service exit → c0 mounts and writes Q00000 again; V00000 stays at c1.

use std::time::Duration;

use vtgrid_core::takeover::ServiceState;
use vtgrid_proto::pb::{self, Reason};
use vtgrid_sim::client::{self, ensure, expect_reason};
use vtgrid_sim::grid::GridControl;
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::scenario;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[22, 220];

fn service_of(control: &GridControl, at: u8, cluster: u8) -> Option<ServiceState> {
    let id = vtgrid_core::ClusterId::new(cluster).ok()?;
    control
        .cluster(at)
        .and_then(|c| c.probe().view().read(|s| s.service_state(id)))
}

async fn scenario(control: GridControl, ledger: Ledger) -> Result<(), Box<dyn std::error::Error>> {
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    client::insert(0, "V00000", "000F").await?;
    client::insert(0, "P00000", "000F").await?;
    client::insert(0, "Q00000", "000F").await?;
    client::write_job(
        0,
        client::with_class(client::specific("V00000"), "RRD"),
        b"V00000 v1",
        &ledger,
    )
    .await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let mut host = client::host(0);
    let job = client::deadline(host.mount(client::specific("P00000")))
        .await?
        .into_inner();
    let p1 = b"P00000 v1, a job in flight when service prep began".to_vec();
    client::write(&mut host, &job.mount_id, &p1).await?;

    client::set_service(1, 0, pb::ServiceStep::Prep).await?;
    client::wait_for("c0 sees its service prep", Duration::from_secs(10), || {
        service_of(&control, 0, 0) == Some(ServiceState::Prep)
    })
    .await?;
    expect_reason(
        "B23: a new mount at c0 in service prep",
        client::read_job(0, "Q00000").await,
        Reason::ServiceMode,
    )?;
    ensure(
        service_of(&control, 1, 0) == Some(ServiceState::Prep),
        "c0 stays in prep while its job runs",
    )?;
    let done = client::unload(&mut host, &job.mount_id).await?;
    ensure(done.written, "the job in flight finishes")?;
    ledger.acknowledge_unload("P00000".parse()?, &done, 0);
    client::wait_for(
        "c0, drained, enters service mode",
        Duration::from_secs(30),
        || service_of(&control, 1, 0) == Some(ServiceState::Service),
    )
    .await?;

    let v2 = client::write_job(1, client::specific("V00000"), b"V00000 v2 at c1", &ledger).await?;
    ensure(
        v2.version == 2,
        "B23: c1 writes c0's volume in service mode, with no takeover mode",
    )?;

    client::set_service(1, 0, pb::ServiceStep::Exit).await?;
    client::wait_for("c0 is out of service", Duration::from_secs(10), || {
        service_of(&control, 0, 0).is_none()
    })
    .await?;
    let q = client::write_job(0, client::specific("Q00000"), b"Q00000 v1", &ledger).await?;
    ensure(q.version == 1, "c0 mounts again after service")?;
    let v = client::volume(0, "V00000").await?;
    ensure(v.owner == 1, "T22: leaving service reclaims nothing")?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

#[test]
fn t22_service_prep_drains_service_mode_opens_exit_reclaims_nothing() {
    for_each_seed(
        "t22_service_prep_drains_service_mode_opens_exit_reclaims_nothing",
        SEEDS,
        |seed| scenario::run_host(seed, 2, 1, scenario),
    );
}
