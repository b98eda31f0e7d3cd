//! Volume ownership between clusters (DESIGN §3; B10, B11, B13, B14).
//!
//! A cluster may mount or re-categorise a volume only while it holds the volume's ownership token.
//! Getting the token from its owner is a two-party handshake over the grid network:
//!
//! ```text
//!   Ci (wants V)                                   Cj (owns V)
//!   obtain(V) ──GridService.Surrender{V, to: i}──> surrender(V, i)
//!                                                  ├─ V mounted here?  -> VOLUME_IN_USE
//!                                                  ├─ hold V (no new mounts here)
//!                                                  ├─ publish journal entries of V
//!                                                  └─ commit Transfer{V, j -> i, epoch e} (epoch e+1)
//!             <──────────── {owner i, epoch e+1, log index n}
//!   wait until applied n; Ci now owns V
//! ```
//!
//! Nobody takes a live owner's volume: if Cj does not answer within [`SURRENDER_TIMEOUT`], the
//! mount fails with `OWNER_UNREACHABLE` (B14), even when Ci has a copy of the data.
//!
//! # Who may write this volume
//! One rule, `vtgrid_core::gate`, decides it from this cluster's [`Standing`]: the token as its
//! view and journal show it, its doubt, and what its mount table holds. Every path asks it here:
//! [`Cluster::standing`] and [`Cluster::may_write`]; a closed gate becomes the host's error in
//! [`Cluster::gate_refusal`].

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use vtgrid_core::catalog::{Applied, CatalogCommand};
use vtgrid_core::membership::Membership;
use vtgrid_core::{ClusterId, OwnershipToken, VersionNumber, Volser, VolumeRecord};
use vtgrid_proto::internal::grid_service_client::GridServiceClient;
use vtgrid_proto::internal::{ReadVersionRequest, SurrenderRequest};
use vtgrid_proto::pb::Reason;
use vtgrid_proto::reason_of;

use vtgrid_core::gate::{GateRefusal, Standing};
use vtgrid_core::takeover::OwnerGone;

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::faults::FaultPoint;
use crate::transport::Attempt;

/// How long a requester waits for an owner's answer: long enough for the owner to publish its
/// pending journal entries and commit the transfer, short enough for a host to see
/// `OWNER_UNREACHABLE` promptly.
pub const SURRENDER_TIMEOUT: Duration = Duration::from_secs(8);

/// How long the owner may spend publishing a volume's journal entries before surrendering it.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a cluster holding a copy has to answer a probe before it counts as unreachable (B6).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a cluster tries again to settle the ownership doubts it holds.
pub const DOUBT_RETRY: Duration = Duration::from_secs(2);

/// How often a requester whose view named the wrong owner catches up and asks again.
const OBTAIN_ATTEMPTS: usize = 3;
/// How long a remote read may wait for its next chunk before the link counts as lost and the
/// job's read fails (B7): a link that stops delivering must not hang the job forever.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(8);

impl Cluster {
    /// The volume as this cluster sees it: the catalog's record plus its own unpublished changes.
    pub fn effective(&self, volser: &Volser) -> Result<VolumeRecord, NodeError> {
        let record = self
            .catalog
            .view
            .read(|s| s.volumes.get(volser).cloned())
            .ok_or(NodeError::UnknownVolume { volser: *volser })?;
        Ok(self.journal.overlay(record))
    }

    /// [`Cluster::effective`], but a volume this cluster's view does not know yet (the view may
    /// trail the leader by the entries in flight) is looked up again after a read barrier.
    pub async fn effective_fresh(&self, volser: &Volser) -> Result<VolumeRecord, NodeError> {
        match self.effective(volser) {
            Err(NodeError::UnknownVolume { .. }) => {
                self.catalog.propose(CatalogCommand::Barrier).await?;
                self.effective(volser)
            }
            other => other,
        }
    }

    /// A volume whose surrender outcome is unknown (the Transfer proposal timed out: it may or may
    /// not have committed, and may still be on its way to a leader). Until the doubt is settled
    /// this cluster must not use the token, or two clusters could write the volume (B10).
    pub fn in_doubt(&self, volser: &Volser) -> bool {
        self.journal.in_doubt(volser)
    }

