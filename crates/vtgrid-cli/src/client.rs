//! Connecting to a cluster, and errors as the user sees them.

use std::sync::OnceLock;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
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

/// A channel with this invocation's token on every call.
pub type Conn = InterceptedService<Channel, Credentials>;

/// What this invocation presents to the grid: its token (`--token`, `VTGRID_TOKEN`) and the CA
/// it trusts for an `https://` endpoint (`--ca`, `VTGRID_CA`).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    authorization: Option<MetadataValue<Ascii>>,
    ca: Option<Certificate>,
}

static CREDENTIALS: OnceLock<Credentials> = OnceLock::new();

/// Set once, from the command line, before the first call.
pub fn set_credentials(token: Option<&str>, ca: Option<&std::path::Path>) -> Result<(), CliError> {
    let authorization = match token {
        None => None,
        Some(t) => Some(
            format!("Bearer {}", t.trim())
                .parse()
                .map_err(|_| CliError::Usage("--token: not a printable ASCII secret".into()))?,
        ),
    };
    let ca = match ca {
        None => None,
        Some(path) => Some(Certificate::from_pem(std::fs::read(path).map_err(
            |source| CliError::Io {
                what: "reading --ca",
                source,
            },
        )?)),
    };
    let _ = CREDENTIALS.set(Credentials { authorization, ca });
    Ok(())
}

fn credentials() -> Credentials {
    CREDENTIALS.get().cloned().unwrap_or_default()
}

impl Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.authorization {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

pub async fn channel(endpoint: &str) -> Result<Conn, CliError> {
    Ok(InterceptedService::new(
        raw_channel(endpoint).await?,
        credentials(),
    ))
}

pub async fn raw_channel(endpoint: &str) -> Result<Channel, CliError> {
    let mut ep = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| CliError::Usage(format!("bad --endpoint: {e}")))?;
    if endpoint.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        match credentials().ca {
            Some(ca) => tls = tls.ca_certificate(ca),
            None => {
                return Err(CliError::Usage(
                    "an https:// endpoint needs --ca (the grid's ca.pem) or VTGRID_CA".into(),
                ))
            }
        }
        ep = ep
            .tls_config(tls)
            .map_err(|e| CliError::Usage(format!("TLS: {e}")))?;
    }
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

pub async fn host(endpoint: &str) -> Result<HostServiceClient<Conn>, CliError> {
    Ok(HostServiceClient::new(channel(endpoint).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

pub async fn admin(endpoint: &str) -> Result<AdminServiceClient<Conn>, CliError> {
    Ok(AdminServiceClient::new(channel(endpoint).await?))
}

pub async fn status(endpoint: &str) -> Result<StatusServiceClient<Conn>, CliError> {
    Ok(StatusServiceClient::new(channel(endpoint).await?))
}

/// Print a value as pretty JSON.
pub fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}
