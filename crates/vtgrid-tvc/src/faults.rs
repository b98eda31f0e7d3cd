//! Disk faults for [`crate::MemVolumeStore`] (issue 9: "disk faults in the memory stores"):
//! a plan a test sets and clears at any time, which the store's writers consult at each call
//! that would touch the disk.
//!
//! | fault ([`DiskFaults`]) | fails                                  | as the file store returns it |
//! |------------------------|----------------------------------------|------------------------------|
//! | `no_space`             | `begin`, `write`, `sync`, `commit`     | ENOSPC: `StorageFull { available: 0 }` |
//! | `write_eio`            | `begin`, `write`                       | EIO: `Io { op: Write, .. }`  |
//! | `fsync_eio`            | `sync`, `commit` (their fsync)         | EIO: `Io { op: Sync, .. }`   |
//! | `slow_fsync`           | nothing: [`VolumeStore::fsync_delay`]  | async callers wait it before `sync`/`commit` |
//!
//! Every call that fails leaves its writer unusable (`Broken` from then on), as the file store's
//! does: a failed `write` leaves the file's contents unknown, and a failed fsync on Linux drops
//! the dirty pages and clears the error, so a later fsync would succeed without the bytes being
//! durable. A commit that fails makes nothing visible. `sync` and `commit` count as a write
//! too (the partial chunk, the trailer), so a full disk fails them as well.
//!
//! The plan is deterministic: no randomness of its own; a schedule that wants some draws from
//! its seed and sets the plan.
//!
//! [`VolumeStore::fsync_delay`]: crate::VolumeStore::fsync_delay

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::{IoOp, TvcError};
use crate::format::Target;
use crate::mem::MemVolumeStore;

/// Which disk faults are in force. `DiskFaults::default()` is a healthy disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// The file system is full: every write (header, data, partial chunk, trailer) is ENOSPC.
    pub no_space: bool,
    /// Every write of a version's header or data is EIO.
    pub write_eio: bool,
    /// Every fsync (a host sync point, the one inside `commit`) is EIO.
    pub fsync_eio: bool,
    /// Every fsync takes this long (the async caller waits it; the call itself is inline).
    pub slow_fsync: Option<Duration>,
}

impl DiskFaults {
    /// A full disk (ENOSPC).
    pub fn no_space() -> DiskFaults {
        DiskFaults {
            no_space: true,
            ..DiskFaults::default()
        }
    }

    /// EIO on every write.
    pub fn write_eio() -> DiskFaults {
        DiskFaults {
            write_eio: true,
            ..DiskFaults::default()
        }
    }

    /// EIO on every fsync.
    pub fn fsync_eio() -> DiskFaults {
        DiskFaults {
            fsync_eio: true,
            ..DiskFaults::default()
        }
    }

    /// Every fsync takes `delay`.
    pub fn slow_fsync(delay: Duration) -> DiskFaults {
        DiskFaults {
            slow_fsync: Some(delay),
            ..DiskFaults::default()
        }
    }
}

/// The plan a store and all its clones share, and how many calls it failed.
#[derive(Clone, Default)]
pub(crate) struct FaultPlan {
    faults: Arc<Mutex<DiskFaults>>,
    failed: Arc<AtomicU64>,
}

impl FaultPlan {
    fn now(&self) -> DiskFaults {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, e: TvcError) -> Result<(), TvcError> {
        self.failed.fetch_add(1, Ordering::Relaxed);
        Err(e)
    }

    /// A write of `needed` stored bytes of `target` (header, data, partial chunk or trailer).
    pub(crate) fn on_write(&self, target: &Target, needed: u64) -> Result<(), TvcError> {
        let faults = self.now();
        if faults.no_space {
            let enospc = io::Error::new(io::ErrorKind::StorageFull, "simulated ENOSPC");
            return self.fail(target.io_error(IoOp::Write, needed, enospc));
        }
        if faults.write_eio {
            return self.fail(target.io_error(IoOp::Write, needed, eio()));
        }
        Ok(())
    }

