//! The volumes mounted on this cluster: one mount of a volume at a time.
//!
//! A mount is a host job: mount → write/read/sync → rewind-unload. The table is a
//! `std::sync::Mutex` because no `.await` ever happens while it is held (mini-redis `db.rs`); each
//! job's I/O state sits behind its own `tokio::sync::Mutex`, so a slow write on one volume never
//! blocks another job, and calls of one job (write, sync, unload) run one after the other.
//!
//! A job ends in one of two ways, and the table decides which under its lock, so they never mix:
//!
//! ```text
//!   mounted ──RewindUnload──> committing ──commit task ends──> ended, outcome recorded
//!      │                                                        (a retried RewindUnload of
//!      │                                                         the mount id answers it)
//!      └──call cancelled / idle timeout / force demount──> abandoned: demounted at once,
//!                                                          partial version dropped
//! ```
//!
//! A committing job is never abandoned: its commit runs to completion in its own task, whatever
//! happens to the call that started it (issue 9, sequence B).
//! Lock order: the mount table comes before the catalog view. [`MountTable::mount_with`] reads
//! the view while it holds the table (the choice of volume and the "not mounted" check are one
//! step), so nothing may ask the table anything from inside `CatalogView::read`: copy the
//! records out of the view first, then ask the table. (With std's `RwLock` the other order hangs
//! the node once `apply` waits to write; see `vtgrid_catalog::CatalogView`.) Debug builds assert
//! it on every lock of the table.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use vtgrid_core::gate::LocalUse;
use vtgrid_core::{Category, Constructs, OwnershipToken, VersionNumber, Volser, VolumeRecord};
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
    /// A read-only job: the owner is unavailable and this cluster holds read takeover (ROT) for
    /// it (B20). It holds no token of its own and writes nothing.
    pub read_only: bool,
    pub io: tokio::sync::Mutex<JobIo>,
    /// How the job is doing: calls in flight, abandoned, its commit.
    pub(crate) state: JobState,
    /// The token holder that mounted it, when the grid uses tokens: only they may use it.
    pub holder: std::sync::OnceLock<String>,
}

/// The life of a job beside its I/O (see the module doc).
#[derive(Default)]
pub(crate) struct JobState {
    /// Host calls in flight and when the last one ended (the idle timeout).
    activity: Activity,
    /// Set when the job was abandoned (a cancelled call, the idle timeout, a force demount):
    /// whoever takes `io` next must not go on with the job.
    abandoned: AtomicBool,
    /// The job's commit, once a rewind-unload started it: every RewindUnload of this mount
    /// waits for the same outcome.
    pub(crate) commit: Mutex<Option<tokio::sync::watch::Receiver<Option<UnloadOutcome>>>>,
}

/// What rewind-unload of one mount ended with, kept for retries of the same mount id.
pub type UnloadOutcome = Arc<Result<Unloaded, NodeError>>;

/// What rewind-unload committed.
#[derive(Debug, Clone)]
pub struct Unloaded {
    pub record: vtgrid_core::VolumeRecord,
    pub written: bool,
    /// Clusters holding the version durably when the unload returned.
    pub copies: Vec<vtgrid_core::ClusterId>,
    /// A RUN copy could not be made in time and was deferred (B39).
    pub immediate_copy_deferred: bool,
    /// A sync cluster dropped out of the job and its copy is sync-deferred (B43).
    pub sync_deferred: bool,
}

impl Mount {
    /// A job on `record`'s current version (blank: a Fast Ready mount, B84) that changes nothing
    /// when it commits; the registrations set what the job may change (`append`,
    /// `category_on_commit`, `constructs_on_commit`, `read_only`).
    pub(crate) fn of_version(
        id: String,
        volser: Volser,
        record: &VolumeRecord,
        blank: bool,
        base_sources: Vec<vtgrid_core::ClusterId>,
    ) -> Mount {
        Mount {
            id,
            volser,
            token: record.token,
            base_version: record.version,
            base_size: if blank { 0 } else { record.size },
            base_digest: record.digest,
            base_sources,
            blank,
            append: false,
            category_on_commit: None,
            constructs_on_commit: None,
            read_only: false,
            io: tokio::sync::Mutex::new(JobIo::default()),
            state: Default::default(),
            holder: Default::default(),
        }
    }

    /// A host call of this job begins; the job is not idle until the guard drops.
    pub(crate) fn begin_call(&self) -> CallGuard<'_> {
        self.state.activity.calls.fetch_add(1, Ordering::AcqRel);
        CallGuard { mount: self }
    }

    /// How long the job has had no call in flight (zero while one is).
    pub(crate) fn idle_for(&self, now: Instant) -> std::time::Duration {
        let activity = &self.state.activity;
        if activity.calls.load(Ordering::Acquire) > 0 {
            return std::time::Duration::ZERO;
        }
        now.saturating_duration_since(*activity.last_lock())
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.state.abandoned.load(Ordering::Acquire)
    }

    /// Mark the job abandoned; true the first time.
    pub(crate) fn mark_abandoned(&self) -> bool {
        !self.state.abandoned.swap(true, Ordering::AcqRel)
    }
}

