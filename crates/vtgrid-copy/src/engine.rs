//! The engine's loop: schedule what is owed, pull it in priority order under the throttle, retry.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use vtgrid_catalog::{CatalogStorageError, CopyQueue, QueuedCopy};
use vtgrid_core::{VersionNumber, Volser};

use crate::site::CopySite;

/// How often the engine looks at the catalog for copies owed when nothing woke it.
const RESCAN: Duration = Duration::from_secs(1);
/// How long a round with a failed copy waits before the queue is tried again.
const RETRY: Duration = Duration::from_millis(500);

/// The per-cluster copy throttle (`[copy]` in the grid file). RUN copies a host waits for do not
/// go through the engine and are not throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// Bytes per second all queued copies share; 0: no limit.
    pub bytes_per_sec: u64,
    /// Copies pulled at the same time (at least 1).
    pub concurrency: usize,
}

/// One cluster's copy engine. [`CopyEngine::run`] until the task is dropped.
pub struct CopyEngine<S> {
    site: Arc<S>,
    queue: Arc<dyn CopyQueue>,
    throttle: Throttle,
    /// The throttle's clock and when it next lets a copy start, in seconds on that clock.
    started: Instant,
    free_at: Mutex<f64>,
}

impl<S: CopySite> CopyEngine<S> {
    pub fn new(site: Arc<S>, queue: Arc<dyn CopyQueue>, throttle: Throttle) -> Self {
        CopyEngine {
            site,
            queue,
            throttle: Throttle {
                concurrency: throttle.concurrency.max(1),
                ..throttle
            },
            started: Instant::now(),
            free_at: Mutex::new(0.0),
        }
    }

    /// Schedule and pull copies, forever.
    pub async fn run(self) {
        loop {
            self.round().await;
        }
    }

