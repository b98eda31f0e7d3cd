//! Host jobs on this cluster: mount, write, read, sync, rewind-unload, category change.
//!
//! The rules, in the order a mount checks them:
//! 1. the VOLSER is valid and in the catalog (`INVALID_VOLSER`, `UNKNOWN_VOLUME`);
//! 2. it is not mounted anywhere on this cluster (`VOLUME_IN_USE`);
//! 3. this cluster owns it (ownership transfer between clusters arrives with the grid issue; until
//!    then a volume owned elsewhere fails with `OWNER_UNREACHABLE`, B14);
//! 4. the management class the host names is defined on this cluster (`UNKNOWN_CLASS`, B36);
//! 5. a volume in a Fast Ready category mounts blank (B84); otherwise this cluster must hold the
//!    committed version (`NO_VALID_COPY`).
//!
//! A job's bytes become a version only at rewind-unload: the writer commits the file (fsync,
//! rename, fsync dir), then the catalog records the version. If the catalog step fails the file is
//! removed again and the host hears the error, so an acknowledged unload is always both on disk
//! and in the catalog, and an unacknowledged one leaves the previous version as it was.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use vtgrid_core::catalog::{Applied, CatalogCommand, NewVersion, VolumeChange};
use vtgrid_core::{Category, Constructs, Volser, VolumeRecord};
use vtgrid_tvc::VersionMeta;

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::mounts::{JobIo, Mount};

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

/// What rewind-unload committed.
#[derive(Debug, Clone)]
pub struct Unloaded {
    pub record: VolumeRecord,
    pub written: bool,
}

impl Cluster {
    pub async fn mount(&self, opts: MountOptions) -> Result<Arc<Mount>, NodeError> {
        let constructs = self.checked_constructs(&opts.constructs)?;
        let private = opts.private_category.unwrap_or(self.private_category);
        let mount = self.mounts.mount_with(|mounted| {
            self.catalog.view.read(|state| {
                let record = match opts.target {
                    MountTarget::Specific(volser) => state
                        .volumes
                        .get(&volser)
                        .ok_or(NodeError::UnknownVolume { volser })?,
                    MountTarget::Scratch(category) => {
                        match state.categories.get(&category) {
                            None => return Err(NodeError::UnknownCategory { category }),
                            Some(d) if !d.fast_ready => {
                                return Err(NodeError::NotScratchCategory { category })
                            }
                            Some(_) => {}
                        }
                        // B8: prefer (here: only) scratch volumes this cluster owns.
                        state
                            .volumes
                            .values()
                            .find(|r| {
                                r.category == category
                                    && r.token.owner == self.id
                                    && !mounted(&r.volser)
                            })
                            .ok_or(NodeError::NoScratchAvailable {
                                category,
                                cluster: self.id,
                            })?
                    }
                };
                if mounted(&record.volser) {
                    return Err(NodeError::VolumeInUse {
                        volser: record.volser,
                    });
                }
                if record.token.owner != self.id {
                    return Err(NodeError::OwnerUnreachable {
                        volser: record.volser,
                        owner: record.token.owner,
                    });
                }
                let blank = state.is_fast_ready(record.category);
                if !blank
                    && record.version > 0
                    && record.consistent_at.get(&self.id) != Some(&record.version)
                {
                    return Err(NodeError::NoValidCopy {
                        volser: record.volser,
                        version: record.version,
                    });
                }
                let scratch = matches!(opts.target, MountTarget::Scratch(_));
                Ok(Mount {
                    id: self.next_mount_id(),
                    volser: record.volser,
                    token: record.token,
                    base_version: record.version,
                    base_size: if blank { 0 } else { record.size },
                    blank,
                    append: opts.append && !blank,
                    category_on_commit: scratch.then_some(private),
                    constructs_on_commit: (constructs != Constructs::default())
                        .then(|| merge_constructs(&record.constructs, &constructs)),
                    io: tokio::sync::Mutex::new(JobIo::default()),
                })
            })
        })?;
        self.metrics.mounts.inc();
        tracing::info!(volser = %mount.volser, mount = %mount.id, blank = mount.blank, "mounted");
        Ok(mount)
    }

