//! Copies on this cluster (DESIGN §4; B36-B45): the node's side of the copy engine.
//!
//! The engine itself (`vtgrid-copy`) decides what to pull and when; this module makes the copies:
//!
//! ```text
//!   CopyEngine ── CopySite::pull ──> pull_from: GridService.ReadVersion from a holder
//!                                    verify BLAKE3, fsync, rename ──> journal CopyDone{V, v, me}
//!                                                                     ──publisher──> catalog
//! ```
//!
//! RUN: the writer's rewind-unload asks each RUN cluster to pull at once (`PullCopy`) and returns
//! when all that answer hold the version durably. A RUN cluster that cannot be reached gets the copy
//! later from its own queue (immediate-deferred), and the host hears `immediate_copy_deferred` (B39).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use vtgrid_catalog::QueuedCopy;
use vtgrid_copy::{CopyEngine, CopySite, OwedCopy, Throttle};
use vtgrid_core::catalog::CatalogCommand;
use vtgrid_core::copy::{copy_duty, copy_plan, CopyPriority};
use vtgrid_core::retention::{Area, Decision, HeldBytes};
use vtgrid_core::{ClusterId, CopyModeVector, Digest, VersionNumber, Volser};
use vtgrid_proto::internal::grid_service_client::GridServiceClient;
use vtgrid_proto::internal::PullCopyRequest;

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::events::IMMEDIATE_COPY_DEFERRED;
use crate::faults::FaultPoint;
use crate::transport::Attempt;
use crate::tvc_io::offload;

/// How long a writer waits for one RUN copy: a base plus time for the bytes at a modest rate.
pub fn run_copy_timeout(size: u64) -> Duration {
    Duration::from_secs(10) + Duration::from_secs(size / (20 * 1024 * 1024))
}

/// The node's side of the copy engine (`vtgrid-copy`): the catalog view says what is owed, the
/// volume store what is held, and `pull_from` makes a copy over the grid network.
impl CopySite for Cluster {
    type Error = NodeError;

    fn owed(&self) -> Vec<OwedCopy> {
        self.catalog.view.read(|s| {
            // From the owed-copy index: never a walk of the whole catalog.
            s.volumes
                .owed_by(self.id)
                .filter_map(|r| {
                    copy_duty(r, self.id).map(|priority| OwedCopy {
                        priority,
                        volser: r.volser,
                        version: r.version,
                        size: r.size,
                        digest: r.digest,
                    })
                })
                .collect()
        })
    }

    fn sources(&self, volser: Volser, version: VersionNumber) -> Option<Vec<ClusterId>> {
        self.catalog.view.read(|s| {
            let r = s.volumes.get(&volser)?;
            (r.version == version && copy_duty(r, self.id).is_some())
                .then(|| r.consistent_clusters().filter(|c| *c != self.id).collect())
        })
    }

    fn in_hand(&self, volser: Volser, version: VersionNumber) -> bool {
        self.copies.is_pulling(volser, version) || self.journal.copy_done_pending(volser, version)
    }

    async fn held(&self) -> Result<BTreeSet<(Volser, VersionNumber)>, NodeError> {
        Ok(self.tvc.run(|s| s.versions()).await?.into_iter().collect())
    }

    async fn holds(&self, volser: Volser, version: VersionNumber) -> bool {
        self.tvc.run(move |s| s.open(volser, version).is_ok()).await
    }

    async fn adopt(&self, copy: OwedCopy) {
        self.adopt_held_copy(copy.volser, copy.version, copy.digest)
            .await
    }

    async fn pull(
        &self,
        source: ClusterId,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<(), NodeError> {
        self.pull_from(source, volser, version, digest).await
    }

    async fn owed_changed(&self) {
        self.copies.changed().await
    }
}

impl Cluster {
    /// Run this cluster's copy engine until the task is dropped.
    pub async fn run_copy_engine(self: Arc<Self>) {
        let throttle = Throttle {
            bytes_per_sec: self.grid.copy.bytes_per_sec,
            concurrency: self.grid.copy.concurrency,
        };
        let queue = self.copies.queue();
        CopyEngine::new(self, queue, throttle).run().await
    }

