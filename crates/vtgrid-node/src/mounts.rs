//! The volumes mounted on this cluster: one mount of a volume at a time.
//!
//! A mount is a host job: mount → write/read/sync → rewind-unload. The table is a
//! `std::sync::Mutex` because no `.await` ever happens while it is held (mini-redis `db.rs`); each
//! job's I/O state sits behind its own `tokio::sync::Mutex`, so a slow write on one volume never
//! blocks another job, and calls of one job (write, sync, unload) run one after the other.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vtgrid_core::gate::LocalUse;
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

impl Hold<'_> {
    /// Turn this hold into the mount of the same volume, atomically: nothing else could mount
    /// or hold the volume between the checks made under the hold and the mount.
    pub fn into_mount(self, mount: Mount) -> Arc<Mount> {
        debug_assert_eq!(mount.volser, self.volser);
        let mount = Arc::new(mount);
        let mut inner = self.table.lock();
        inner.by_volser.insert(mount.volser, mount.id.clone());
        inner.by_id.insert(mount.id.clone(), mount.clone());
        drop(inner);
        // The entry is the mount's now: the hold's drop must not remove it.
        std::mem::forget(self);
        mount
    }
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
    by_id: BTreeMap<String, Arc<Mount>>,
    by_volser: BTreeMap<Volser, String>,
}

impl MountTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves only two consistent maps behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_mounted(&self, volser: &Volser) -> bool {
        self.lock().by_volser.contains_key(volser)
    }

    /// What this table holds for `volser`, for the gate (`vtgrid_core::gate`).
    pub fn local_use(&self, volser: &Volser) -> LocalUse {
        let inner = self.lock();
        match inner.by_volser.get(volser) {
            None => LocalUse::Free,
            Some(id) if id == HOLD => LocalUse::SurrenderHold,
            Some(id) => match inner.by_id.get(id) {
                Some(m) => LocalUse::Mounted { job_token: m.token },
                None => LocalUse::Free,
            },
        }
    }

    /// The volumes host jobs have mounted here (surrender holds left out), sorted.
    pub fn mounted_volsers(&self) -> Vec<Volser> {
        let inner = self.lock();
        let mut v: Vec<Volser> = inner.by_id.values().map(|m| m.volser).collect();
        v.sort_unstable();
        v
    }

    /// The volumes held here against mounts (surrenders in progress), sorted.
    pub fn held_volsers(&self) -> Vec<Volser> {
        let inner = self.lock();
        let mut v: Vec<Volser> = inner
            .by_volser
            .iter()
            .filter(|(_, id)| id.as_str() == HOLD)
            .map(|(v, _)| *v)
            .collect();
        v.sort_unstable();
        v
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
