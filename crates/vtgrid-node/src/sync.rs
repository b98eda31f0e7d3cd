//! Sync mode: duplexed writes to two sync clusters (DESIGN §4; B42, B43).
//!
//! ```text
//!   host ── write ──> mount cluster Ca ── local TVC writer
//!                          │
//!                          └─ GridService.SyncWrite ──> Cb: its own TVC writer
//!   host ── Sync / RewindUnload ──> Ca fsyncs, sends SyncPoint / Commit ──> Cb fsyncs, acks
//!                                   the host is answered only after both
//! ```
//!
//! The mount cluster keeps its own copy (it is the job's TVC) and duplexes to every other cluster
//! whose mode in the class's vector on the mount cluster is S. A sync point returns when every
//! byte written so far is durable at both; the committed version names the sync clusters that
//! acknowledged its commit (`NewVersion::held_by`), so they are consistent the moment the
//! catalog has the version, with no copy to make.
//!
//! When a sync cluster fails (no answer in time, a refusal, a broken stream), the class decides
//! (`on_sync_failure`, B43): `fail` fails the job with `SYNC_PEER_UNAVAILABLE`; `defer` drops that
//! cluster from the job, raises `SYNC_DEFERRED`, and the version is committed without it, so the
//! sync cluster's copy engine owes it as a sync-deferred copy.
//!
//! The sync cluster refuses a duplex from a writer whose epoch is older than the one it knows, or
//! for a version the catalog already has: a stale writer must never replace a real version's file.

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tonic::Status;
use vtgrid_core::{ClusterId, CopyMode, Digest, Epoch, SyncFailure, VersionNumber, Volser};
use vtgrid_proto::internal::{
    sync_write_ack, sync_write_message, SyncOpen, SyncWriteAck, SyncWriteMessage,
};

use crate::cluster::Cluster;
use crate::copies::digest_from_hex;
use crate::duplex::{InboundSession, SyncDuplex, SyncTrouble, SYNC_ANSWER};
use crate::error::NodeError;
use crate::events::SYNC_DEFERRED;
use crate::faults::FaultPoint;
use crate::mounts::{JobIo, Mount};
use crate::transport::Attempt;

impl Cluster {
    /// The sync clusters a job on `mount` duplexes to, and the class's failure policy; none when
    /// the class has no Sync entries (the common case).
    pub(crate) fn sync_plan(&self, mount: &Mount) -> Option<(Vec<ClusterId>, SyncFailure)> {
        let (vector, policy) = self.class_policy_for(mount)?;
        let peers: Vec<ClusterId> = self
            .grid
            .clusters
            .iter()
            .filter_map(|c| ClusterId::new(c.id).ok())
            .filter(|c| *c != self.id && vector.mode_for(*c) == CopyMode::Sync)
            .collect();
        (!peers.is_empty()).then_some((peers, policy))
    }

    /// Open the job's duplexes at its first write. A sync cluster that cannot be opened is a sync
    /// failure like any other.
    pub(crate) async fn open_sync(
        &self,
        mount: &Mount,
        io: &mut JobIo,
        version: VersionNumber,
    ) -> Result<(), NodeError> {
        let Some((peers, _)) = self.sync_plan(mount) else {
            return Ok(());
        };
        for peer in peers {
            match self.open_duplex(mount, peer, version).await {
                Ok(d) => io.duplex.push(d),
                Err(t) => self.sync_failed(mount, io, t)?,
            }
        }
        Ok(())
    }

    async fn open_duplex(
        &self,
        mount: &Mount,
        peer: ClusterId,
        version: VersionNumber,
    ) -> Result<SyncDuplex, SyncTrouble> {
        let opened = self
            .transport
            .each_link(self.grid.grid_paths(peer.get()), |addr| async move {
                match self.open_duplex_on(&addr, mount, peer, version).await {
                    Ok(d) => Attempt::Done(d),
                    Err(t) => Attempt::LinkFailed(t),
                }
            })
            .await;
        opened.map_err(|t| {
            t.unwrap_or(SyncTrouble {
                peer,
                cause: "not in the grid file".into(),
            })
        })
    }