    /// A file with no CopyDone: a copy whose journal append a crash cut off, or a Sync duplex
    /// whose writer never committed the version. Adopted if it is the catalog's version, byte for
    /// byte; otherwise removed if the retention rule lets it go (an orphan of a version number
    /// that was later written with other bytes), and kept if not (a version this cluster wrote
    /// and has not published, or quarantined: the copy waits until it has moved).
    async fn adopt_held_copy(&self, volser: Volser, version: VersionNumber, digest: Digest) {
        let trailer = self
            .tvc
            .run(move |s| s.open(volser, version).map(|r| r.meta().digest))
            .await;
        let bytes = match trailer {
            Ok(d) if d == digest => {
                self.faults.point(FaultPoint::AdoptBeforeCopyDone).await;
                let done = CatalogCommand::CopyDone {
                    volser,
                    version,
                    cluster: self.id,
                    digest: Some(digest),
                };
                match self.journal.append(done).await {
                    Ok(_) => {
                        tracing::info!(%volser, version, "copy already held; CopyDone recorded")
                    }
                    Err(e) => {
                        tracing::error!(%volser, version, error = %e, "journalling a CopyDone")
                    }
                }
                return;
            }
            Ok(d) => HeldBytes::Digest(d),
            Err(_) => HeldBytes::Unreadable,
        };
        let decision = match self.retention_facts(false).await {
            Ok(facts) => facts.decide(self, Area::Cache, volser, version, bytes),
            Err(e) => {
                tracing::error!(%volser, version, error = %e, "retention facts; keeping the file");
                return;
            }
        };
        match decision {
            Decision::Remove(why) => {
                tracing::warn!(%volser, version, ?why, "held file is not the catalog's version; removing it");
                if let Err(e) = self.tvc.run(move |s| s.remove(volser, version)).await {
                    tracing::error!(%volser, version, error = %e, "removing a stale volume file");
                }
            }
            Decision::Keep(why) => {
                tracing::info!(%volser, version, ?why, "held file is not the catalog's version but must stay; the copy waits")
            }
        }
    }

    /// Copy `version` of `volser` from `source` into this cluster's TVC, verified, and journal
    /// the CopyDone (a copy the catalog says this cluster owes).
    pub async fn pull_from(
        &self,
        source: ClusterId,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<(), NodeError> {
        self.fetch_copy(source, volser, version, digest).await?;
        self.journal
            .append(CatalogCommand::CopyDone {
                volser,
                version,
                cluster: self.id,
                digest: Some(digest),
            })
            .await?;
        self.faults.point(FaultPoint::CopyAfterCopyDone).await;
        Ok(())
    }

    /// Copy `version` of `volser` from `source` into this cluster's TVC, fsynced and verified
    /// against `digest`, and nothing more. A RUN copy is made this way before its version is in
    /// the catalog: the writer records this cluster as a holder when it commits the version
    /// (`NewVersion::held_by`), so no `CopyDone` is needed; one the writer stopped waiting for is
    /// adopted by the copy engine once the catalog has the version.
    pub async fn fetch_copy(
        &self,
        source: ClusterId,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> Result<(), NodeError> {
        // One pull of a version at a time (a RUN request, the queue and a forced local copy may
        // all want it); a pull that waited finds the version made and is done.
        let turn = self.copies.pull_turn(volser, version);
        let _turn = turn.lock().await;
        if self.holds_verified(volser, version, digest).await {
            return Ok(());
        }
        // A sync cluster that kept the prefix its writer published holds the copy already.
        if self.adopt_synced_prefix(volser, version, digest).await {
            return Ok(());
        }
        let bytes = self.stream_remote(source, volser, version, digest).await?;
        let meta = self.store_stream(volser, version, Box::pin(bytes)).await?;
        if meta.digest != digest {
            let _ = self.tvc.run(move |s| s.remove(volser, version)).await;
            return Err(NodeError::Tvc(vtgrid_tvc::TvcError::DigestMismatch {
                volser,
                version,
            }));
        }
        self.faults.point(FaultPoint::CopyAfterStore).await;
        self.metrics.copies.inc();
        self.metrics.bytes_copied.inc_by(meta.size);
        tracing::info!(%volser, version, from = %source, size = meta.size, "copy made");
        Ok(())
    }

    async fn store_stream(
        &self,
        volser: Volser,
        version: VersionNumber,
        mut bytes: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, NodeError>> + Send>>,
    ) -> Result<vtgrid_tvc::VersionMeta, NodeError> {
        let mut writer = self
            .tvc
            .run(move |s| s.begin(volser, version, None))
            .await?;
        while let Some(chunk) = bytes.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    self.tvc.offload(move || writer.abort()).await;
                    return Err(e);
                }
            };
            let (w, r) = self.tvc.write(writer, chunk).await;
            writer = w;
            if let Err(e) = r {
                self.tvc.offload(move || writer.abort()).await;
                return Err(e.into());
            }
        }
        Ok(self.tvc.commit(writer).await?)
    }

