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

use std::collections::BTreeSet;
use std::io::Cursor;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use vtgrid_core::catalog::Applied;
use vtgrid_core::{CatalogResponse, ClusterId};

use crate::engine::{on_engine, KvEngine};
use crate::error::CatalogStorageError;
use crate::snapshot::{self, CatalogSnapshotBuilder, SnapshotLock};
use crate::types::{
    Entry, LogId, Membership, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::view::{AppliedCatalog, CatalogView};

/// The grid's clusters a membership names: its voters, in every configuration of a joint one.
/// The catalog checks new owners, inserters, writers and copy holders against them
/// ([`vtgrid_core::CatalogState::members`]). Learners are left out: a node openraft keeps as a
/// learner is one being added or one removed with `retain`, and neither should be handed a
/// volume. A node id that is no vtgrid cluster id (above 15) cannot stand for a cluster and is
/// left out too, the same way on every replica.
pub(crate) fn members_of(membership: &Membership) -> BTreeSet<ClusterId> {
    membership
        .voter_ids()
        .filter_map(|id| match ClusterId::from_raft_id(id) {
            Ok(cluster) => Some(cluster),
            Err(e) => {
                tracing::warn!(node = id, error = %e, "a Raft voter that is no vtgrid cluster");
                None
            }
        })
        .collect()
}

/// Apply one committed entry to the catalog: the one place an entry changes it (the state
/// machine, and [`crate::standalone`] replaying the committed log offline).
pub(crate) fn apply_entry(applied: &mut AppliedCatalog, entry: Entry) -> CatalogResponse {
    applied.last_applied = Some(entry.log_id);
    match entry.payload {
        EntryPayload::Blank => Ok(Applied::Nothing),
        EntryPayload::Normal(command) => {
            let response = applied.state.apply(&command);
            if let Err(refusal) = &response {
                // Every replica refuses the same entries: say so at debug level only.
                tracing::debug!(index = entry.log_id.index, %refusal, ?command, "catalog command refused");
            }
            response
        }
        EntryPayload::Membership(membership) => {
            applied.state.set_members(members_of(&membership));
            applied.last_membership = StoredMembership::new(Some(entry.log_id), membership);
            Ok(Applied::Nothing)
        }
    }
}

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
            .map(|entry| apply_entry(&mut applied, entry))
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::storage::RaftStateMachine;
    use openraft::{BasicNode, EntryPayload};
    use vtgrid_core::{
        CatalogCommand, CatalogRejection, Category, CategoryDefinition, ClusterId, Epoch,
    };

    use crate::snapshot;
    use crate::types::{Entry, Membership, SnapshotMeta, StoredMembership};
    use crate::view::AppliedCatalog;
    use crate::{open_catalog, MemEngine};

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn entry(index: u64, payload: EntryPayload<crate::TypeConfig>) -> Entry {
        Entry {
            log_id: openraft::testing::log_id(1, 1, index),
            payload,
        }
    }

    /// Voters C0, C1 and the witness C8; C3 is a learner.
    fn membership() -> Membership {
        let nodes = [0, 1, 3, 8]
            .into_iter()
            .map(|id| (id, BasicNode::new(format!("grid-{id}:7100"))))
            .collect::<BTreeMap<_, _>>();
        Membership::new(vec![BTreeSet::from([0, 1, 8])], nodes)
    }

    /// The catalog learns the grid's clusters from the membership it applies, and refuses to
    /// hand a volume to a learner or to a cluster it never heard of.
    #[tokio::test]
    async fn a_membership_entry_records_the_voters_and_transfers_stay_among_them() {
        let (_log, mut sm, view) = open_catalog(MemEngine::new()).unwrap();
        let define = CatalogCommand::DefineCategory(CategoryDefinition {
            category: Category(1),
            name: "SCRATCH".into(),
            fast_ready: true,
        });
        let insert = CatalogCommand::InsertVolumes {
            by: c(0),
            range: "A00000".parse().unwrap(),
            category: Category(1),
        };
        let transfer = |to| CatalogCommand::Transfer {
            volser: "A00000".parse().unwrap(),
            from: c(0),
            to,
            epoch: Epoch(1),
        };
        let responses = sm
            .apply([
                entry(1, EntryPayload::Membership(membership())),
                entry(2, EntryPayload::Normal(define)),
                entry(3, EntryPayload::Normal(insert)),
                entry(4, EntryPayload::Normal(transfer(c(3)))),
                entry(5, EntryPayload::Normal(transfer(c(1)))),
            ])
            .await
            .unwrap();
        assert_eq!(
            view.read(|s| s.members.clone()),
            BTreeSet::from([c(0), c(1), c(8)])
        );
        assert_eq!(
            responses[3],
            Err(CatalogRejection::NotADataCluster { cluster: c(3) }),
            "a learner is not handed a volume"
        );
        assert!(responses[4].is_ok(), "{:?}", responses[4]);
    }

    /// A snapshot of the release before the catalog recorded its members: they come from the
    /// membership stored beside the state.
    #[test]
    fn an_older_snapshot_gets_its_members_from_its_membership() {
        let last = openraft::testing::log_id(1, 1, 7);
        let applied = AppliedCatalog {
            last_applied: Some(last),
            last_membership: StoredMembership::new(Some(last), membership()),
            state: Default::default(),
        };
        let mut json = serde_json::to_value(&applied).unwrap();
        let removed = json["state"].as_object_mut().unwrap().remove("members");
        assert!(removed.is_some(), "the field this test removes exists");
        let meta = SnapshotMeta {
            last_log_id: Some(last),
            last_membership: applied.last_membership.clone(),
            snapshot_id: "old".into(),
        };
        let bytes = serde_json::to_vec(&json).unwrap();
        let decoded = snapshot::decode_data(&meta, &bytes).unwrap();
        assert_eq!(decoded.state.members, BTreeSet::from([c(0), c(1), c(8)]));
    }
}
