//! Retention: the one rule that decides whether a cluster may delete a volume file (DESIGN §4,
//! "Retention"). Every path that removes one asks [`decide`]: the periodic sweep and the start-up
//! reconcile, the copy engine's adopt step, the publisher once a new version is in the catalog,
//! and the operator's discard of a quarantined version.
//!
//! ```text
//!   file of (V, k) in area A            facts about V at this cluster         decision
//!   ───────────────────────────         ──────────────────────────────────    ─────────────
//!   Quarantine                          record kept (not discarded)       ──► Keep
//!                                       record gone (operator discarded)  ──► Remove
//!   Cache / Synced  k quarantined here, or k still in this cluster's journal ► Keep
//!                   V unknown: view caught up ──► Remove; view trailing   ──► Keep
//!                   k > current (a RUN copy or duplex not published yet)  ──► Keep
//!                   k = current: its bytes are not the catalog's          ──► Remove
//!                                Synced, and held here or not owed here   ──► Remove
//!                                otherwise                                ──► Keep
//!                   k < current: this cluster holds current verified, or is
//!                                not owed it at all                       ──► Remove
//!                                k is the newest version held below
//!                                current (its last copy, n-1)             ──► Keep
//!                                older still                              ──► Remove
//! ```
//!
//! Why n-1 stays: a DR site waiting for a deferred copy of v6 must still be able to serve v5;
//! deleting v5 as "superseded" before v6 arrives would leave it holding nothing (B40, B62).
//! Quarantined versions (DESIGN §3) are the only copy of bytes a host was told were written:
//! nothing but the operator ever removes them.

use crate::cluster::ClusterId;
use crate::copy::copy_duty;
use crate::volume::{Digest, VersionNumber, VolumeRecord};

/// Where in a cluster's volume store a file lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// A committed version in the cache: what mounts, reads and copies use.
    Cache,
    /// The synced prefix of a version still being written (or whose job failed after a sync
    /// point): durable bytes that are not a version yet (B42, T17).
    Synced,
    /// A version the catalog refused, kept under its own identity (DESIGN §3).
    Quarantine,
}

/// What the caller read of the file's bytes, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeldBytes {
    /// Not read: the caller decides on names alone (the sweep).
    Unchecked,
    /// The file's trailer records this digest.
    Digest(Digest),
    /// The file could not be opened or its framing is damaged.
    Unreadable,
}

/// What a cluster knows about the volume of a file it holds.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The cluster deciding.
    pub cluster: ClusterId,
    /// The catalog's record of the volume, as this cluster's view has it.
    pub record: Option<&'a VolumeRecord>,
    /// This cluster's view is known to be as new as the leader's (a linearizable read): only
    /// then may a volume missing from it be judged gone.
    pub view_caught_up: bool,
    /// The version is still in this cluster's owner journal (written here, not published yet),
    /// or a sync point of a job here names it.
    pub in_journal: bool,
    /// The cluster's quarantine records this version (the file may not have moved yet).
    pub quarantined: bool,
    /// A `CopyDone` for the current version is in this cluster's journal: it holds it verified
    /// even though the catalog does not say so yet.
    pub copy_done_pending: bool,
    /// The newest version of the volume this cluster holds in its cache below the catalog's
    /// current one, if any: the copy it keeps until the current one arrives.
    pub newest_held_below_current: Option<VersionNumber>,
}

/// Why a file stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Quarantined: only the operator removes it.
    Quarantined,
    /// Written here and still in the journal, or a running job's sync point.
    InJournal,
    /// The view may trail the catalog: a volume it does not know may be a new insert.
    ViewTrailing,
    /// The catalog's current version, byte for byte (as far as the caller checked).
    Current,
    /// Newer than the catalog: a RUN copy or a duplex whose writer has not published yet (it may
    /// be cut off for hours and still publish), or an orphan the next write of that number
    /// replaces.
    Newer,
    /// The last copy this cluster has while it waits for the current version (n-1).
    LastCopyUntilCurrentHeld,
}

/// Why a file may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remove {
    /// The operator discarded the quarantined version.
    Discarded,
    /// A view as new as the leader's does not know the volume: a crash leftover.
    UnknownVolume,
    /// The file under the current version's number holds other bytes (an orphan of a write that
    /// never reached the catalog) or cannot be read.
    NotTheCatalogsBytes,
    /// Older than the current version, which this cluster holds verified (or no longer owes), or
    /// older than the copy it keeps meanwhile.
    Superseded,
}

/// The decision on one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Keep(Keep),
    Remove(Remove),
}

