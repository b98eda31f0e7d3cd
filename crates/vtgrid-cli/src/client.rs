//! Connecting to a cluster, and errors as the user sees them.

use tonic::transport::{Channel, Endpoint};
use vtgrid_proto::pb::admin_service_client::AdminServiceClient;
use vtgrid_proto::pb::host_service_client::HostServiceClient;
use vtgrid_proto::pb::status_service_client::StatusServiceClient;
use vtgrid_proto::reason_of;

/// Largest message the CLI accepts (a read chunk is at most 1 MiB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The grid answered no: printed with its stable reason, exit status 2.
    #[error("{}: {}", reason_name(.0), .0.message())]
    Refused(Box<tonic::Status>),
    #[error("cannot reach {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Node(Box<vtgrid_node::process::NodeProcessError>),
    #[error(transparent)]
    Agent(#[from] vtgrid_agent::process::AgentProcessError),
    #[error(transparent)]
    Config(Box<vtgrid_node::config::ConfigError>),
    #[error("{0}")]
    Grid(String),
}

fn reason_name(s: &tonic::Status) -> String {
    match reason_of(s) {
        Some(r) => r.as_str_name().to_string(),
        None => format!("{:?}", s.code()),
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(_) => 2,
            _ => 1,
        }
    }
}

impl From<vtgrid_node::process::NodeProcessError> for CliError {
    fn from(e: vtgrid_node::process::NodeProcessError) -> Self {
        CliError::Node(Box::new(e))
    }
}

impl From<vtgrid_node::config::ConfigError> for CliError {
    fn from(e: vtgrid_node::config::ConfigError) -> Self {
        CliError::Config(Box::new(e))
    }
}

impl From<tonic::Status> for CliError {
    fn from(s: tonic::Status) -> Self {
        CliError::Refused(Box::new(s))
    }
}

pub async fn channel(endpoint: &str) -> Result<Channel, CliError> {
    let ep = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| CliError::Usage(format!("bad --endpoint: {e}")))?;
    ep.connect_timeout(std::time::Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(vtgrid_node::transport::KEEPALIVE_INTERVAL)
        .keep_alive_timeout(vtgrid_node::transport::KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect()
        .await
        .map_err(|source| CliError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })
}

pub async fn host(endpoint: &str) -> Result<HostServiceClient<Channel>, CliError> {
    Ok(HostServiceClient::new(channel(endpoint).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

pub async fn admin(endpoint: &str) -> Result<AdminServiceClient<Channel>, CliError> {
    Ok(AdminServiceClient::new(channel(endpoint).await?))
}

pub async fn status(endpoint: &str) -> Result<StatusServiceClient<Channel>, CliError> {
    Ok(StatusServiceClient::new(channel(endpoint).await?))
}

/// Print a value as pretty JSON.
pub fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}
