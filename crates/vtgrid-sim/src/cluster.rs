//! A vtgrid cluster (or witness) as a turmoil host.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tonic::transport::Server;
use vtgrid_catalog::MemEngine;
use vtgrid_core::ClusterId;
use vtgrid_node::config::{GridConfig, Role};
use vtgrid_node::faults::FaultPoints;
use vtgrid_node::services::{grid_routes, host_routes, StatusApi};
use vtgrid_node::Cluster;
use vtgrid_proto::pb::status_service_server::StatusServiceServer;
use vtgrid_tvc::MemVolumeStore;

use crate::net::{incoming, SimConnector};

pub const HOST_PORT: u16 = 7400;
pub const GRID_PORT: u16 = 7401;

/// The first witness id (DESIGN §2: witnesses are voters 8..15).
pub const FIRST_WITNESS: u8 = 8;

/// The turmoil host name of voter `id`: `c0`.. for data clusters, `w8`.. for witnesses.
pub fn host_name(id: u8) -> String {
    if id >= FIRST_WITNESS {
        format!("w{id}")
    } else {
        format!("c{id}")
    }
}

/// Where the running cluster of a host can be found by the test driver, which runs outside the
/// simulated hosts, between `sim.step()`s. `run_cluster` fills it once the cluster has started
/// and empties it at the next start; the driver empties it when it crashes the host.
#[derive(Clone, Default)]
pub struct ClusterSlot(Arc<Mutex<Option<Arc<Cluster>>>>);

impl ClusterSlot {
    /// The cluster running now, if any.
    pub fn get(&self) -> Option<Arc<Cluster>> {
        self.lock().clone()
    }

