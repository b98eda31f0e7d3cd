//! Which of a peer's grid links to use (B7, scenario 3; B60).
//!
//! A cluster may list more than one grid address (`grid` plus `grid_links` in the grid file), one
//! per physical link. Every grid call to a peer takes the links in this order: those that have not
//! failed recently first, the primary before the others, so a failed link costs one failed call
//! and the retry (the job resubmitted, the next copy attempt, the next Raft heartbeat) goes over
//! another link. A call already under way on a link that fails still fails: its bytes were on that
//! link (B7: "the job using L1 fails").

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use vtgrid_core::ClusterId;

use crate::cluster::Cluster;

/// How long a link that failed a call goes to the back of the order.
const SHUNNED_FOR: Duration = Duration::from_secs(10);

/// When each grid address last failed a call from this cluster.
#[derive(Default)]
pub struct PathHealth {
    failed: Mutex<BTreeMap<String, Instant>>,
}

impl PathHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Instant>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `paths` reordered: the ones not failed in the last [`SHUNNED_FOR`] first, in their given
    /// order, then the others, longest-ago failure first.
    pub fn order(&self, paths: Vec<String>) -> Vec<String> {
        self.order_at(paths, Instant::now())
    }

    fn order_at(&self, paths: Vec<String>, now: Instant) -> Vec<String> {
        let failed = self.lock();
        let recent = |p: &String| {
            failed
                .get(p)
                .filter(|at| now.duration_since(**at) < SHUNNED_FOR)
                .copied()
        };
        let (mut bad, good): (Vec<String>, Vec<String>) =
            paths.into_iter().partition(|p| recent(p).is_some());
        bad.sort_by_key(|p| recent(p));
        good.into_iter().chain(bad).collect()
    }

    pub fn failed(&self, path: &str) {
        self.failed_at(path, Instant::now());
    }

    fn failed_at(&self, path: &str, at: Instant) {
        self.lock().insert(path.to_string(), at);
    }

    pub fn worked(&self, path: &str) {
        self.lock().remove(path);
    }
}

impl Cluster {
    /// The grid addresses of `peer`, in the order calls should try them.
    pub fn paths_to(&self, peer: ClusterId) -> Vec<String> {
        self.path_health.order(self.grid.grid_paths(peer.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b7_a_failed_link_goes_last_until_it_has_rested() {
        let h = PathHealth::default();
        let t0 = Instant::now();
        let paths = || vec!["a:1".to_string(), "b:1".to_string(), "c:1".to_string()];
        assert_eq!(
            h.order_at(paths(), t0),
            paths(),
            "primary first when all are well"
        );
        h.failed_at("a:1", t0);
        let t1 = t0 + Duration::from_secs(1);
        h.failed_at("b:1", t1);
        assert_eq!(h.order_at(paths(), t1), ["c:1", "a:1", "b:1"]);
        h.worked("a:1");
        assert_eq!(h.order_at(paths(), t1), ["a:1", "c:1", "b:1"]);
        assert_eq!(
            h.order_at(paths(), t1 + SHUNNED_FOR),
            paths(),
            "forgiven after a rest"
        );
    }
}