    /// An fsync of `target` (after its pending bytes were written).
    pub(crate) fn on_fsync(&self, target: &Target) -> Result<(), TvcError> {
        self.on_write(target, 0)?;
        if self.now().fsync_eio {
            return self.fail(target.io_error(IoOp::Sync, 0, eio()));
        }
        Ok(())
    }

    pub(crate) fn fsync_delay(&self) -> Option<Duration> {
        self.now().slow_fsync
    }
}

fn eio() -> io::Error {
    io::Error::other("simulated EIO")
}

impl MemVolumeStore {
    /// Put `faults` in force from now on, for every clone of this store (writers begun before
    /// included), until the next call. `DiskFaults::default()` heals the disk.
    pub fn set_faults(&self, faults: DiskFaults) {
        *self
            .fault_plan()
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// Heal the disk: no fault from now on.
    pub fn clear_faults(&self) {
        self.set_faults(DiskFaults::default());
    }

    /// The faults in force now.
    pub fn faults(&self) -> DiskFaults {
        self.fault_plan().now()
    }

    /// How many calls a disk fault has failed so far (every clone counts together).
    pub fn faults_injected(&self) -> u64 {
        self.fault_plan().failed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::stored_len;
    use crate::testing::{pattern, read_all, write_version};
    use crate::{VolumeStore, CHUNK_SIZE};
    use vtgrid_core::Volser;

    fn v1() -> Volser {
        "F00001".parse().unwrap()
    }

    /// The fault is gone once cleared, and nothing of the failed writer is left behind.
    fn healed_and_clean(store: &MemVolumeStore) {
        store.clear_faults();
        assert_eq!(store.usage().in_flight_bytes, 0, "no space left reserved");
        let meta = write_version(store, v1(), 7, b"after the fault");
        assert_eq!(meta.size, 15);
        assert_eq!(read_all(store, v1(), 7).unwrap(), b"after the fault");
    }

    /// Sequence: begin v2 and write a chunk → the disk fills → the next write is StorageFull
    /// (available 0, as ENOSPC from the file system), the writer is Broken from then on, and
    /// committed v1 is untouched; `begin` fails the same way while the disk is full.
    #[test]
    fn no_space_fails_writes_as_enospc_and_breaks_the_writer() {
        let store = MemVolumeStore::new(None);
        let data = pattern(CHUNK_SIZE + 3, 1);
        write_version(&store, v1(), 1, &data);
        let mut writer = store.begin(v1(), 2, None).unwrap();
        writer.write(b"fine so far").unwrap();
        store.set_faults(DiskFaults::no_space());
        let err = writer.write(b"no room").unwrap_err();
        assert!(
            matches!(err, TvcError::StorageFull { available: 0, .. }),
            "{err:?}"
        );
        assert!(matches!(writer.sync(), Err(TvcError::Broken { .. })));
        assert!(matches!(writer.commit(), Err(TvcError::Broken { .. })));
        assert!(matches!(
            store.begin(v1(), 2, None).map(|_| ()),
            Err(TvcError::StorageFull { .. })
        ));
        assert_eq!(store.versions().unwrap(), [(v1(), 1)]);
        assert_eq!(read_all(&store, v1(), 1).unwrap(), data);
        assert_eq!(store.faults_injected(), 2);
        assert_eq!(store.usage().used_bytes, stored_len(data.len() as u64));
        healed_and_clean(&store);
    }

    /// A full disk also fails the commit (its trailer is a write): nothing becomes visible.
    #[test]
    fn no_space_fails_the_commit_and_nothing_is_visible() {
        let store = MemVolumeStore::new(None);
        let mut writer = store.begin(v1(), 1, None).unwrap();
        writer.write(b"all of it").unwrap();
        store.set_faults(DiskFaults::no_space());
        assert!(matches!(writer.commit(), Err(TvcError::StorageFull { .. })));
        assert_eq!(store.versions().unwrap(), []);
        healed_and_clean(&store);
    }

    /// EIO on write: `Io { op: Write }` naming the version, the writer Broken afterwards.
    #[test]
    fn write_eio_is_an_io_error_and_breaks_the_writer() {
        let store = MemVolumeStore::new(None);
        let mut writer = store.begin(v1(), 1, None).unwrap();
        store.set_faults(DiskFaults::write_eio());
        let err = writer.write(b"lost").unwrap_err();
        assert!(
            matches!(err, TvcError::Io { op: IoOp::Write, ref path, .. } if path.to_string_lossy().contains("F00001")),
            "{err:?}"
        );
        assert!(!err.is_corruption());
        store.clear_faults();
        assert!(
            matches!(writer.write(b"later"), Err(TvcError::Broken { .. })),
            "a writer whose write failed stays unusable after the disk heals"
        );
        drop(writer);
        store.set_faults(DiskFaults::write_eio());
        assert!(matches!(
            store.begin(v1(), 1, None).map(|_| ()),
            Err(TvcError::Io {
                op: IoOp::Write,
                ..
            })
        ));
        healed_and_clean(&store);
    }

    /// EIO on fsync, as on Linux: the sync point fails with `Io { op: Sync }` and the writer is
    /// unusable afterwards, even once the disk is healthy again (its bytes are not known
    /// durable, so a later fsync could not vouch for them).
    #[test]
    fn fsync_eio_fails_the_sync_point_and_the_writer_stays_broken() {
        let store = MemVolumeStore::new(None);
        let mut writer = store.begin(v1(), 1, None).unwrap();
        writer.write(&pattern(5000, 2)).unwrap();
        store.set_faults(DiskFaults::fsync_eio());
        writer.write(b"writes still work").unwrap();
        let err = writer.sync().unwrap_err();
        assert!(
            matches!(err, TvcError::Io { op: IoOp::Sync, .. }),
            "{err:?}"
        );
        store.clear_faults();
        assert!(matches!(writer.sync(), Err(TvcError::Broken { .. })));
        assert!(matches!(writer.commit(), Err(TvcError::Broken { .. })));
        assert_eq!(store.versions().unwrap(), []);
        healed_and_clean(&store);
    }

    /// EIO on the commit's fsync: the commit fails with `Io { op: Sync }` and the version is
    /// not in the store.
    #[test]
    fn fsync_eio_fails_the_commit_and_nothing_is_visible() {
        let store = MemVolumeStore::new(None);
        write_version(&store, v1(), 1, b"v1");
        let mut writer = store.begin(v1(), 2, Some(1)).unwrap();
        writer.write(b" and v2").unwrap();
        store.set_faults(DiskFaults::fsync_eio());
        assert!(matches!(
            writer.commit(),
            Err(TvcError::Io { op: IoOp::Sync, .. })
        ));
        assert_eq!(store.versions().unwrap(), [(v1(), 1)]);
        assert_eq!(store.faults_injected(), 1);
        healed_and_clean(&store);
    }

    /// A slow fsync fails nothing: the store reports the delay for its async callers to wait,
    /// for every clone, until it is cleared; the file store never has one.
    #[test]
    fn slow_fsync_is_a_delay_the_caller_waits() {
        let store = MemVolumeStore::new(None);
        assert_eq!(store.fsync_delay(), None);
        store.set_faults(DiskFaults::slow_fsync(Duration::from_millis(1500)));
        let other = store.clone();
        assert_eq!(other.fsync_delay(), Some(Duration::from_millis(1500)));
        let mut writer = store.begin(v1(), 1, None).unwrap();
        writer.write(b"slow but sure").unwrap();
        assert_eq!(writer.sync().unwrap(), 13);
        writer.commit().unwrap();
        assert_eq!(store.faults_injected(), 0);
        store.clear_faults();
        assert_eq!(other.fsync_delay(), None);
        assert_eq!(read_all(&store, v1(), 1).unwrap(), b"slow but sure");
    }
}