    /// The RUN copies of a version this cluster just closed (B37, B39): ask each RUN cluster to
    /// pull it now; returns the clusters holding it and whether any RUN copy was deferred.
    pub async fn make_run_copies(
        &self,
        vector: Option<&CopyModeVector>,
        volser: Volser,
        version: VersionNumber,
        size: u64,
        digest: Digest,
    ) -> (Vec<ClusterId>, bool) {
        let mut holders = vec![self.id];
        let Some(vector) = vector else {
            return (holders, false);
        };
        let clusters = self
            .grid
            .clusters
            .iter()
            .filter_map(|c| ClusterId::new(c.id).ok());
        let plan = copy_plan(vector, self.id, clusters);
        // B52: with "allow fewer RUN consistent copies" set, stop waiting once that many clusters
        // (this one included) hold the version; the rest finish on their own.
        let required = self.overrides().run_copies_required.map(usize::from);
        let mut asks: futures::stream::FuturesUnordered<_> = plan
            .run
            .iter()
            .map(|target| async move {
                let ok = self
                    .ask_run_copy(*target, volser, version, size, digest)
                    .await;
                (*target, ok)
            })
            .collect();
        let mut deferred = false;
        let mut answered = vec![self.id];
        while let Some((target, ok)) = asks.next().await {
            answered.push(target);
            if ok {
                holders.push(target);
            } else {
                deferred = true;
                self.events.raise(
                    IMMEDIATE_COPY_DEFERRED,
                    Some(volser),
                    format!("RUN copy of {volser} version {version} to {target} deferred: {target} did not answer"),
                );
            }
            if required.is_some_and(|n| holders.len() >= n) {
                break;
            }
        }
        for target in plan.run.iter().filter(|t| !answered.contains(t)) {
            deferred = true;
            self.events.raise(
                IMMEDIATE_COPY_DEFERRED,
                Some(volser),
                format!(
                    "RUN copy of {volser} version {version} to {target} finishes after the unload: \
                     this cluster's override allows {} RUN consistent copies",
                    required.unwrap_or_default()
                ),
            );
        }
        (holders, deferred)
    }

    async fn ask_run_copy(
        &self,
        target: ClusterId,
        volser: Volser,
        version: VersionNumber,
        size: u64,
        digest: Digest,
    ) -> bool {
        // One deadline for the copy, whichever links it takes: a link that fails to carry the
        // request hands it to the next (B7); a refusal from the target is final.
        let until = tokio::time::Instant::now() + run_copy_timeout(size);
        let asked = self
            .transport
            .each_link(self.grid.grid_paths(target.get()), |addr| async move {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return Attempt::GiveUp(());
                }
                // A connection of its own: the answer waits for the whole copy, so a pooled
                // connection that died with a partition would hold the unload for the copy's
                // whole deadline, where a fresh dial fails in a second (B39: deferred at once).
                let mut client = GridServiceClient::new(self.transport.stream_channel(&addr));
                let mut request = tonic::Request::new(PullCopyRequest {
                    volser: volser.to_string(),
                    version,
                    size,
                    digest: digest.to_hex(),
                    source: u32::from(self.id.get()),
                });
                request.set_timeout(left);
                match tokio::time::timeout(left, client.pull_copy(request)).await {
                    Ok(Ok(_)) => Attempt::Done(()),
                    Ok(Err(status)) if vtgrid_proto::reason_of(&status).is_some() => {
                        tracing::warn!(%volser, %target, %status, "RUN copy refused");
                        Attempt::Refused(())
                    }
                    Ok(Err(status)) => {
                        tracing::warn!(%volser, %target, %addr, %status, "RUN copy request lost on this link");
                        Attempt::LinkFailed(())
                    }
                    // The copy's whole deadline passed on this link: the link failed, and the
                    // next one gives up at once (no time left).
                    Err(_) => Attempt::LinkFailed(()),
                }
            })
            .await;
        asked.is_ok()
    }
}

impl Cluster {
    /// The copy queue as operators see it: per priority count, bytes and the oldest copy's age,
    /// and (at most `limit`) the copies themselves in pull order. Also sets the per-priority
    /// queue gauges, every priority included (zero when none waits).
    pub async fn copy_queue_view(
        &self,
        limit: usize,
    ) -> Result<(Vec<(CopyPriority, u64, u64, u64)>, Vec<QueuedCopy>), NodeError> {
        let q = self.copies.queue();
        let all = offload(q.is_blocking(), move || q.next(usize::MAX))
            .await
            .map_err(NodeError::Journal)?;
        let now = now_ms();
        let mut summary: Vec<(CopyPriority, u64, u64, u64)> = Vec::new();
        for c in &all {
            let age = now.saturating_sub(c.queued_at_ms);
            match summary.iter_mut().find(|s| s.0 == c.priority) {
                Some(s) => {
                    s.1 += 1;
                    s.2 += c.size;
                    s.3 = s.3.max(age);
                }
                None => summary.push((c.priority, 1, c.size, age)),
            }
        }
        for priority in [
            CopyPriority::Immediate,
            CopyPriority::SyncDeferred,
            CopyPriority::ImmediateDeferred,
            CopyPriority::Deferred,
        ] {
            let (count, bytes, age) = summary
                .iter()
                .find(|s| s.0 == priority)
                .map_or((0, 0, 0), |s| (s.1, s.2, s.3));
            self.metrics
                .set_copy_queue(priority_name(priority), count, bytes, age);
        }
        Ok((summary, all.into_iter().take(limit).collect()))
    }
}

pub use vtgrid_copy::engine::now_ms;

/// The name operators see for a priority.
pub fn priority_name(p: CopyPriority) -> &'static str {
    match p {
        CopyPriority::Immediate => "immediate",
        CopyPriority::SyncDeferred => "sync-deferred",
        CopyPriority::ImmediateDeferred => "immediate-deferred",
        CopyPriority::Deferred => "deferred",
    }
}

/// Parse a hex BLAKE3 digest from the wire.
pub fn digest_from_hex(hex: &str) -> Option<Digest> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(Digest(out))
}
