//! The copies this cluster owes (DESIGN §4): the durable queue the copy engine pulls from, the
//! signal that wakes it, and the turn each version's pulls wait in. The engine that works the
//! queue is [`crate::copies`]; this part holds the state and nothing of the cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vtgrid_catalog::CopyQueue;
use vtgrid_core::{VersionNumber, Volser};

/// Per version being pulled, the lock its pulls queue on.
type PullTurns = BTreeMap<(Volser, VersionNumber), Arc<tokio::sync::Mutex<()>>>;

pub struct OwedCopies {
    queue: Arc<dyn CopyQueue>,
    /// Wakes the copy engine (a version it may owe a copy of was committed).
    changed: tokio::sync::Notify,
    /// One lock per version being pulled: pulls of the same version wait for each other.
    pull_turns: Mutex<PullTurns>,
}

impl OwedCopies {
    pub fn new(queue: Arc<dyn CopyQueue>) -> OwedCopies {
        OwedCopies {
            queue,
            changed: tokio::sync::Notify::new(),
            pull_turns: Mutex::default(),
        }
    }

    /// The durable queue (the copy engine's and the operators' view of it).
    pub fn queue(&self) -> Arc<dyn CopyQueue> {
        self.queue.clone()
    }

    /// A version this cluster may owe a copy of was committed: wake the engine.
    pub fn wake(&self) {
        self.changed.notify_one();
    }

    /// Wait until [`OwedCopies::wake`].
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn turns(&self) -> std::sync::MutexGuard<'_, PullTurns> {
        self.pull_turns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock that puts pulls of one version in line.
    pub fn pull_turn(&self, volser: Volser, version: VersionNumber) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns();
        // Forget the locks nobody holds or waits for, so the map stays as small as the pulls.
        turns.retain(|_, t| Arc::strong_count(t) > 1);
        turns.entry((volser, version)).or_default().clone()
    }

    /// A pull of this version holds its turn now (so the scheduler and the queue leave it be).
    pub fn is_pulling(&self, volser: Volser, version: VersionNumber) -> bool {
        self.turns()
            .get(&(volser, version))
            .is_some_and(|turn| turn.try_lock().is_err())
    }
}