    /// One round: queue what is owed, then pull one batch (or wait to be woken).
    pub async fn round(&self) {
        self.schedule().await;
        let batch = self.throttle.concurrency;
        let next = self.queue_op(move |q| q.next(batch)).await;
        match next {
            Ok(copies) if !copies.is_empty() => {
                // The batch's pulls run together; the next batch starts when all end. Meanwhile
                // (a batch may wait seconds on the throttle) new versions are still queued, so
                // the queue operators see is the whole backlog.
                let pulls = futures::future::join_all(copies.iter().map(|c| self.pull_queued(c)));
                tokio::pin!(pulls);
                let results = loop {
                    tokio::select! {
                        results = &mut pulls => break results,
                        _ = tokio::time::sleep(RESCAN) => self.schedule().await,
                    }
                };
                let mut failed = false;
                let mut left = false;
                for (copy, result) in copies.iter().zip(results) {
                    match result {
                        Ok(gone) => left |= gone,
                        Err(e) => {
                            failed = true;
                            tracing::warn!(volser = %copy.volser, version = copy.version, error = %e, "copy not made; will retry");
                        }
                    }
                }
                if failed {
                    tokio::time::sleep(RETRY).await;
                } else if !left {
                    // Every copy of the batch is in hand elsewhere (a RUN pull under way, a
                    // CopyDone on its way to the catalog): the queue is as it was, so wait to
                    // be woken, as an empty round does, rather than spin on it.
                    let _ = tokio::time::timeout(RESCAN, self.site.owed_changed()).await;
                }
            }
            Ok(_) => {
                let _ = tokio::time::timeout(RESCAN, self.site.owed_changed()).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the copy queue");
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    /// Queue every copy the catalog says this cluster owes and has not queued yet; adopt the ones
    /// already in the store.
    pub async fn schedule(&self) {
        let owed = self.site.owed();
        if owed.is_empty() {
            return;
        }
        // One listing of the store per round, not one per owed volume.
        let held: BTreeSet<(Volser, VersionNumber)> = match self.site.held().await {
            Ok(held) => held,
            Err(e) => {
                tracing::error!(error = %e, "listing the volume store");
                return;
            }
        };
        for copy in owed {
            if self.site.in_hand(copy.volser, copy.version) {
                continue;
            }
            if held.contains(&(copy.volser, copy.version)) {
                self.site.adopt(copy).await;
                continue;
            }
            let now = now_ms();
            let queued = self
                .queue_op(move |q| {
                    q.enqueue(
                        copy.priority,
                        copy.volser,
                        copy.version,
                        copy.size,
                        copy.digest,
                        now,
                    )
                })
                .await;
            if let Err(e) = queued {
                tracing::error!(volser = %copy.volser, error = %e, "queueing a copy");
            }
        }
    }

    /// Make one queued copy if it is still owed, from any cluster that holds its version; then
    /// it leaves the queue (`Ok(true)`). A copy in hand elsewhere stays queued (`Ok(false)`); a
    /// failure leaves it queued for the next round.
    async fn pull_queued(&self, copy: &QueuedCopy) -> Result<bool, String> {
        let (volser, version) = (copy.volser, copy.version);
        if self.site.in_hand(volser, version) {
            return Ok(false); // a RUN pull of it is under way; the queue entry goes next round
        }
        if let Some(sources) = self.site.sources(volser, version) {
            if !self.site.holds(volser, version).await {
                self.pace(copy.size).await;
                let mut last = format!("no cluster holds version {version} of {volser}");
                let mut made = false;
                for source in sources {
                    match self.site.pull(source, volser, version, copy.digest).await {
                        Ok(()) => {
                            made = true;
                            break;
                        }
                        Err(e) => last = format!("from {source}: {e}"),
                    }
                }
                if !made {
                    return Err(last);
                }
            }
        }
        let c = copy.clone();
        self.queue_op(move |q| q.remove(&c))
            .await
            .map(|()| true)
            .map_err(|e| e.to_string())
    }

    /// Wait for a copy of `bytes` to get its turn under the byte-rate throttle.
    async fn pace(&self, bytes: u64) {
        let wait = {
            let mut free_at = self.free_at.lock().unwrap_or_else(|p| p.into_inner());
            let now = self.started.elapsed().as_secs_f64();
            let (wait, next) =
                vtgrid_core::copy::pace(self.throttle.bytes_per_sec, bytes, now, *free_at);
            *free_at = next;
            wait
        };
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    async fn queue_op<T, F>(&self, f: F) -> Result<T, CatalogStorageError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn CopyQueue) -> Result<T, CatalogStorageError> + Send + 'static,
    {
        let q = self.queue.clone();
        offload(q.is_blocking(), move || f(&*q)).await
    }
}

/// Run `f` on tokio's blocking pool when `blocking` (RocksDB, fsyncing files), inline otherwise.
/// The in-memory stores of turmoil simulations are called inline: a blocking pool would take
/// work off the simulated clock and break determinism.
pub async fn offload<T, F>(blocking: bool, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if !blocking {
        return f();
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("blocking task cancelled: {e}"),
    }
}

/// Wall-clock milliseconds since the Unix epoch: only for showing how long copies have waited.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use vtgrid_catalog::{KvCopyQueue, MemEngine};
    use vtgrid_core::copy::CopyPriority;
    use vtgrid_core::{ClusterId, Digest};

    use super::*;
    use crate::site::OwedCopy;

    /// A cluster on memory: what it owes, what its store holds, which sources answer.
    #[derive(Default)]
    struct MemSite {
        owed: Mutex<Vec<OwedCopy>>,
        held: Mutex<BTreeSet<(Volser, VersionNumber)>>,
        pulls: Mutex<Vec<(Volser, ClusterId)>>,
        down: Mutex<BTreeSet<ClusterId>>,
        in_hand: Mutex<BTreeSet<(Volser, VersionNumber)>>,
    }

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    impl CopySite for MemSite {
        type Error = String;
        fn owed(&self) -> Vec<OwedCopy> {
            let held = self.held.lock().unwrap();
            let owed = self.owed.lock().unwrap();
            owed.iter()
                .filter(|o| !held.contains(&(o.volser, o.version)))
                .copied()
                .collect()
        }
        fn sources(&self, volser: Volser, version: VersionNumber) -> Option<Vec<ClusterId>> {
            let owed = self.owed.lock().unwrap();
            owed.iter()
                .any(|o| o.volser == volser && o.version == version)
                .then(|| vec![c(0), c(1)])
        }
        fn in_hand(&self, volser: Volser, version: VersionNumber) -> bool {
            self.in_hand.lock().unwrap().contains(&(volser, version))
        }
        async fn held(&self) -> Result<BTreeSet<(Volser, VersionNumber)>, String> {
            Ok(self.held.lock().unwrap().clone())
        }
        async fn holds(&self, volser: Volser, version: VersionNumber) -> bool {
            self.held.lock().unwrap().contains(&(volser, version))
        }
        async fn adopt(&self, _: OwedCopy) {}
        async fn pull(
            &self,
            source: ClusterId,
            volser: Volser,
            version: VersionNumber,
            _: Digest,
        ) -> Result<(), String> {
            if self.down.lock().unwrap().contains(&source) {
                return Err(format!("{source} does not answer"));
            }
            self.pulls.lock().unwrap().push((volser, source));
            self.held.lock().unwrap().insert((volser, version));
            Ok(())
        }
        async fn owed_changed(&self) {
            std::future::pending::<()>().await
        }
    }

    fn owe(site: &MemSite, volser: &str, priority: CopyPriority, size: u64) {
        site.owed.lock().unwrap().push(OwedCopy {
            priority,
            volser: volser.parse().unwrap(),
            version: 1,
            size,
            digest: Digest::EMPTY,
        });
    }

    fn engine(site: &Arc<MemSite>, throttle: Throttle) -> CopyEngine<MemSite> {
        let queue = Arc::new(KvCopyQueue::open(MemEngine::new()).unwrap());
        CopyEngine::new(site.clone(), queue, throttle)
    }

    const ONE_AT_A_TIME: Throttle = Throttle {
        bytes_per_sec: 0,
        concurrency: 1,
    };

    #[tokio::test(start_paused = true)]
    async fn b40_owed_copies_are_pulled_in_priority_order_then_leave_the_queue() {
        let site = Arc::new(MemSite::default());
        owe(&site, "D00001", CopyPriority::Deferred, 10);
        owe(&site, "I00001", CopyPriority::ImmediateDeferred, 10);
        owe(&site, "S00001", CopyPriority::SyncDeferred, 10);
        let engine = engine(&site, ONE_AT_A_TIME);
        for _ in 0..3 {
            engine.round().await;
        }
        let order: Vec<String> = site
            .pulls
            .lock()
            .unwrap()
            .iter()
            .map(|(v, _)| v.to_string())
            .collect();
        assert_eq!(order, ["S00001", "I00001", "D00001"]);
        assert!(
            engine.queue.next(10).unwrap().is_empty(),
            "the queue drained"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn b45_a_source_that_fails_hands_the_copy_to_the_next_and_none_keeps_it_queued() {
        let site = Arc::new(MemSite::default());
        owe(&site, "A00001", CopyPriority::Deferred, 10);
        site.down.lock().unwrap().insert(c(0));
        let engine = engine(&site, ONE_AT_A_TIME);
        engine.round().await;
        assert_eq!(
            site.pulls.lock().unwrap().as_slice(),
            [("A00001".parse().unwrap(), c(1))]
        );
        owe(&site, "A00002", CopyPriority::Deferred, 10);
        site.down.lock().unwrap().insert(c(1));
        engine.round().await;
        assert_eq!(
            engine.queue.next(10).unwrap().len(),
            1,
            "B40: a copy no source can serve stays queued for a later round"
        );
        site.down.lock().unwrap().clear();
        engine.round().await;
        assert!(engine.queue.next(10).unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_throttle_spaces_copies_by_their_bytes() {
        let site = Arc::new(MemSite::default());
        for n in 1..=3 {
            owe(
                &site,
                &format!("T0000{n}"),
                CopyPriority::Deferred,
                1_000_000,
            );
        }
        let engine = engine(
            &site,
            Throttle {
                bytes_per_sec: 1_000_000,
                concurrency: 1,
            },
        );
        let start = Instant::now();
        for _ in 0..3 {
            engine.round().await;
        }
        // The first copy starts at once; each next one a second after the one before.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(site.pulls.lock().unwrap().len(), 3);
    }

    /// Found by a crash point (issue 9, `CopyAfterStore`): a queued copy whose file a crash left
    /// behind is adopted after the restart, its CopyDone waits for the publisher, and the copy
    /// stays in hand while still queued. The round then did nothing and returned at once, so on
    /// an inline (memory) store the engine spun forever without an await that yields, and the
    /// publisher that would end it never ran; on a blocking store it burnt a core until then.
    #[tokio::test(start_paused = true)]
    async fn a_round_whose_queued_copies_are_all_in_hand_waits_instead_of_spinning() {
        let site = Arc::new(MemSite::default());
        owe(&site, "H00001", CopyPriority::Deferred, 1);
        let engine = engine(&site, ONE_AT_A_TIME);
        engine.schedule().await;
        site.in_hand
            .lock()
            .unwrap()
            .insert(("H00001".parse().unwrap(), 1));
        let start = Instant::now();
        engine.round().await;
        assert!(start.elapsed() >= RESCAN, "{:?}", start.elapsed());
        assert_eq!(engine.queue.next(10).unwrap().len(), 1, "still queued");
        assert!(site.pulls.lock().unwrap().is_empty());
        site.in_hand.lock().unwrap().clear();
        site.held
            .lock()
            .unwrap()
            .insert(("H00001".parse().unwrap(), 1));
        engine.round().await;
        assert!(engine.queue.next(10).unwrap().is_empty(), "then it leaves");
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_copy_no_longer_owed_just_leaves_the_queue() {
        let site = Arc::new(MemSite::default());
        owe(&site, "G00001", CopyPriority::Deferred, 1);
        let engine = engine(&site, ONE_AT_A_TIME);
        engine.schedule().await;
        assert_eq!(engine.queue.next(10).unwrap().len(), 1);
        site.owed.lock().unwrap().clear(); // a newer version superseded it
        engine.round().await;
        assert!(site.pulls.lock().unwrap().is_empty());
        assert!(engine.queue.next(10).unwrap().is_empty());
    }
}
