//! Every connection between the members of a grid (clusters, witnesses, takeover agents), on the
//! grid and heartbeat networks (DESIGN §7).
//!
//! - [`Connector`]: how a member opens a channel to a peer's address, and who a request that
//!   arrived on a member's listener came from ([`Sender`]). Real processes use [`TcpConnector`]
//!   (plain TCP, for a grid on loopback or one marked `insecure`) or [`TlsConnector`] (mutual
//!   TLS); the simulation plugs in its own over turmoil. Nothing above this seam knows which.
//! - [`names`]: the name a member's certificate carries (`m<ID>.<grid>.vtgrid`), so one
//!   certificate proves both the grid and the member.
//! - [`certs`]: a grid's CA and its members' certificates (`vtgrid certs init|issue`).

pub mod certs;
mod connector;
pub mod names;
mod tls;

pub use connector::{
    Connector, Sender, TcpConnector, CONNECT_TIMEOUT, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT,
    MAX_MESSAGE_BYTES,
};
pub use tls::{GridTls, TlsConnector, TlsError};