    /// Settle a volume in doubt with a fencing command (DESIGN §3, sequence A): while this view
    /// still names this cluster the owner at epoch e, commit `Reclaim{V, self, e}`, which keeps the
    /// volume here at epoch e+1, so the Transfer still in flight with epoch e is stale whenever it
    /// arrives. If the Transfer got there first the Reclaim is refused and this view (which has
    /// applied the refusal, so everything before it) names the new owner. A barrier would not do:
    /// it orders only what the leader already appended. Fails (`CATALOG_UNAVAILABLE`) while the
    /// catalog cannot commit; the volume stays in doubt.
    async fn settle_doubt(&self, volser: Volser) -> Result<(), NodeError> {
        if !self.in_doubt(&volser) {
            return Ok(());
        }
        let record = self.effective(&volser)?;
        if record.token.owner == self.id {
            let reclaim = CatalogCommand::Reclaim {
                volser,
                by: self.id,
                epoch: record.token.epoch,
            };
            match self.catalog.propose(reclaim).await {
                Ok(_) => tracing::info!(%volser, "ownership doubt settled: kept, epoch bumped"),
                Err(NodeError::Rejected(r)) => {
                    tracing::info!(%volser, refusal = %r, "ownership doubt settled: transferred")
                }
                Err(e) => return Err(e),
            }
        }
        self.journal.clear_doubt(volser).await?;
        Ok(())
    }