    async fn open_duplex_on(
        &self,
        addr: &str,
        mount: &Mount,
        peer: ClusterId,
        version: VersionNumber,
    ) -> Result<SyncDuplex, SyncTrouble> {
        let appending = mount.append && mount.base_version > 0;
        let open = SyncOpen {
            volser: mount.volser.to_string(),
            version,
            epoch: mount.token.epoch.0,
            from_cluster: u32::from(self.id.get()),
            base_version: if appending { mount.base_version } else { 0 },
            base_digest: mount.base_digest.to_hex(),
            base_sources: mount
                .base_sources
                .iter()
                .map(|c| u32::from(c.get()))
                .collect(),
        };
        // Opening may include fetching the base of an append: allow for its bytes.
        let base_bytes = if appending { mount.base_size } else { 0 };
        SyncDuplex::open(self.transport.stream_channel(addr), peer, open, base_bytes).await
    }

    /// A sync cluster failed the job's duplex: fail the job or go on without it (B43).
    pub(crate) fn sync_failed(
        &self,
        mount: &Mount,
        io: &mut JobIo,
        trouble: SyncTrouble,
    ) -> Result<(), NodeError> {
        io.duplex.retain(|d| d.peer != trouble.peer);
        let policy = self
            .class_policy_for(mount)
            .map(|(_, p)| p)
            .unwrap_or_default();
        match policy {
            SyncFailure::Fail => {
                tracing::warn!(volser = %mount.volser, peer = %trouble.peer, cause = %trouble.cause, "sync cluster failed; failing the job");
                Err(NodeError::SyncPeerUnavailable {
                    volser: mount.volser,
                    peer: trouble.peer,
                    cause: trouble.cause,
                })
            }
            SyncFailure::Defer => {
                io.sync_deferred = true;
                self.events.raise(
                    SYNC_DEFERRED,
                    Some(mount.volser),
                    format!(
                        "Sync copy of {} to {} deferred: {} {}; the job goes on at {} alone",
                        mount.volser, trouble.peer, trouble.peer, trouble.cause, self.id
                    ),
                );
                Ok(())
            }
        }
    }

    /// Send one chunk the host wrote to every sync cluster of the job.
    pub(crate) async fn duplex_chunk(
        &self,
        mount: &Mount,
        io: &mut JobIo,
        data: &Bytes,
    ) -> Result<(), NodeError> {
        let mut failed = Vec::new();
        for d in io.duplex.iter_mut() {
            if let Err(t) = d.chunk(data.clone()).await {
                failed.push(t);
            }
        }
        for t in failed {
            self.sync_failed(mount, io, t)?;
        }
        Ok(())
    }

    /// A host sync point at every sync cluster of the job (the local fsync is the caller's).
    pub(crate) async fn duplex_sync(
        &self,
        mount: &Mount,
        io: &mut JobIo,
        bytes: u64,
    ) -> Result<(), NodeError> {
        let points = io.duplex.iter_mut().map(|d| d.sync_point(bytes));
        let failed: Vec<SyncTrouble> = futures::future::join_all(points)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        for t in failed {
            self.sync_failed(mount, io, t)?;
        }
        Ok(())
    }

    /// Commit the version at every sync cluster of the job; returns those that hold it durably.
    pub(crate) async fn duplex_commit(
        &self,
        mount: &Mount,
        io: &mut JobIo,
        size: u64,
        digest: Digest,
    ) -> Result<Vec<ClusterId>, NodeError> {
        let commits = io.duplex.iter_mut().map(|d| async move {
            let r = d.commit(size, digest).await;
            (d.peer, r)
        });
        let results = futures::future::join_all(commits).await;
        let mut held = Vec::new();
        for (peer, r) in results {
            match r {
                Ok(()) => held.push(peer),
                Err(t) => self.sync_failed(mount, io, t)?,
            }
        }
        io.duplex.clear();
        Ok(held)
    }
}

