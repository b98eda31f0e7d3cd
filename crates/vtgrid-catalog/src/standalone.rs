//! `vtgrid admin force-standalone`, offline: rewrite a stopped survivor's catalog store so that
//! it starts as a grid of one (DESIGN §3, the rule is [`vtgrid_core::standalone`]).
//!
//! Raft cannot change its membership without a quorum, so this works below Raft, on the store:
//!
//! ```text
//!   stored snapshot + the log up to the committed id  ──replay──> the catalog this node knew
//!   entries after the committed id                    ──dropped (never known committed here)
//!   CatalogState::force_standalone(survivor)          ──> it owns everything, lost copies go
//!   new membership {survivor} at (term + 1, index + 1)
//!   one synced batch: the snapshot of that catalog, vote = committed = last purged = its id,
//!                     every log entry deleted
//! ```
//!
//! On its next start openraft finds a group of one voter whose whole history is that snapshot:
//! it elects itself, and every member added later (`rejoin --as-new`) receives the snapshot. Like
//! etcd's `--force-new-cluster`, an entry the lost majority committed after the last commit this
//! survivor learned of is lost: the command says how many uncommitted entries it dropped.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, CommittedLeaderId};
use thiserror::Error;
use vtgrid_core::catalog::CatalogRejection;
use vtgrid_core::standalone::ForcedStandalone;
use vtgrid_core::ClusterId;

use crate::codec::{decode, encode, index_key};
use crate::engine::{Cf, KvEngine};
use crate::error::CatalogStorageError;
use crate::log_store::{delete_entries, put_meta, read_meta, COMMITTED, LAST_PURGED, VOTE};
use crate::snapshot;
use crate::state_machine::apply_entry;
use crate::types::{Entry, LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use crate::view::AppliedCatalog;

/// What a force-standalone did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandaloneReport {
    /// The catalog's record (lost clusters, volumes taken, copies forgotten).
    pub record: ForcedStandalone,
    /// The last committed entry replayed into the catalog.
    pub replayed_up_to: Option<LogId>,
    /// Entries after the committed id, dropped.
    pub dropped_entries: u64,
    /// The standalone grid's first log id (its membership).
    pub new_membership: LogId,
}

