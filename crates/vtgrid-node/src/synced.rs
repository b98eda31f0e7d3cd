//! Synced prefixes: data before an acknowledged sync point is on the volume (B42, T17; the
//! seed's tape semantics), whatever happens to the job afterwards.
//!
//! ```text
//!   job writes ── Sync: peer durable, then local fsync + marker (note: token, category,
//!                 constructs, vector) ── host answered
//!   then the job abends (stream broken, sync cluster failed under `fail`, cancelled, idle)
//!     or the mount cluster crashes
//!        │
//!        └─ the store keeps the bytes up to the last sync point (`vtgrid_tvc::SyncedPrefix`)
//!             ├─ this cluster owns the volume under the note's token, and the prefix is the
//!             │  next version: promote it, journal NewVersion as a rewind-unload would
//!             │  (held_by empty: RUN and Sync clusters get their copies later, deferred)
//!             ├─ the catalog's current version has the prefix's number and digest (a sync
//!             │  cluster's copy of the prefix its writer published): the copy engine adopts
//!             │  it instead of pulling (`fetch_copy`)
//!             └─ otherwise: the retention rule (`Area::Synced`) keeps or removes it
//! ```
//!
//! The host is answered at a sync point only after the sync cluster has it durable and then
//! this cluster's marker is written, so a prefix published here never runs past the last sync
//! point the host heard succeed.
//!
//! One journal entry per version number (`vtgrid_core::replay`): a prefix is published only
//! when its job cannot unload any more (its writer was given up, or the process restarted), and
//! only as the next version of what this cluster shows, so a full unload of the same number can
//! never be journalled too.

use serde::{Deserialize, Serialize};
use vtgrid_core::catalog::{CatalogCommand, NewVersion, VolumeChange};
use vtgrid_core::gate::LocalUse;
use vtgrid_core::retention::{Area, HeldBytes};
use vtgrid_core::{Category, Constructs, CopyModeVector, OwnershipToken};
use vtgrid_tvc::SyncedPrefix;

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::mounts::Mount;
use crate::retention::RetentionFacts;

/// What the job would have committed its version with, kept with each sync point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SyncNote {
    /// The token the job was mounted under: the prefix is published only while it stands.
    pub token: OwnershipToken,
    pub category: Option<Category>,
    pub constructs: Option<Constructs>,
    pub copy_modes: Option<CopyModeVector>,
}

impl SyncNote {
    fn decode(bytes: &[u8]) -> Option<SyncNote> {
        serde_json::from_slice(bytes).ok()
    }
}

impl Cluster {
    /// The note a job's writer keeps with its sync points.
    pub(crate) fn sync_note(&self, mount: &Mount) -> Vec<u8> {
        let note = SyncNote {
            token: mount.token,
            category: mount.category_on_commit,
            constructs: mount.constructs_on_commit.clone(),
            copy_modes: self.class_policy_for(mount).map(|(v, _)| v),
        };
        serde_json::to_vec(&note).expect("a sync note serialises")
    }

    /// The note of `prefix` when this cluster may publish it as the next version now: it owns
    /// the volume under the note's token, no doubt hangs over it, and the prefix's number follows
    /// what this cluster shows.
    fn publishable(&self, prefix: &SyncedPrefix) -> Option<SyncNote> {
        let note = SyncNote::decode(&prefix.note)?;
        let record = self.effective(&prefix.meta.volser).ok()?;
        if record.version + 1 != prefix.meta.version {
            return None;
        }
        // The gate a committing job passes, for the job the note names (sequence C).
        let standing = self.standing_as(
            &prefix.meta.volser,
            record.token,
            LocalUse::Mounted {
                job_token: note.token,
            },
        );
        if let Err(refusal) = standing.may_write() {
            tracing::debug!(volser = %prefix.meta.volser, version = prefix.meta.version, %refusal, "synced prefix not publishable here");
            return None;
        }
        Some(note)
    }