/// The sync cluster's side of one duplex: opened by the first message, then chunks, sync points
/// and the commit, each answered on `acks`. Ends when the writer's stream ends or breaks before
/// the commit, keeping the bytes up to the last sync point (a synced prefix) and dropping the
/// rest.
pub(crate) async fn serve_duplex(
    cluster: std::sync::Arc<Cluster>,
    mut inbound: tonic::Streaming<SyncWriteMessage>,
    acks: mpsc::Sender<Result<SyncWriteAck, Status>>,
) {
    let answer = |item| SyncWriteAck { item: Some(item) };
    let open = match inbound.next().await {
        Some(Ok(SyncWriteMessage {
            item: Some(sync_write_message::Item::Open(open)),
        })) => open,
        _ => {
            let _ = acks.send(Err(NodeError::StreamNotOpened.into())).await;
            return;
        }
    };
    let session = match cluster.accept_duplex(&open).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(volser = %open.volser, from = open.from_cluster, error = %e, "sync duplex refused");
            let _ = acks.send(Err(e.into())).await;
            return;
        }
    };
    let AcceptedDuplex {
        volser,
        version,
        writer,
        _guard,
    } = session;
    let mut writer = Some(writer);
    if acks
        .send(Ok(answer(sync_write_ack::Item::Opened(true))))
        .await
        .is_err()
    {
        return;
    }
    // A writer that goes silent (its host vanished, the link died without a reset) must not
    // hold the volume's duplex slot and partial version forever: the writer's own idle abort
    // closes the duplex first, and this bounds the wait if that close never arrives.
    let idle = cluster.grid.jobs.duplex_idle_timeout();
    loop {
        let msg = match tokio::time::timeout(idle, inbound.next()).await {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(%volser, version, from = open.from_cluster, idle_secs = idle.as_secs(), "sync duplex idle too long");
                break;
            }
        };
        let Ok(SyncWriteMessage { item: Some(item) }) = msg else {
            break;
        };
        let Some(w) = writer.take() else { break };
        let reply = match item {
            sync_write_message::Item::Chunk(data) => {
                let (w, r) = cluster.tvc.write(w, data).await;
                writer = Some(w);
                match r {
                    Ok(()) => continue,
                    Err(e) => Err(NodeError::from(e)),
                }
            }
            sync_write_message::Item::SyncPoint(bytes) => {
                let (w, r) = cluster.tvc.sync(w).await;
                writer = Some(w);
                match r {
                    Ok(n) if n == bytes => Ok(sync_write_ack::Item::Synced(n)),
                    Ok(n) => Err(NodeError::StreamLengthMismatch {
                        volser,
                        received: n,
                        declared: bytes,
                    }),
                    Err(e) => Err(e.into()),
                }
            }
            sync_write_message::Item::Commit(commit) => {
                let want = digest_from_hex(&commit.digest);
                // A duplex of a version the catalog already has is a stale one: a writer's stream
                // from before its crash, delivered late (full random seed 3939: held 11 s, it
                // replaced this cluster's verified copy of the published version). A live writer
                // commits at its sync clusters before it journals the version, so no live duplex
                // meets its own version in the catalog.
                if let Ok(record) = cluster.effective(&volser) {
                    if record.version >= version {
                        tracing::warn!(%volser, version, current = record.version, from = open.from_cluster, "stale sync duplex refused: the catalog has this version already");
                        let _ = acks
                            .send(Err(NodeError::InvalidArgument {
                                field: "version",
                                problem: "is already in the catalog: a stale sync duplex",
                            }
                            .into()))
                            .await;
                        return;
                    }
                }
                match cluster.tvc.commit(w).await {
                    Ok(meta) if Some(meta.digest) == want && meta.size == commit.size => {
                        tracing::info!(%volser, version, size = meta.size, from = open.from_cluster, "sync duplex committed");
                        cluster.faults.point(FaultPoint::DuplexAfterCommit).await;
                        let _ = acks
                            .send(Ok(answer(sync_write_ack::Item::Committed(
                                meta.digest.to_hex(),
                            ))))
                            .await;
                        return;
                    }
                    Ok(_) => {
                        // Not the writer's bytes: never keep them under the version's name.
                        let _ = cluster.tvc.run(move |s| s.remove(volser, version)).await;
                        Err(NodeError::Tvc(vtgrid_tvc::TvcError::DigestMismatch {
                            volser,
                            version,
                        }))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            sync_write_message::Item::Open(_) => Err(NodeError::InvalidArgument {
                field: "open",
                problem: "sent twice",
            }),
        };
        let failed = reply.is_err();
        if acks
            .send(reply.map(answer).map_err(Status::from))
            .await
            .is_err()
            || failed
        {
            break;
        }
    }
    if let Some(w) = writer.take() {
        // Tape semantics (B42, T17): the bytes up to the last sync point stay, as a synced
        // prefix, in case the writer publishes them (`crate::synced`); the rest goes.
        match cluster.tvc.offload(move || w.keep_synced()).await {
            Ok(Some(kept)) => {
                tracing::warn!(%volser, version, size = kept.size, "sync duplex ended before its commit; synced prefix kept")
            }
            Ok(None) => {
                tracing::warn!(%volser, version, "sync duplex ended before its commit; partial version dropped")
            }
            Err(e) => {
                tracing::warn!(%volser, version, error = %e, "sync duplex ended before its commit; its synced prefix could not be kept")
            }
        }
    }
}

/// An accepted duplex on the sync cluster.
struct AcceptedDuplex<'a> {
    volser: Volser,
    version: VersionNumber,
    writer: Box<dyn vtgrid_tvc::VersionWriter>,
    _guard: InboundSession<'a>,
}