#[derive(Debug, Error)]
pub enum StandaloneError {
    #[error(transparent)]
    Storage(#[from] CatalogStorageError),
    #[error(transparent)]
    Engine(#[from] crate::error::EngineError),
    #[error("this data dir holds no catalog (no vote, no log, no snapshot): nothing to force")]
    NoCatalog,
    #[error("{survivor} is not a voter of the catalog's membership ({voters:?}); run the command on a survivor's own data dir")]
    NotAVoter {
        survivor: ClusterId,
        voters: BTreeSet<u64>,
    },
    #[error("the catalog refused: {0}")]
    Refused(#[from] CatalogRejection),
    #[error("this catalog is already a standalone grid of {survivor}; nothing changed")]
    AlreadyStandalone { survivor: ClusterId },
}

/// Rewrite the stopped cluster `survivor`'s catalog store as a grid of that cluster alone,
/// reachable at `addr` (its grid address). Synchronous; the node must not be running.
pub fn force_standalone<E: KvEngine>(
    engine: &E,
    survivor: ClusterId,
    addr: String,
) -> Result<StandaloneReport, StandaloneError> {
    let vote: Option<Vote> = read_meta(engine, VOTE)?;
    let committed: Option<LogId> = read_meta(engine, COMMITTED)?;
    let stored = snapshot::read_stored(engine)?;
    let last_entry: Option<Entry> = match engine.last(Cf::Logs)? {
        Some((key, value)) => Some(decode(Cf::Logs, &key, &value)?),
        None => None,
    };
    if vote.is_none() && stored.is_none() && last_entry.is_none() {
        return Err(StandaloneError::NoCatalog);
    }
    let mut applied = match &stored {
        Some((meta, data)) => snapshot::decode_data(meta, data)?,
        None => AppliedCatalog::default(),
    };
    // Replay what this node knew committed, exactly as openraft does at start.
    let from = applied.last_applied.map_or(0, |id| id.index + 1);
    if let Some(upto) = committed.filter(|c| c.index >= from) {
        let pairs = engine.scan(Cf::Logs, &index_key(from), None, usize::MAX)?;
        for (key, value) in pairs {
            let entry: Entry = decode(Cf::Logs, &key, &value)?;
            if entry.log_id.index > upto.index {
                break;
            }
            let _ = apply_entry(&mut applied, entry);
        }
    }
    let replayed_up_to = applied.last_applied;
    let after = replayed_up_to.map_or(0, |id| id.index + 1);
    let dropped_entries = engine
        .scan(Cf::Logs, &index_key(after), None, usize::MAX)?
        .len() as u64;

    let me = survivor.raft_id();
    let voters: BTreeSet<u64> = applied.last_membership.membership().voter_ids().collect();
    if let Some(record) = &applied.state.forced_standalone {
        if voters == BTreeSet::from([me]) && record.survivor == survivor {
            return Err(StandaloneError::AlreadyStandalone { survivor });
        }
    }
    if !voters.contains(&me) {
        return Err(StandaloneError::NotAVoter { survivor, voters });
    }

    let term = [
        vote.map(|v| v.leader_id().term),
        last_entry.as_ref().map(|e| e.log_id.leader_id.term),
        replayed_up_to.map(|id| id.leader_id.term),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
        + 1;
    let index = [
        last_entry.as_ref().map(|e| e.log_id.index),
        replayed_up_to.map(|id| id.index),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
        + 1;
    let new_membership = LogId::new(CommittedLeaderId::new(term, me), index);
    let record = applied.state.force_standalone(survivor, index)?;
    let membership = Membership::new(
        vec![BTreeSet::from([me])],
        BTreeMap::from([(me, BasicNode { addr })]),
    );
    applied.last_applied = Some(new_membership);
    applied.last_membership = StoredMembership::new(Some(new_membership), membership);

    let meta = SnapshotMeta {
        last_log_id: Some(new_membership),
        last_membership: applied.last_membership.clone(),
        snapshot_id: format!("{new_membership}-forced-standalone"),
    };
    let data = encode(Cf::Snapshot, &applied)?;
    let mut ops = snapshot::stored_ops(&meta, &data)?;
    ops.push(put_meta(VOTE, &Vote::new_committed(term, me))?);
    ops.push(put_meta(COMMITTED, &new_membership)?);
    ops.push(put_meta(LAST_PURGED, &new_membership)?);
    ops.extend(delete_entries(0, u64::MAX));
    engine.write(ops, true)?;
    tracing::warn!(%survivor, lost = ?record.lost, volumes_taken = record.volumes_taken,
        dropped_entries, "catalog forced standalone");
    Ok(StandaloneReport {
        record,
        replayed_up_to,
        dropped_entries,
        new_membership,
    })
}

#[cfg(test)]
mod tests {
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
    use openraft::{EntryPayload, RaftSnapshotBuilder, StorageHelper};
    use vtgrid_core::{CatalogCommand, Category, CategoryDefinition, Epoch, Volser};

    use super::*;
    use crate::{open_catalog, MemEngine};

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn id(term: u64, index: u64) -> LogId {
        openraft::testing::log_id(term, 1, index)
    }

    fn entry(term: u64, index: u64, payload: EntryPayload<crate::TypeConfig>) -> Entry {
        Entry {
            log_id: id(term, index),
            payload,
        }
    }

    fn volser(s: &str) -> Volser {
        s.parse().unwrap()
    }

    /// A three-voter catalog: entries 1-3 in the stored snapshot (membership, category, C1's
    /// insert), entry 4 committed after it (C1 hands A00001 to C0), entry 5 (C2's insert)
    /// appended but never known committed here; voted in term 3.
    async fn three_voter_store() -> MemEngine {
        let engine = MemEngine::new();
        let (mut log, mut sm, _view) = open_catalog(engine.clone()).unwrap();
        let nodes = (0..3)
            .map(|n| (n, BasicNode::new(format!("grid-{n}:7100"))))
            .collect::<BTreeMap<_, _>>();
        let membership = Membership::new(vec![BTreeSet::from([0, 1, 2])], nodes);
        let insert = |by: u8, range: &str| CatalogCommand::InsertVolumes {
            by: c(by),
            range: range.parse().unwrap(),
            category: Category(1),
        };
        let first = vec![
            entry(1, 1, EntryPayload::Membership(membership)),
            entry(
                1,
                2,
                EntryPayload::Normal(CatalogCommand::DefineCategory(CategoryDefinition {
                    category: Category(1),
                    name: "SCRATCH".into(),
                    fast_ready: true,
                })),
            ),
            entry(2, 3, EntryPayload::Normal(insert(1, "A00000-A00004"))),
        ];
        log.blocking_append(first.clone()).await.unwrap();
        log.save_committed(Some(id(2, 3))).await.unwrap();
        sm.apply(first).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let second = vec![
            entry(
                2,
                4,
                EntryPayload::Normal(CatalogCommand::Transfer {
                    volser: volser("A00001"),
                    from: c(1),
                    to: c(0),
                    epoch: Epoch(1),
                }),
            ),
            entry(3, 5, EntryPayload::Normal(insert(2, "C00000"))),
        ];
        log.blocking_append(second).await.unwrap();
        log.save_committed(Some(id(2, 4))).await.unwrap();
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        engine
    }

    /// DESIGN §3: the survivor's store, after force-standalone and a crash, starts as a grid of
    /// that survivor alone whose catalog is everything it knew committed plus the rule.
    #[tokio::test]
    async fn a_forced_store_starts_as_a_grid_of_one_that_owns_everything() {
        let engine = three_voter_store().await;
        let report = force_standalone(&engine, c(0), "127.0.0.1:7100".into()).unwrap();
        assert_eq!(report.replayed_up_to, Some(id(2, 4)));
        assert_eq!(
            report.dropped_entries, 1,
            "entry 5 was never known committed"
        );
        let new = report.new_membership;
        assert_eq!(
            (new.leader_id.term, new.leader_id.node_id, new.index),
            (4, 0, 6),
            "past the vote's term and the last entry, led by the survivor"
        );
        assert_eq!(report.record.lost, BTreeSet::from([c(1), c(2)]));
        assert_eq!(report.record.volumes_taken, 4, "A00001 was C0's already");

        engine.crash(); // everything above was one synced batch
        let (mut log, mut sm, view) = open_catalog(engine.clone()).unwrap();
        let state = StorageHelper::new(&mut log, &mut sm)
            .get_initial_state()
            .await
            .unwrap();
        let voters: BTreeSet<u64> = state
            .membership_state
            .effective()
            .membership()
            .voter_ids()
            .collect();
        assert_eq!(voters, BTreeSet::from([0]));
        assert_eq!(log.get_log_state().await.unwrap().last_log_id, Some(new));
        assert!(log.read_vote().await.unwrap().unwrap().is_committed());
        view.read(|s| {
            assert_eq!(s.members, BTreeSet::from([c(0)]));
            assert!(
                !s.volumes.contains_key(&volser("C00000")),
                "dropped, not applied"
            );
            assert_eq!(
                s.volumes[&volser("A00001")].token.epoch,
                Epoch(2),
                "entry 4 replayed"
            );
            for (v, record) in &s.volumes {
                assert_eq!(record.token.owner, c(0), "{v}");
            }
            assert_eq!(s.volumes[&volser("A00000")].token.epoch, Epoch(2));
            assert_eq!(s.forced_standalone.as_ref(), Some(&report.record));
        });

        assert!(matches!(
            force_standalone(&engine, c(0), "127.0.0.1:7100".into()),
            Err(StandaloneError::AlreadyStandalone { .. })
        ));
    }

    #[tokio::test]
    async fn a_store_that_is_not_the_survivors_or_holds_nothing_is_left_alone() {
        let engine = three_voter_store().await;
        let before = engine.scan(Cf::Logs, &[], None, usize::MAX).unwrap();
        assert!(matches!(
            force_standalone(&engine, c(5), "127.0.0.1:7100".into()),
            Err(StandaloneError::NotAVoter { .. })
        ));
        assert_eq!(
            engine.scan(Cf::Logs, &[], None, usize::MAX).unwrap(),
            before
        );
        assert!(matches!(
            force_standalone(&MemEngine::new(), c(0), "127.0.0.1:7100".into()),
            Err(StandaloneError::NoCatalog)
        ));
    }
}
