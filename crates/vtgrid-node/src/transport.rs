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

/// A dial that takes longer than this fails, so a dead peer costs a caller one second, not minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

impl Connector for TcpConnector {
    fn channel(&self, addr: &str) -> Channel {
        // A validated HOST:PORT always forms a URI; a bad one fails at connect time instead.
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|_| Endpoint::from_static("http://invalid-address.invalid:1"));
        endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy()
    }
}