    /// Settle, every [`DOUBT_RETRY`], the doubts surrenders left behind when their outcome was
    /// lost, so a volume does not stay unusable until a host happens to mount it. A volume held
    /// right now (a surrender in progress, whose own doubt this would race) waits a round.
    pub async fn settle_doubts(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(DOUBT_RETRY).await;
            for volser in self.journal.doubts() {
                let Ok(_hold) = self.mounts.hold(volser) else {
                    continue;
                };
                if let Err(e) = self.settle_doubt(volser).await {
                    tracing::debug!(%volser, error = %e, "ownership doubt not settled yet");
                }
            }
        }
    }

    /// Where this cluster stands with `volser` (`vtgrid_core::gate`): the token as its view and
    /// journal show it, its doubt, and what its mount table holds.
    pub fn standing(&self, volser: &Volser) -> Result<Standing, NodeError> {
        let record = self.effective(volser)?;
        Ok(self.standing_as(volser, record.token, self.mounts.local_use(volser)))
    }

    /// Where this cluster stands with `volser` if its token were `token` and its mount table
    /// held `local`: every path that asks the gate builds its [`Standing`] here.
    pub(crate) fn standing_as(
        &self,
        volser: &Volser,
        token: vtgrid_core::OwnershipToken,
        local: vtgrid_core::gate::LocalUse,
    ) -> Standing {
        Standing {
            me: self.id,
            caught_up: self.caught_up(),
            fenced: self.fenced(),
            taken_over: self.taken_over(),
            token,
            in_doubt: self.in_doubt(volser),
            local,
        }
    }

    /// What a closed gate means for the host.
    pub(crate) fn gate_refusal(&self, volser: Volser, refusal: GateRefusal) -> NodeError {
        match refusal {
            GateRefusal::InUse => NodeError::VolumeInUse { volser },
            GateRefusal::ReadOnly => NodeError::WriteProtected {
                volser,
                owner: self.effective(&volser).map_or(self.id, |r| r.token.owner),
                cluster: self.id,
            },
            GateRefusal::NotOwner { owner } => NodeError::OwnerUnreachable { volser, owner },
            GateRefusal::SelfFenced if self.membership() == Membership::Superseded => {
                NodeError::Superseded { cluster: self.id }
            }
            GateRefusal::SelfFenced => NodeError::SelfFenced {
                volser,
                cluster: self.id,
                after: self
                    .lease
                    .setting()
                    .map_or(Duration::ZERO, |s| s.self_fence_after),
            },
            // Retryable: the doubt settles once the catalog answers; a moved token means the
            // job was fenced.
            GateRefusal::TakenOver => NodeError::TakenOver {
                volser,
                cluster: self.id,
            },
            GateRefusal::NotCaughtUp => {
                NodeError::catalog(crate::error::CatalogFailure::NotCaughtUp)
            }
            GateRefusal::InDoubt | GateRefusal::TokenMoved { .. } | GateRefusal::NotMounted => {
                NodeError::OwnerUnreachable {
                    volser,
                    owner: self.id,
                }
            }
        }
    }

    /// Could this cluster write `volser` now, through a job it has or one it may start? The
    /// gate's answer (`vtgrid_core::gate::Standing::could_write`); B10 checks that at most one
    /// cluster of the grid answers yes for each volume.
    pub fn may_write(&self, volser: &Volser) -> bool {
        self.standing(volser).is_ok_and(|st| st.could_write())
    }

    /// Make this cluster the owner of `volser`, asking the current owner if needed.
    ///
    /// This cluster's view may trail the catalog: the cluster it asks may answer that it no longer
    /// owns the volume. Then the view catches up (a read barrier) and the real owner is asked, a
    /// bounded number of times.
    pub async fn obtain(&self, volser: Volser) -> Result<OwnershipToken, NodeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.obtain_once(volser).await {
                // The cluster we asked does not (or no longer) hold the token as we knew it: one of
                // the two views trails the catalog. Catch ours up and ask whoever it names then.
                Err(NodeError::PeerRefused {
                    peer,
                    reason: Reason::NotOwner | Reason::StaleEpoch,
                    ..
                }) => {
                    if attempt >= OBTAIN_ATTEMPTS {
                        // Still unsettled: retryable for the host, as an unanswered owner is (B14).
                        return Err(NodeError::OwnerUnreachable {
                            volser,
                            owner: peer,
                        });
                    }
                    self.catalog.propose(CatalogCommand::Barrier).await?;
                }
                other => return other,
            }
        }
    }

    async fn obtain_once(&self, volser: Volser) -> Result<OwnershipToken, NodeError> {
        self.settle_doubt(volser).await?;
        let record = self.effective_fresh(&volser).await?;
        if record.token.owner == self.id {
            return Ok(record.token);
        }
        // Ask an owner to surrender only while a leader answers us: the Transfer it commits names
        // this cluster, and a requester that cannot apply it would strand the volume (the catalog
        // says "ours", this view does not, and nobody can mount it until this cluster catches
        // up). The barrier also brings this view up to date, so we ask the current owner. Without
        // it the owner cannot be had: the host hears OWNER_UNREACHABLE (B14), retryable, as when
        // the owner itself does not answer.
        if let Err(e) = self.catalog.propose(CatalogCommand::Barrier).await {
            tracing::info!(%volser, owner = %record.token.owner, error = %e, "no leader answers; not asking the owner");
            if self.owner_gone(record.token.owner) == OwnerGone::TakeOwnership {
                // A write takeover commits through the catalog: not from this side (DESIGN §3).
                if let NodeError::CatalogUnavailable(cause) = e {
                    return Err(NodeError::TakeoverNeedsMajority {
                        failed: record.token.owner,
                        cluster: self.id,
                        cause,
                    });
                }
            }
            return Err(NodeError::OwnerUnreachable {
                volser,
                owner: record.token.owner,
            });
        }
        let record = self.effective(&volser)?;
        if record.token.owner == self.id {
            return Ok(record.token);
        }
        let owner = record.token.owner;
        // A write takeover or service mode goes around the owner: nothing to ask (B21, B23).
        if self.owner_gone(owner) == OwnerGone::TakeOwnership {
            return self.take_over(volser, record.token).await;
        }
        // One link per attempt; a link that failed goes last, so `obtain`'s retry uses another.
        let surrendered = self
            .transport
            .first_link(self.grid.grid_paths(owner.get()), |addr| async move {
                let mut client = GridServiceClient::new(self.transport.channel(&addr));
                let mut request = tonic::Request::new(SurrenderRequest {
                    volser: volser.to_string(),
                    to: u32::from(self.id.get()),
                });
                request.set_timeout(SURRENDER_TIMEOUT);
                match tokio::time::timeout(SURRENDER_TIMEOUT, client.surrender(request)).await {
                    Err(_) => Attempt::LinkFailed(NodeError::OwnerUnreachable { volser, owner }),
                    Ok(Err(status)) if reason_of(&status).is_none() => {
                        Attempt::LinkFailed(refusal(volser, owner, status))
                    }
                    Ok(Err(status)) => Attempt::Refused(refusal(volser, owner, status)),
                    Ok(Ok(reply)) => Attempt::Done(reply.into_inner()),
                }
            })
            .await;
        let reply =
            surrendered.map_err(|e| e.unwrap_or(NodeError::OwnerUnreachable { volser, owner }))?;
        self.faults.point(FaultPoint::ObtainAfterReply).await;
        self.catalog.wait_applied(reply.log_index).await?;
        self.metrics.ownership_transfers_in.inc();
        let record = self.effective(&volser)?;
        if record.token.owner != self.id {
            // Another cluster's job asked for it between the transfer and now, and has it (full
            // random seed 6574: the host heard OWNER_UNREACHABLE of an owner that answered).
            return Err(NodeError::VolumeInUse { volser });
        }
        tracing::info!(%volser, from = %owner, epoch = %record.token.epoch, "ownership obtained");
        Ok(record.token)
    }

    /// The owner's side of the handshake.
    pub async fn surrender(
        &self,
        volser: Volser,
        to: ClusterId,
    ) -> Result<(OwnershipToken, u64), NodeError> {
        let _hold = self.mounts.hold(volser)?;
        self.settle_doubt(volser).await?;
        if self.owned(volser).is_err() {
            // Before saying "not the owner", make sure this view is not merely behind (a transfer
            // to this cluster may have committed without it having applied it yet).
            self.catalog.propose(CatalogCommand::Barrier).await?;
        }
        self.owned(volser)?;
        self.flush_journal(volser).await?;
        self.faults.point(FaultPoint::SurrenderAfterFlush).await;
        // Publishing may have been refused (the volume was taken over): check the token again.
        let record = self.owned(volser)?;
        let cmd = CatalogCommand::Transfer {
            volser,
            from: self.id,
            to,
            epoch: record.token.epoch,
        };
        // In doubt from before the proposal until its outcome is known: if this handler is dropped
        // (the requester gave up and cancelled the call), the transfer may still commit, and this
        // cluster must not go on using the token meanwhile (B10).
        self.journal.mark_doubt(volser).await?;
        self.faults.point(FaultPoint::SurrenderAfterDoubt).await;
        let outcome = self.catalog.propose_indexed(cmd).await;
        self.faults.point(FaultPoint::SurrenderAfterTransfer).await;
        if matches!(outcome, Ok(_) | Err(NodeError::Rejected(_))) {
            // Committed (and applied here: this view now names the new owner) or refused.
            self.journal.clear_doubt(volser).await?;
        } else {
            tracing::warn!(%volser, %to, "transfer outcome unknown; volume in doubt");
        }
        let (applied, index) = outcome?;
        let token = match applied {
            Applied::Transferred { token } => token,
            _ => OwnershipToken {
                owner: to,
                epoch: record.token.epoch.next(),
            },
        };
        self.metrics.ownership_transfers_out.inc();
        tracing::info!(%volser, %to, epoch = %token.epoch, "ownership surrendered");
        Ok((token, index))
    }

    /// The volume's record, if this cluster owns it; `NOT_OWNER` naming the owner otherwise.
    fn owned(&self, volser: Volser) -> Result<VolumeRecord, NodeError> {
        let record = self.effective(&volser)?;
        if record.token.owner != self.id {
            let owner = record.token.owner;
            return Err(vtgrid_core::catalog::CatalogRejection::NotOwner {
                volser,
                sender: self.id,
                owner,
            }
            .into());
        }
        Ok(record)
    }

    /// Wait until the journal holds nothing more for `volser`.
    async fn flush_journal(&self, volser: Volser) -> Result<(), NodeError> {
        if self.journal.published_within(&volser, FLUSH_TIMEOUT).await {
            Ok(())
        } else {
            Err(NodeError::catalog(crate::error::CatalogFailure::Timeout(
                FLUSH_TIMEOUT,
            )))
        }
    }

    /// Stream a committed version held by this cluster's TVC, verifying as it goes.
    pub async fn stream_local(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<ReceiverStream<Result<Bytes, NodeError>>, NodeError> {
        let reader = self.tvc.run(move |s| s.open(volser, version)).await?;
        Ok(self.stream_reader(reader))
    }

    /// Stream a reader's verified chunks (a chunk that fails its check ends the stream with
    /// the error, counted as a checksum error).
    fn stream_reader(
        &self,
        reader: Box<dyn vtgrid_tvc::VersionReader>,
    ) -> ReceiverStream<Result<Bytes, NodeError>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, NodeError>>(4);
        let tvc = self.tvc.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let mut reader = Some(reader);
            while let Some(mut r) = reader.take() {
                let (r, chunk) = tvc
                    .offload(move || {
                        let c = r.next_chunk();
                        (r, c)
                    })
                    .await;
                reader = Some(r);
                let item = match chunk {
                    Ok(Some(data)) => Ok(data),
                    Ok(None) => break,
                    Err(e) => {
                        if e.is_corruption() {
                            metrics.checksum_errors.inc();
                        }
                        Err(NodeError::Tvc(e))
                    }
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        ReceiverStream::new(rx)
    }

    /// Does `source` answer with the first bytes of `version`? (Used before a mount that will read
    /// remotely: B6.) Costs at most one chunk.
    pub async fn probe_copy(
        &self,
        source: ClusterId,
        volser: Volser,
        version: VersionNumber,
    ) -> bool {
        self.transport
            .each_link(self.grid.grid_paths(source.get()), |addr| async move {
                if self.probe_path(&addr, volser, version).await {
                    Attempt::Done(())
                } else {
                    Attempt::LinkFailed(())
                }
            })
            .await
            .is_ok()
    }

    async fn probe_path(&self, addr: &str, volser: Volser, version: VersionNumber) -> bool {
        let mut client = GridServiceClient::new(self.transport.stream_channel(addr))
            .max_decoding_message_size(crate::transport::MAX_MESSAGE_BYTES);
        let probe = async {
            let mut stream = client
                .read_version(ReadVersionRequest {
                    volser: volser.to_string(),
                    version,
                })
                .await
                .ok()?
                .into_inner();
            match stream.next().await {
                Some(Ok(_)) | None => Some(()),
                Some(Err(_)) => None,
            }
        };
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, probe).await,
            Ok(Some(()))
        )
    }

    /// Stream a version from another cluster's TVC over the grid network (remote TVC, B4). The
    /// BLAKE3 digest of what arrives is checked against `digest` at the end.
    pub async fn stream_remote(
        &self,
        from: ClusterId,
        volser: Volser,
        version: VersionNumber,
        digest: vtgrid_core::Digest,
    ) -> Result<impl Stream<Item = Result<Bytes, NodeError>> + Send + use<>, NodeError> {
        // The first link that answers carries the whole stream; if that link fails mid-way the
        // read fails (B7) and the job's retry starts on another link.
        let opened = self
            .transport
            .each_link(self.grid.grid_paths(from.get()), |addr| async move {
                let mut client = GridServiceClient::new(self.transport.stream_channel(&addr))
                    .max_decoding_message_size(crate::transport::MAX_MESSAGE_BYTES);
                let request = ReadVersionRequest {
                    volser: volser.to_string(),
                    version,
                };
                match tokio::time::timeout(SURRENDER_TIMEOUT, client.read_version(request)).await {
                    Ok(Ok(s)) => Attempt::Done(s.into_inner()),
                    Ok(Err(status)) if reason_of(&status).is_some() => {
                        Attempt::Refused(refusal(volser, from, status))
                    }
                    _ => Attempt::LinkFailed(NodeError::NoValidCopy { volser, version }),
                }
            })
            .await;
        let stream = opened.map_err(|e| e.unwrap_or(NodeError::NoValidCopy { volser, version }))?;
        // Each chunk was CRC-checked at the source; the whole version is checked here, so bytes
        // damaged on the way are CHECKSUM_MISMATCH at the end of the stream, never a good read.
        let verified = futures::stream::unfold(
            Some((stream, blake3::Hasher::new())),
            move |state| async move {
                let (mut stream, mut hasher) = state?;
                let Ok(next) = tokio::time::timeout(CHUNK_TIMEOUT, stream.next()).await else {
                    tracing::warn!(%volser, %from, "remote read stalled; the link counts as lost");
                    return Some((Err(NodeError::NoValidCopy { volser, version }), None));
                };
                match next {
                    Some(Ok(chunk)) => {
                        hasher.update(&chunk.data);
                        Some((Ok(chunk.data), Some((stream, hasher))))
                    }
                    Some(Err(status)) => Some((Err(refusal(volser, from, status)), None)),
                    None if hasher.finalize().as_bytes() == &digest.0 => None,
                    None => Some((
                        Err(NodeError::Tvc(vtgrid_tvc::TvcError::DigestMismatch {
                            volser,
                            version,
                        })),
                        None,
                    )),
                }
            },
        );
        Ok(verified)
    }
}

