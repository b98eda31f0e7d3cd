//! How a cluster reaches its peers' grid listeners. Real processes dial TCP; turmoil simulations
//! plug in a connector over the simulated network (`vtgrid-sim`). Everything above this seam uses
//! tonic `Channel`s and never knows which.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// Opens (lazily) a gRPC channel to a peer's grid address (`HOST:PORT`).
pub trait Connector: Send + Sync + 'static {
    fn channel(&self, addr: &str) -> Channel;
}

/// Plain TCP on the host's network stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

/// Largest gRPC message a cluster accepts or sends: a host chunk is at most 1 MiB, a Raft batch
/// more.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A dial that takes longer than this fails, so a dead peer costs a caller one second, not minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// HTTP/2 keepalive, on every server and client: a ping this often on an open connection...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// ...and a connection whose ping is not answered within this is closed, so a peer or host that
/// vanished without a reset breaks its streams (and aborts its job) instead of leaving a handler
/// waiting on a dead connection.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl Connector for TcpConnector {
    fn channel(&self, addr: &str) -> Channel {
        // A validated HOST:PORT always forms a URI; a bad one fails at connect time instead.
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|_| Endpoint::from_static("http://invalid-address.invalid:1"));
        endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy()
    }
}
