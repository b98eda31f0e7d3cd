//! `vtgrid agent` as a real process: it watches the node of its site through the pid file and
//! the liveness socket in the node's data directory (`vtgrid_node::liveness`), kills it with
//! SIGKILL to fence it, and serves `AgentService` on the site's heartbeat address.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tonic::transport::Server;
use vtgrid_core::ClusterId;
use vtgrid_node::config::{ConfigError, GridConfig, Role};
use vtgrid_node::liveness::{PID_FILE, SOCKET};
use vtgrid_node::process::StopSignal;

use crate::{service, Agent, NodeWatch, Probe};

/// How long the node has to answer its liveness socket.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AgentProcessError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("C{0} is not a data cluster of the grid file: an agent watches a data cluster's node")]
    NotADataCluster(u8),
    #[error("watching for SIGINT and SIGTERM: {0}")]
    Signal(std::io::Error),
    #[error("binding the heartbeat address {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("serving AgentService: {0}")]
    Serve(tonic::transport::Error),
    #[error(transparent)]
    Telemetry(#[from] vtgrid_node::telemetry::TelemetryError),
    #[error(transparent)]
    Transport(Box<vtgrid_node::process::NodeProcessError>),
}

/// The node of a site, seen from its agent through the node's data directory.
pub struct ProcessWatch {
    data_dir: PathBuf,
}

impl ProcessWatch {
    pub fn new(data_dir: &Path) -> ProcessWatch {
        ProcessWatch {
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// The node's pid, if its pid file names a live `vtgrid` process.
    fn live_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir.join(PID_FILE)).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        // `/proc/PID/stat` is "pid (comm) state ...": a zombie or dead process is gone, and a
        // pid reused by another program is not our node.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = stat.split_once(") ")?;
        let comm = comm.split_once(" (")?.1;
        let state = rest.chars().next()?;
        (comm.starts_with("vtgrid") && !matches!(state, 'Z' | 'X' | 'x')).then_some(pid)
    }

    async fn answers(&self) -> bool {
        let path = self.data_dir.join(SOCKET);
        let ask = async {
            let mut stream = tokio::net::UnixStream::connect(path).await.ok()?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.ok()?;
            (byte[0] == b'1').then_some(())
        };
        matches!(tokio::time::timeout(ANSWER_WITHIN, ask).await, Ok(Some(())))
    }
}

#[tonic::async_trait]
impl NodeWatch for ProcessWatch {
    async fn probe(&self) -> Probe {
        if self.live_pid().is_none() {
            return Probe::Gone;
        }
        if self.answers().await {
            Probe::Answered
        } else {
            Probe::NoAnswer
        }
    }

    async fn fence(&self) {
        if let Some(pid) = self.live_pid() {
            let pid = nix::unistd::Pid::from_raw(pid);
            match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL) {
                Ok(()) => tracing::warn!(%pid, "node killed (fenced)"),
                Err(e) => tracing::error!(%pid, error = %e, "could not kill the node"),
            }
        }
    }
}

/// Run the agent of data cluster `id` of the grid file until SIGINT or SIGTERM.
pub async fn run_agent(config_path: &Path, id: u8) -> Result<(), AgentProcessError> {
    let mut signals = StopSignal::watch().map_err(AgentProcessError::Signal)?;
    let grid = GridConfig::load(config_path)?;
    let me = match (grid.role_of(id), grid.cluster(id)) {
        (Some(Role::Data), Some(c)) => c.clone(),
        _ => return Err(AgentProcessError::NotADataCluster(id)),
    };
    let cluster = ClusterId::new(id).map_err(|_| AgentProcessError::NotADataCluster(id))?;
    let telemetry =
        vtgrid_node::telemetry::init(&grid.telemetry, &format!("vtgrid-agent-{}", me.name))?;
    // The heartbeat network: mutual TLS with the agent's own certificate when the grid has it.
    let (connector, tls) = vtgrid_node::process::member_transport(
        &grid,
        vtgrid_node::transport::names::Member::Agent(id),
    )
    .map_err(|e| AgentProcessError::Transport(Box::new(e)))?;
    let agent = Agent::new(
        cluster,
        Agent::peers_from(&grid, cluster),
        Arc::new(ProcessWatch::new(&me.data_dir)),
        connector,
        Some(Duration::from_secs(grid.agent.fence_after_secs)),
    );
    let listener = tokio::net::TcpListener::bind(&me.heartbeat)
        .await
        .map_err(|source| AgentProcessError::Bind {
            addr: me.heartbeat.clone(),
            source,
        })?;
    tracing::info!(%cluster, heartbeat = %me.heartbeat, data_dir = %me.data_dir.display(), "agent serving");
    let watching = tokio::spawn(agent.clone().watch_node());
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let mut builder = Server::builder();
    if let Some(tls) = &tls {
        builder = builder
            .tls_config(tls.server_config())
            .map_err(AgentProcessError::Serve)?;
    }
    let served = builder
        .add_service(service(agent))
        .serve_with_incoming_shutdown(incoming, signals.recv())
        .await;
    watching.abort();
    telemetry.shutdown().await;
    served.map_err(AgentProcessError::Serve)
}