/// What a peer's refusal means here.
fn refusal(volser: Volser, peer: ClusterId, status: tonic::Status) -> NodeError {
    match reason_of(&status) {
        Some(reason) => NodeError::PeerRefused {
            peer,
            code: status.code(),
            reason,
            message: status.message().to_string(),
        },
        None => NodeError::OwnerUnreachable {
            volser,
            owner: peer,
        },
    }
}

impl Cluster {
    /// Versions the catalog refused, kept here (DESIGN §3).
    pub async fn quarantine(&self) -> Result<Vec<vtgrid_catalog::QuarantineRecord>, NodeError> {
        let store = self.journal.store().clone();
        crate::tvc_io::offload(store.is_blocking(), move || store.quarantined())
            .await
            .map_err(NodeError::Journal)
    }

    pub async fn quarantined(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<vtgrid_catalog::QuarantineRecord, NodeError> {
        self.quarantine()
            .await?
            .into_iter()
            .find(|q| q.volser == volser && q.version == version)
            .ok_or(NodeError::NotQuarantined { volser, version })
    }

    /// The operator gave up a quarantined version: forget it, then free its file in the
    /// quarantine area (the retention rule lets it go once no record names it). A file that had
    /// not moved yet is then an ordinary cache file, under the rule like any other.
    pub async fn discard_quarantined(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<(), NodeError> {
        let record = self.quarantined(volser, version).await?;
        let store = self.journal.store().clone();
        crate::tvc_io::offload(store.is_blocking(), move || store.discard(volser, version))
            .await
            .map_err(NodeError::Journal)?;
        let facts = self.retention_facts(false).await?;
        let q = vtgrid_tvc::QuarantinedVersion {
            volser,
            version,
            digest: record.digest,
        };
        let decision = facts.decide_quarantined(self, &q);
        if decision.may_remove() {
            self.tvc
                .run(move |s| s.remove_quarantined(volser, version, q.digest))
                .await?;
        }
        tracing::info!(%volser, version, ?decision, "quarantined version discarded");
        Ok(())
    }

    /// A quarantined version's bytes, from the quarantine area, checked against the digest the
    /// quarantine recorded (a mismatch is `CHECKSUM_MISMATCH`, never data).
    pub async fn read_quarantined(
        &self,
        volser: Volser,
        version: VersionNumber,
    ) -> Result<ReceiverStream<Result<Bytes, NodeError>>, NodeError> {
        let record = self.quarantined(volser, version).await?;
        self.finish_quarantine_moves().await?;
        let digest = record.digest;
        let reader = self
            .tvc
            .run(move |s| s.open_quarantined(volser, version, digest))
            .await?;
        Ok(self.stream_reader(reader))
    }
}
