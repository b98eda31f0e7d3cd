//! `vtgrid node` and `vtgrid witness`: one Raft voter of a grid file as a real process, on
//! RocksDB and TCP (DESIGN §2).
//!
//! Both kinds of voter start and stop the same way; only what they store and serve differs:
//!
//! ```text
//!   load the grid file, check the id's role ──> telemetry ──> RocksDB at data_dir/catalog
//!     ──> bind listeners ──> Cluster::start (form or rejoin the catalog's Raft group)
//!     ──> serve until SIGINT/SIGTERM ──> stop accepting, end event streams, finish requests in
//!         flight (at most 10 s, then close their connections) ──> stop Raft
//!
//!   data cluster (node)                      witness
//!   volumes: FileVolumeStore at data_dir/tvc volumes: none (an empty memory store, quota 0)
//!   host:  host router (HostService, ...)    host: none; it serves no hosts
//!   grid:  grid router                       grid: grid router + StatusService + gRPC health
//!   metrics: Prometheus when configured      metrics: none
//! ```
//!
//! The stop signals are watched from the first line of a run ([`StopSignal::watch`]), so a
//! SIGTERM that arrives during start-up ends the run cleanly once it is up, instead of killing
//! the process with the signal's default action.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use vtgrid_catalog::RocksEngine;
use vtgrid_core::ClusterId;
use vtgrid_proto::internal::grid_service_server::GridServiceServer;
use vtgrid_proto::pb::admin_service_server::AdminServiceServer;
use vtgrid_proto::pb::status_service_server::StatusServiceServer;
use vtgrid_tvc::{FileVolumeStore, MemVolumeStore, VolumeStore};

use crate::access::{AuditLog, AuditRecord, HostAccess, Tokens};
use crate::cluster::Cluster;
use crate::config::{ClusterConfig, ConfigError, GridConfig, Role, WitnessConfig};
use crate::services::{grid_routes, host_routes, AdminApi, GridApi, StatusApi};
use crate::start::StartError;
use crate::telemetry::{self, TelemetryGuard};
use crate::transport::names::Member;
use crate::transport::{
    Connector, GridTls, TcpConnector, TlsConnector, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT,
};

/// How long a stopping process lets requests in flight finish before it closes their
/// connections: a host write or read may take that long to end on its own, and a stream that
/// never ends (a stuck host) must not keep the process from stopping.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NodeProcessError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("voter {0} is neither a cluster nor a witness of the grid file")]
    UnknownCluster(u8),
    #[error(
        "{name} (id {id}) is a witness of the grid file, not a data cluster: \
         run it with `vtgrid witness --config FILE --id {id}`"
    )]
    WitnessIsNotANode { id: u8, name: String },
    #[error(
        "{name} (C{id}) is a data cluster of the grid file, not a witness: \
         run it with `vtgrid node --config FILE --id {id}`"
    )]
    ClusterIsNotAWitness { id: u8, name: String },
    #[error("watching for SIGINT and SIGTERM: {0}")]
    Signal(std::io::Error),
    #[error("creating data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the catalog store in {path}: {source}")]
    Catalog {
        path: PathBuf,
        source: vtgrid_catalog::EngineError,
    },
    #[error("opening the volume store in {path}: {source}")]
    Tvc {
        path: PathBuf,
        source: vtgrid_tvc::TvcError,
    },
    #[error("listening on {addr} ({network} network): {source}")]
    Bind {
        addr: String,
        network: &'static str,
        source: std::io::Error,
    },
    /// Boxed: a start error carries openraft's large error types.
    #[error(transparent)]
    Start(Box<StartError>),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::transport::TlsError),
    #[error("serving the {network} network: {source}")]
    Serve {
        network: &'static str,
        source: tonic::transport::Error,
    },
}

impl From<StartError> for NodeProcessError {
    fn from(e: StartError) -> Self {
        NodeProcessError::Start(Box::new(e))
    }
}

