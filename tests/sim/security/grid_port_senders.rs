//! Sequence: a two-cluster grid starts → from the host's machine (not a member of the grid), a
//! client calls c0's grid port directly: Ping, a Propose of a Transfer of A00001 to itself, an
//! AppendEntries, a Vote and a Readmit are each refused PERMISSION_DENIED SENDER_REFUSED before
//! anything is decoded or done → A00001 is still c0's, and a job through the host port writes
//! and unloads as before.

use std::time::Duration;

use vtgrid_node::transport::Connector;
use vtgrid_proto::internal::grid_service_client::GridServiceClient;
use vtgrid_proto::internal::{PingRequest, RaftMessage, ReadmitRequest};
use vtgrid_proto::pb::{self, mount_request, Reason};
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, deadline};
use vtgrid_sim::cluster::{host_name, run_grid, GRID_PORT};
use vtgrid_sim::net::SimConnector;
use vtgrid_sim::seed::for_each_seed;

const SEEDS: &[u64] = &[5, 23];

fn refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    what: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    match result {
        Err(s)
            if s.code() == tonic::Code::PermissionDenied
                && reason_of(&s) == Some(Reason::SenderRefused) =>
        {
            Ok(())
        }
        other => Err(format!("{what}: expected SENDER_REFUSED, got {other:?}").into()),
    }
}

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    client::wait_ready(0, Duration::from_secs(30)).await?;
    client::wait_ready(1, Duration::from_secs(30)).await?;
    let mut admin = client::admin(0);
    deadline(admin.insert_volumes(pb::InsertVolumesRequest {
        range: "A00000-A00009".into(),
        category: String::new(),
    }))
    .await?;

    let channel = SimConnector::new("tape-host").channel(&format!("{}:{GRID_PORT}", host_name(0)));
    let mut grid = GridServiceClient::new(channel);
    refused(
        deadline(grid.ping(PingRequest { from_cluster: 1 })).await,
        "a stranger's Ping",
    )?;
    let transfer = vtgrid_core::CatalogCommand::Transfer {
        volser: "A00001".parse()?,
        from: vtgrid_core::ClusterId::new(0)?,
        to: vtgrid_core::ClusterId::new(1)?,
        epoch: vtgrid_core::Epoch(1),
    };
    let message = |v: &serde_json::Value| RaftMessage {
        json: serde_json::to_vec(v).expect("json").into(),
    };
    refused(
        deadline(grid.propose(message(&serde_json::to_value(&transfer)?))).await,
        "a stranger's Propose",
    )?;
    refused(
        deadline(grid.append_entries(message(&serde_json::json!({})))).await,
        "a stranger's AppendEntries",
    )?;
    refused(
        deadline(grid.vote(message(&serde_json::json!({})))).await,
        "a stranger's Vote",
    )?;
    refused(
        deadline(grid.readmit(ReadmitRequest {
            cluster: 1,
            step: 1,
        }))
        .await,
        "a stranger's Readmit",
    )?;

    let volume = deadline(admin.get_volume(pb::GetVolumeRequest {
        volser: "A00001".into(),
        ..Default::default()
    }))
    .await?
    .into_inner();
    client::ensure(volume.owner == 0, "the refused Transfer moved nothing")?;
    let mut host = client::host(0);
    let mounted = deadline(host.mount(pb::MountRequest {
        target: Some(mount_request::Target::Volser("A00001".into())),
        ..Default::default()
    }))
    .await?
    .into_inner();
    client::write(&mut host, &mounted.mount_id, b"still works").await?;
    deadline(host.rewind_unload(pb::RewindUnloadRequest {
        mount_id: mounted.mount_id,
    }))
    .await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    run_grid(seed, 2, Duration::from_secs(120), scenario())
}

#[test]
fn a_stranger_on_the_grid_port_is_refused_before_anything_is_done() {
    for_each_seed(
        "a_stranger_on_the_grid_port_is_refused_before_anything_is_done",
        SEEDS,
        run,
    );
}
