//! A vtgrid cluster: the gRPC services, the catalog's Raft wiring, host jobs, and the process that
//! runs it all.
//!
//! # Layout
//! - [`config`]: the grid file (TOML) and its validation.
//! - [`cluster`]: one cluster's running state and its start-up (form/rejoin the Raft group,
//!   define configured constructs, reconcile the volume store with the catalog).
//! - [`jobs`]: host jobs: mount, write, read, sync, rewind-unload, category change.
//! - [`mounts`]: the table of mounted volumes (one mount of a volume at a time).
//! - [`abandon`]: jobs that end without their host: cancelled calls, idle mounts, force demount.
//! - [`synced`]: a job's bytes up to its last sync point outlive the job (B42, T17).
//! - [`ownership`]: the surrender/transfer handshake between clusters, remote version reads.
//! - [`journal`], [`publisher`]: the owner journal (local autonomy, B15) and its way into Raft,
//!   with quarantine of refused versions.
//! - [`events`]: events raised for operators (`OWNERSHIP_CONFLICT`, ...).
//! - [`elections`]: openraft's elections on only while a quorum of voters is in reach.
//! - [`membership`]: amnesia: a voter that lost its catalog waits for `admin rejoin --as-new`.
//! - [`links`]: the grid links to each peer and the grid states (flags, G0013).
//! - [`copies`]: the copy engine: the copies this cluster owes, pulled by priority; RUN copies.
//! - [`catalog`]: reading the local catalog view and proposing commands (forwarded to the leader).
//! - [`raft_network`]: openraft's network over `GridService`.
//! - [`services`]: the tonic services and the host/grid routers.
//! - [`error`]: `NodeError` and its one mapping to gRPC status + stable reason.
//! - [`faults`]: crash points a simulation arms on the mount, surrender, unload, copy and publish
//!   paths (never armed in production).
//! - [`tvc_io`]: running the synchronous volume store from async code.
//! - [`transport`]: how a cluster dials its peers (TCP, or turmoil in simulations).
//! - [`metrics`], [`telemetry`]: Prometheus text over HTTP; tracing and OTLP export.
//! - [`process`]: `vtgrid node`, a cluster as a real process.
//!
//! What it leaves out on purpose: domain rules (`vtgrid-core`), storage formats
//! (`vtgrid-catalog`, `vtgrid-tvc`) and command-line parsing (`vtgrid-cli`).

pub mod abandon;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod copies;
pub mod elections;
pub mod error;
pub mod events;
pub mod faults;
pub mod jobs;
pub mod journal;
pub mod links;
pub mod membership;
pub mod metrics;
pub mod mounts;
pub mod ownership;
pub mod paths;
pub mod process;
pub mod publisher;
pub mod raft_network;
pub mod services;
pub mod sync;
pub mod synced;
pub mod telemetry;
pub mod transport;
pub mod tvc_io;

pub use cluster::Cluster;
pub use config::GridConfig;
pub use error::NodeError;
