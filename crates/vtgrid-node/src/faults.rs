//! Crash points and a drifting clock (issue 9: "crashes at every await point of the mount, surrender, unload, copy
//! and publish paths, a fault point that a seed can select").
//!
//! Each [`FaultPoint`] names one place on one of those paths, between two awaits, where a crash
//! leaves the most to recover: something durable done, the next step not. The code there calls
//! `self.faults.point(FaultPoint::X).await`. In production the cluster's [`FaultPoints`] is
//! empty and the call is one `Option` check. A simulation gives each cluster an armable handle,
//! arms "the k-th time this cluster reaches point P", and watches it: the call that arrives
//! there records that it fired and never returns, and the simulation's driver crashes the host
//! right after that step (a power cut: the memory stores lose what a real crash loses) and
//! restarts it when the test says. So the crash happens exactly there, whatever ran before.
//!
//! ```text
//!   test: faults.arm(UnloadAfterJournal, 1)
//!   cluster: ... journal.append(..).await?; faults.point(UnloadAfterJournal).await ── pending
//!   driver (after the step): faults.take_fired() == Some(UnloadAfterJournal) → crash the host
//! ```

use std::sync::{Arc, Mutex, PoisonError};

/// A place on the mount, surrender, unload, copy or publish path where a simulation may crash
/// the cluster. Each names its path and what is done (durably) when it is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultPoint {
    /// Mount (`Cluster::mount`): the token is obtained (this cluster owns the volume), the mount
    /// is not registered yet.
    MountAfterObtain,
    /// Obtain, the requester's side (`Cluster::obtain`): the owner answered that it committed the
    /// Transfer to this cluster; this view has not applied it yet.
    ObtainAfterReply,
    /// Surrender, the owner's side (`Cluster::surrender`): the volume is held and its journal
    /// entries are published; no doubt is marked, no Transfer proposed.
    SurrenderAfterFlush,
    /// Surrender: the doubt is marked durably; the Transfer is not proposed yet.
    SurrenderAfterDoubt,
    /// Surrender: the Transfer's proposal returned (committed or refused); the doubt is not
    /// cleared yet and the requester has no answer.
    SurrenderAfterTransfer,
    /// Rewind-unload (`commit_job`): the version's file is committed in the TVC; no Sync commit,
    /// no RUN copy, no journal entry yet.
    UnloadAfterStoreCommit,
    /// Rewind-unload: the RUN copies are made (or deferred); the journal entry is not written.
    UnloadAfterRunCopies,
    /// Rewind-unload: the version is in the owner journal (durable: it will be published); the
    /// host has no answer and the volume is still mounted.
    UnloadAfterJournal,
    /// Publish (`publish_round`): an entry is read from the journal and about to be proposed.
    PublishBeforePropose,
    /// Publish: the catalog committed the entry; it is still in the journal (it is replayed
    /// after a restart, and must be recognised as such).
    PublishAfterCommit,
    /// Copy (`fetch_copy`, for a RUN request, a queued copy or a forced local copy): the copy's
    /// file is committed and verified; nothing records it yet.
    CopyAfterStore,
    /// Copy (`pull_from`): the copy's CopyDone is in the journal; the engine has not heard.
    CopyAfterCopyDone,
    /// Copy (`adopt_held_copy`): a held file was found to be the owed version; its CopyDone is
    /// not written yet.
    AdoptBeforeCopyDone,
    /// Sync duplex, the sync cluster's side (`serve_duplex`): its copy is committed; the writer
    /// has no acknowledgement.
    DuplexAfterCommit,
}

impl FaultPoint {
    /// Every point, in declaration order (a seed selects one by index).
    pub const ALL: [FaultPoint; 14] = [
        FaultPoint::MountAfterObtain,
        FaultPoint::ObtainAfterReply,
        FaultPoint::SurrenderAfterFlush,
        FaultPoint::SurrenderAfterDoubt,
        FaultPoint::SurrenderAfterTransfer,
        FaultPoint::UnloadAfterStoreCommit,
        FaultPoint::UnloadAfterRunCopies,
        FaultPoint::UnloadAfterJournal,
        FaultPoint::PublishBeforePropose,
        FaultPoint::PublishAfterCommit,
        FaultPoint::CopyAfterStore,
        FaultPoint::CopyAfterCopyDone,
        FaultPoint::AdoptBeforeCopyDone,
        FaultPoint::DuplexAfterCommit,
    ];
}

#[derive(Default)]
struct Armed {
    /// The point to fire at, and how many more arrivals there go by first.
    at: Option<(FaultPoint, u32)>,
    /// The point that fired and is not taken by the driver yet.
    fired: Option<FaultPoint>,
    /// The point fired since it was last armed.
    fired_since_armed: bool,
    /// The rate this cluster's lease clock runs at against the simulation's (a drifting clock;
    /// `None`: 1).
    clock_rate: Option<f64>,
}

/// A cluster's crash points: empty in production (nothing is ever armed), armable in a
/// simulation. Clones share the same state, so the simulation keeps a handle across restarts.
#[derive(Clone, Default)]
pub struct FaultPoints(Option<Arc<Mutex<Armed>>>);

impl FaultPoints {
    /// Points that can never fire (production).
    pub fn none() -> FaultPoints {
        FaultPoints(None)
    }