/// Run data cluster `id` of the grid in `config_path` until SIGINT or SIGTERM.
pub async fn run_node(config_path: &Path, id: u8) -> Result<(), NodeProcessError> {
    let mut signals = StopSignal::watch().map_err(NodeProcessError::Signal)?;
    let grid = Arc::new(GridConfig::load(config_path)?);
    let me = data_cluster(&grid, id)?.clone();
    let telemetry = telemetry::init(&grid.telemetry, &format!("vtgrid-{}", me.name))?;

    if let Some(broken) = crate::faults::Break::active() {
        tracing::error!(?broken, "BROKEN BUILD: VTGRID_BREAK is set; this node breaks a rule on purpose (the chaos checker's own test)");
    }
    let engine = open_catalog_engine(&me.data_dir)?;
    let tvc_dir = me.data_dir.join("tvc");
    let volumes = FileVolumeStore::open(&tvc_dir, me.cache_quota_bytes).map_err(|source| {
        NodeProcessError::Tvc {
            path: tvc_dir,
            source,
        }
    })?;
    let host_listener = bind(&me.host, "host").await?;
    let grid_listener = bind(&me.grid, "grid").await?;
    // One more grid listener per extra link (B7): peers fail over to them.
    let mut link_listeners = Vec::new();
    for addr in &me.grid_links {
        link_listeners.push(bind(addr, "grid link").await?);
    }
    let (connector, tls) = member_transport(&grid, Member::Voter(id))?;
    let cluster = start_voter(grid.clone(), id, engine, Arc::new(volumes), connector).await?;
    // The takeover agent beside this node watches these (`crate::liveness`).
    let liveness =
        crate::liveness::bind(&me.data_dir).map_err(|source| NodeProcessError::DataDir {
            path: me.data_dir.join(crate::liveness::SOCKET),
            source,
        })?;
    tokio::spawn(crate::liveness::serve(liveness));
    crate::liveness::write_pid_file(&me.data_dir).map_err(|source| NodeProcessError::DataDir {
        path: me.data_dir.join(crate::liveness::PID_FILE),
        source,
    })?;

    if let Some(metrics_addr) = me.metrics.clone() {
        let c = cluster.clone();
        let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(move || c.refresh_gauges());
        let metrics = cluster.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve_metrics(&metrics_addr, metrics, refresh).await {
                tracing::error!(addr = %metrics_addr, error = %e, "metrics listener");
            }
        });
    }

    tracing::info!(cluster = %cluster.id, host = %me.host, grid = %me.grid, "serving");
    let access = host_access(&cluster, &grid, Some(&me.data_dir))?;
    let host_tls = tls
        .as_ref()
        .filter(|_| grid.tls.as_ref().is_some_and(|t| t.host))
        .map(GridTls::host_server_config);
    let mut networks = vec![
        Network {
            name: "host",
            listener: host_listener,
            routes: host_routes(cluster.clone()).await,
            tls: host_tls,
            access: Some(access),
            max_streams: Some(grid.limits.max_streams_per_connection),
        },
        Network {
            name: "grid",
            listener: grid_listener,
            routes: grid_routes(cluster.clone()),
            tls: tls.as_ref().map(GridTls::server_config),
            access: None,
            max_streams: None,
        },
    ];
    networks.extend(link_listeners.into_iter().map(|listener| Network {
        name: "grid link",
        listener,
        routes: grid_routes(cluster.clone()),
        tls: tls.as_ref().map(GridTls::server_config),
        access: None,
        max_streams: None,
    }));
    let served = serve_until_stopped(&cluster, networks, &mut signals).await;
    telemetry_shutdown(telemetry, served).await
}

/// Run witness `id` of the grid in `config_path` until SIGINT or SIGTERM.
///
/// A witness is a Raft voter that keeps the catalog and nothing else (DESIGN §2): it holds no
/// volume data, so its volume store is an empty memory store with a quota of zero bytes, which
/// refuses any write should one ever be routed to it. It serves no hosts: its one listener is
/// the grid address, with the grid router (Raft, forwarded proposals), `StatusService` (so tools
/// can ask a witness what it sees) and gRPC health.
pub async fn run_witness(config_path: &Path, id: u8) -> Result<(), NodeProcessError> {
    let mut signals = StopSignal::watch().map_err(NodeProcessError::Signal)?;
    let grid = Arc::new(GridConfig::load(config_path)?);
    let me = witness(&grid, id)?.clone();
    let telemetry = telemetry::init(&grid.telemetry, &format!("vtgrid-{}", me.name))?;

    let engine = open_catalog_engine(&me.data_dir)?;
    let grid_listener = bind(&me.grid, "grid").await?;
    let no_volumes = Arc::new(MemVolumeStore::new(Some(0)));
    let (connector, tls) = member_transport(&grid, Member::Voter(id))?;
    let cluster = start_voter(grid.clone(), id, engine, no_volumes, connector).await?;

    tracing::info!(witness = %cluster.id, grid = %me.grid, "serving");
    let access = host_access(&cluster, &grid, Some(&me.data_dir))?;
    let networks = vec![Network {
        name: "grid",
        listener: grid_listener,
        routes: witness_routes(cluster.clone()).await,
        tls: tls.as_ref().map(GridTls::server_config),
        access: Some(access),
        max_streams: None,
    }];
    let served = serve_until_stopped(&cluster, networks, &mut signals).await;
    telemetry_shutdown(telemetry, served).await
}

