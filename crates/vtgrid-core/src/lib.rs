//! Domain rules of a vtgrid grid, with no I/O.
//!
//! Everything here is plain data and pure functions: it never touches tokio, tonic, RocksDB or the
//! filesystem (`cargo tree -p vtgrid-core -e normal` checks this in CI). The storage, network and
//! process crates act on the decisions made here.
//!
//! # Layout
//! - [`volser`]: `Volser`, the 6-character volume serial, and `VolserRange` for inserts.
//! - [`cluster`]: `ClusterId`, `Epoch` and the `OwnershipToken` they form (DESIGN §3).
//! - [`category`]: `Category(u16)` and its grid-wide definition (scratch / Fast Ready or private).
//! - [`construct`]: storage construct names (≤ 8 chars) and the set a volume carries.
//! - [`copy_mode`]: `CopyMode`, copy-mode vectors (`"RND"`, `"S,S,D"`) and `ManagementClass`.
//! - [`copy`]: who owes a copy of a version and in which order copies are pulled.
//! - [`volume`]: the catalog record of one volume and its committed version.
//! - [`volumes`]: every record of the catalog, with the indexes that answer scratch mounts, owed
//!   copies and counters without walking them.
//! - [`catalog`]: the catalog state machine: commands, the rules that accept or reject them
//!   (epoch fencing, owner-only updates, grid-unique VOLSERs) and their responses.
//! - [`election`]: when a voter may start a Raft election (a quorum in reach: no term inflation).
//! - [`gate`]: the one gate: may this cluster mount, write or commit a volume now (B10).
//! - [`retention`]: the one rule for deleting a volume file: n-1 stays until n is held here.
//! - [`replay`]: is a journal entry the catalog already has a version for a replay or a conflict.
//! - [`membership`]: amnesia: may a voter with an empty catalog vote, form the grid, or must it wait.
//! - [`aotm`]: the autonomic takeover rules: when an agent says DOWN, what a survivor does then.
//! - [`lease`]: the self-fencing lease: when a cut-off owner stops writing, when the majority may
//!   take its volumes without an agent.
//! - [`standalone`]: force-standalone: one survivor becomes the whole grid and owns everything.
//! - [`takeover`]: ROT / WOT / service mode: what a survivor may do with a failed owner's volume.
//! - [`error`]: `DomainError`, raised when text does not parse into a domain value.
//!
//! What it leaves out on purpose: where a volume's bytes live (`vtgrid-tvc`), how commands reach
//! consensus (`vtgrid-catalog`), and who may ask for what (`vtgrid-node`).

pub mod aotm;
pub mod catalog;
pub mod category;
pub mod cluster;
pub mod construct;
pub mod copy;
pub mod copy_mode;
pub mod election;
pub mod error;
pub mod gate;
pub mod lease;
pub mod membership;
pub mod replay;
pub mod retention;
pub mod standalone;
pub mod takeover;
pub mod volser;
pub mod volume;
pub mod volumes;

pub use catalog::{CatalogCommand, CatalogRejection, CatalogResponse, CatalogState};
pub use category::{Category, CategoryDefinition};
pub use cluster::{ClusterId, Epoch, OwnershipToken};
pub use construct::{ConstructName, Constructs};
pub use copy_mode::{CopyMode, CopyModeVector, ManagementClass, SyncFailure};
pub use error::DomainError;
pub use volser::{Volser, VolserRange};
pub use volume::{Digest, VersionNumber, VolumeRecord};
