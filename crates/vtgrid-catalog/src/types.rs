//! openraft's type configuration for the catalog group, and short names for its generic types.
//!
//! One Raft group per grid (DESIGN §3): a node is a cluster or a witness, identified by a `u64`
//! node id, and its [`openraft::BasicNode`] address is the cluster's grid address, where
//! `GridService` serves Raft RPCs.

use std::io::Cursor;

use openraft::BasicNode;

openraft::declare_raft_types!(
    /// The catalog's Raft types: entries carry [`vtgrid_core::CatalogCommand`]s and applying one
    /// answers a [`vtgrid_core::CatalogResponse`]; snapshots are in-memory JSON bytes.
    pub TypeConfig:
        D = vtgrid_core::CatalogCommand,
        R = vtgrid_core::CatalogResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = crate::runtime::CatalogRuntime,
);

pub type NodeId = u64;
pub type Node = BasicNode;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type EntryPayload = openraft::EntryPayload<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, Node>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type LogState = openraft::LogState<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
