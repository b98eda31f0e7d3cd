//! The takeover agents in a simulation: one turmoil host per data cluster, `a0`.., serving
//! `AgentService` on the cluster's heartbeat address. Each watches its cluster through the
//! driver's handle (running, or down) and fences it by asking the driver to crash it, so the
//! heartbeat network is a path of its own: grid partitions leave it whole, and
//! [`crate::grid::GridControl::cut_heartbeat`] cuts it alone.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Server;
use vtgrid_agent::{Agent, NodeWatch, Probe};
use vtgrid_core::ClusterId;
use vtgrid_node::GridConfig;

use crate::grid::GridControl;
use crate::net::{incoming, SimConnector};

/// The port of the heartbeat address in [`crate::cluster::sim_grid`].
pub const HEARTBEAT_PORT: u16 = 7402;

/// The turmoil host name of data cluster `id`'s agent.
pub fn agent_host_name(id: u8) -> String {
    format!("a{id}")
}

/// A simulated cluster seen from its agent.
struct SimWatch {
    id: u8,
    control: GridControl,
}

#[tonic::async_trait]
impl NodeWatch for SimWatch {
    async fn probe(&self) -> Probe {
        if self.control.is_down(self.id) {
            Probe::Gone
        } else if self.control.cluster(self.id).is_some() {
            Probe::Answered
        } else {
            // Started but not serving yet.
            Probe::NoAnswer
        }
    }

    async fn fence(&self) {
        self.control.crash(self.id).await;
    }
}

/// The body of data cluster `id`'s agent host.
pub async fn run_agent(
    grid: Arc<GridConfig>,
    id: u8,
    control: GridControl,
    fence_after: Option<Duration>,
) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = ClusterId::new(id)?;
    let agent = Agent::new(
        cluster,
        Agent::peers_from(&grid, cluster),
        Arc::new(SimWatch { id, control }),
        Arc::new(SimConnector::new(agent_host_name(id))),
        fence_after,
    );
    tokio::spawn(agent.clone().watch_node());
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", HEARTBEAT_PORT)).await?;
    Server::builder()
        .add_service(vtgrid_agent::service(agent))
        .serve_with_incoming(incoming(listener))
        .await?;
    Ok(())
}
