//! vtgrid's wire format: the generated gRPC code for `proto/vtgrid/v1/` and the conversions between
//! its messages and `vtgrid-core`'s domain types.
//!
//! # Layout
//! - [`pb`]: the public API tonic/prost generated (messages, clients, servers).
//! - [`internal`]: the grid-internal services (grid, agent), generated the same way.
//! - [`volume`]: `VolumeRecord` → `pb::Volume`, constructs both ways.
//! - [`constructs`]: category definitions and management classes both ways.
//! - [`reason`]: the stable error reasons and how they travel in a `tonic::Status`.
//! - [`liveness`]: the agents' node states (AOTM) both ways.
//! - [`paging`]: a whole `ListVolumes` listing, page by page.
//!
//! Conversions from the wire validate: a `pb::Volume` with a bad VOLSER does not become a domain
//! value. What this crate leaves out: deciding anything; it only translates.

pub mod constructs;
pub mod liveness;
pub mod paging;
pub mod reason;
pub mod volume;

/// Generated code, in modules nested as the packages are (so the internal package's references
/// to `vtgrid.v1` types resolve).
#[allow(clippy::all, missing_docs)]
mod generated {
    pub mod vtgrid {
        pub mod v1 {
            tonic::include_proto!("vtgrid.v1");
        }
        pub mod internal {
            pub mod v1 {
                tonic::include_proto!("vtgrid.internal.v1");
            }
        }
    }
}

/// The public API, package `vtgrid.v1` (`proto/vtgrid/v1/`): hosts, operators, tools.
pub use generated::vtgrid::v1 as pb;

/// The grid-internal protocols, package `vtgrid.internal.v1` (`proto/vtgrid/internal/v1/`):
/// GridService between clusters, AgentService between agents. Not for clients.
pub use generated::vtgrid::internal::v1 as internal;

/// The encoded file descriptor set of the public API (no internal package), for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vtgrid_descriptor.bin"));

pub use reason::{reason_of, status_with_reason};
