//! Snapshots of the applied catalog: how they are built, stored and read back.
//!
//! Layout, written as one atomic, synced batch so a crash never pairs one snapshot's meta with
//! another's data:
//!
//! ```text
//!   Cf::Snapshot  "meta" -> JSON SnapshotMeta
//!                 "data" -> JSON AppliedCatalog { last_applied, last_membership, state }
//! ```
//!
//! The stored snapshot is the durable half of the state machine (`apply` touches memory only):
//! a restart loads it, then openraft re-applies the log from there up to the saved committed id.

use std::io::Cursor;
use std::sync::{Arc, Mutex, PoisonError};

use openraft::{ErrorSubject, ErrorVerb, RaftSnapshotBuilder};

use crate::codec::{decode, encode};
use crate::engine::{on_engine, Cf, KvEngine, KvOp};
use crate::error::CatalogStorageError;
use crate::state_machine::members_of;
use crate::types::{Snapshot, SnapshotMeta, StorageError, TypeConfig};
use crate::view::AppliedCatalog;

const META: &[u8] = b"meta";
const DATA: &[u8] = b"data";

/// Serialises "is the stored snapshot older than mine? then replace it" between the state
/// machine (installing) and snapshot builders, which openraft runs in a separate task.
pub(crate) type SnapshotLock = Arc<Mutex<()>>;

/// The stored snapshot's meta and data bytes, if any.
pub(crate) fn read_stored<E: KvEngine>(
    engine: &E,
) -> Result<Option<(SnapshotMeta, Vec<u8>)>, CatalogStorageError> {
    let Some(meta_bytes) = engine.get(Cf::Snapshot, META)? else {
        return Ok(None);
    };
    let meta: SnapshotMeta = decode(Cf::Snapshot, META, &meta_bytes)?;
    match engine.get(Cf::Snapshot, DATA)? {
        Some(data) => Ok(Some((meta, data))),
        None => Err(CatalogStorageError::SnapshotIncomplete {
            snapshot_id: meta.snapshot_id,
        }),
    }
}

/// Replace the stored snapshot, durably.
pub(crate) fn write_stored<E: KvEngine>(
    engine: &E,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<(), CatalogStorageError> {
    Ok(engine.write(stored_ops(meta, data)?, true)?)
}

/// The writes that replace the stored snapshot, for a batch of the caller's.
pub(crate) fn stored_ops(
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<Vec<KvOp>, CatalogStorageError> {
    Ok(vec![
        KvOp::Put {
            cf: Cf::Snapshot,
            key: META.to_vec(),
            value: encode(Cf::Snapshot, meta)?,
        },
        KvOp::Put {
            cf: Cf::Snapshot,
            key: DATA.to_vec(),
            value: data.to_vec(),
        },
    ])
}

/// Decode snapshot bytes, checking that they hold what `meta` says.
pub(crate) fn decode_data(
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<AppliedCatalog, CatalogStorageError> {
    let mut applied: AppliedCatalog =
        serde_json::from_slice(data).map_err(|source| CatalogStorageError::SnapshotUnreadable {
            snapshot_id: meta.snapshot_id.clone(),
            source,
        })?;
    if applied.last_applied != meta.last_log_id {
        return Err(CatalogStorageError::SnapshotMismatch {
            snapshot_id: meta.snapshot_id.clone(),
            meta: meta.last_log_id,
            data: applied.last_applied,
        });
    }
    // The members follow from the membership the snapshot holds. A snapshot of the release
    // before the catalog recorded them has none; every replica derives the same set here.
    let members = members_of(applied.last_membership.membership());
    applied.state.set_members(members);
    Ok(applied)
}

pub(crate) fn into_snapshot(meta: SnapshotMeta, data: Vec<u8>) -> Snapshot {
    Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    }
}

pub(crate) fn lock(snapshot_lock: &SnapshotLock) -> std::sync::MutexGuard<'_, ()> {
    // The mutex guards no data, only an order of writes: poisoning means nothing here.
    snapshot_lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds a snapshot from a copy of the catalog taken when openraft asked for the builder, so
/// applying continues while it serialises (openraft builds in a separate task).
pub struct CatalogSnapshotBuilder<E> {
    pub(crate) engine: E,
    pub(crate) applied: AppliedCatalog,
    pub(crate) snapshot_id: String,
    pub(crate) snapshot_lock: SnapshotLock,
}

impl<E: KvEngine> RaftSnapshotBuilder<TypeConfig> for CatalogSnapshotBuilder<E> {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let meta = SnapshotMeta {
            last_log_id: self.applied.last_applied,
            last_membership: self.applied.last_membership.clone(),
            snapshot_id: self.snapshot_id.clone(),
        };
        let applied = std::mem::take(&mut self.applied);
        let snapshot_lock = self.snapshot_lock.clone();
        let build = on_engine(&self.engine, move |engine| {
            let data = encode(Cf::Snapshot, &applied)?;
            let _order = lock(&snapshot_lock);
            // A snapshot installed from the leader while this one was building is newer: keep
            // it, or a restart would need log entries that were purged when it was installed.
            if let Some((stored_meta, stored_data)) = read_stored(engine)? {
                if stored_meta.last_log_id > meta.last_log_id {
                    tracing::info!(built = %meta, kept = %stored_meta, "a newer snapshot is stored; keeping it");
                    return Ok(into_snapshot(stored_meta, stored_data));
                }
            }
            write_stored(engine, &meta, &data)?;
            tracing::info!(%meta, bytes = data.len(), "snapshot built and stored");
            Ok(into_snapshot(meta, data))
        });
        build
            .await
            .map_err(|e| e.into_raft(ErrorSubject::Snapshot(None), ErrorVerb::Write))
    }
}
