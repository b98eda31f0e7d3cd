//! The journal publisher: moves the owner journal into the catalog, in order (DESIGN §3).
//!
//! One task per cluster. Each round it proposes the pending entries oldest first and stops at the
//! first one the catalog cannot take *now* (no quorum, no leader), so entries of one volume never
//! overtake each other; it retries with a growing pause. An entry the catalog *refuses* because the
//! volume's ownership moved on (stale epoch, not the owner) is quarantined with an
//! `OWNERSHIP_CONFLICT` event. An entry the catalog already holds (a crash after the commit and
//! before the removal replays it) is simply removed; one whose number the catalog holds with
//! another digest is not a replay and is quarantined too (`vtgrid_core::replay`).

use std::sync::Arc;
use std::time::Duration;

use vtgrid_catalog::{JournalEntry, QuarantineRecord};
use vtgrid_core::catalog::{CatalogCommand, CatalogRejection, NewVersion};
use vtgrid_core::replay::{judge_version_not_next, ReplayVerdict};
use vtgrid_core::retention::{Area, HeldBytes};

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::events::OWNERSHIP_CONFLICT;
use crate::faults::FaultPoint;
use crate::tvc_io::offload;

/// The longest pause between attempts while the catalog is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Even with no new entries, look again this often.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// What happened to one entry.
enum Outcome {
    /// In the catalog (now or before): drop it from the journal.
    Published,
    /// Refused for good: quarantine it.
    Refused(CatalogRejection),
    /// The catalog cannot take it now: stop this round.
    Later,
    /// The catalog cannot take it yet (a copy reported before the writer's version arrived):
    /// skip this volume's entries for this round, go on with the others.
    NotYet,
}

impl Cluster {
    /// Run the publisher until the task is dropped.
    pub async fn publish_journal(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let appended = self.journal.appended.notified();
            let complete = self.publish_round().await;
            self.journal.published.notify_waiters();
            if complete {
                backoff = Duration::from_millis(50);
                let _ = tokio::time::timeout(IDLE_RECHECK, appended).await;
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// One pass over the journal; true when it is empty afterwards.
    async fn publish_round(&self) -> bool {
        let store = self.journal.store().clone();
        let entries = match offload(store.is_blocking(), move || store.entries()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "reading the owner journal");
                return false;
            }
        };
        let mut waiting = std::collections::BTreeSet::new();
        for entry in entries {
            let volser = entry.command.volume_keys().first().copied();
            if volser.is_some_and(|v| waiting.contains(&v)) {
                continue; // an earlier entry of this volume waits: keep their order
            }
            self.faults.point(FaultPoint::PublishBeforePropose).await;
            match self.publish_entry(&entry).await {
                Outcome::Published => {
                    self.faults.point(FaultPoint::PublishAfterCommit).await;
                    self.retire(&entry, None).await
                }
                Outcome::Refused(rejection) => self.retire(&entry, Some(rejection)).await,
                Outcome::Later => return false,
                Outcome::NotYet => waiting.extend(volser),
            }
        }
        self.copies.wake();
        waiting.is_empty()
    }

    async fn publish_entry(&self, entry: &JournalEntry) -> Outcome {
        match self.catalog.propose(entry.command.clone()).await {
            Ok(_) => Outcome::Published,
            // The catalog has a version of this number: a replay of this entry (committed
            // before a crash) only if it holds it with this entry's digest (`vtgrid_core::replay`).
            Err(NodeError::Rejected(
                rejection @ CatalogRejection::VersionNotNext {
                    volser, current, ..
                },
            )) => self.judge_replay(entry, volser, current, rejection),
            // A copy of a version the catalog has not seen yet: the writer's entry is on its way.
            Err(NodeError::Rejected(CatalogRejection::VersionNotCurrent {
                current, got, ..
            })) if got > current => Outcome::NotYet,
            // Taken over after this cluster wrote: a replay if the catalog holds this very
            // version (it committed before the takeover), else fenced.
            Err(NodeError::Rejected(rejection @ CatalogRejection::StaleEpoch { volser, .. })) => {
                self.judge_stale(entry, volser, rejection)
            }
            Err(NodeError::Rejected(r)) => Outcome::Refused(r),
            Err(e) => {
                tracing::debug!(seq = entry.seq, error = %e, "journal entry not published yet");
                Outcome::Later
            }
        }
    }

