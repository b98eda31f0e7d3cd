//! A vtgrid cluster as a turmoil host.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tonic::transport::Server;
use vtgrid_catalog::MemEngine;
use vtgrid_core::ClusterId;
use vtgrid_node::config::GridConfig;
use vtgrid_node::services::{grid_routes, host_routes};
use vtgrid_node::Cluster;
use vtgrid_tvc::MemVolumeStore;

use crate::net::{incoming, SimConnector};

pub const HOST_PORT: u16 = 7400;
pub const GRID_PORT: u16 = 7401;

/// The turmoil host name of cluster `id`.
pub fn host_name(id: u8) -> String {
    format!("c{id}")
}

/// The storage of one simulated cluster: what survives `sim.crash`. Clone it into the host's
/// closure; each start drops whatever was not made durable before.
#[derive(Clone, Default)]
pub struct SimDisks {
    pub engine: MemEngine,
    pub volumes: MemVolumeStore,
    /// Counts starts, so each life gets its own mount-id incarnation.
    lives: Arc<AtomicU64>,
}

impl SimDisks {
    pub fn new() -> Self {
        SimDisks::default()
    }

    /// What a power cut does: unsynced catalog writes and partial volume versions are gone.
    pub fn crash(&self) {
        self.engine.crash();
        self.volumes.crash();
    }
}

/// A grid file for `n` simulated clusters `c0..c{n-1}`, with the usual categories and a
/// management class `STANDARD` whose vector on each cluster is RUN there and No Copy elsewhere.
pub fn sim_grid(n: u8) -> GridConfig {
    let mut toml = String::from("[grid]\nname = \"sim\"\n");
    for id in 0..n {
        let h = host_name(id);
        toml += &format!(
            "[[cluster]]\nid = {id}\nname = \"C{id}\"\nhost = \"{h}:{HOST_PORT}\"\ngrid = \"{h}:{GRID_PORT}\"\n\
             heartbeat = \"{h}:7402\"\ndata_dir = \"/sim/{h}\"\n"
        );
    }
    toml += "[[category]]\nid = \"0001\"\nname = \"SCRATCH\"\nfast_ready = true\n";
    toml += "[[category]]\nid = \"000F\"\nname = \"PRIVATE\"\n";
    let vectors: Vec<String> = (0..n)
        .map(|id| {
            let v: String = (0..n).map(|j| if j == id { 'R' } else { 'N' }).collect();
            format!("C{id} = \"{v}\"")
        })
        .collect();
    toml += &format!(
        "[[management_class]]\nname = \"STANDARD\"\ncopy_modes = {{ {} }}\n",
        vectors.join(", ")
    );
    GridConfig::parse(&toml, Path::new("<sim grid>")).expect("the simulated grid file is valid")
}

/// The body of cluster `id`'s turmoil host: recover from the disks, start, serve until crashed.
pub async fn run_cluster(
    grid: Arc<GridConfig>,
    id: u8,
    disks: SimDisks,
) -> Result<(), Box<dyn std::error::Error>> {
    disks.crash();
    let life = disks.lives.fetch_add(1, Ordering::Relaxed);
    let host_listener = turmoil::net::TcpListener::bind(("0.0.0.0", HOST_PORT)).await?;
    let grid_listener = turmoil::net::TcpListener::bind(("0.0.0.0", GRID_PORT)).await?;
    let cluster = Cluster::start(
        grid,
        ClusterId::new(id)?,
        disks.engine.clone(),
        Arc::new(disks.volumes.clone()),
        Arc::new(SimConnector),
        life,
    )
    .await?;
    let host = Server::builder()
        .add_routes(host_routes(cluster.clone()).await)
        .serve_with_incoming(incoming(host_listener));
    let grid = Server::builder()
        .add_routes(grid_routes(cluster))
        .serve_with_incoming(incoming(grid_listener));
    tokio::try_join!(host, grid)?;
    Ok(())
}
