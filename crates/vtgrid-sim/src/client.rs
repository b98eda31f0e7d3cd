//! The tape host's side of a simulation: gRPC clients on the simulated network.
//!
//! turmoil drops segments silently on a partition and nothing retransmits, so every call made
//! through these helpers has a deadline (openraft tests-turmoil README, "Determinism").

use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;
use vtgrid_node::transport::Connector;
use vtgrid_proto::pb::admin_service_client::AdminServiceClient;
use vtgrid_proto::pb::host_service_client::HostServiceClient;
use vtgrid_proto::pb::status_service_client::StatusServiceClient;
use vtgrid_proto::pb::GetStatusRequest;

use crate::cluster::{host_name, HOST_PORT};
use crate::net::SimConnector;

/// The deadline of one simulated RPC.
pub const RPC_DEADLINE: Duration = Duration::from_secs(10);

/// A fresh channel to cluster `id`'s host endpoint. After a fault, make a new one: an HTTP/2
/// connection can stay wedged after the network heals.
pub fn channel(id: u8) -> Channel {
    SimConnector.channel(&format!("{}:{HOST_PORT}", host_name(id)))
}

pub fn host(id: u8) -> HostServiceClient<Channel> {
    HostServiceClient::new(channel(id))
}

pub fn admin(id: u8) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(channel(id))
}

/// Run `call` with [`RPC_DEADLINE`]; a timeout is a `DEADLINE_EXCEEDED` status.
pub async fn deadline<T>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(RPC_DEADLINE, call).await {
        Ok(r) => r,
        Err(_) => Err(tonic::Status::deadline_exceeded("simulated RPC deadline")),
    }
}

/// Poll cluster `id` until it reports ready, within `within` of simulated time.
pub async fn wait_ready(id: u8, within: Duration) -> Result<(), String> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let mut status = StatusServiceClient::new(channel(id));
        if let Ok(s) = deadline(status.get_status(GetStatusRequest {})).await {
            if s.get_ref().ready {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > until {
            return Err(format!("cluster C{id} not ready within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