impl Cluster {
    /// Check a duplex request and open the writer for it, its base in place for an append.
    async fn accept_duplex(&self, open: &SyncOpen) -> Result<AcceptedDuplex<'_>, NodeError> {
        if self.role == crate::config::Role::Witness {
            return Err(NodeError::Witness);
        }
        let volser: Volser = open.volser.parse()?;
        let version = open.version;
        let read = || self.catalog.view.read(|s| s.volumes.get(&volser).cloned());
        let behind = |r: &Option<vtgrid_core::VolumeRecord>| {
            r.as_ref().is_none_or(|r| r.token.epoch < Epoch(open.epoch))
        };
        let mut record = read();
        if behind(&record) {
            // The writer knows of a newer insert or transfer than this view: catch up first.
            // (A committed barrier, applied here, means this view has everything before it.)
            let barrier = self.catalog.propose(vtgrid_core::CatalogCommand::Barrier);
            let _ = tokio::time::timeout(SYNC_ANSWER, barrier).await;
            record = read();
        }
        let record = record.ok_or(NodeError::UnknownVolume { volser })?;
        let writer = u8::try_from(open.from_cluster)
            .ok()
            .and_then(|c| ClusterId::new(c).ok())
            .ok_or(NodeError::InvalidArgument {
                field: "from",
                problem: "not a cluster id",
            })?;
        // The one gate (sequence C): only the token holder may duplex into this cluster.
        match vtgrid_core::gate::may_accept_duplex(record.token, writer, Epoch(open.epoch)) {
            Ok(()) => {}
            Err(vtgrid_core::gate::GateRefusal::NotOwner { owner }) => {
                return Err(vtgrid_core::CatalogRejection::NotOwner {
                    volser,
                    sender: writer,
                    owner,
                }
                .into())
            }
            Err(_) => {
                return Err(vtgrid_core::CatalogRejection::StaleEpoch {
                    volser,
                    held: Epoch(open.epoch),
                    current: record.token.epoch,
                }
                .into())
            }
        }
        if record.version >= version {
            return Err(vtgrid_core::CatalogRejection::VersionNotNext {
                volser,
                current: record.version,
                got: version,
            }
            .into());
        }
        let guard = self
            .duplexes_in
            .begin(volser)
            .ok_or(NodeError::VolumeInUse { volser })?;
        let base = open.base_version;
        let base_digest = digest_from_hex(&open.base_digest).unwrap_or(Digest::EMPTY);
        let local_base = base > 0 && self.holds_verified(volser, base, base_digest).await;
        let mut writer = self
            .tvc
            .run(move |s| s.begin(volser, version, local_base.then_some(base)))
            .await?;
        if base > 0 && !local_base {
            let sources: Vec<ClusterId> = open
                .base_sources
                .iter()
                .filter_map(|c| u8::try_from(*c).ok().and_then(|c| ClusterId::new(c).ok()))
                .filter(|c| *c != self.id)
                .collect();
            let mut copied = false;
            for source in sources {
                let Ok(bytes) = self.stream_remote(source, volser, base, base_digest).await else {
                    continue;
                };
                let mut bytes = Box::pin(bytes);
                let mut ok = true;
                while let Some(chunk) = bytes.next().await {
                    let Ok(chunk) = chunk else {
                        ok = false;
                        break;
                    };
                    let (w, r) = self.tvc.write(writer, chunk).await;
                    writer = w;
                    r?;
                }
                if ok {
                    copied = true;
                    break;
                }
                // A source that broke mid-way: start the version again from the next one.
                self.tvc.offload(move || writer.abort()).await;
                writer = self
                    .tvc
                    .run(move |s| s.begin(volser, version, None))
                    .await?;
            }
            if !copied {
                self.tvc.offload(move || writer.abort()).await;
                return Err(NodeError::NoValidCopy {
                    volser,
                    version: base,
                });
            }
        }
        Ok(AcceptedDuplex {
            volser,
            version,
            writer,
            _guard: guard,
        })
    }

    /// This cluster's TVC holds `version` of `volser` with the given digest (its trailer says so;
    /// the chunks are verified again when read).
    pub(crate) async fn holds_verified(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> bool {
        self.tvc
            .run(move |s| s.open(volser, version).map(|r| r.meta().digest))
            .await
            .is_ok_and(|d| d == digest)
    }
}