    /// Publish `prefix` as the volume's next version, as its job's rewind-unload would have. The
    /// caller holds the volume (the job's mount, or a hold): nothing else writes it meanwhile.
    /// False when it is not this cluster's to publish (it stays for the retention rule).
    async fn publish_prefix(&self, prefix: &SyncedPrefix) -> Result<bool, NodeError> {
        let Some(note) = self.publishable(prefix) else {
            return Ok(false);
        };
        let (volser, version) = (prefix.meta.volser, prefix.meta.version);
        let meta = match self
            .tvc
            .run(move |s| s.promote_synced(volser, version))
            .await
        {
            Ok(meta) => meta,
            Err(e) if e.is_corruption() => {
                // Not the bytes the sync point recorded: never a version.
                tracing::error!(%volser, version, error = %e, "a synced prefix failed verification; removing it");
                self.tvc
                    .run(move |s| s.remove_synced(volser, version))
                    .await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let cmd = CatalogCommand::UpdateVolume {
            volser,
            by: self.id,
            epoch: note.token.epoch,
            change: VolumeChange {
                category: note.category,
                constructs: note.constructs,
                version: Some(NewVersion {
                    version,
                    size: meta.size,
                    digest: meta.digest,
                    written_at: self.id,
                    copy_modes: note.copy_modes,
                    held_by: Vec::new(),
                }),
            },
        };
        if let Err(e) = self.journal.append(cmd).await {
            // The file stays as a version newer than the catalog (the retention rule keeps it,
            // and the next job of that number replaces it).
            tracing::error!(%volser, version, error = %e, "journalling a synced prefix's version");
            return Err(e);
        }
        self.metrics.unloads.inc();
        tracing::warn!(%volser, version, size = meta.size, "job ended after a sync point; its synced prefix is the new version");
        Ok(true)
    }

    /// A job abended after a sync point and its writer kept `meta` as a synced prefix: publish
    /// it now. The caller holds the volume (the job's mount or a hold). A prefix left here (the
    /// journal failed) is looked at by the next sweep.
    pub(crate) async fn publish_abended(&self, meta: vtgrid_tvc::VersionMeta) {
        let volser = meta.volser;
        let prefix = self
            .tvc
            .run(|s| s.synced())
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|p| p.meta == meta));
        let Some(prefix) = prefix else { return };
        if let Err(e) = self.publish_prefix(&prefix).await {
            tracing::error!(%volser, error = %e, "publishing an abended job's synced prefix");
        }
    }

    /// At start and every sweep: each synced prefix this cluster may publish becomes the next
    /// version; the others are kept or removed by the retention rule (`Area::Synced`), judged
    /// on their digest.
    pub(crate) async fn settle_synced_prefixes(&self, facts: &RetentionFacts) -> usize {
        let prefixes = match self.tvc.run(|s| s.synced()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "listing synced prefixes");
                return 0;
            }
        };
        let mut removed = 0;
        for prefix in prefixes {
            let (volser, version) = (prefix.meta.volser, prefix.meta.version);
            if self.publishable(&prefix).is_some() {
                let Ok(_hold) = self.mounts.hold(volser) else {
                    // A job has the volume: its own commit decides, the prefix waits.
                    continue;
                };
                match self.publish_prefix(&prefix).await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(%volser, version, error = %e, "publishing a synced prefix");
                        continue;
                    }
                }
            }
            let decision = facts.decide(
                self,
                Area::Synced,
                volser,
                version,
                HeldBytes::Digest(prefix.meta.digest),
            );
            if decision.may_remove() {
                match self
                    .tvc
                    .run(move |s| s.remove_synced(volser, version))
                    .await
                {
                    Ok(()) => {
                        tracing::info!(%volser, version, ?decision, "synced prefix removed");
                        removed += 1;
                    }
                    Err(e) => {
                        tracing::warn!(%volser, version, error = %e, "removing a synced prefix")
                    }
                }
            }
        }
        removed
    }

    /// A synced prefix here of exactly `version` with `digest` becomes this cluster's copy of it,
    /// verified, without pulling (a sync cluster whose writer published the prefix it duplexed).
    /// True when it did.
    pub(crate) async fn adopt_synced_prefix(
        &self,
        volser: vtgrid_core::Volser,
        version: vtgrid_core::VersionNumber,
        digest: vtgrid_core::Digest,
    ) -> bool {
        let matches = self
            .tvc
            .run(move |s| {
                s.synced().map(|all| {
                    all.iter().any(|p| {
                        (p.meta.volser, p.meta.version, p.meta.digest) == (volser, version, digest)
                    })
                })
            })
            .await
            .unwrap_or(false);
        if !matches {
            return false;
        }
        match self
            .tvc
            .run(move |s| s.promote_synced(volser, version))
            .await
        {
            Ok(meta) if meta.digest == digest => {
                tracing::info!(%volser, version, "synced prefix adopted as this cluster's copy");
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(%volser, version, error = %e, "synced prefix not adopted; pulling a copy");
                false
            }
        }
    }
}