    /// The version a refused entry carries, and the version and digest this cluster's view holds
    /// for the volume now (it may trail the catalog that answered); none for an entry that
    /// carries no version.
    fn new_version_and_view<'e>(
        &self,
        entry: &'e JournalEntry,
        volser: vtgrid_core::Volser,
    ) -> Option<(
        &'e NewVersion,
        (vtgrid_core::VersionNumber, vtgrid_core::Digest),
    )> {
        let CatalogCommand::UpdateVolume {
            change:
                vtgrid_core::catalog::VolumeChange {
                    version: Some(new), ..
                },
            ..
        } = &entry.command
        else {
            return None;
        };
        let seen = self.catalog.view.read(|s| {
            s.volumes
                .get(&volser)
                .map_or((0, vtgrid_core::Digest::EMPTY), |r| (r.version, r.digest))
        });
        Some((new, seen))
    }

    /// The publisher's replay rule for an entry refused for a stale epoch.
    fn judge_stale(
        &self,
        entry: &JournalEntry,
        volser: vtgrid_core::Volser,
        rejection: CatalogRejection,
    ) -> Outcome {
        let Some((new, seen)) = self.new_version_and_view(entry, volser) else {
            return Outcome::Refused(rejection);
        };
        match vtgrid_core::replay::judge_stale_epoch(new, seen) {
            ReplayVerdict::Replay => {
                tracing::info!(%volser, version = new.version, "the version committed before the volume was taken over");
                Outcome::Published
            }
            _ => Outcome::Refused(rejection),
        }
    }

    /// The publisher's replay rule for an entry refused as `VersionNotNext`.
    fn judge_replay(
        &self,
        entry: &JournalEntry,
        volser: vtgrid_core::Volser,
        current: vtgrid_core::VersionNumber,
        rejection: CatalogRejection,
    ) -> Outcome {
        let Some((new, seen)) = self.new_version_and_view(entry, volser) else {
            return Outcome::Refused(rejection);
        };
        match judge_version_not_next(new, current, seen) {
            ReplayVerdict::Replay => Outcome::Published,
            ReplayVerdict::Conflict => {
                tracing::error!(%volser, version = new.version, digest = %new.digest, "the catalog holds another version under this number; quarantining the entry");
                Outcome::Refused(rejection)
            }
            ReplayVerdict::Undecided => Outcome::NotYet,
        }
    }

    /// Remove a published or refused entry from the journal (and quarantine a refused version).
    async fn retire(&self, entry: &JournalEntry, refused: Option<CatalogRejection>) {
        let CatalogCommand::UpdateVolume {
            volser,
            epoch,
            change,
            ..
        } = &entry.command
        else {
            self.remove_entry(entry).await;
            if let CatalogCommand::CopyDone {
                volser, version, ..
            } = &entry.command
            {
                self.journal.forget_copy_done(*volser, *version);
            }
            return;
        };
        let volser = *volser;
        match (refused, &change.version) {
            (None, Some(v)) => {
                self.remove_entry(entry).await;
                self.journal.forget(volser, entry.seq);
                // The version is in the catalog: the one before it is superseded here, if the
                // retention rule agrees (it holds the new one, so it does unless quarantined).
                if v.version > 1 {
                    self.remove_superseded(volser, v.version - 1).await;
                }
            }
            (None, None) => {
                self.remove_entry(entry).await;
                self.journal.forget(volser, entry.seq);
            }
            (Some(rejection), Some(v)) => {
                let record = QuarantineRecord {
                    volser,
                    version: v.version,
                    size: v.size,
                    digest: v.digest,
                    epoch: *epoch,
                    rejection: rejection.clone(),
                };
                let store = self.journal.store().clone();
                let seq = entry.seq;
                let r = record.clone();
                match offload(store.is_blocking(), move || store.quarantine(seq, &r)).await {
                    Ok(()) => {
                        // The record first, then the file (see `Cluster::move_into_quarantine`
                        // for a crash in between): from here on nothing of that number touches it.
                        if let Err(e) = self.move_into_quarantine(volser, v.version, v.digest).await
                        {
                            tracing::error!(%volser, version = v.version, error = %e, "moving a quarantined version; retried at the next sweep");
                        }
                        self.journal.forget(volser, entry.seq);
                        self.events.raise(
                            OWNERSHIP_CONFLICT,
                            Some(volser),
                            format!(
                                "version {} of {volser}, written here under epoch {epoch}, was refused by the catalog ({rejection}); it is quarantined",
                                v.version
                            ),
                        );
                    }
                    Err(e) => {
                        tracing::error!(%volser, error = %e, "quarantining a refused version")
                    }
                }
            }
            (Some(rejection), None) => {
                // A refused category or construct change carries no data to keep; say so loudly.
                self.remove_entry(entry).await;
                self.journal.forget(volser, entry.seq);
                self.events.raise(
                    OWNERSHIP_CONFLICT,
                    Some(volser),
                    format!("a change of {volser} made here under epoch {epoch} was refused by the catalog ({rejection})"),
                );
            }
        }
    }

    /// Remove this cluster's `old` version of `volser` if the retention rule lets it go.
    async fn remove_superseded(&self, volser: vtgrid_core::Volser, old: u64) {
        let facts = match self.retention_facts(false).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(%volser, version = old, error = %e, "retention facts; the sweep retries");
                return;
            }
        };
        if !facts.held.contains(&(volser, old)) {
            return;
        }
        let decision = facts.decide(self, Area::Cache, volser, old, HeldBytes::Unchecked);
        if decision.may_remove() {
            if let Err(e) = self.tvc.run(move |s| s.remove(volser, old)).await {
                tracing::warn!(%volser, version = old, error = %e, "removing a superseded version");
            }
        }
    }

    async fn remove_entry(&self, entry: &JournalEntry) {
        let store = self.journal.store().clone();
        let seq = entry.seq;
        if let Err(e) = offload(store.is_blocking(), move || store.remove(seq)).await {
            tracing::error!(seq, error = %e, "removing a published journal entry");
        }
    }
}