    pub fn set(&self, cluster: Option<Arc<Cluster>>) {
        *self.lock() = cluster;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Cluster>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The storage of one simulated cluster: what survives `sim.crash`. Clone it into the host's
/// closure; each start drops whatever was not made durable before.
#[derive(Clone)]
pub struct SimDisks {
    pub engine: MemEngine,
    pub volumes: MemVolumeStore,
    /// The cluster started on these disks, while it runs (not storage: a handle for the driver).
    pub slot: ClusterSlot,
    /// The crash points of every cluster started on these disks (not storage: a handle the
    /// test arms and the driver watches, see `vtgrid_node::faults`).
    pub faults: FaultPoints,
    /// Counts starts, so each life gets its own mount-id incarnation.
    lives: Arc<AtomicU64>,
}

impl Default for SimDisks {
    fn default() -> Self {
        SimDisks {
            engine: MemEngine::default(),
            volumes: MemVolumeStore::default(),
            slot: ClusterSlot::default(),
            faults: FaultPoints::armable(),
            lives: Arc::default(),
        }
    }
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

    /// The cluster running on these disks now, if any.
    pub fn running(&self) -> Option<Arc<Cluster>> {
        self.slot.get()
    }
}

/// Management classes every simulated grid defines besides `STANDARD`, each named by its vector
/// on a three-cluster grid and holding that vector on every cluster (cut to the grid's size):
/// B44's balanced RUN-RUN-Deferred, a single production copy with a deferred second, deferred
/// copies with RUN to the DR cluster, and the DR cluster's own class (No Copy to production).
pub const PATTERN_CLASSES: [&str; 4] = ["RRD", "RDN", "DDR", "NNR"];

/// B44's hub and spoke, whose vector differs per cluster (B36): each cluster RUN for itself and
/// Deferred to the last cluster, the hub (on three clusters: C0 = RND, C1 = NRD, C2 = NNR).
pub const HUB_CLASS: &str = "HUB";

/// Sync classes (B42, B43), defined on grids of two or more clusters: C0 and C1 are the sync
/// clusters and the rest Deferred (`SSD` cut to the grid's size); `SSD` is strict
/// (`on_sync_failure = "fail"`), `SYNCDEF` goes on alone when a sync cluster fails (`"defer"`).
pub const SYNC_CLASSES: [(&str, &str); 2] = [("SSD", "fail"), ("SYNCDEF", "defer")];

/// `pattern` for a grid of `clusters` data clusters: its first letters, No Copy past its end.
pub fn fit_vector(pattern: &str, clusters: u8) -> String {
    pattern
        .chars()
        .chain(std::iter::repeat('N'))
        .take(usize::from(clusters))
        .collect()
}

/// A grid file for `clusters` simulated data clusters `c0..` and `witnesses` witnesses `w8..`,
/// with the usual categories, a management class `STANDARD` whose vector on each cluster is
/// RUN there and No Copy elsewhere, the [`PATTERN_CLASSES`] and the [`HUB_CLASS`].
pub fn sim_grid(clusters: u8, witnesses: u8) -> GridConfig {
    // `insecure`: the simulated hosts' names are not loopback, and the simulation has no TLS; its
    // connector proves each caller's member from the turmoil host it dials from instead
    // (`SimConnector::sender`), as the certificates do in a real grid.
    let mut toml = String::from("[grid]\nname = \"sim\"\ninsecure = true\n");
    for id in 0..clusters {
        let h = host_name(id);
        toml += &format!(
            "[[cluster]]\nid = {id}\nname = \"C{id}\"\nhost = \"{h}:{HOST_PORT}\"\ngrid = \"{h}:{GRID_PORT}\"\n\
             heartbeat = \"{a}:{HEARTBEAT_PORT}\"\ndata_dir = \"/sim/{h}\"\n",
            a = crate::agent::agent_host_name(id),
            HEARTBEAT_PORT = crate::agent::HEARTBEAT_PORT
        );
    }
    for id in (FIRST_WITNESS..).take(usize::from(witnesses)) {
        let h = host_name(id);
        toml += &format!(
            "[[witness]]\nid = {id}\nname = \"W{id}\"\ngrid = \"{h}:{GRID_PORT}\"\n\
             heartbeat = \"{h}:7402\"\ndata_dir = \"/sim/{h}\"\n"
        );
    }
    toml += "[[category]]\nid = \"0001\"\nname = \"SCRATCH\"\nfast_ready = true\n";
    toml += "[[category]]\nid = \"000F\"\nname = \"PRIVATE\"\n";
    let vectors: Vec<String> = (0..clusters)
        .map(|id| {
            let v: String = (0..clusters)
                .map(|j| if j == id { 'R' } else { 'N' })
                .collect();
            format!("C{id} = \"{v}\"")
        })
        .collect();
    toml += &class_toml("STANDARD", &vectors);
    for pattern in PATTERN_CLASSES {
        let v = fit_vector(pattern, clusters);
        let same: Vec<String> = (0..clusters).map(|id| format!("C{id} = \"{v}\"")).collect();
        toml += &class_toml(pattern, &same);
    }
    let hub = clusters.saturating_sub(1);
    let spokes: Vec<String> = (0..clusters)
        .map(|id| {
            let v: String = (0..clusters)
                .map(|j| match j {
                    j if j == id => 'R',
                    j if j == hub => 'D',
                    _ => 'N',
                })
                .collect();
            format!("C{id} = \"{v}\"")
        })
        .collect();
    toml += &class_toml(HUB_CLASS, &spokes);
    if clusters >= 2 {
        let v = fit_vector("SSD", clusters);
        let same: Vec<String> = (0..clusters).map(|id| format!("C{id} = \"{v}\"")).collect();
        for (name, policy) in SYNC_CLASSES {
            toml += &class_toml(name, &same);
            toml += &format!("on_sync_failure = \"{policy}\"\n");
        }
    }
    GridConfig::parse(&toml, Path::new("<sim grid>")).expect("the simulated grid file is valid")
}

fn class_toml(name: &str, vectors: &[String]) -> String {
    format!(
        "[[management_class]]\nname = \"{name}\"\ncopy_modes = {{ {} }}\n",
        vectors.join(", ")
    )
}

/// A tonic server as a real node runs it: with HTTP/2 keepalive, so a host or peer that vanished
/// without a reset (a lost path, a hold) breaks its streams instead of holding a call open.
fn sim_server() -> Server {
    Server::builder()
        .http2_keepalive_interval(Some(vtgrid_node::transport::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(vtgrid_node::transport::KEEPALIVE_TIMEOUT))
}

/// The body of voter `id`'s turmoil host: recover from the disks, start, serve until crashed.
///
/// A data cluster serves the host network and the grid network; a witness only the grid network
/// (GridService plus StatusService, as `vtgrid witness` does) and keeps no volume data.
pub async fn run_cluster(
    grid: Arc<GridConfig>,
    id: u8,
    disks: SimDisks,
) -> Result<(), Box<dyn std::error::Error>> {
    disks.slot.set(None);
    disks.crash();
    let life = disks.lives.fetch_add(1, Ordering::Relaxed);
    let witness = grid.role_of(id) == Some(Role::Witness);
    let volumes = if witness {
        MemVolumeStore::new(Some(0))
    } else {
        disks.volumes.clone()
    };
    let host_listener = if witness {
        None
    } else {
        Some(turmoil::net::TcpListener::bind(("0.0.0.0", HOST_PORT)).await?)
    };
    let grid_listener = turmoil::net::TcpListener::bind(("0.0.0.0", GRID_PORT)).await?;
    // A cluster with more than one grid link listens on one more port per link (B7).
    let mut link_listeners = Vec::new();
    for path in grid.grid_paths(id).iter().skip(1) {
        let port = path
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .ok_or_else(|| format!("grid link {path:?} has no port"))?;
        link_listeners.push(turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?);
    }
    let cluster = Cluster::start_with_faults(
        grid,
        ClusterId::new(id)?,
        disks.engine.clone(),
        Arc::new(volumes),
        Arc::new(SimConnector::new(host_name(id))),
        vtgrid_node::mounts::simulated_mount_id_key(id, life),
        disks.faults.clone(),
    )
    .await?;
    disks.slot.set(Some(cluster.clone()));
    let mut grid_side = grid_routes(cluster.clone());
    if witness {
        grid_side =
            grid_side.add_service(StatusServiceServer::new(StatusApi::new(cluster.clone())));
    }
    for listener in link_listeners {
        let routes = grid_routes(cluster.clone());
        tokio::spawn(async move {
            let _ = sim_server()
                .add_routes(routes)
                .serve_with_incoming(incoming(listener))
                .await;
        });
    }
    let grid = sim_server()
        .add_routes(grid_side)
        .serve_with_incoming(incoming(grid_listener));
    match host_listener {
        Some(listener) => {
            let host = sim_server()
                .add_routes(host_routes(cluster).await)
                .serve_with_incoming(incoming(listener));
            tokio::try_join!(host, grid)?;
        }
        None => grid.await?,
    }
    Ok(())
}

/// Run `scenario` as the tape host against `clusters` plain clusters (`sim_grid(clusters, 0)`, memory
/// storage), with `seed` and at most `duration` of simulated time, checking the grid's invariants
/// after every step (B10 from each cluster's own standing) and at the end, after a heal
/// ([`crate::client::wait_settled`]: catalogs converge, every copy owed made and verified, nothing
/// left mounted or reserved, no quarantine). For scenarios that keep no ledger and need no faults beyond the
/// partitions they cut themselves; `SimGrid` drives crashes.
pub fn run_grid<F>(
    seed: u64,
    clusters: u8,
    duration: std::time::Duration,
    scenario: F,
) -> Result<(), String>
where
    F: std::future::Future<Output = turmoil::Result> + 'static,
{
    run_grid_with(seed, sim_grid(clusters, 0), duration, scenario)
}

/// [`run_grid`] on a grid file the test adjusted first (per-cluster overrides, extra grid links).
pub fn run_grid_with<F>(
    seed: u64,
    grid: GridConfig,
    duration: std::time::Duration,
    scenario: F,
) -> Result<(), String>
where
    F: std::future::Future<Output = turmoil::Result> + 'static,
{
    let mut grid =
        crate::grid::SimGrid::with_config(seed, grid, duration, crate::grid::DEFAULT_TICK);
    let control = grid.control();
    grid.client("tape-host", async move {
        scenario.await?;
        // The end checks compare settled catalogs: heal what the scenario cut, then wait.
        crate::net::Link::repair_all();
        control.heal();
        crate::client::wait_settled(&control).await?;
        let running: Vec<_> = control
            .voters()
            .into_iter()
            .filter_map(|id| control.cluster(id))
            .collect();
        crate::invariants::no_quarantine(&running)?;
        Ok(())
    });
    crate::invariants::Invariants::new(crate::ledger::Ledger::new()).run(&mut grid)
}

/// turmoil's builder for a simulation of seed `seed`.
///
/// Every link has a fixed latency, [`CLIENT_LATENCY`] unless [`vary_link_latencies`] gives it
/// another: turmoil draws a random latency per message from one RNG shared by all links, so the
/// order in which messages on *different* links are sent (which, when a host crashes, depends on
/// the order Tokio drops its tasks, which follows process-wide task ids) would change the
/// latency of every later message, and a seed would not replay. With fixed latencies the draws
/// still happen but change nothing. Reordering comes from the schedules' holds and partitions.
pub fn sim_builder(seed: u64) -> turmoil::Builder {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .min_message_latency(CLIENT_LATENCY)
        .max_message_latency(CLIENT_LATENCY)
        // Room for the connections dialled while a path is held: every grid call opens one,
        // and turmoil fails the whole simulation when a listener's backlog (64) overflows.
        .tcp_capacity(4096);
    builder
}

/// The latency of links to clients (the tape host).
pub const CLIENT_LATENCY: std::time::Duration = std::time::Duration::from_millis(2);

/// Give each pair of voters its own fixed latency, 1..=40 ms, drawn from the seed: links differ,
/// as they do between real sites, and stay the same for the whole run.
pub fn vary_link_latencies(sim: &turmoil::Sim<'_>, seed: u64, voters: &[u8]) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x1A7E_AC1E);
    for (i, a) in voters.iter().enumerate() {
        for b in &voters[i + 1..] {
            let ms = rng.random_range(1..=40);
            sim.set_link_latency(
                host_name(*a),
                host_name(*b),
                std::time::Duration::from_millis(ms),
            );
        }
    }
}