/// The grid file's data cluster `id`; a witness id or an unknown one is an error that says
/// which command to use.
pub(crate) fn data_cluster(grid: &GridConfig, id: u8) -> Result<&ClusterConfig, NodeProcessError> {
    match (grid.role_of(id), grid.cluster(id)) {
        (Some(Role::Data), Some(c)) => Ok(c),
        (Some(Role::Witness), _) => Err(NodeProcessError::WitnessIsNotANode {
            id,
            name: grid.name_of(id).unwrap_or_default().to_string(),
        }),
        _ => Err(NodeProcessError::UnknownCluster(id)),
    }
}

/// The grid file's witness `id`; a data cluster id or an unknown one is an error.
fn witness(grid: &GridConfig, id: u8) -> Result<&WitnessConfig, NodeProcessError> {
    match (grid.role_of(id), grid.witness(id)) {
        (Some(Role::Witness), Some(w)) => Ok(w),
        (Some(Role::Data), _) => Err(NodeProcessError::ClusterIsNotAWitness {
            id,
            name: grid.name_of(id).unwrap_or_default().to_string(),
        }),
        _ => Err(NodeProcessError::UnknownCluster(id)),
    }
}

/// Create `data_dir` if needed and open the catalog's RocksDB in `data_dir/catalog`.
fn open_catalog_engine(data_dir: &Path) -> Result<RocksEngine, NodeProcessError> {
    std::fs::create_dir_all(data_dir).map_err(|source| NodeProcessError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let catalog_dir = data_dir.join("catalog");
    RocksEngine::open(&catalog_dir).map_err(|source| NodeProcessError::Catalog {
        path: catalog_dir,
        source,
    })
}

async fn bind(addr: &str, network: &'static str) -> Result<TcpListener, NodeProcessError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeProcessError::Bind {
            addr: addr.to_string(),
            network,
            source,
        })
}

/// How member `me` reaches its peers: mutual TLS when the grid file has `[tls]`, plain TCP
/// otherwise (loopback, or a grid that says `insecure = true`: the file's validation saw to
/// that). The TLS material comes back too, for the member's own listeners.
pub fn member_transport(
    grid: &GridConfig,
    me: Member,
) -> Result<(Arc<dyn Connector>, Option<GridTls>), NodeProcessError> {
    match &grid.tls {
        None => {
            tracing::warn!(
                insecure = grid.grid.insecure,
                "no [tls] in the grid file: grid and heartbeat traffic is plain TCP and \
                 unauthenticated (fine on loopback; see docs/security.md)"
            );
            Ok((Arc::new(TcpConnector), None))
        }
        Some(t) => {
            let tls = GridTls::load(&t.dir, &grid.grid.name, me, grid.member_addresses())?;
            Ok((Arc::new(TlsConnector::new(tls.clone())), Some(tls)))
        }
    }
}

/// The host port's access layer: the grid file's tokens, and an audit log in `data_dir` whose
/// records also go to the events stream.
fn host_access(
    cluster: &Arc<Cluster>,
    grid: &GridConfig,
    data_dir: Option<&Path>,
) -> Result<HostAccess, NodeProcessError> {
    let tokens = Tokens::new(
        grid.tokens
            .iter()
            .map(|t| (t.name.as_str(), t.role.as_str(), t.sha256.as_str())),
    );
    if tokens.is_open() {
        tracing::warn!(
            "no [[token]] in the grid file: every host-port call is allowed (see docs/security.md)"
        );
    } else {
        tracing::info!(tokens = grid.tokens.len(), "host port: calls need a token");
    }
    let log = match data_dir {
        Some(dir) => AuditLog::open(dir).map_err(|source| NodeProcessError::DataDir {
            path: dir.join("audit.log"),
            source,
        })?,
        None => AuditLog::none(),
    };
    let c = cluster.clone();
    let audit = Arc::new(move |record: AuditRecord| {
        tracing::info!(who = %record.who, role = %record.role, what = %record.what, result = %record.result, "audit");
        log.append(&record);
        c.events.raise(
            crate::events::AUDIT,
            None,
            format!(
                "{} ({}) called {}: {}",
                record.who, record.role, record.what, record.result
            ),
        );
    });
    Ok(HostAccess::new(tokens, audit))
}