    /// Points a simulation can arm.
    pub fn armable() -> FaultPoints {
        FaultPoints(Some(Arc::default()))
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, Armed>> {
        self.0
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Fire the `nth` time (1 = the next time) this cluster reaches `point`, replacing whatever
    /// was armed. A no-op on [`FaultPoints::none`].
    pub fn arm(&self, point: FaultPoint, nth: u32) {
        if let Some(mut s) = self.lock() {
            s.at = Some((point, nth.saturating_sub(1)));
            s.fired_since_armed = false;
        }
    }

    /// Disarm; true when the point had fired meanwhile (the driver may not have taken it yet).
    pub fn disarm(&self) -> bool {
        self.lock().is_some_and(|mut s| {
            s.at = None;
            s.fired_since_armed
        })
    }

    /// Still armed (not fired, not disarmed).
    pub fn is_armed(&self) -> bool {
        self.lock().is_some_and(|s| s.at.is_some())
    }

    /// The point that fired, once: the driver crashes the cluster when it gets one.
    pub fn take_fired(&self) -> Option<FaultPoint> {
        self.lock().and_then(|mut s| s.fired.take())
    }

    /// Make this cluster's lease clock run at `rate` (0.9: it sees 0.9 s pass per second). A
    /// no-op on [`FaultPoints::none`]; kept across restarts, like the points.
    pub fn set_clock_rate(&self, rate: f64) {
        if let Some(mut s) = self.lock() {
            s.clock_rate = Some(rate);
        }
    }

    /// The rate of this cluster's lease clock: 1 unless a simulation set one.
    pub fn clock_rate(&self) -> f64 {
        self.lock().and_then(|s| s.clock_rate).unwrap_or(1.0)
    }

    /// A crash point: returns at once unless armed here and due, in which case it records that
    /// it fired and never returns (the host is crashed before anything else of this task runs).
    pub async fn point(&self, point: FaultPoint) {
        let due = self.lock().is_some_and(|mut s| match s.at {
            Some((p, 0)) if p == point => {
                s.at = None;
                s.fired = Some(point);
                s.fired_since_armed = true;
                true
            }
            Some((p, n)) if p == point => {
                s.at = Some((p, n - 1));
                false
            }
            _ => false,
        });
        if due {
            tracing::warn!(
                ?point,
                "crash point reached; the simulation crashes this host"
            );
            std::future::pending::<()>().await;
        }
    }
}

/// A deliberately broken node, for the chaos checker's own test (issue 11: "the checker can
/// fail"): `VTGRID_BREAK` names a rule the node then breaks. Read only in debug builds (the
/// ones the tests run); a release build has no such switch and never breaks anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Break {
    /// `VTGRID_BREAK=ack-before-journal`: answer a rewind-unload before the version's journal
    /// entry (its durable point) is written, and write the entry [`Break::UNSYNCED_FOR`] later.
    /// A skipped fsync loses an acknowledged version only when the machine loses its page cache,
    /// which a kill -9 does not do; holding the entry in memory instead makes a kill -9 in those
    /// seconds lose what a power cut would lose to a skipped fsync.
    AckBeforeJournal,
}

impl Break {
    /// How long a broken unload keeps its journal entry in memory only.
    pub const UNSYNCED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

    /// The break this process runs with, if any (read once).
    pub fn active() -> Option<Break> {
        static ACTIVE: std::sync::OnceLock<Option<Break>> = std::sync::OnceLock::new();
        *ACTIVE.get_or_init(|| {
            if !cfg!(debug_assertions) {
                return None;
            }
            match std::env::var("VTGRID_BREAK").ok()?.as_str() {
                "ack-before-journal" => Some(Break::AckBeforeJournal),
                other => {
                    tracing::warn!(
                        value = other,
                        "VTGRID_BREAK names no break (known: ack-before-journal); ignored"
                    );
                    None
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn poll_once(f: impl Future<Output = ()>) -> Poll<()> {
        let mut f = pin!(f);
        f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn nothing_fires_in_production() {
        let points = FaultPoints::none();
        points.arm(FaultPoint::UnloadAfterJournal, 1);
        assert!(!points.is_armed());
        assert_eq!(
            poll_once(points.point(FaultPoint::UnloadAfterJournal)),
            Poll::Ready(())
        );
        assert_eq!(points.take_fired(), None);
    }

    /// Armed for the second arrival at one point: other points and the first arrival pass, the
    /// second never returns and is reported once; later arrivals pass again.
    #[test]
    fn the_nth_arrival_fires_once_and_hangs() {
        let points = FaultPoints::armable();
        let driver = points.clone();
        points.arm(FaultPoint::PublishAfterCommit, 2);
        assert!(driver.is_armed());
        assert_eq!(
            poll_once(points.point(FaultPoint::UnloadAfterJournal)),
            Poll::Ready(())
        );
        assert_eq!(
            poll_once(points.point(FaultPoint::PublishAfterCommit)),
            Poll::Ready(())
        );
        assert_eq!(driver.take_fired(), None);
        assert_eq!(
            poll_once(points.point(FaultPoint::PublishAfterCommit)),
            Poll::Pending
        );
        assert!(!driver.is_armed());
        assert_eq!(driver.take_fired(), Some(FaultPoint::PublishAfterCommit));
        assert_eq!(driver.take_fired(), None);
        assert_eq!(
            poll_once(points.point(FaultPoint::PublishAfterCommit)),
            Poll::Ready(())
        );
        assert!(driver.disarm(), "it fired");
    }

    #[test]
    fn disarmed_before_reaching_it_never_fires() {
        let points = FaultPoints::armable();
        points.arm(FaultPoint::SurrenderAfterDoubt, 1);
        assert!(!points.disarm(), "it had not fired");
        assert_eq!(
            poll_once(points.point(FaultPoint::SurrenderAfterDoubt)),
            Poll::Ready(())
        );
        assert_eq!(points.take_fired(), None);
    }
}
