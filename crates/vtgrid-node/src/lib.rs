//! A vtgrid cluster: the gRPC services, the catalog's Raft wiring, host jobs, and the process that
//! runs it all.
//!
//! # Layout
//! A [`Cluster`] is a composition of parts that own their state and know nothing of the whole;
//! the behaviour that needs several parts lives in modules of its own, one topic each, layered
//! so that no module uses one that uses it back (`tests/module_layers.rs` checks both).
//!
//! Parts (state, no `Cluster`):
//! - [`catalog`]: the handle on the replicated catalog: the local view, proposals (forwarded to
//!   the leader), when a leader last reached this voter.
//! - [`member`]: where this voter stands in the Raft group and the durable membership record.
//! - [`mounts`]: the table of host jobs (one mount of a volume at a time) and their I/O.
//! - [`duplex`]: a Sync duplex's stream, writer side; one inbound duplex per volume.
//! - [`journal`]: the owner journal (local autonomy, B15).
//! - [`modes`]: the read takeovers (ROT) this cluster holds, on its own disk.
//! - [`lease`]: the self-fencing lease's state: this cluster's last renewal, and the peers'
//!   renewals while it leads, on a monotonic lease clock.
//! - [`owed`]: the copies this cluster owes (the queue, the engine's wake-up, pull turns).
//! - [`links`]: every grid link to every peer (one structure), the call order over a peer's
//!   links, the grid states and the events their changes raise (pure).
//! - [`events`]: events raised for operators (`OWNERSHIP_CONFLICT`, ...).
//! - [`config`], [`error`], [`faults`], [`metrics`], [`transport`], [`tvc_io`], [`raft_network`],
//!   [`telemetry`]: the grid file, `NodeError` and its one mapping to gRPC status + reason, crash
//!   points a simulation arms, Prometheus metrics, dialing peers, the volume store from async code,
//!   openraft's network, tracing/OTLP.
//!
//! The composition: [`cluster`] (the struct and its small accessors), [`start`] (assembling the
//! parts and spawning the tasks), [`probe`] (the test API).
//!
//! Behaviour (`impl Cluster`, one topic each):
//! - [`ownership`]: who may write a volume (the gate), the surrender/transfer handshake, remote
//!   version reads.
//! - [`takeover`]: ROT / WOT / service mode at this cluster: taking a volume whose owner cannot
//!   be asked, read-only jobs, coming back after a takeover.
//! - [`jobs`]: host jobs: mount, write, read, sync, rewind-unload, category change.
//! - [`abandon`]: jobs that end without their host: cancelled calls, idle mounts, force demount.
//! - [`sync`]: Sync mode, both sides of a duplex.
//! - [`synced`]: a job's bytes up to its last sync point outlive the job (B42, T17).
//! - [`publisher`]: the journal's way into Raft, with quarantine of refused versions.
//! - [`copies`]: the copy engine: the copies this cluster owes, pulled by priority; RUN copies.
//! - [`retention`], [`sweep`]: when a volume file may be deleted, and the periodic pass.
//! - [`peers`]: what happens when a peer stops answering: the link monitor, `G0013`, the grid
//!   states seen from here.
//! - [`fencing`]: the self-fencing lease at work: renewals through the leader, the fence, and
//!   the leader's grants for clusters whose lease surely ran out.
//! - [`elections`]: openraft's elections on only while a quorum of voters is in reach.
//! - [`membership`]: amnesia: a voter that lost its catalog waits for `admin rejoin --as-new`.
//! - [`standalone`]: force-standalone: the offline command, the survivor's refusal of the lost
//!   majority's old group, and a superseded voter that stops.
//! - [`liveness`]: the pid file and local socket the site's takeover agent watches.
//! - [`services`]: the tonic services and the host/grid routers; [`process`]: `vtgrid node`, a
//!   cluster as a real process.
//!
//! What it leaves out on purpose: domain rules (`vtgrid-core`), storage formats
//! (`vtgrid-catalog`, `vtgrid-tvc`) and command-line parsing (`vtgrid-cli`).

pub mod abandon;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod copies;
pub mod duplex;
pub mod elections;
pub mod error;
pub mod events;
pub mod faults;
pub mod fencing;
pub mod jobs;
pub mod journal;
pub mod lease;
pub mod links;
pub mod liveness;
pub mod member;
pub mod membership;
pub mod metrics;
pub mod modes;
pub mod mounts;
pub mod owed;
pub mod ownership;
pub mod peers;
pub mod probe;
pub mod process;
pub mod publisher;
pub mod raft_network;
pub mod retention;
pub mod services;
pub mod standalone;
pub mod start;
pub mod sweep;
pub mod sync;
pub mod synced;
pub mod takeover;
pub mod telemetry;
pub use vtgrid_transport as transport;
pub mod access;
pub mod tvc_io;

pub use cluster::Cluster;
pub use config::GridConfig;
pub use error::NodeError;