    /// The host's constructs, with the management class checked against this cluster (B36).
    fn checked_constructs(&self, c: &Constructs) -> Result<Constructs, NodeError> {
        if let Some(name) = &c.management_class {
            let defined_here = self.catalog.view.read(|s| {
                s.management_classes
                    .get(name)
                    .is_some_and(|mc| mc.vector_on(self.id).is_some())
            });
            if !defined_here {
                return Err(NodeError::UnknownClass {
                    name: name.clone(),
                    cluster: self.id,
                });
            }
        }
        Ok(c.clone())
    }

    /// Take one write stream of a job. Any way the stream ends other than its `End` message with
    /// the right byte count aborts the job (`TRUNCATED_STREAM`): the partial version is dropped and
    /// the volume demounted; the last committed version is untouched.
    pub async fn write<S>(&self, mount: Arc<Mount>, mut items: S) -> Result<(u64, u64), NodeError>
    where
        S: Stream<Item = Result<WriteItem, tonic::Status>> + Unpin,
    {
        let mut io = mount.io.lock().await;
        if io.failed {
            return Err(NodeError::NotWritable {
                mount_id: mount.id.clone(),
                volser: mount.volser,
            });
        }
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
                Some(Err(cause)) => {
                    break Err(NodeError::StreamBroken {
                        volser: mount.volser,
                        received,
                        cause: Box::new(cause),
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
        let mut writer = match io.writer.take() {
            Some(w) => w,
            None => {
                let (volser, version) = (mount.volser, mount.base_version + 1);
                let base = (mount.append && mount.base_version > 0).then_some(mount.base_version);
                self.tvc
                    .run(move |s| s.begin(volser, version, base))
                    .await?
            }
        };
        let (writer, result) = self
            .tvc
            .offload(move || {
                let r = writer.write(&data);
                (writer, r)
            })
            .await;
        io.writer = Some(writer);
        Ok(result?)
    }

    /// Drop the job's partial version and demount (the host's job abends).
    async fn abort_job(&self, mount: &Mount, io: &mut JobIo) {
        io.failed = true;
        if let Some(writer) = io.writer.take() {
            self.tvc.offload(move || writer.abort()).await;
        }
        self.mounts.demount(&mount.id);
        tracing::warn!(volser = %mount.volser, mount = %mount.id, "job aborted; partial version dropped");
    }

    /// A durable point for the job: every byte written so far is fsynced.
    pub async fn sync(&self, mount: &Mount) -> Result<u64, NodeError> {
        let mut io = mount.io.lock().await;
        let Some(mut writer) = io.writer.take() else {
            return Ok(0);
        };
        let (writer, result) = self
            .tvc
            .offload(move || {
                let r = writer.sync();
                (writer, r)
            })
            .await;
        io.writer = Some(writer);
        match result {
            Ok(n) => Ok(n),
            Err(e) => {
                self.abort_job(mount, &mut io).await;
                Err(e.into())
            }
        }
    }

    /// The bytes the job sees: the committed version it mounted, or nothing for a blank mount.
    pub async fn read(
        &self,
        mount: &Mount,
    ) -> Result<impl Stream<Item = Result<Bytes, NodeError>> + use<>, NodeError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, NodeError>>(4);
        if mount.blank || mount.base_version == 0 {
            drop(tx);
            return Ok(tokio_stream::wrappers::ReceiverStream::new(rx));
        }
        let (volser, version) = (mount.volser, mount.base_version);
        let reader = self.tvc.run(move |s| s.open(volser, version)).await?;
        let tvc = self.tvc.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let mut reader = Some(reader);
            loop {
                let Some(mut r) = reader.take() else { break };
                let (r, chunk) = tvc
                    .offload(move || {
                        let c = r.next_chunk();
                        (r, c)
                    })
                    .await;
                reader = Some(r);
                let item = match chunk {
                    Ok(Some(data)) => {
                        metrics.bytes_read.inc_by(data.len() as u64);
                        Ok(data)
                    }
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
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// Close the job: commit what it wrote as the next version and demount.
    pub async fn rewind_unload(&self, mount: &Mount) -> Result<Unloaded, NodeError> {
        let mut io = mount.io.lock().await;
        if io.failed {
            return Err(NodeError::UnknownMount {
                mount_id: mount.id.clone(),
            });
        }
        let Some(writer) = io.writer.take() else {
            // Nothing written: no new version, nothing changes (a scratch volume stays scratch).
            self.mounts.demount(&mount.id);
            let record = self.volume(&mount.volser)?;
            return Ok(Unloaded {
                record,
                written: false,
            });
        };
        let meta = match self.tvc.offload(move || writer.commit()).await {
            Ok(meta) => meta,
            Err(e) => {
                self.abort_job(mount, &mut io).await;
                return Err(e.into());
            }
        };
        match self.record_version(mount, &meta).await {
            Ok(record) => {
                self.mounts.demount(&mount.id);
                self.metrics.unloads.inc();
                let (volser, old) = (mount.volser, mount.base_version);
                if old > 0 {
                    if let Err(e) = self.tvc.run(move |s| s.remove(volser, old)).await {
                        tracing::warn!(%volser, version = old, error = %e, "could not remove the superseded version");
                    }
                }
                tracing::info!(%volser, version = meta.version, size = meta.size, "rewind-unload committed");
                Ok(Unloaded {
                    record,
                    written: true,
                })
            }
            Err(e) => {
                // Not in the catalog: the version does not exist. Remove the file and fail the job.
                let (volser, version) = (meta.volser, meta.version);
                if let Err(rm) = self.tvc.run(move |s| s.remove(volser, version)).await {
                    tracing::error!(%volser, version, error = %rm, "could not remove an uncatalogued version");
                }
                io.failed = true;
                self.mounts.demount(&mount.id);
                Err(e)
            }
        }
    }

    async fn record_version(
        &self,
        mount: &Mount,
        meta: &VersionMeta,
    ) -> Result<VolumeRecord, NodeError> {
        let change = VolumeChange {
            category: mount.category_on_commit,
            constructs: mount.constructs_on_commit.clone(),
            version: Some(NewVersion {
                version: meta.version,
                size: meta.size,
                digest: meta.digest,
                written_at: self.id,
            }),
        };
        let cmd = CatalogCommand::UpdateVolume {
            volser: mount.volser,
            by: self.id,
            epoch: mount.token.epoch,
            change,
        };
        match self.catalog.propose(cmd).await? {
            Applied::Updated { record } => Ok(*record),
            _ => self.volume(&mount.volser),
        }
    }

    /// Change a volume's category (B13: by the owner, not while mounted).
    pub async fn change_category(
        &self,
        volser: Volser,
        category: Category,
    ) -> Result<VolumeRecord, NodeError> {
        if self.mounts.is_mounted(&volser) {
            return Err(NodeError::VolumeInUse { volser });
        }
        let record = self.volume(&volser)?;
        if !self
            .catalog
            .view
            .read(|s| s.categories.contains_key(&category))
        {
            return Err(NodeError::UnknownCategory { category });
        }
        if record.token.owner != self.id {
            return Err(NodeError::OwnerUnreachable {
                volser,
                owner: record.token.owner,
            });
        }
        let change = VolumeChange {
            category: Some(category),
            ..VolumeChange::default()
        };
        let cmd = CatalogCommand::UpdateVolume {
            volser,
            by: self.id,
            epoch: record.token.epoch,
            change,
        };
        match self.catalog.propose(cmd).await? {
            Applied::Updated { record } => Ok(*record),
            _ => self.volume(&volser),
        }
    }

    pub fn volume(&self, volser: &Volser) -> Result<VolumeRecord, NodeError> {
        self.catalog
            .view
            .read(|s| s.volumes.get(volser).cloned())
            .ok_or(NodeError::UnknownVolume { volser: *volser })
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
