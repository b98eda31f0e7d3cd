//! Force-standalone: what the catalog becomes when one survivor takes the whole grid (DESIGN §3,
//! "Disaster recovery of the Raft group").
//!
//! When the Raft majority is gone for good, nothing can be committed: no takeover grant, no
//! membership change. The operator then stops one survivor and runs `vtgrid admin
//! force-standalone` on its data dir. The catalog it holds (every entry it knows committed) gets
//! a new membership of that survivor alone, and this rule:
//!
//! ```text
//!   every volume another cluster owns ──> owned by the survivor at the next epoch
//!                                         (taken_from = the old token: the old owner is fenced)
//!   every copy a lost cluster held    ──> no longer counted (they rejoin as new members only,
//!                                         with empty data dirs)
//!   takeover grants, service states   ──> dropped where they name a lost cluster
//!   the catalog records               ──> who was forced standalone, who was lost, at which entry
//! ```
//!
//! It is a function of the state alone, so it can be tested here and applied offline by the
//! storage layer; every member added later receives its result in the survivor's snapshot.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogRejection, CatalogState};
use crate::cluster::{ClusterId, OwnershipToken};

/// The catalog's record of a force-standalone, kept for operators (status) and for the rule
/// that refuses the lost clusters' old Raft group (a node of it must rejoin as a new member).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ForcedStandalone {
    /// The cluster that became the whole grid.
    pub survivor: ClusterId,
    /// The voters of the old membership it left out.
    pub lost: BTreeSet<ClusterId>,
    /// The Raft index of the new membership (the first entry of the standalone grid).
    pub at_index: u64,
    /// How many volumes moved to the survivor.
    pub volumes_taken: u64,
    /// How many copies at lost clusters stopped counting.
    pub copies_forgotten: u64,
}

impl CatalogState {
    /// Make `survivor` the grid's only member and owner of every volume (see the module docs).
    /// `at_index` is the index of the membership entry that makes it so. Refused, unchanged, for
    /// a witness (it can own nothing) or for a cluster the catalog does not know as a member.
    pub fn force_standalone(
        &mut self,
        survivor: ClusterId,
        at_index: u64,
    ) -> Result<ForcedStandalone, CatalogRejection> {
        if !self.is_data_member(survivor) {
            return Err(CatalogRejection::NotADataCluster { cluster: survivor });
        }
        // Check first, change after: an exhausted epoch refuses the whole rule, changing nothing.
        let mut moves = Vec::new();
        for (volser, record) in &self.volumes {
            if record.token.owner != survivor {
                let epoch =
                    record
                        .token
                        .epoch
                        .checked_next()
                        .ok_or(CatalogRejection::EpochExhausted {
                            volser: *volser,
                            epoch: record.token.epoch,
                        })?;
                moves.push((*volser, epoch));
            }
        }
        let lost: BTreeSet<ClusterId> = self
            .members
            .iter()
            .copied()
            .filter(|c| *c != survivor)
            .collect();
        let volumes_taken = moves.len() as u64;
        for (volser, epoch) in moves {
            self.volumes.edit(&volser, |record| {
                record.taken_from = Some(record.token);
                record.token = OwnershipToken {
                    owner: survivor,
                    epoch,
                };
            });
        }
        let mut copies_forgotten = 0;
        self.volumes.edit_all(|record| {
            let before = record.consistent_at.len();
            record.consistent_at.retain(|c, _| *c == survivor);
            copies_forgotten += (before - record.consistent_at.len()) as u64;
        });
        self.write_takeovers
            .retain(|(failed, to)| *failed == survivor && *to == survivor);
        self.service.retain(|c, _| *c == survivor);
        self.set_members([survivor]);
        let record = ForcedStandalone {
            survivor,
            lost,
            at_index,
            volumes_taken,
            copies_forgotten,
        };
        self.forced_standalone = Some(record.clone());
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CatalogCommand, NewVersion, VolumeChange};
    use crate::category::{Category, CategoryDefinition};
    use crate::cluster::Epoch;
    use crate::volume::Digest;
    use crate::Volser;

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn v(s: &str) -> Volser {
        s.parse().unwrap()
    }