/// Start voter `id` (data cluster or witness) over `connector` with a fresh random mount-id key.
async fn start_voter(
    grid: Arc<GridConfig>,
    id: u8,
    engine: RocksEngine,
    volumes: Arc<dyn VolumeStore>,
    connector: Arc<dyn Connector>,
) -> Result<Arc<Cluster>, NodeProcessError> {
    let cluster_id = ClusterId::new(id).map_err(|_| NodeProcessError::UnknownCluster(id))?;
    let mount_id_key: [u8; 32] = rand::random();
    Ok(Cluster::start(grid, cluster_id, engine, volumes, connector, mount_id_key).await?)
}

/// What a witness serves on its grid address: GridService, StatusService, AdminService (so an
/// operator can run `vtgrid admin rejoin --as-new` at a witness that lost its catalog; it inserts
/// no volumes) and gRPC health.
async fn witness_routes(cluster: Arc<Cluster>) -> Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GridServiceServer<GridApi>>().await;
    health.set_serving::<StatusServiceServer<StatusApi>>().await;
    grid_routes(cluster.clone())
        .add_service(AdminServiceServer::new(AdminApi::new(cluster.clone())))
        .add_service(StatusServiceServer::new(StatusApi::new(cluster)))
        .add_service(health_service)
}

/// One listener and the router served on it.
struct Network {
    /// `host` or `grid`, for logs and errors.
    name: &'static str,
    listener: TcpListener,
    routes: Routes,
    /// TLS on this listener (grid: client certificates required; host: server side only).
    tls: Option<tonic::transport::ServerTlsConfig>,
    /// Tokens and audit (host-port services).
    access: Option<HostAccess>,
    /// HTTP/2 streams one connection may have open (`[limits]`).
    max_streams: Option<u32>,
}

/// Serve every network until a stop signal, then stop accepting, let the requests in flight
/// finish, and stop Raft. The first server that failed is the error.
async fn serve_until_stopped(
    cluster: &Arc<Cluster>,
    networks: Vec<Network>,
    signals: &mut StopSignal,
) -> Result<(), NodeProcessError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for n in networks {
        let mut stop = stop_rx.clone();
        // TCP_NODELAY on every accepted connection: `Server::tcp_nodelay` is ignored with
        // an incoming stream. Without it, Nagle holds the server's small WINDOW_UPDATE frames
        // until the client's delayed ACK (up to 40 ms), and a host's 1 MiB writes crawl.
        let incoming = TcpIncoming::from(n.listener).with_nodelay(Some(true));
        let mut builder = Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .max_concurrent_streams(n.max_streams);
        if let Some(tls) = n.tls {
            builder = builder
                .tls_config(tls)
                .map_err(|source| NodeProcessError::Serve {
                    network: n.name,
                    source,
                })?;
        }
        let server = builder
            .layer(tower::util::option_layer(n.access))
            .add_routes(n.routes)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            });
        tasks.push((n.name, tokio::spawn(server)));
    }
    signals.recv().await;
    tracing::info!("stopping: no new requests; finishing the ones in flight");
    cluster.stopping.send_replace(true);
    let _ = stop_tx.send(true);
    let mut outcome = Ok(());
    let grace = tokio::time::Instant::now() + STOP_GRACE;
    for (network, mut task) in tasks {
        let served = match tokio::time::timeout_at(grace, &mut task).await {
            Ok(served) => served,
            Err(_) => {
                // A call still open after the grace (a host's stream that never ends): cut it.
                tracing::warn!(
                    network,
                    grace_secs = STOP_GRACE.as_secs(),
                    "requests still in flight; closing their connections"
                );
                task.abort();
                continue;
            }
        };
        match served {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                if outcome.is_ok() {
                    outcome = Err(NodeProcessError::Serve { network, source });
                }
            }
            Err(join) => tracing::error!(network, error = %join, "server task"),
        }
    }
    cluster.shutdown().await;
    outcome
}

/// Flush telemetry whatever the run's outcome, then return it.
async fn telemetry_shutdown(
    telemetry: TelemetryGuard,
    served: Result<(), NodeProcessError>,
) -> Result<(), NodeProcessError> {
    if served.is_ok() {
        tracing::info!("stopped");
    }
    telemetry.shutdown().await;
    served
}

/// SIGINT (Ctrl-C) and SIGTERM, watched from the moment [`StopSignal::watch`] returns: a signal
/// that arrives before anyone waits is kept, and the next [`StopSignal::recv`] returns at once.
pub struct StopSignal {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    /// Install the handlers (this replaces the signals' default action, which kills the
    /// process). Needs a tokio runtime.
    pub fn watch() -> std::io::Result<StopSignal> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignal {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Until SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM, from now on.
pub async fn wait_for_signal() {
    match StopSignal::watch() {
        Ok(mut signals) => signals.recv().await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
