//! Chaos on real processes (DESIGN §8, issue 11): what a run records and how it is judged.
//!
//! A chaos run starts a grid of real `vtgrid node` and `vtgrid agent` processes, breaks them
//! (kill -9, SIGSTOP, cut paths, full disks) while hosts write and read through every cluster,
//! then heals everything and dumps each cluster's final state. Two files come out of it, and this
//! crate judges them, also long after the run (`vtgrid-chaos check`):
//!
//! ```text
//!   history.jsonl   one line per host operation and per fault    [`history`]
//!   state.json      each cluster's catalog, copies, quarantine    [`state`]
//!        │
//!        ▼
//!   check::check ──> Report { violations, measures }              [`check`], [`measure`]
//!                    exit 1 on any violation, naming the operations involved
//! ```
//!
//! The checker knows nothing of how the grid works inside: it holds the grid to what a host was
//! told (an acknowledged unload, a read's bytes) and to what the clusters say at the end. Pure
//! functions over plain data, so every rule has a unit test that makes it fail.

pub mod check;
pub mod collect;
pub mod disk;
pub mod history;
pub mod measure;
pub mod netns;
pub mod runner;
pub mod schedule;
pub mod state;
pub mod workload;

pub use check::{check, Report, Violation};
pub use history::{CopyMode, Event, Fault, FaultKind, History, Op, OpKind, Outcome};
pub use state::{ClusterState, CopyState, FinalState, VolumeState};