    /// C0 owns A00000, C1 owns B00000 (copied to C0 and C2), C2 owns C00000 (C2 only); the
    /// members are C0, C1, C2 and the witness C8; C0 may take C1's volumes (a grant).
    fn three_sites() -> CatalogState {
        let mut s = CatalogState::default();
        s.set_members([c(0), c(1), c(2), c(8)]);
        s.apply(&CatalogCommand::DefineCategory(CategoryDefinition {
            category: Category(1),
            name: "SCRATCH".into(),
            fast_ready: true,
        }))
        .unwrap();
        for (by, range) in [(0, "A00000"), (1, "B00000"), (2, "C00000")] {
            s.apply(&CatalogCommand::InsertVolumes {
                by: c(by),
                range: range.parse().unwrap(),
                category: Category(1),
            })
            .unwrap();
            s.apply(&CatalogCommand::UpdateVolume {
                volser: v(range),
                by: c(by),
                epoch: Epoch::FIRST,
                change: VolumeChange {
                    version: Some(NewVersion {
                        version: 1,
                        size: 1,
                        digest: Digest([by; 32]),
                        written_at: c(by),
                        copy_modes: None,
                        held_by: vec![],
                    }),
                    ..Default::default()
                },
            })
            .unwrap();
        }
        for at in [0, 2] {
            s.apply(&CatalogCommand::CopyDone {
                volser: v("B00000"),
                version: 1,
                cluster: c(at),
                digest: Some(Digest([1; 32])),
            })
            .unwrap();
        }
        s.apply(&CatalogCommand::SetWriteTakeover {
            failed: c(1),
            to: c(0),
            granted: true,
        })
        .unwrap();
        s
    }

    #[test]
    fn the_survivor_owns_every_volume_at_the_next_epoch_and_lost_copies_stop_counting() {
        let mut s = three_sites();
        let before = s.clone();
        let record = s.force_standalone(c(0), 42).unwrap();
        assert_eq!(record.lost, BTreeSet::from([c(1), c(2), c(8)]));
        assert_eq!(record.volumes_taken, 2);
        for (volser, old) in &before.volumes {
            let now = &s.volumes[volser];
            assert_eq!(now.token.owner, c(0), "{volser}");
            if old.token.owner == c(0) {
                assert_eq!(
                    now.token, old.token,
                    "{volser}: the survivor's own keeps its epoch"
                );
                assert_eq!(now.taken_from, None);
            } else {
                assert_eq!(now.token.epoch, old.token.epoch.checked_next().unwrap());
                assert_eq!(
                    now.taken_from,
                    Some(old.token),
                    "{volser}: old owner fenced"
                );
            }
            assert!(now.consistent_at.keys().all(|k| *k == c(0)), "{volser}");
            assert_eq!((now.version, now.digest), (old.version, old.digest));
        }
        assert_eq!(
            s.volumes[&v("B00000")]
                .consistent_clusters()
                .collect::<Vec<_>>(),
            vec![c(0)],
            "C0's copy of C1's volume still counts"
        );
        assert_eq!(s.members, BTreeSet::from([c(0)]));
        assert!(s.write_takeovers.is_empty());
        assert_eq!(s.forced_standalone, Some(record));
        // The old owner is fenced: its late change is stale.
        let late = CatalogCommand::UpdateVolume {
            volser: v("B00000"),
            by: c(1),
            epoch: Epoch::FIRST,
            change: VolumeChange::default(),
        };
        assert!(s.apply(&late).is_err());
    }

    #[test]
    fn a_witness_or_a_stranger_cannot_be_the_survivor_and_nothing_changes() {
        for who in [c(8), c(3)] {
            let mut s = three_sites();
            let before = s.clone();
            assert_eq!(
                s.force_standalone(who, 42),
                Err(CatalogRejection::NotADataCluster { cluster: who })
            );
            assert_eq!(s, before);
        }
    }
}
