//! Host jobs on this cluster: mount, write, read, sync, rewind-unload, category change.
//!
//! The rules, in the order a mount checks them:
//! 1. the VOLSER is valid and in the catalog (`INVALID_VOLSER`, `UNKNOWN_VOLUME`);
//! 2. it is not mounted here (`VOLUME_IN_USE`);
//! 3. this cluster owns it, or obtains it from its owner (B11); an owner that refuses because the
//!    volume is mounted there gives `VOLUME_IN_USE` (one mount grid-wide), one that does not
//!    answer gives `OWNER_UNREACHABLE` (B14);
//! 4. the management class the host names is defined on this cluster (`UNKNOWN_CLASS`, B36);
//! 5. a volume in a Fast Ready category mounts blank (B84); otherwise the committed version is
//!    read from this cluster's TVC if it holds it, else from a cluster that does (B3, B4).
//!
//! A job's bytes become a version at rewind-unload: the writer commits the file (fsync, rename,
//! fsync dir), then the change goes into the owner journal (fsync) and the host is answered. The
//! journal publisher carries it into the catalog, at once when the grid is whole, later when this
//! cluster is cut off from the majority (B15).

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use vtgrid_core::catalog::{CatalogCommand, NewVersion, VolumeChange};
use vtgrid_core::gate::{GateRefusal, LocalUse};
use vtgrid_core::takeover::OwnerGone;
use vtgrid_core::{Category, ClusterId, Constructs, Volser, VolumeRecord};

use crate::abandon::{AbandonOnDrop, CommitEnd};
use crate::cluster::Cluster;
use crate::config::Role;
use crate::error::NodeError;
use crate::faults::FaultPoint;
use crate::mounts::{JobIo, Mount, OwnedCall, UnloadOutcome, Unloaded};

/// What the host asks to mount.
#[derive(Debug, Clone)]
pub enum MountTarget {
    Specific(Volser),
    Scratch(Category),
}

#[derive(Debug, Clone)]
pub struct MountOptions {
    pub target: MountTarget,
    pub append: bool,
    pub constructs: Constructs,
    pub private_category: Option<Category>,
}

/// One element of a host's write stream.
pub enum WriteItem {
    Chunk(Bytes),
    End { total_bytes: u64 },
}

/// Why a host's write stream cannot go on. Each has its own reason, because each asks the
/// client for something else: a broken stream may be retried as it was, a message over the
/// limit or a second open is a client bug that a retry repeats.
#[derive(Debug)]
pub enum StreamFault {
    /// The connection broke, the client cancelled, or a message did not decode:
    /// TRUNCATED_STREAM.
    Broken(tonic::Status),
    /// A message above the server's limit: MESSAGE_TOO_LARGE.
    TooLarge(tonic::Status),
    /// A second open message: STREAM_ALREADY_OPEN.
    Reopened { mount_id: String },
    /// A message with no content (no open, chunk or end): INVALID_ARGUMENT.
    Empty,
}

impl StreamFault {
    /// Classify an error the gRPC stream itself returned. tonic answers OUT_OF_RANGE only for a
    /// message over the decoder's limit.
    pub fn from_status(status: tonic::Status) -> StreamFault {
        if status.code() == tonic::Code::OutOfRange {
            StreamFault::TooLarge(status)
        } else {
            StreamFault::Broken(status)
        }
    }
}

/// How long a rewind-unload waits for the catalog to take its version before it answers from
/// the journal (see `Cluster::await_publication`).
const PUBLISH_BEFORE_ACK: std::time::Duration = std::time::Duration::from_secs(2);

/// How many other owners a scratch mount asks before giving up (B8).
const SCRATCH_ATTEMPTS: usize = 4;

/// How many of its own scratch candidates a scratch mount reads from the catalog at a time.
const SCRATCH_BATCH: usize = 64;

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, NodeError>> + Send>>;

impl Cluster {
    pub async fn mount(self: &Arc<Self>, opts: MountOptions) -> Result<Arc<Mount>, NodeError> {
        if self.role == Role::Witness {
            return Err(NodeError::Witness);
        }
        self.require_caught_up()?;
        self.refuse_mounts_in_service()?;
        // A drive must be free before anything is asked of an owner (checked again when the
        // mount registers).
        self.mounts.check_device_free()?;
        let constructs = self.checked_constructs(&opts.constructs).await?;
        let private = opts.private_category.unwrap_or(self.private_category);
        let mount = match opts.target {
            MountTarget::Specific(volser) => {
                if self.mounts.is_mounted(&volser) {
                    return Err(NodeError::VolumeInUse { volser });
                }
                self.require_reachable_copy(volser).await?;
                match self.obtain(volser).await {
                    Ok(_) => {}
                    Err(NodeError::OwnerUnreachable { owner, .. })
                        if self.owner_gone(owner) == OwnerGone::ReadOnly =>
                    {
                        let mount =
                            self.register_read_only_mount(volser, owner, &opts, &constructs)?;
                        self.metrics.mounts.inc();
                        self.watch_idle(&mount);
                        tracing::info!(%volser, mount = %mount.id, %owner, "mounted read-only (read takeover)");
                        return Ok(mount);
                    }
                    Err(e) => return Err(e),
                }
                self.faults.point(FaultPoint::MountAfterObtain).await;
                let local = if self.overrides().force_local_copy {
                    self.copy_to_local(volser).await
                } else {
                    None
                };
                self.register_mount(volser, &opts, &constructs, private, false, local)?
            }
            MountTarget::Scratch(category) => {
                self.scratch_mount(category, &opts, &constructs, private)
                    .await?
            }
        };
        self.metrics.mounts.inc();
        self.watch_idle(&mount);
        tracing::info!(volser = %mount.volser, mount = %mount.id, blank = mount.blank, "mounted");
        Ok(mount)
    }

