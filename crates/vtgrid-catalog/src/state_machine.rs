//! The catalog state machine as openraft sees it (storage-v2 `RaftStateMachine`).
//!
//! ```text
//!   committed entries --apply--> CatalogView (memory: CatalogState + last_applied + membership)
//!                                   |  get_snapshot_builder (copy)
//!                                   v
//!                                build_snapshot --> Cf::Snapshot (synced)
//!   leader's snapshot --install_snapshot--> Cf::Snapshot (synced), then replaces the view
//!
//!   restart: StateMachineStore::open loads Cf::Snapshot; openraft then re-applies the log from
//!            the snapshot's last entry up to the committed id the log store saved.
//! ```
//!
//! `apply` touches memory only. Persisting every command would cost a write per entry and gain
//! nothing: the log already holds each committed entry durably, and the snapshot bounds how much
//! of it a restart replays.

use std::io::Cursor;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use vtgrid_core::catalog::Applied;
use vtgrid_core::CatalogResponse;

use crate::engine::{on_engine, KvEngine};
use crate::error::CatalogStorageError;
use crate::snapshot::{self, CatalogSnapshotBuilder, SnapshotLock};
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::view::{AppliedCatalog, CatalogView};

/// The catalog's Raft state machine on any [`KvEngine`]. openraft owns it; the node reads the
/// catalog through the [`CatalogView`] it hands out.
#[derive(Debug)]
pub struct StateMachineStore<E> {
    engine: E,
    /// The applied catalog, shared with readers.
    view: CatalogView,
    /// Orders snapshot writes between this store and the builders it hands out.
    snapshot_lock: SnapshotLock,
    /// Makes each built snapshot's id unique, even for two builds at the same log id.
    next_snapshot_seq: u64,
}

impl<E: KvEngine> StateMachineStore<E> {
    /// Open the state machine on `engine`, starting from the stored snapshot if there is one.
    ///
    /// Reads the engine synchronously: call it before starting Raft (or in `spawn_blocking`).
    pub fn open(engine: E) -> Result<Self, CatalogStorageError> {
        let applied = match snapshot::read_stored(&engine)? {
            Some((meta, data)) => {
                let applied = snapshot::decode_data(&meta, &data)?;
                tracing::info!(%meta, "catalog loaded from the stored snapshot");
                applied
            }
            None => AppliedCatalog::default(),
        };
        Ok(Self {
            engine,
            view: CatalogView::new(applied),
            snapshot_lock: SnapshotLock::default(),
            next_snapshot_seq: 0,
        })
    }

    /// A read handle on the applied catalog.
    pub fn view(&self) -> CatalogView {
        self.view.clone()
    }
}

impl<E: KvEngine> RaftStateMachine<TypeConfig> for StateMachineStore<E> {
    type SnapshotBuilder = CatalogSnapshotBuilder<E>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.view.read_guard();
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    /// Blank and membership entries answer `Applied::Nothing`; a command answers what the
    /// catalog's rules decided, a rejection included (it is an answer, not a storage error).
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CatalogResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.view.write_guard();
        let responses = entries
            .into_iter()
            .map(|entry| {
                applied.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Ok(Applied::Nothing),
                    EntryPayload::Normal(command) => applied.state.apply(&command),
                    EntryPayload::Membership(membership) => {
                        applied.last_membership =
                            StoredMembership::new(Some(entry.log_id), membership);
                        Ok(Applied::Nothing)
                    }
                }
            })
            .collect();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let applied = self.view.applied();
        let seq = self.next_snapshot_seq;
        self.next_snapshot_seq += 1;
        let snapshot_id = match &applied.last_applied {
            Some(log_id) => format!("{log_id}-{seq}"),
            None => format!("none-{seq}"),
        };
        CatalogSnapshotBuilder {
            engine: self.engine.clone(),
            applied,
            snapshot_id,
            snapshot_lock: self.snapshot_lock.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Stores the snapshot durably first, then replaces the catalog: if storing fails, the node
    /// stops with its old state intact.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let snapshot_lock = self.snapshot_lock.clone();
        let stored_meta = meta.clone();
        let install = on_engine(&self.engine, move |engine| {
            let applied = snapshot::decode_data(&stored_meta, &data)?;
            let _order = snapshot::lock(&snapshot_lock);
            snapshot::write_stored(engine, &stored_meta, &data)?;
            Ok(applied)
        });
        let applied = install.await.map_err(|e| {
            e.into_raft(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        })?;
        *self.view.write_guard() = applied;
        tracing::info!(%meta, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let read = on_engine(&self.engine, |engine| {
            Ok(snapshot::read_stored(engine)?
                .map(|(meta, data)| snapshot::into_snapshot(meta, data)))
        });
        read.await
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Read))
    }
}
