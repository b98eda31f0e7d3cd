//! How a member reaches its peers' listeners, and who a request on its own listeners came from.
//! Real processes dial TCP (plain or TLS); turmoil simulations plug in a connector over the
//! simulated network (`vtgrid-sim`). Everything above this seam uses tonic `Channel`s and
//! [`Sender`]s and never knows which.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// Opens (lazily) a gRPC channel to a peer's grid address (`HOST:PORT`), and says who sent a
/// request that arrived on this member's grid or heartbeat listener.
pub trait Connector: Send + Sync + 'static {
    fn channel(&self, addr: &str) -> Channel;

    /// The sender of a request, from what the transport proved about its connection (the
    /// request's extensions carry the connection's details). A transport that proves nothing
    /// answers [`Sender::Unverified`].
    fn sender(&self, _request: &http::Extensions) -> Sender {
        Sender::Unverified
    }

    /// Whether [`crate::Peers`] may keep one channel for control calls over the link to `addr`
    /// now. Real connectors always say yes. The simulation's connector says no while a fault
    /// that catches one message on a connection of its own (a stalled or duplicated message,
    /// DESIGN §8) is armed on that link, so the message it waits for goes out on a fresh
    /// connection as it would without pooling (docs/decisions.md, 2026-12-03).
    fn pools(&self, _addr: &str) -> bool {
        true
    }
}

/// Who is on the other end of a call, as far as the transport can prove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A plain connection (a loopback or `insecure` grid): the fields of the request are all
    /// there is to go by.
    Unverified,
    /// A member of this grid, proved (a certificate of this grid's CA naming it, or the
    /// simulated network's own addressing).
    Member(crate::names::Member),
    /// Someone this grid does not know: no certificate, or one that names no member of it.
    Stranger(String),
}

/// Plain TCP on the host's network stack: no proof of who is on the other end.
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