    /// B8: a free scratch volume this cluster owns, else one whose owner surrenders it.
    async fn scratch_mount(
        &self,
        category: Category,
        opts: &MountOptions,
        constructs: &Constructs,
        private: Category,
    ) -> Result<Arc<Mount>, NodeError> {
        match self
            .catalog
            .view
            .read(|s| s.categories.get(&category).map(|d| d.fast_ready))
        {
            None => return Err(NodeError::UnknownCategory { category }),
            Some(false) => return Err(NodeError::NotScratchCategory { category }),
            Some(true) => {}
        }
        // Ours first: no handshake, and it works cut off from every peer.
        let extras: BTreeSet<Volser> = self.journal.pending_volumes().into_iter().collect();
        let mut after = None;
        loop {
            let (batch, last) = self.own_scratch_batch(category, after, &extras);
            for r in batch.iter().filter(|r| !self.in_doubt(&r.volser)) {
                match self.register_mount(r.volser, opts, constructs, private, true, None) {
                    Ok(m) => return Ok(m),
                    Err(NodeError::VolumeInUse { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            match last {
                Some(v) => after = Some(v),
                None => break,
            }
        }
        for r in self.others_scratch(category) {
            if self.obtain(r.volser).await.is_ok() {
                self.faults.point(FaultPoint::MountAfterObtain).await;
                match self.register_mount(r.volser, opts, constructs, private, true, None) {
                    Ok(m) => return Ok(m),
                    Err(NodeError::VolumeInUse { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Err(NodeError::NoScratchAvailable {
            category,
            cluster: self.id,
        })
    }

    /// The next of this cluster's free volumes of `category` after `after`, in VOLSER order, as
    /// the host would see them (journal overlay applied), and the cursor to go on from (`None`
    /// when the index has no more). One batch reads at most [`SCRATCH_BATCH`] records from the
    /// category's index plus the journal's pending volumes in the same span (a volume a host
    /// moved to the category whose change is not yet published), so a scratch mount costs
    /// O(log n + volumes mounted here), not O(n).
    fn own_scratch_batch(
        &self,
        category: Category,
        after: Option<Volser>,
        extras: &BTreeSet<Volser>,
    ) -> (Vec<VolumeRecord>, Option<Volser>) {
        let (mut batch, last) = self.catalog.view.read(|s| {
            let batch: Vec<VolumeRecord> = s
                .volumes
                .placed(category, self.id, after)
                .take(SCRATCH_BATCH)
                .cloned()
                .collect();
            let last = (batch.len() == SCRATCH_BATCH)
                .then(|| batch.last().map(|r| r.volser))
                .flatten();
            let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
            let upper = last.map_or(Bound::Unbounded, Bound::Included);
            let pending = extras
                .range((lower, upper))
                .filter_map(|v| s.volumes.get(v))
                .filter(|r| r.token.owner == self.id && r.category != category)
                .cloned()
                .collect::<Vec<_>>();
            (batch.into_iter().chain(pending).collect::<Vec<_>>(), last)
        });
        // The view first, then the mount table: never the table from inside a view read (the
        // lock order in `mounts.rs`).
        batch.sort_by_key(|r| r.volser);
        let batch = batch
            .into_iter()
            .filter(|r| !self.mounts.is_mounted(&r.volser))
            .map(|r| self.journal.overlay(r))
            .filter(|r| r.category == category)
            .collect();
        (batch, last)
    }

    /// Up to [`SCRATCH_ATTEMPTS`] free volumes of `category` other clusters own, in VOLSER order.
    /// Each owner's first few are read from the index: enough that the volumes mounted here
    /// cannot hide the ones that are free.
    fn others_scratch(&self, category: Category) -> Vec<VolumeRecord> {
        let enough = SCRATCH_ATTEMPTS + self.mounts.count();
        let mut found: Vec<VolumeRecord> = self.catalog.view.read(|s| {
            s.volumes
                .owners_of(category)
                .filter(|owner| *owner != self.id)
                .flat_map(|owner| s.volumes.placed(category, owner, None).take(enough))
                .cloned()
                .collect()
        });
        found.sort_by_key(|r| r.volser);
        found
            .into_iter()
            .filter(|r| !self.mounts.is_mounted(&r.volser))
            .map(|r| self.journal.overlay(r))
            .filter(|r| r.category == category)
            .take(SCRATCH_ATTEMPTS)
            .collect()
    }

    /// B6: a volume with data that neither this cluster nor its owner holds mounts only if a
    /// cluster holding its version answers; otherwise `NO_VALID_COPY`, before ownership moves.
    async fn require_reachable_copy(&self, volser: Volser) -> Result<(), NodeError> {
        let record = self.effective_fresh(&volser).await?;
        let blank = self.catalog.view.read(|s| s.is_fast_ready(record.category));
        if blank
            || record.version == 0
            || record.consistent_at.get(&self.id) == Some(&record.version)
        {
            return Ok(());
        }
        // When the owner holds a copy, the handshake answers for both: an owner that answers can
        // serve its copy, and one that does not is OWNER_UNREACHABLE (B14 comes before B6).
        let owner = record.token.owner;
        let around_owner = owner != self.id && self.owner_gone(owner) != OwnerGone::Refuse;
        if !around_owner && record.consistent_clusters().any(|c| c == owner) {
            return Ok(());
        }
        // Under a takeover the owner is presumed gone: its copy is asked last.
        let mut sources: Vec<ClusterId> = record
            .consistent_clusters()
            .filter(|c| *c != self.id)
            .collect();
        sources.sort_by_key(|c| *c == owner);
        for source in sources {
            if self.probe_copy(source, volser, record.version).await {
                return Ok(());
            }
        }
        Err(NodeError::NoValidCopy {
            volser,
            version: record.version,
        })
    }

    /// This cluster's copy policy overrides (B48-B52), from the grid file.
    pub fn overrides(&self) -> crate::config::CopyPolicyOverrides {
        self.grid
            .cluster(self.id.get())
            .map(|c| c.overrides.clone())
            .unwrap_or_default()
    }

    /// B50(a) "Force volume copy to local": before a specific mount, copy the volume's current
    /// version here when this cluster has no valid copy, so the job's TVC is this cluster. Returns
    /// the version now held here. If no holder answers, the mount goes on with a remote TVC (B4),
    /// as it would without the override: the override chooses where the I/O runs, it does not
    /// make a reachable volume unmountable.
    async fn copy_to_local(&self, volser: Volser) -> Option<vtgrid_core::VersionNumber> {
        let record = self.effective(&volser).ok()?;
        let blank = self.catalog.view.read(|s| s.is_fast_ready(record.category));
        if blank || record.version == 0 {
            return None;
        }
        if record.consistent_at.get(&self.id) == Some(&record.version) {
            return Some(record.version);
        }
        for source in record.consistent_clusters().filter(|c| *c != self.id) {
            match self
                .pull_from(source, volser, record.version, record.digest)
                .await
            {
                Ok(()) => return Some(record.version),
                Err(e) => {
                    tracing::warn!(%volser, %source, error = %e, "force-local copy not made from this source")
                }
            }
        }
        None
    }

    /// Register the mount of a volume this cluster owns, atomically with the "not mounted" check.
    /// A job that writes a volume it mounted blank (a Fast Ready category) moves it to `private`
    /// when it commits, whether it was a scratch or a specific mount: written data is private.
    fn register_mount(
        &self,
        volser: Volser,
        opts: &MountOptions,
        constructs: &Constructs,
        private: Category,
        scratch: bool,
        copied_here: Option<vtgrid_core::VersionNumber>,
    ) -> Result<Arc<Mount>, NodeError> {
        // Hold first, check, then turn the hold into the mount: while the hold stands no surrender
        // can start here (so no Transfer and no doubt), and no lock is held while the catalog view
        // is read.
        let hold = self.mounts.hold(volser)?;
        let record = self.effective(&volser)?;
        let standing = self.standing_as(&volser, record.token, LocalUse::Free);
        standing.may_mount().map_err(|refusal| match refusal {
            // The token moved on since this cluster obtained it (or saw it as its own): another
            // cluster's job asked for it in between and has it now (full random seed 6574: the
            // host heard OWNER_UNREACHABLE of an owner that answered).
            GateRefusal::NotOwner { .. } => NodeError::VolumeInUse { volser },
            refusal => self.gate_refusal(volser, refusal),
        })?;
        let blank = self.catalog.view.read(|s| s.is_fast_ready(record.category));
        if scratch && !blank {
            // Another job took it out of scratch since we looked.
            return Err(NodeError::VolumeInUse { volser });
        }
        let mut base_sources: Vec<ClusterId> = record.consistent_clusters().collect();
        if copied_here == Some(record.version) && !base_sources.contains(&self.id) {
            // Copied here by this mount (B50); its CopyDone is on its way to the catalog.
            base_sources.insert(0, self.id);
        }
        if !blank && record.version > 0 && base_sources.is_empty() {
            return Err(NodeError::NoValidCopy {
                volser,
                version: record.version,
            });
        }
        hold.into_mount(Mount {
            append: opts.append && !blank,
            category_on_commit: blank.then_some(private),
            constructs_on_commit: (*constructs != Constructs::default())
                .then(|| merge_constructs(&record.constructs, constructs)),
            ..Mount::of_version(self.mounts.next_id(), volser, &record, blank, base_sources)
        })
    }

    /// Register a read-only job of a volume whose owner is unavailable, under read takeover
    /// (B20): nothing may change, so a mount that asks for an append or new constructs is
    /// refused, and a volume with data needs a consistent copy this cluster can read (B24).
    fn register_read_only_mount(
        &self,
        volser: Volser,
        owner: ClusterId,
        opts: &MountOptions,
        constructs: &Constructs,
    ) -> Result<Arc<Mount>, NodeError> {
        let protected = NodeError::WriteProtected {
            volser,
            owner,
            cluster: self.id,
        };
        if opts.append || *constructs != Constructs::default() {
            return Err(protected);
        }
        let hold = self.mounts.hold(volser)?;
        let record = self.effective(&volser)?;
        let blank = self.catalog.view.read(|s| s.is_fast_ready(record.category));
        let base_sources: Vec<ClusterId> = record
            .consistent_clusters()
            .filter(|c| *c != owner)
            .collect();
        if !blank && record.version > 0 && base_sources.is_empty() {
            return Err(NodeError::NoValidCopy {
                volser,
                version: record.version,
            });
        }
        hold.into_mount(Mount {
            read_only: true,
            ..Mount::of_version(self.mounts.next_id(), volser, &record, blank, base_sources)
        })
    }

    /// The host's constructs, with the management class checked against this cluster (B36). A
    /// class this view does not know may have been defined a moment ago through another cluster:
    /// the view catches up once (a read barrier) before the class counts as unknown.
    async fn checked_constructs(&self, c: &Constructs) -> Result<Constructs, NodeError> {
        if let Some(name) = &c.management_class {
            let defined_here = || {
                self.catalog.view.read(|s| {
                    s.management_classes
                        .get(name)
                        .is_some_and(|mc| mc.vector_on(self.id).is_some())
                })
            };
            if !defined_here() {
                // A view that cannot catch up answers from what it has.
                let _ = self.catalog.propose(CatalogCommand::Barrier).await;
                if !defined_here() {
                    return Err(NodeError::UnknownClass {
                        name: name.clone(),
                        cluster: self.id,
                    });
                }
            }
        }
        Ok(c.clone())
    }

    /// Take one write stream of a job. Any way the stream ends other than its `End` message with
    /// the right byte count aborts the job (`TRUNCATED_STREAM`): the partial version is dropped and
    /// the volume demounted; the last committed version is untouched.
    ///
    /// The call may be cancelled at any `.await` (the host gives up, its deadline expires): the
    /// job is then abandoned by a drop guard, which demounts at once and drops the partial
    /// version in a task of its own.
    pub async fn write<S>(
        self: &Arc<Self>,
        mount: Arc<Mount>,
        mut items: S,
    ) -> Result<(u64, u64), NodeError>
    where
        S: Stream<Item = Result<WriteItem, StreamFault>> + Unpin,
    {
        let _call = mount.begin_call();
        if mount.read_only {
            return Err(NodeError::WriteProtected {
                volser: mount.volser,
                owner: mount.token.owner,
                cluster: self.id,
            });
        }
        let mut io = self.job_io(&mount).await?;
        let cancelled = AbandonOnDrop::arm(self, &mount);
        let mut received = 0u64;
        let outcome = loop {
            match items.next().await {
                Some(Ok(WriteItem::Chunk(data))) => {
                    received += data.len() as u64;
                    if let Err(e) = self.write_chunk(&mount, &mut io, data).await {
                        break Err(e);
                    }
                }
                Some(Ok(WriteItem::End { total_bytes })) if total_bytes == received => break Ok(()),
                Some(Ok(WriteItem::End { total_bytes })) => {
                    break Err(NodeError::StreamLengthMismatch {
                        volser: mount.volser,
                        received,
                        declared: total_bytes,
                    })
                }
                Some(Err(StreamFault::Broken(cause))) => {
                    break Err(NodeError::StreamBroken {
                        volser: mount.volser,
                        received,
                        cause: Box::new(cause),
                    })
                }
                Some(Err(StreamFault::TooLarge(cause))) => {
                    break Err(NodeError::MessageTooLarge {
                        stream: format!("write stream for {}", mount.volser),
                        cause: cause.message().to_string(),
                    })
                }
                Some(Err(StreamFault::Reopened { mount_id })) => {
                    break Err(NodeError::StreamAlreadyOpen { mount_id })
                }
                Some(Err(StreamFault::Empty)) => {
                    break Err(NodeError::InvalidArgument {
                        field: "msg",
                        problem: "a write request carries an open, a chunk or an end",
                    })
                }
                None => {
                    break Err(NodeError::StreamEndedEarly {
                        volser: mount.volser,
                        received,
                    })
                }
            }
        };
        cancelled.disarm();
        match outcome {
            Ok(()) => {
                let total = io.writer.as_ref().map_or(0, |w| w.bytes_written());
                self.metrics.bytes_written.inc_by(received);
                Ok((received, total))
            }
            Err(e) => {
                self.abort_job(&mount, &mut io).await;
                Err(e)
            }
        }
    }

    async fn write_chunk(
        &self,
        mount: &Mount,
        io: &mut JobIo,
        data: Bytes,
    ) -> Result<(), NodeError> {
        if io.writer.is_none() {
            io.writer = Some(self.open_writer(mount).await?);
            self.open_sync(mount, io, mount.base_version + 1).await?;
        }
        let Some(writer) = io.writer.take() else {
            unreachable!("opened above")
        };
        let (writer, result) = self.tvc.write(writer, data.clone()).await;
        io.writer = Some(writer);
        result?;
        // Sync mode: the same bytes go to the other sync cluster while the host writes (B42).
        if !io.duplex.is_empty() {
            self.duplex_chunk(mount, io, &data).await?;
        }
        Ok(())
    }

    /// The writer of the job's new version; for an append, it starts with the base version's
    /// bytes, copied locally or pulled from a cluster that holds them.
    async fn open_writer(
        &self,
        mount: &Mount,
    ) -> Result<Box<dyn vtgrid_tvc::VersionWriter>, NodeError> {
        let (volser, version) = (mount.volser, mount.base_version + 1);
        let appending = mount.append && mount.base_version > 0;
        let local_base = appending && mount.base_sources.contains(&self.id);
        let base = local_base.then_some(mount.base_version);
        let mut writer = self
            .tvc
            .run(move |s| s.begin(volser, version, base))
            .await?;
        if appending && !local_base {
            let mut bytes = self.version_stream(mount).await?;
            while let Some(chunk) = bytes.next().await {
                let (w, r) = self.tvc.write(writer, chunk?).await;
                writer = w;
                r?;
            }
        }
        // What the version is published with if the job ends after a sync point (T17).
        writer.set_note(self.sync_note(mount));
        Ok(writer)
    }

    /// End the job (the host's job abends) and demount: its bytes up to its last sync point
    /// become the next version (tape semantics, B42/T17; see [`crate::synced`]), the rest is
    /// dropped. With no sync point, the partial version is dropped and the volume keeps its last
    /// version. A committing job is demounted by its commit task instead.
    ///
    /// The job is demounted before the first `.await`, the volume held in the same step until
    /// its prefix is published, so a cancelled caller leaves nothing mounted: the writer moves
    /// into the offloaded `keep_synced` (run inline for the memory store, on the blocking pool
    /// for files, so it finishes either way) and the hold goes with the future. A prefix whose
    /// publication is cut short waits in the store for the next sweep.
    pub(crate) async fn abort_job(&self, mount: &Mount, io: &mut JobIo) {
        io.failed = true;
        // Closing the duplexes makes each sync cluster keep its synced prefix and drop the rest.
        io.duplex.clear();
        let writer = io.writer.take();
        let hold = self.mounts.abandon_holding(&mount.id, mount.volser);
        // Held, or still mounted by its own commit task: nothing else writes the volume.
        let exclusive = hold.is_some() || self.mounts.is_registered(&mount.id);
        tracing::warn!(volser = %mount.volser, mount = %mount.id, "job aborted; bytes after its last sync point dropped");
        let Some(writer) = writer else { return };
        match self.tvc.offload(move || writer.keep_synced()).await {
            Ok(Some(meta)) if exclusive => self.publish_abended(meta).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(volser = %mount.volser, error = %e, "keeping an abended job's synced prefix")
            }
        }
        drop(hold);
    }

    /// The job's I/O, for a call that goes on with the job: refused when the job failed, was
    /// abandoned, or has ended.
    async fn job_io<'m>(
        &self,
        mount: &'m Mount,
    ) -> Result<tokio::sync::MutexGuard<'m, JobIo>, NodeError> {
        let io = mount.io.lock().await;
        if io.failed || mount.is_abandoned() || !self.mounts.is_registered(&mount.id) {
            return Err(NodeError::NotWritable {
                mount_id: mount.id.clone(),
                volser: mount.volser,
            });
        }
        Ok(io)
    }

    /// A durable point for the job: every byte written so far is fsynced, here and, in Sync mode,
    /// at the other sync cluster (B42).
    pub async fn sync(self: &Arc<Self>, mount: &Arc<Mount>) -> Result<u64, NodeError> {
        let _call = mount.begin_call();
        let mut io = self.job_io(mount).await?;
        let Some(written) = io.writer.as_ref().map(|w| w.bytes_written()) else {
            return Ok(0);
        };
        // Cancelled while the writer is away or the sync cluster is asked: the job abends.
        let cancelled = AbandonOnDrop::arm(self, mount);
        // The sync clusters first, then the local fsync and its marker: a sync point this
        // cluster records as durable is one the host is told succeeded, so a job that ends
        // after a failed sync point leaves the prefix of the one before it (T17).
        let duplexed = if io.duplex.is_empty() {
            Ok(())
        } else {
            self.duplex_sync(mount, &mut io, written).await
        };
        let outcome = match duplexed {
            Ok(()) => match io.writer.take() {
                Some(writer) => {
                    // Through `Tvc::sync`: a slow fsync (a fault the simulation injects) is
                    // awaited there, on the simulated clock.
                    let (writer, result) = self.tvc.sync(writer).await;
                    io.writer = Some(writer);
                    result.map_err(NodeError::from)
                }
                None => Ok(written),
            },
            Err(e) => Err(e),
        };
        cancelled.disarm();
        if outcome.is_err() {
            self.abort_job(mount, &mut io).await;
        }
        outcome
    }

    /// The bytes the job sees: the committed version it mounted, or nothing for a blank mount.
    /// The job counts as active (not idle) until the stream is dropped.
    pub async fn read(&self, mount: &Arc<Mount>) -> Result<ByteStream, NodeError> {
        if mount.blank || mount.base_version == 0 {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let metrics = self.metrics.clone();
        let bytes = {
            let _call = mount.begin_call();
            self.version_stream(mount).await?
        };
        let active = OwnedCall::begin(mount.clone());
        Ok(Box::pin(bytes.inspect(move |c| {
            // The stream owns the call: the job is active for as long as it lives.
            let _reading = &active;
            if let Ok(data) = c {
                metrics.bytes_read.inc_by(data.len() as u64);
            }
        })))
    }

    /// The mounted base version's bytes: from this cluster's TVC when it holds them (B3), else
    /// from the first cluster holding them that answers (B4).
    async fn version_stream(&self, mount: &Mount) -> Result<ByteStream, NodeError> {
        let (volser, version) = (mount.volser, mount.base_version);
        if mount.base_sources.contains(&self.id) {
            return Ok(Box::pin(self.stream_local(volser, version).await?));
        }
        let remote: Vec<ClusterId> = mount
            .base_sources
            .iter()
            .copied()
            .filter(|c| *c != self.id)
            .collect();
        for source in remote {
            match self
                .stream_remote(source, volser, version, mount.base_digest)
                .await
            {
                Ok(s) => return Ok(Box::pin(s)),
                Err(e) => {
                    tracing::warn!(%volser, %source, error = %e, "remote TVC unavailable; trying another")
                }
            }
        }
        Err(NodeError::NoValidCopy { volser, version })
    }

    /// Close the job `mount_id`: commit what it wrote as the next version and demount.
    ///
    /// The commit runs to completion in its own task, from the writer's commit through the RUN
    /// copies and the journal append to the demount, and its outcome is recorded: a call that is
    /// cancelled half-way leaves the commit going, and a retried RewindUnload of the same mount id
    /// waits for it or answers the recorded outcome (issue 9, sequence B). Without that, a
    /// cancelled call could leave a journalled version its own cluster does not show, and the
    /// next job would write the same number over it.
    pub async fn rewind_unload(self: &Arc<Self>, mount_id: &str) -> UnloadOutcome {
        let unknown = || {
            Arc::new(Err(NodeError::UnknownMount {
                mount_id: mount_id.to_string(),
            }))
        };
        let mount = match self.mounts.get(mount_id) {
            Ok(m) => m,
            Err(_) => {
                return self
                    .mounts
                    .recorded_unload(mount_id)
                    .unwrap_or_else(unknown)
            }
        };
        let mut outcome = match self.start_commit(&mount) {
            Some(rx) => rx,
            None => {
                return self
                    .mounts
                    .recorded_unload(mount_id)
                    .unwrap_or_else(unknown)
            }
        };
        let answered = outcome
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|o| o.clone());
        answered.unwrap_or_else(unknown)
    }

    /// The receiver of the job's commit outcome, starting the commit task unless it runs
    /// already; none when the job has ended.
    fn start_commit(
        self: &Arc<Self>,
        mount: &Arc<Mount>,
    ) -> Option<tokio::sync::watch::Receiver<Option<UnloadOutcome>>> {
        let mut slot = mount.state.commit.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = slot.as_ref() {
            return Some(rx.clone());
        }
        if !self.mounts.begin_commit(&mount.id) {
            return None;
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        *slot = Some(rx.clone());
        let (cluster, mount) = (self.clone(), mount.clone());
        tokio::spawn(async move {
            let ending = CommitEnd {
                cluster: &cluster,
                mount: &mount,
                tx,
                ended: false,
            };
            let outcome = {
                let _call = mount.begin_call();
                cluster.commit_job(&mount).await
            };
            ending.finish(outcome);
        });
        Some(rx)
    }

    /// The commit of one job (run by its commit task only; see [`Cluster::rewind_unload`]).
    async fn commit_job(self: &Arc<Self>, mount: &Mount) -> Result<Unloaded, NodeError> {
        let mut io = mount.io.lock().await;
        if mount.is_abandoned() {
            // A write or sync of this job was cancelled before the unload got its turn: the
            // job abended, and what it wrote is not a whole stream.
            self.abort_job(mount, &mut io).await;
        }
        if io.failed {
            return Err(NodeError::UnknownMount {
                mount_id: mount.id.clone(),
            });
        }
        let Some(writer) = io.writer.take() else {
            // Nothing written: no new version, nothing changes (a scratch volume stays scratch).
            let record = self.effective(&mount.volser)?;
            let copies = record.consistent_clusters().collect();
            return Ok(Unloaded {
                record,
                written: false,
                copies,
                immediate_copy_deferred: false,
                sync_deferred: false,
            });
        };
        // The gate first: whatever it refuses now (a lease that ran out, a moved token) it
        // would refuse before the acknowledgement too, and a duplex commit or RUN copies must
        // not hang first on the very cut that fenced this cluster.
        if let Err(refusal) = self.standing(&mount.volser).and_then(|st| {
            st.may_write()
                .map_err(|r| self.gate_refusal(mount.volser, r))
        }) {
            io.writer = Some(writer);
            self.abort_job(mount, &mut io).await;
            return Err(refusal);
        }
        let meta = match self.tvc.commit(writer).await {
            Ok(meta) => meta,
            Err(e) => {
                self.abort_job(mount, &mut io).await;
                return Err(e.into());
            }
        };
        self.faults.point(FaultPoint::UnloadAfterStoreCommit).await;
        // Sync mode: the version counts only once every sync cluster of the job holds it too
        // (or, under `defer`, those still in the job do).
        let duplexed = match self
            .duplex_commit(mount, &mut io, meta.size, meta.digest)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                let (volser, version) = (meta.volser, meta.version);
                if let Err(rm) = self.tvc.run(move |s| s.remove(volser, version)).await {
                    tracing::error!(%volser, version, error = %rm, "could not remove a version its sync cluster lacks");
                }
                self.abort_job(mount, &mut io).await;
                return Err(e);
            }
        };
        // RUN (B37): the version is durable here; every reachable RUN cluster pulls it before
        // the version is committed and the host hears back, so the catalog never shows the
        // version without the RUN copies that were made. The volume stays mounted meanwhile, so
        // nobody can change it.
        let vector = self.copy_modes_for(mount);
        let (mut copies, immediate_copy_deferred) = self
            .make_run_copies(
                vector.as_ref(),
                mount.volser,
                meta.version,
                meta.size,
                meta.digest,
            )
            .await;
        copies.extend(duplexed);
        self.faults.point(FaultPoint::UnloadAfterRunCopies).await;
        // One journal entry per version number (`vtgrid_core::replay` relies on it): the version
        // must follow what this cluster itself shows of the volume.
        let shown = self.effective(&mount.volser)?.version;
        if shown + 1 != meta.version {
            let (volser, version) = (meta.volser, meta.version);
            if let Err(rm) = self.tvc.run(move |s| s.remove(volser, version)).await {
                tracing::error!(%volser, version, error = %rm, "could not remove a version that does not follow");
            }
            self.abort_job(mount, &mut io).await;
            return Err(NodeError::Rejected(
                vtgrid_core::CatalogRejection::VersionNotNext {
                    volser,
                    current: shown,
                    got: version,
                },
            ));
        }
        let change = VolumeChange {
            category: mount.category_on_commit,
            constructs: mount.constructs_on_commit.clone(),
            version: Some(NewVersion {
                version: meta.version,
                size: meta.size,
                digest: meta.digest,
                written_at: self.id,
                copy_modes: vector,
                held_by: copies.iter().copied().filter(|c| *c != self.id).collect(),
            }),
        };
        let cmd = CatalogCommand::UpdateVolume {
            volser: mount.volser,
            by: self.id,
            epoch: mount.token.epoch,
            change,
        };
        // The gate, once more before the version is acknowledged: the job may commit only while
        // its token is the volume's and no doubt hangs over it (sequence C).
        let gate = self.standing(&mount.volser).and_then(|st| {
            st.may_write()
                .map_err(|r| self.gate_refusal(mount.volser, r))
        });
        // The broken build of the chaos checker's own test (debug builds only).
        #[cfg(debug_assertions)]
        if gate.is_ok()
            && crate::faults::Break::active() == Some(crate::faults::Break::AckBeforeJournal)
        {
            return self.ack_before_journal(mount, io, cmd, copies, immediate_copy_deferred);
        }
        let appended = match gate {
            Ok(()) => self.journal.append(cmd).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = appended {
            // Not journalled (or the gate shut): the version does not exist. Remove the file and
            // fail the job.
            let (volser, version) = (meta.volser, meta.version);
            if let Err(rm) = self.tvc.run(move |s| s.remove(volser, version)).await {
                tracing::error!(%volser, version, error = %rm, "could not remove an unjournalled version");
            }
            io.failed = true;
            return Err(e);
        }
        io.failed = true; // the job is over: nothing more may be written to this mount
        self.faults.point(FaultPoint::UnloadAfterJournal).await;
        self.await_publication(mount.volser).await;
        self.metrics.unloads.inc();
        tracing::info!(volser = %mount.volser, version = meta.version, size = meta.size, "rewind-unload committed");
        Ok(Unloaded {
            record: self.effective(&mount.volser)?,
            written: true,
            copies,
            immediate_copy_deferred,
            sync_deferred: io.sync_deferred,
        })
    }

    /// The broken build's unload ([`crate::faults::Break::AckBeforeJournal`], debug builds
    /// only): the host is answered with the new version while its journal entry is still only
    /// in memory; the entry is written [`crate::faults::Break::UNSYNCED_FOR`] later, unless the
    /// process dies first and loses it.
    #[cfg(debug_assertions)]
    fn ack_before_journal(
        self: &Arc<Self>,
        mount: &Mount,
        mut io: tokio::sync::MutexGuard<'_, JobIo>,
        cmd: CatalogCommand,
        copies: Vec<ClusterId>,
        immediate_copy_deferred: bool,
    ) -> Result<Unloaded, NodeError> {
        let mut record = self.effective(&mount.volser)?;
        if let CatalogCommand::UpdateVolume { change, .. } = &cmd {
            change.apply_to(&mut record);
        }
        tracing::error!(volser = %mount.volser, version = record.version, "BROKEN BUILD (VTGRID_BREAK=ack-before-journal): acknowledged before the journal entry is written");
        let cluster = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(crate::faults::Break::UNSYNCED_FOR).await;
            if let Err(e) = cluster.journal.append(cmd).await {
                tracing::error!(error = %e, "the broken build's late journal entry");
            }
        });
        io.failed = true;
        Ok(Unloaded {
            record,
            written: true,
            copies,
            immediate_copy_deferred,
            sync_deferred: io.sync_deferred,
        })
    }

    /// Before the host hears of a version, let the catalog have it when a leader answers (at
    /// most [`PUBLISH_BEFORE_ACK`]): then a takeover after this cluster's death keeps it (T14a:
    /// a RUN version reads back at the taker, byte for byte). Cut off from the leader, the host
    /// is answered at once from the journal (local autonomy, B15); a takeover by the majority
    /// then fences the version, which is quarantined here once this cluster is back (B134).
    async fn await_publication(&self, volser: Volser) {
        if self.catalog.leader().is_none() {
            return;
        }
        if !self
            .journal
            .published_within(&volser, PUBLISH_BEFORE_ACK)
            .await
        {
            tracing::info!(%volser, "the catalog did not take the version in time; answering from the journal");
        }
    }

    /// The copy-mode vector of the management class the version carries, as defined on this
    /// cluster, the writer (B36).
    fn copy_modes_for(&self, mount: &Mount) -> Option<vtgrid_core::CopyModeVector> {
        self.class_policy_for(mount).map(|(v, _)| v)
    }

    /// The vector and Sync failure policy of the job's management class on this cluster (B36).
    pub(crate) fn class_policy_for(
        &self,
        mount: &Mount,
    ) -> Option<(vtgrid_core::CopyModeVector, vtgrid_core::SyncFailure)> {
        let class = match &mount.constructs_on_commit {
            Some(c) => c.management_class.clone(),
            None => self
                .effective(&mount.volser)
                .ok()
                .and_then(|r| r.constructs.management_class),
        }?;
        self.catalog
            .view
            .read(|s| {
                s.management_classes.get(&class).and_then(|mc| {
                    mc.vector_on(self.id)
                        .map(|v| (v.clone(), mc.on_sync_failure))
                })
            })
            .map(|(vector, policy)| {
                // B50(b): a scratch mount here with "force volume copy to local" counts this cluster
                // as RUN (an S entry stays S); the class itself is unchanged.
                let forced = mount.blank
                    && self.overrides().force_local_copy
                    && matches!(
                        vector.mode_for(self.id),
                        vtgrid_core::CopyMode::NoCopy | vtgrid_core::CopyMode::Deferred
                    );
                if forced {
                    (
                        vector.with_mode(self.id, vtgrid_core::CopyMode::Run),
                        policy,
                    )
                } else {
                    (vector, policy)
                }
            })
    }

    /// Change a volume's category (B13: by the owner, ownership obtained first; not while mounted).
    pub async fn change_category(
        &self,
        volser: Volser,
        category: Category,
    ) -> Result<VolumeRecord, NodeError> {
        if self.role == Role::Witness {
            return Err(NodeError::Witness);
        }
        self.require_caught_up()?;
        if self.mounts.is_mounted(&volser) {
            return Err(NodeError::VolumeInUse { volser });
        }
        self.effective(&volser)?;
        if !self
            .catalog
            .view
            .read(|s| s.categories.contains_key(&category))
        {
            return Err(NodeError::UnknownCategory { category });
        }
        let token = match self.obtain(volser).await {
            Ok(token) => token,
            Err(NodeError::OwnerUnreachable { owner, .. })
                if self.owner_gone(owner) == OwnerGone::ReadOnly =>
            {
                return Err(NodeError::WriteProtected {
                    volser,
                    owner,
                    cluster: self.id,
                })
            }
            Err(e) => return Err(e),
        };
        let _hold = self.mounts.hold(volser)?;
        let change = VolumeChange {
            category: Some(category),
            ..VolumeChange::default()
        };
        let cmd = CatalogCommand::UpdateVolume {
            volser,
            by: self.id,
            epoch: token.epoch,
            change,
        };
        self.journal.append(cmd).await?;
        self.effective(&volser)
    }
}

/// Names the host gave replace the volume's; names it left empty keep the volume's.
fn merge_constructs(current: &Constructs, given: &Constructs) -> Constructs {
    Constructs {
        management_class: given
            .management_class
            .clone()
            .or_else(|| current.management_class.clone()),
        storage_class: given
            .storage_class
            .clone()
            .or_else(|| current.storage_class.clone()),
        data_class: given
            .data_class
            .clone()
            .or_else(|| current.data_class.clone()),
        storage_group: given
            .storage_group
            .clone()
            .or_else(|| current.storage_group.clone()),
    }
}
