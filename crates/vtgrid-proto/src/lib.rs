//! vtgrid's wire format: the generated gRPC code for `proto/vtgrid/v1/` and the conversions between
//! its messages and `vtgrid-core`'s domain types.
//!
//! # Layout
//! - [`pb`]: everything tonic/prost generated (messages, clients, servers).
//! - [`volume`]: `VolumeRecord` → `pb::Volume`, constructs both ways.
//! - [`constructs`]: category definitions and management classes both ways.
//! - [`reason`]: the stable error reasons and how they travel in a `tonic::Status`.
//! - [`liveness`]: the agents' node states (AOTM) both ways.
//!
//! Conversions from the wire validate: a `pb::Volume` with a bad VOLSER does not become a domain
//! value. What this crate leaves out: deciding anything; it only translates.

pub mod constructs;
pub mod liveness;
pub mod reason;
pub mod volume;

/// Generated code for package `vtgrid.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("vtgrid.v1");
}

/// The encoded file descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vtgrid_descriptor.bin"));

pub use reason::{reason_of, status_with_reason};
