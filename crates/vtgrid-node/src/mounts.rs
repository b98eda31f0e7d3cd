//! The volumes mounted on this cluster: one mount of a volume at a time.
//!
//! A mount is a host job: mount → write/read/sync → rewind-unload. The table is a
//! `std::sync::Mutex` because no `.await` ever happens while it is held (mini-redis `db.rs`); each
//! job's I/O state sits behind its own `tokio::sync::Mutex`, so a slow write on one volume never
//! blocks another job, and calls of one job (write, sync, unload) run one after the other.
//!
//! Lock order: the mount table comes before the catalog view. [`MountTable::mount_with`] reads
//! the view while it holds the table (the choice of volume and the "not mounted" check are one
//! step), so nothing may ask the table anything from inside `CatalogView::read`: copy the
//! records out of the view first, then ask the table. (With std's `RwLock` the other order hangs
//! the node once `apply` waits to write; see `vtgrid_catalog::CatalogView`.) Debug builds assert
//! it on every lock of the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vtgrid_core::{Category, Constructs, OwnershipToken, VersionNumber, Volser};
use vtgrid_tvc::VersionWriter;

use crate::error::NodeError;

/// One host job on one volume.
pub struct Mount {
    pub id: String,
    pub volser: Volser,
    /// The token this cluster held when the job started; commands of the job carry its epoch.
    pub token: OwnershipToken,
    /// The committed version the job started from.
    pub base_version: VersionNumber,
    pub base_size: u64,
    pub base_digest: vtgrid_core::Digest,
    /// Clusters holding the base version (this one first if it does).
    pub base_sources: Vec<vtgrid_core::ClusterId>,
    /// Fast Ready mount: the host sees an empty volume (B84).
    pub blank: bool,
    /// Keep the base version's bytes and write after them.
    pub append: bool,
    /// Category the volume moves to when the job commits a version (scratch mounts).
    pub category_on_commit: Option<Category>,
    /// Constructs the volume gets when the job commits.
    pub constructs_on_commit: Option<Constructs>,
    pub io: tokio::sync::Mutex<JobIo>,
}

/// The write side of a job.
#[derive(Default)]
pub struct JobIo {
    /// The version being written, opened by the first write.
    pub writer: Option<Box<dyn VersionWriter>>,
    /// Set when a write failed: the job's partial data is gone and it cannot continue.
    pub failed: bool,
    /// Sync mode: the job's duplexes to the other sync clusters (B42).
    pub duplex: Vec<crate::sync::SyncDuplex>,
    /// A sync cluster dropped out and the class said to go on without it (B43).
    pub sync_deferred: bool,
}

/// Everything mounted on this cluster.
#[derive(Default)]
pub struct MountTable {
    inner: Mutex<Inner>,
}

/// The mount-id slot of a held volume; no real mount id looks like it.
const HOLD: &str = "<held>";

/// A volume held against mounts; released on drop.
pub struct Hold<'a> {
    table: &'a MountTable,
    volser: Volser,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut inner = self.table.lock();
        if inner
            .by_volser
            .get(&self.volser)
            .is_some_and(|id| id == HOLD)
        {
            inner.by_volser.remove(&self.volser);
        }
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Arc<Mount>>,
    by_volser: HashMap<Volser, String>,
}

impl MountTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        debug_assert!(
            !vtgrid_catalog::CatalogView::reading_on_this_thread(),
            "lock order: the mount table was asked from inside CatalogView::read; \
             read the view first, then ask the mount table"
        );
        // A panic while holding this lock leaves only two consistent maps behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_mounted(&self, volser: &Volser) -> bool {
        self.lock().by_volser.contains_key(volser)
    }

    pub fn count(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Mount the volume `choose` picks, atomically with the check that it is free. `choose` gets
    /// a test for "is this VOLSER mounted?" and returns the mount to register.
    pub fn mount_with<F>(&self, choose: F) -> Result<Arc<Mount>, NodeError>
    where
        F: FnOnce(&dyn Fn(&Volser) -> bool) -> Result<Mount, NodeError>,
    {
        let mut inner = self.lock();
        let mount = {
            let mounted = |v: &Volser| inner.by_volser.contains_key(v);
            choose(&mounted)?
        };
        if inner.by_volser.contains_key(&mount.volser) {
            return Err(NodeError::VolumeInUse {
                volser: mount.volser,
            });
        }
        let mount = Arc::new(mount);
        inner.by_volser.insert(mount.volser, mount.id.clone());
        inner.by_id.insert(mount.id.clone(), mount.clone());
        Ok(mount)
    }

    pub fn get(&self, mount_id: &str) -> Result<Arc<Mount>, NodeError> {
        self.lock()
            .by_id
            .get(mount_id)
            .cloned()
            .ok_or_else(|| NodeError::UnknownMount {
                mount_id: mount_id.to_string(),
            })
    }

    /// Keep `volser` from being mounted here while the guard lives (an ownership surrender in
    /// progress). Fails with `VOLUME_IN_USE` when it is mounted or held already.
    pub fn hold(&self, volser: Volser) -> Result<Hold<'_>, NodeError> {
        let mut inner = self.lock();
        if inner.by_volser.contains_key(&volser) {
            return Err(NodeError::VolumeInUse { volser });
        }
        inner.by_volser.insert(volser, HOLD.to_string());
        Ok(Hold {
            table: self,
            volser,
        })
    }

    /// End a job. Returns false when it had already ended.
    pub fn demount(&self, mount_id: &str) -> bool {
        let mut inner = self.lock();
        match inner.by_id.remove(mount_id) {
            Some(m) => {
                inner.by_volser.remove(&m.volser);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vtgrid_catalog::CatalogView;

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order")]
    fn asking_the_table_from_inside_a_view_read_panics_in_debug_builds() {
        let view = CatalogView::default();
        let table = MountTable::default();
        let volser: Volser = "A00000".parse().expect("a valid VOLSER");
        view.read(|_| table.is_mounted(&volser));
    }

    #[test]
    fn reading_the_view_while_holding_the_table_is_the_allowed_order() {
        let view = CatalogView::default();
        let table = MountTable::default();
        let volser: Volser = "A00000".parse().expect("a valid VOLSER");
        let refused = table.mount_with(|_| {
            let known = view.read(|s| s.volumes.contains_key(&volser));
            assert!(!known, "an empty catalog knows no volume");
            Err(NodeError::UnknownVolume { volser })
        });
        assert!(matches!(refused, Err(NodeError::UnknownVolume { .. })));
        assert!(!table.is_mounted(&volser));
    }
}
