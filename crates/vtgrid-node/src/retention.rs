//! When this cluster may delete a volume file: its side of the retention rule
//! (`vtgrid_core::retention`, the one place the rule lives), gathered once per pass, and the moves
//! into the store's quarantine area. Every path that deletes a volume file asks
//! [`RetentionFacts::decide`] first.

use std::collections::BTreeSet;

use vtgrid_core::retention::{self, Area, Decision, Facts, HeldBytes};
use vtgrid_core::{VersionNumber, Volser};
use vtgrid_tvc::QuarantinedVersion;

use crate::cluster::Cluster;

/// A cluster's side of the retention rule (`vtgrid_core::retention`), gathered once so one pass
/// over many files reads the store and the journal once.
pub(crate) struct RetentionFacts {
    /// Committed versions in the cache.
    pub held: BTreeSet<(Volser, VersionNumber)>,
    /// Versions still in this cluster's owner journal.
    pub in_journal: BTreeSet<(Volser, VersionNumber)>,
    /// Versions this cluster's quarantine records whose file has not moved into the store's
    /// quarantine area yet (a crash came between the record and the move): their cache file stays.
    pub quarantined_unmoved: BTreeSet<(Volser, VersionNumber)>,
    /// The quarantine's records, by identity.
    pub quarantine_records: BTreeSet<(Volser, VersionNumber, [u8; 32])>,
    /// What the store's quarantine area holds.
    pub quarantine_area: Vec<QuarantinedVersion>,
    pub view_caught_up: bool,
}

impl RetentionFacts {
    /// The rule's decision on `cluster`'s file of (`volser`, `version`) in `area`.
    pub(crate) fn decide(
        &self,
        cluster: &Cluster,
        area: Area,
        volser: Volser,
        version: VersionNumber,
        bytes: HeldBytes,
    ) -> Decision {
        let record = cluster
            .catalog
            .view
            .read(|s| s.volumes.get(&volser).cloned());
        let current = record.as_ref().map_or(0, |r| r.version);
        let newest_held_below_current = self
            .held
            .range((volser, 0)..(volser, current))
            .next_back()
            .map(|(_, v)| *v);
        let facts = Facts {
            cluster: cluster.id,
            record: record.as_ref(),
            view_caught_up: self.view_caught_up,
            in_journal: self.in_journal.contains(&(volser, version)),
            quarantined: self.quarantined_unmoved.contains(&(volser, version)),
            copy_done_pending: cluster.journal.copy_done_pending(volser, current),
            newest_held_below_current,
        };
        let decision = retention::decide(area, version, bytes, &facts);
        tracing::debug!(%volser, version, ?area, ?decision, "retention");
        decision
    }

    /// The rule's decision on a file in the store's quarantine area: it stays while the
    /// quarantine records it, by number and digest.
    pub(crate) fn decide_quarantined(&self, cluster: &Cluster, q: &QuarantinedVersion) -> Decision {
        let facts = Facts {
            cluster: cluster.id,
            record: None,
            view_caught_up: self.view_caught_up,
            in_journal: false,
            quarantined: self
                .quarantine_records
                .contains(&(q.volser, q.version, q.digest.0)),
            copy_done_pending: false,
            newest_held_below_current: None,
        };
        retention::decide(
            Area::Quarantine,
            q.version,
            HeldBytes::Digest(q.digest),
            &facts,
        )
    }
}

impl Cluster {
    /// What the retention rule needs to know besides the catalog, read once per pass: the
    /// versions held, those in the journal and those quarantined.
    pub(crate) async fn retention_facts(
        &self,
        view_caught_up: bool,
    ) -> Result<RetentionFacts, crate::error::NodeError> {
        let held = self.tvc.run(|s| s.versions()).await?;
        let quarantine_area = self.tvc.run(|s| s.quarantined()).await?;
        let records = self.quarantine().await?;
        let moved = |r: &vtgrid_catalog::QuarantineRecord| {
            quarantine_area
                .iter()
                .any(|q| (q.volser, q.version, q.digest) == (r.volser, r.version, r.digest))
        };
        Ok(RetentionFacts {
            held: held.into_iter().collect(),
            in_journal: self.journal.pending_versions().into_iter().collect(),
            quarantined_unmoved: records
                .iter()
                .filter(|r| !moved(r))
                .map(|r| (r.volser, r.version))
                .collect(),
            quarantine_records: records
                .iter()
                .map(|r| (r.volser, r.version, r.digest.0))
                .collect(),
            quarantine_area,
            view_caught_up,
        })
    }

    /// Move the file of a version the quarantine records into the store's quarantine area
    /// (DESIGN §3). The publisher writes the quarantine record first, atomically with dropping
    /// the journal entry, and then moves the file; a crash in between leaves the file in the
    /// cache, where the retention rule keeps it, until this runs again (at start, every sweep,
    /// and before a quarantined version is read). A cache file whose bytes are not the recorded
    /// digest is left where it is (it is not the quarantined version).
    pub(crate) async fn move_into_quarantine(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: vtgrid_core::Digest,
    ) -> Result<(), crate::error::NodeError> {
        self.tvc
            .run(move |s| s.quarantine(volser, version, digest))
            .await?;
        tracing::info!(%volser, version, "moved into the quarantine area");
        Ok(())
    }

    /// [`Cluster::move_into_quarantine`] for every quarantine record whose file has not moved.
    pub(crate) async fn finish_quarantine_moves(&self) -> Result<(), crate::error::NodeError> {
        let facts = self.retention_facts(false).await?;
        for r in self.quarantine().await? {
            if facts.quarantined_unmoved.contains(&(r.volser, r.version)) {
                if let Err(e) = self
                    .move_into_quarantine(r.volser, r.version, r.digest)
                    .await
                {
                    tracing::error!(volser = %r.volser, version = r.version, error = %e, "a quarantined version could not be moved into the quarantine area");
                }
            }
        }
        Ok(())
    }
}