/// Calls in flight on one job, and the end of the last one.
struct Activity {
    calls: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            calls: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Activity {
    fn last_lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One host call of a job; the job counts as active while it lives.
pub(crate) struct CallGuard<'a> {
    mount: &'a Mount,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        end_call(self.mount);
    }
}

/// A call that outlives its handler (a read stream); the job counts as active while it lives.
pub(crate) struct OwnedCall {
    mount: Arc<Mount>,
}

impl OwnedCall {
    pub(crate) fn begin(mount: Arc<Mount>) -> OwnedCall {
        mount.state.activity.calls.fetch_add(1, Ordering::AcqRel);
        OwnedCall { mount }
    }
}

impl Drop for OwnedCall {
    fn drop(&mut self) {
        end_call(&self.mount);
    }
}

fn end_call(mount: &Mount) {
    let activity = &mount.state.activity;
    *activity.last_lock() = Instant::now();
    activity.calls.fetch_sub(1, Ordering::AcqRel);
}

/// The write side of a job.
#[derive(Default)]
pub struct JobIo {
    /// The version being written, opened by the first write.
    pub writer: Option<Box<dyn VersionWriter>>,
    /// Set when a write failed: the job's partial data is gone and it cannot continue.
    pub failed: bool,
    /// Sync mode: the job's duplexes to the other sync clusters (B42).
    pub duplex: Vec<crate::duplex::SyncDuplex>,
    /// A sync cluster dropped out and the class said to go on without it (B43).
    pub sync_deferred: bool,
}

/// Everything mounted on this cluster.
pub struct MountTable {
    inner: Mutex<Inner>,
    ids: MountIds,
    /// The virtual drives: jobs mounted at once at most (`[limits] max_mounts`).
    max_mounts: usize,
}

/// The ids of one run's mounts: `<cluster>-<incarnation>-<n>`. The incarnation tells this run's
/// ids from an earlier run's, so a host holding a mount id from before a restart gets
/// `UNKNOWN_MOUNT`, never someone else's job.
#[derive(Default)]
/// Mount ids: the cluster's name and 128 bits that only this run's key gives (keyed BLAKE3 of
/// a counter), so a host cannot guess another job's id from its own (issue 13).
struct MountIds {
    prefix: String,
    key: [u8; 32],
    next: AtomicU64,
}

