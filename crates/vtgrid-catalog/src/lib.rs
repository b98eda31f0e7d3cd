//! The Raft storage of vtgrid's catalog: the log, the vote and the state machine of the one
//! openraft group a grid runs (DESIGN §3), on RocksDB for nodes and in memory for simulations.
//!
//! ```text
//!   openraft::Raft<TypeConfig>
//!      |                    |
//!   LogStore<E>        StateMachineStore<E> --- CatalogView (node queries)
//!      |                    |
//!      '------ E: KvEngine -'     RocksEngine (node)  |  MemEngine (turmoil; crash() drops unsynced)
//! ```
//!
//! # Layout
//! - [`runtime`]: openraft's async runtime: Tokio, with election timeouts a simulation can seed.
//! - [`types`]: openraft's [`TypeConfig`] for the catalog and short aliases (`Raft`, `LogId`, ...).
//! - [`engine`]: the [`KvEngine`] trait, column families [`Cf`], [`RocksEngine`] and [`MemEngine`].
//! - [`log_store`]: [`LogStore`], the Raft log, vote and committed id; every write synced.
//! - [`state_machine`]: [`StateMachineStore`], applying committed commands to the catalog.
//! - [`snapshot`]: building, storing and loading snapshots of the applied catalog.
//! - [`standalone`]: `force-standalone`, offline: a stopped survivor's store becomes a grid of one.
//! - [`view`]: [`CatalogView`], the node's read handle, and [`AppliedCatalog`].
//! - [`journal`]: the owner journal and the quarantine (local autonomy).
//! - [`copy_queue`]: the copies this cluster owes, in pull order.
//! - [`error`]: [`CatalogStorageError`] and [`EngineError`].
//!
//! What it leaves out on purpose: networking (Raft RPCs are `vtgrid-node`'s), the rules of the
//! catalog (`vtgrid_core::catalog`), and the owner journal and copy queue, which later issues
//! build on [`Cf::Journal`] and [`Cf::CopyQueue`] with the same engine.
//!
//! Durability in one sentence: the log and vote are synced on every write, `apply` changes only
//! memory, and a restart rebuilds the catalog from the stored snapshot plus the committed log,
//! which openraft re-applies at startup from the committed id saved by [`LogStore`].

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod codec;
pub mod copy_queue;
pub mod engine;
pub mod error;
pub mod journal;
pub mod log_store;
pub mod runtime;
pub mod snapshot;
pub mod standalone;
pub mod state_machine;
pub mod types;
pub mod view;

#[cfg(test)]
mod restart_tests;
#[cfg(test)]
mod suite_tests;

pub use copy_queue::{CopyQueue, KvCopyQueue, QueuedCopy};
pub use engine::{Cf, KvEngine, KvOp, MemEngine, RocksEngine};
pub use error::{CatalogStorageError, EngineError, EngineFailure, EngineOp};
pub use journal::{JournalEntry, KvJournal, OwnerJournal, QuarantineRecord};
pub use log_store::LogStore;
pub use snapshot::CatalogSnapshotBuilder;
pub use state_machine::StateMachineStore;
pub use types::{LogId, Raft, TypeConfig};
pub use view::{AppliedCatalog, CatalogView};

/// Open the catalog's log store and state machine on `engine`, plus the view the node keeps.
///
/// Give the two stores to `Raft::new`; openraft then re-applies the committed log on top of the
/// loaded snapshot before it serves. Reads the engine synchronously (see
/// [`StateMachineStore::open`]).
pub fn open_catalog<E: KvEngine>(
    engine: E,
) -> Result<(LogStore<E>, StateMachineStore<E>, CatalogView), CatalogStorageError> {
    let state_machine = StateMachineStore::open(engine.clone())?;
    let view = state_machine.view();
    Ok((LogStore::new(engine), state_machine, view))
}