impl Decision {
    pub fn may_remove(self) -> bool {
        matches!(self, Decision::Remove(_))
    }
}

/// May this cluster delete its file of `version` in `area` (see the module doc)?
pub fn decide(area: Area, version: VersionNumber, bytes: HeldBytes, facts: &Facts<'_>) -> Decision {
    if area == Area::Quarantine {
        return if facts.quarantined {
            Decision::Keep(Keep::Quarantined)
        } else {
            Decision::Remove(Remove::Discarded)
        };
    }
    if facts.quarantined {
        return Decision::Keep(Keep::Quarantined);
    }
    if facts.in_journal {
        return Decision::Keep(Keep::InJournal);
    }
    let Some(record) = facts.record else {
        return if facts.view_caught_up {
            Decision::Remove(Remove::UnknownVolume)
        } else {
            Decision::Keep(Keep::ViewTrailing)
        };
    };
    let holds_current = record.consistent_at.get(&facts.cluster) == Some(&record.version)
        || facts.copy_done_pending;
    match version.cmp(&record.version) {
        std::cmp::Ordering::Greater => Decision::Keep(Keep::Newer),
        std::cmp::Ordering::Equal => match (area, bytes) {
            (_, HeldBytes::Digest(d)) if d != record.digest => {
                Decision::Remove(Remove::NotTheCatalogsBytes)
            }
            (Area::Cache, HeldBytes::Unreadable) => Decision::Remove(Remove::NotTheCatalogsBytes),
            // A synced prefix of the current version is kept until the version is held here:
            // it is what this cluster makes its copy from (T17); a cluster owed no copy never
            // makes one.
            (Area::Synced, _) if holds_current || copy_duty(record, facts.cluster).is_none() => {
                Decision::Remove(Remove::Superseded)
            }
            _ => Decision::Keep(Keep::Current),
        },
        std::cmp::Ordering::Less => {
            let owed = copy_duty(record, facts.cluster).is_some();
            if holds_current || !owed || area == Area::Synced {
                Decision::Remove(Remove::Superseded)
            } else if facts.newest_held_below_current == Some(version) {
                Decision::Keep(Keep::LastCopyUntilCurrentHeld)
            } else {
                Decision::Remove(Remove::Superseded)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Category, Constructs, Epoch, OwnershipToken};

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    /// V at version 6 written at C0 with `vector`, consistent where `consistent` says.
    fn record(vector: &str, consistent: &[(u8, u64)]) -> VolumeRecord {
        VolumeRecord {
            volser: "A00001".parse().unwrap(),
            token: OwnershipToken {
                owner: c(0),
                epoch: Epoch(1),
            },
            category: Category(0xF),
            constructs: Constructs::default(),
            version: 6,
            size: 10,
            digest: Digest([6; 32]),
            consistent_at: consistent
                .iter()
                .map(|(k, v)| (c(*k), *v))
                .collect::<BTreeMap<_, _>>(),
            copy_modes: Some(vector.parse().unwrap()),
            taken_from: None,
        }
    }

    fn facts(cluster: u8, record: Option<&VolumeRecord>) -> Facts<'_> {
        Facts {
            cluster: c(cluster),
            record,
            view_caught_up: false,
            in_journal: false,
            quarantined: false,
            copy_done_pending: false,
            newest_held_below_current: None,
        }
    }

    fn cache(version: u64, f: &Facts<'_>) -> Decision {
        decide(Area::Cache, version, HeldBytes::Unchecked, f)
    }

    #[test]
    fn dr_site_keeps_n_minus_1_until_it_holds_n() {
        let r = record("RND", &[(0, 6), (2, 5)]);
        let f = Facts {
            newest_held_below_current: Some(5),
            ..facts(2, Some(&r))
        };
        assert_eq!(cache(5, &f), Decision::Keep(Keep::LastCopyUntilCurrentHeld));
        assert_eq!(
            cache(4, &f),
            Decision::Remove(Remove::Superseded),
            "only the newest older copy stays"
        );

        let done = record("RND", &[(0, 6), (2, 6)]);
        let f = Facts {
            newest_held_below_current: Some(5),
            ..facts(2, Some(&done))
        };
        assert_eq!(cache(5, &f), Decision::Remove(Remove::Superseded));

        let f = Facts {
            newest_held_below_current: Some(5),
            copy_done_pending: true,
            ..facts(2, Some(&r))
        };
        assert_eq!(
            cache(5, &f),
            Decision::Remove(Remove::Superseded),
            "a verified copy whose CopyDone is on its way counts as held"
        );
    }

    #[test]
    fn a_cluster_no_longer_owed_the_volume_drops_older_versions() {
        // The new version's vector says No Copy at C2.
        let r = record("RNN", &[(0, 6), (2, 5)]);
        let f = Facts {
            newest_held_below_current: Some(5),
            ..facts(2, Some(&r))
        };
        assert_eq!(cache(5, &f), Decision::Remove(Remove::Superseded));
    }

    #[test]
    fn current_and_newer_versions_stay_unless_their_bytes_are_not_the_catalogs() {
        let r = record("RRD", &[(0, 6)]);
        let f = facts(1, Some(&r));
        assert_eq!(cache(6, &f), Decision::Keep(Keep::Current));
        assert_eq!(cache(7, &f), Decision::Keep(Keep::Newer));
        assert_eq!(
            decide(Area::Cache, 6, HeldBytes::Digest(Digest([6; 32])), &f),
            Decision::Keep(Keep::Current)
        );
        assert_eq!(
            decide(Area::Cache, 6, HeldBytes::Digest(Digest([9; 32])), &f),
            Decision::Remove(Remove::NotTheCatalogsBytes)
        );
        assert_eq!(
            decide(Area::Cache, 6, HeldBytes::Unreadable, &f),
            Decision::Remove(Remove::NotTheCatalogsBytes)
        );
    }

    #[test]
    fn journal_and_quarantine_protect_any_version() {
        let r = record("RRD", &[(0, 6), (1, 6)]);
        let f = Facts {
            in_journal: true,
            ..facts(1, Some(&r))
        };
        assert_eq!(cache(3, &f), Decision::Keep(Keep::InJournal));
        assert_eq!(
            decide(Area::Cache, 6, HeldBytes::Digest(Digest([1; 32])), &f),
            Decision::Keep(Keep::InJournal),
            "a version written here and not published is never an orphan"
        );
        let f = Facts {
            quarantined: true,
            ..facts(1, Some(&r))
        };
        assert_eq!(
            decide(Area::Cache, 6, HeldBytes::Digest(Digest([1; 32])), &f),
            Decision::Keep(Keep::Quarantined),
            "a quarantined version not moved yet stays"
        );
    }

    #[test]
    fn quarantine_area_is_removed_only_once_the_operator_discarded_it() {
        let r = record("RRD", &[(0, 6)]);
        let kept = Facts {
            quarantined: true,
            ..facts(0, Some(&r))
        };
        assert_eq!(
            decide(Area::Quarantine, 2, HeldBytes::Unchecked, &kept),
            Decision::Keep(Keep::Quarantined)
        );
        let gone = facts(0, Some(&r));
        assert_eq!(
            decide(Area::Quarantine, 6, HeldBytes::Unchecked, &gone),
            Decision::Remove(Remove::Discarded)
        );
    }

    #[test]
    fn unknown_volumes_go_only_on_a_caught_up_view() {
        assert_eq!(
            cache(1, &facts(0, None)),
            Decision::Keep(Keep::ViewTrailing)
        );
        let f = Facts {
            view_caught_up: true,
            ..facts(0, None)
        };
        assert_eq!(cache(1, &f), Decision::Remove(Remove::UnknownVolume));
    }

    #[test]
    fn a_synced_prefix_stays_until_its_version_is_held_here() {
        let r = record("SSD", &[(0, 6)]);
        let f = facts(1, Some(&r));
        assert_eq!(
            decide(Area::Synced, 7, HeldBytes::Unchecked, &f),
            Decision::Keep(Keep::Newer)
        );
        assert_eq!(
            decide(Area::Synced, 6, HeldBytes::Unchecked, &f),
            Decision::Keep(Keep::Current)
        );
        assert_eq!(
            decide(Area::Synced, 5, HeldBytes::Unchecked, &f),
            Decision::Remove(Remove::Superseded)
        );
        let not_owed = record("SSN", &[(0, 6)]);
        assert_eq!(
            decide(
                Area::Synced,
                6,
                HeldBytes::Unchecked,
                &facts(2, Some(&not_owed))
            ),
            Decision::Remove(Remove::Superseded),
            "a cluster owed no copy of the version has no use for its prefix"
        );
        let held = record("SSD", &[(0, 6), (1, 6)]);
        assert_eq!(
            decide(
                Area::Synced,
                6,
                HeldBytes::Unchecked,
                &facts(1, Some(&held))
            ),
            Decision::Remove(Remove::Superseded)
        );
    }
}
