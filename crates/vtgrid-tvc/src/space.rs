//! Space accounting against the cache quota, shared by both stores (DESIGN §4, Capacity).
//!
//! `used = committed + in flight`. Committed bytes are the stored lengths of committed versions;
//! in-flight bytes are what open writers hold, each through a [`Reservation`] that grows before
//! the bytes are written (so a write past the quota fails before touching anything) and is either
//! turned into committed bytes by [`Reservation::commit`] or given back when dropped.
//!
//! A simulated crash ([`Space::crash`]) forgets every in-flight byte at once. Reservations carry
//! the generation they were made in, so those made before a crash neither give back bytes twice
//! nor commit.
//!
//! A `std::sync::Mutex` is right here: it is held only for arithmetic and, in `commit` and
//! `remove`, one rename or unlink, never across an `.await` (the stores are synchronous).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vtgrid_core::{VersionNumber, Volser};

use crate::error::TvcError;
use crate::store::SpaceUsage;

pub(crate) struct Space {
    quota: Option<u64>,
    state: Mutex<SpaceState>,
}

struct SpaceState {
    /// Stored bytes of committed versions.
    committed: u64,
    /// Bytes held by reservations of the current generation.
    in_flight: u64,
    /// Bumped by each simulated crash.
    generation: u64,
}

impl Space {
    pub(crate) fn new(quota: Option<u64>, committed: u64) -> Arc<Self> {
        Arc::new(Space {
            quota,
            state: Mutex::new(SpaceState {
                committed,
                in_flight: 0,
                generation: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SpaceState> {
        // The state is plain counters, each update a single statement: a panic elsewhere cannot
        // leave it half-changed, so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn usage(&self) -> SpaceUsage {
        let s = self.lock();
        SpaceUsage {
            used_bytes: s.committed + s.in_flight,
            in_flight_bytes: s.in_flight,
            quota_bytes: self.quota,
        }
    }

    /// Fail with `StorageFull` unless `needed` more bytes fit under the quota.
    fn check(&self, s: &SpaceState, volser: Volser, needed: u64) -> Result<(), TvcError> {
        if let Some(quota) = self.quota {
            let available = quota.saturating_sub(s.committed + s.in_flight);
            if needed > available {
                return Err(TvcError::StorageFull {
                    volser,
                    needed,
                    available,
                });
            }
        }
        Ok(())
    }

    /// Reserve `bytes` for a new writer of `volser` `version`.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        volser: Volser,
        version: VersionNumber,
        bytes: u64,
    ) -> Result<Reservation, TvcError> {
        let mut s = self.lock();
        self.check(&s, volser, bytes)?;
        s.in_flight += bytes;
        Ok(Reservation {
            space: Arc::clone(self),
            volser,
            version,
            bytes,
            generation: s.generation,
            settled: false,
        })
    }

    /// Run `unlink` (which returns the bytes it freed) under the lock, and subtract what it freed,
    /// so a concurrent commit of the same version cannot be counted wrong.
    pub(crate) fn remove(
        &self,
        unlink: impl FnOnce() -> Result<u64, TvcError>,
    ) -> Result<(), TvcError> {
        let mut s = self.lock();
        let freed = unlink()?;
        s.committed = s.committed.saturating_sub(freed);
        Ok(())
    }

    /// A simulated crash: every writer in flight is lost with its bytes, except `kept` stored
    /// bytes of synced prefixes, which stay as committed bytes (they are on disk).
    pub(crate) fn crash(&self, kept: u64) {
        let mut s = self.lock();
        s.in_flight = 0;
        s.committed += kept;
        s.generation += 1;
    }
}

/// The bytes one writer holds. Dropping it gives them back.
pub(crate) struct Reservation {
    space: Arc<Space>,
    volser: Volser,
    version: VersionNumber,
    /// Bytes held: the stored length of what the writer has taken so far.
    bytes: u64,
    /// The space generation this was made in; older ones were lost in a crash.
    generation: u64,
    /// Committed or given back: nothing left to do on drop.
    settled: bool,
}

impl Reservation {
    /// True when a crash happened after this reservation was made.
    pub(crate) fn is_lost(&self) -> bool {
        self.space.lock().generation != self.generation
    }

    fn lost(&self) -> TvcError {
        TvcError::Crashed {
            volser: self.volser,
            version: self.version,
        }
    }

    /// A second reservation of `bytes` for the same version (a copy kept beside it), or
    /// `StorageFull`.
    pub(crate) fn alongside(&self, bytes: u64) -> Result<Reservation, TvcError> {
        if self.is_lost() {
            return Err(self.lost());
        }
        self.space.reserve(self.volser, self.version, bytes)
    }

    /// Grow the reservation to `total` bytes, or fail with `StorageFull` and change nothing.
    pub(crate) fn grow_to(&mut self, total: u64) -> Result<(), TvcError> {
        let mut s = self.space.lock();
        if s.generation != self.generation {
            return Err(self.lost());
        }
        let extra = total.saturating_sub(self.bytes);
        self.space.check(&s, self.volser, extra)?;
        s.in_flight += extra;
        self.bytes += extra;
        Ok(())
    }

    /// Make the reserved bytes committed bytes. `publish` runs under the lock (the rename into
    /// place, or the insert into the in-memory map) and returns the stored length of the version
    /// it replaced, if any, which stops counting. Fails with `Crashed`, running nothing, if a crash
    /// came first; if `publish` fails the reservation stays, to be given back on drop.
    pub(crate) fn commit(
        self,
        publish: impl FnOnce() -> Result<u64, TvcError>,
    ) -> Result<(), TvcError> {
        let kept = self.bytes;
        self.commit_as(kept, publish)
    }

    /// [`Reservation::commit`], but only `kept` stored bytes stay committed (a writer that keeps
    /// the prefix up to its sync point gives back what it wrote after it).
    pub(crate) fn commit_as(
        mut self,
        kept: u64,
        publish: impl FnOnce() -> Result<u64, TvcError>,
    ) -> Result<(), TvcError> {
        let mut s = self.space.lock();
        if s.generation != self.generation {
            drop(s);
            return Err(self.lost());
        }
        let replaced = match publish() {
            Ok(replaced) => replaced,
            Err(e) => {
                drop(s);
                return Err(e);
            }
        };
        s.in_flight -= self.bytes;
        s.committed = (s.committed + kept).saturating_sub(replaced);
        self.settled = true;
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut s = self.space.lock();
        if s.generation == self.generation {
            s.in_flight -= self.bytes;
        }
    }
}