/// A simulation's mount-id key for `cluster`'s `life`-th start: fixed by the seed, so a seed
/// replays byte for byte (a real process draws its key at random).
pub fn simulated_mount_id_key(cluster: u8, life: u64) -> [u8; 32] {
    let mut input = [0u8; 9];
    input[0] = cluster;
    input[1..].copy_from_slice(&life.to_le_bytes());
    *blake3::hash(&input).as_bytes()
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
    ///
    /// Fails with `NO_DEVICE_AVAILABLE` when every virtual drive is mounted; the hold is then
    /// released.
    pub fn into_mount(self, mount: Mount) -> Result<Arc<Mount>, NodeError> {
        debug_assert_eq!(mount.volser, self.volser);
        let mount = Arc::new(mount);
        let mut inner = self.table.lock();
        if let Err(e) = self.table.device_free(&inner) {
            drop(inner);
            return Err(e); // `self` drops here and releases the hold
        }
        inner.by_volser.insert(mount.volser, mount.id.clone());
        inner.by_id.insert(mount.id.clone(), mount.clone());
        drop(inner);
        // The entry is the mount's now: the hold's drop must not remove it.
        std::mem::forget(self);
        Ok(mount)
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
    /// Mounts whose commit task runs: they end only when it does.
    committing: BTreeSet<String>,
    /// The outcome of the last [`UNLOADS_KEPT`] rewind-unloads, by mount id.
    unloaded: BTreeMap<String, UnloadOutcome>,
    unloaded_order: VecDeque<String>,
}

/// How many rewind-unload outcomes the table keeps for hosts that retry a cancelled unload.
/// Mount ids are never reused within a run, so an old one only ever finds its own outcome.
const UNLOADS_KEPT: usize = 1024;

/// A table for tests: C0, a fixed key, the default 256 drives.
impl Default for MountTable {
    fn default() -> Self {
        MountTable::new(vtgrid_core::ClusterId::new(0).expect("C0"), [0; 32], 256)
    }
}

impl MountTable {
    /// The table of a cluster's run; `mount_id_key` is secret and random for each run (a
    /// simulation derives it from its seed, [`simulated_mount_id_key`]).
    pub fn new(
        cluster: vtgrid_core::ClusterId,
        mount_id_key: [u8; 32],
        max_mounts: usize,
    ) -> MountTable {
        MountTable {
            inner: Mutex::default(),
            max_mounts,
            ids: MountIds {
                prefix: cluster.to_string(),
                key: mount_id_key,
                next: AtomicU64::new(1),
            },
        }
    }

    /// A mount id no mount of this run had, that no one can guess from the others.
    pub(crate) fn next_id(&self) -> String {
        let n = self.ids.next.fetch_add(1, Ordering::Relaxed);
        let hash = blake3::keyed_hash(&self.ids.key, &n.to_le_bytes());
        let bits: String = hash.as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}-{bits}", self.ids.prefix)
    }

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

    /// What this table holds for `volser`, for the gate (`vtgrid_core::gate`).
    pub fn local_use(&self, volser: &Volser) -> LocalUse {
        let inner = self.lock();
        match inner.by_volser.get(volser) {
            None => LocalUse::Free,
            Some(id) if id == HOLD => LocalUse::SurrenderHold,
            Some(id) => match inner.by_id.get(id) {
                Some(m) if m.read_only => LocalUse::Reading,
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

    /// A virtual drive is free for one more job, now (a mount checks early, before it asks an
    /// owner for anything, and again when it registers).
    pub fn check_device_free(&self) -> Result<(), NodeError> {
        let inner = self.lock();
        self.device_free(&inner)
    }

    fn device_free(&self, inner: &Inner) -> Result<(), NodeError> {
        if inner.by_id.len() >= self.max_mounts {
            return Err(NodeError::NoDeviceAvailable {
                max: self.max_mounts,
            });
        }
        Ok(())
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
        self.device_free(&inner)?;
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

    /// The job mounted on `volser`, if any (a volume held for a surrender is not a job).
    pub fn mount_of(&self, volser: &Volser) -> Option<Arc<Mount>> {
        let inner = self.lock();
        let id = inner.by_volser.get(volser)?;
        inner.by_id.get(id).cloned()
    }

    /// The job is still mounted (not ended, not abandoned).
    pub fn is_registered(&self, mount_id: &str) -> bool {
        self.lock().by_id.contains_key(mount_id)
    }

    /// The commit of `mount_id` starts: from now on only [`MountTable::end_commit`] ends the job.
    /// False when the job is no longer mounted or already committing.
    pub fn begin_commit(&self, mount_id: &str) -> bool {
        let mut inner = self.lock();
        inner.by_id.contains_key(mount_id) && inner.committing.insert(mount_id.to_string())
    }

    /// End a job that is not committing: the volume is free at once. Returns false when it had
    /// already ended or its commit runs (a commit is never cut short).
    pub fn abandon(&self, mount_id: &str) -> bool {
        let mut inner = self.lock();
        if inner.committing.contains(mount_id) {
            return false;
        }
        match inner.by_id.remove(mount_id) {
            Some(m) => {
                inner.by_volser.remove(&m.volser);
                true
            }
            None => false,
        }
    }

    /// [`MountTable::abandon`], and in the same step hold the volume for what the job leaves
    /// behind (its synced prefix, `crate::synced`): no other job can mount it in between. None
    /// when the job's commit runs (its mount still holds the volume) or another job or hold has
    /// the volume already.
    pub fn abandon_holding(&self, mount_id: &str, volser: Volser) -> Option<Hold<'_>> {
        let mut inner = self.lock();
        if inner.committing.contains(mount_id) {
            return None;
        }
        if let Some(m) = inner.by_id.remove(mount_id) {
            inner.by_volser.remove(&m.volser);
        }
        if inner.by_volser.contains_key(&volser) {
            return None;
        }
        inner.by_volser.insert(volser, HOLD.to_string());
        Some(Hold {
            table: self,
            volser,
        })
    }

    /// The commit of `mount_id` ended with `outcome`: demount and keep the outcome for retries.
    pub fn end_commit(&self, mount_id: &str, outcome: UnloadOutcome) {
        let mut inner = self.lock();
        inner.committing.remove(mount_id);
        if let Some(m) = inner.by_id.remove(mount_id) {
            inner.by_volser.remove(&m.volser);
        }
        if inner
            .unloaded
            .insert(mount_id.to_string(), outcome)
            .is_none()
        {
            inner.unloaded_order.push_back(mount_id.to_string());
        }
        while inner.unloaded_order.len() > UNLOADS_KEPT {
            if let Some(old) = inner.unloaded_order.pop_front() {
                inner.unloaded.remove(&old);
            }
        }
    }

    /// What the rewind-unload of an ended job answered, if it is still kept.
    pub fn recorded_unload(&self, mount_id: &str) -> Option<UnloadOutcome> {
        self.lock().unloaded.get(mount_id).cloned()
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
