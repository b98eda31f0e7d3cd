//! Every connection between the members of a grid (clusters, witnesses, takeover agents), on the
//! grid and heartbeat networks (DESIGN §7).
//!
//! - [`Connector`]: how a member opens a channel to a peer's address, and who a request that
//!   arrived on a member's listener came from ([`Sender`]). Real processes use [`TcpConnector`]
//!   (plain TCP, for a grid on loopback or one marked `insecure`) or [`TlsConnector`] (mutual
//!   TLS); the simulation plugs in its own over turmoil. Nothing above this seam knows which.
//! - [`Peers`]: a member's connections to its peers: one pooled channel per peer link, the
//!   order a call tries a peer's links in, and the one loop that tries them ([`Peers::each_link`]).
//! - [`names`]: the name a member's certificate carries (`m<ID>.<grid>.vtgrid`), so one
//!   certificate proves both the grid and the member.
//! - [`certs`]: a grid's CA and its members' certificates (`vtgrid certs init|issue`).

pub mod certs;
mod connector;
pub mod names;
mod peers;
mod tls;

pub use connector::{
    Connector, Sender, TcpConnector, CONNECT_TIMEOUT, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT,
    MAX_MESSAGE_BYTES,
};
pub use peers::{Attempt, Peers, SHUNNED_FOR};
pub use tls::{GridTls, TlsConnector, TlsError};
