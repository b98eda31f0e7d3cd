//! Copy consistency: which clusters owe a copy of a version, and in which order copies are made
//! (DESIGN §4; B36-B45). Pure rules; the copy engine in the node acts on them.
//!
//! A version's copy-mode vector is the management class *as defined on the cluster that wrote it*
//! (B36), recorded with the version, so every cluster can work out its own duty from the catalog
//! alone:
//!
//! ```text
//!   vector on the writer   R (RUN)           D (Deferred)   S (Sync)                  N
//!   duty of cluster j      immediate copy    deferred copy  duplexed while written;   none
//!                          before unload;    after unload   sync-deferred if missed
//!                          immediate-deferred
//!                          if it was missed
//! ```
//!
//! ```
//! use vtgrid_core::copy::{copy_plan, CopyPriority};
//! use vtgrid_core::{ClusterId, CopyModeVector};
//! let c = |n| ClusterId::new(n).unwrap();
//! let v: CopyModeVector = "RRD".parse().unwrap();
//! let plan = copy_plan(&v, c(0), [c(0), c(1), c(2)]);
//! assert_eq!(plan.run, vec![c(1)]);       // C0 wrote it; C1 must have it before unload returns
//! assert_eq!(plan.deferred, vec![c(2)]);  // C2 gets it afterwards
//! assert!(CopyPriority::Immediate < CopyPriority::Deferred); // pulled first
//! ```

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterId;
use crate::copy_mode::{CopyMode, CopyModeVector};
use crate::volume::VolumeRecord;

/// The order a cluster pulls its queued copies in: `Immediate` first (DESIGN §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CopyPriority {
    /// A RUN copy the writer is waiting for.
    Immediate,
    /// A Sync copy that could not be duplexed while the host wrote.
    SyncDeferred,
    /// A RUN copy that could not be made before unload (its target was unreachable, B39).
    ImmediateDeferred,
    /// A Deferred copy.
    Deferred,
}

/// Who owes a copy of a new version, seen from the cluster that wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyPlan {
    /// RUN clusters other than the writer: unload waits for them (those reachable).
    pub run: Vec<ClusterId>,
    /// Sync clusters other than the writer: duplexed while the host writes.
    pub sync: Vec<ClusterId>,
    /// Deferred clusters other than the writer.
    pub deferred: Vec<ClusterId>,
}

/// The copies `vector` asks for when `writer` closes a version, among `clusters`.
pub fn copy_plan(
    vector: &CopyModeVector,
    writer: ClusterId,
    clusters: impl IntoIterator<Item = ClusterId>,
) -> CopyPlan {
    let mut plan = CopyPlan::default();
    for c in clusters.into_iter().filter(|c| *c != writer) {
        match vector.mode_for(c) {
            CopyMode::Run => plan.run.push(c),
            CopyMode::Sync => plan.sync.push(c),
            CopyMode::Deferred => plan.deferred.push(c),
            CopyMode::NoCopy => {}
        }
    }
    plan
}

/// What `cluster` still owes for the record's current version, if anything, as a queued copy.
/// A RUN copy found this way was missed at unload, so it is immediate-deferred; a missed Sync copy
/// is sync-deferred.
pub fn copy_duty(record: &VolumeRecord, cluster: ClusterId) -> Option<CopyPriority> {
    if record.version == 0 || record.consistent_at.get(&cluster) == Some(&record.version) {
        return None;
    }
    match record.copy_modes.as_ref()?.mode_for(cluster) {
        CopyMode::Run => Some(CopyPriority::ImmediateDeferred),
        CopyMode::Sync => Some(CopyPriority::SyncDeferred),
        CopyMode::Deferred => Some(CopyPriority::Deferred),
        CopyMode::NoCopy => None,
    }
}

/// Pacing of queued copies (the per-cluster copy throttle, DESIGN §4): with `bytes_per_sec`
/// allowed, a transfer of `bytes` that may start at `now` (seconds on any monotonic clock) starts at
/// `max(now, free_at)`, and the link is next free `bytes / bytes_per_sec` later. Returns
/// `(wait, next free_at)`. A rate of 0 means unthrottled.
///
/// ```
/// use vtgrid_core::copy::pace;
/// let (wait, free) = pace(1_000_000, 500_000, 10.0, 0.0);
/// assert_eq!((wait, free), (0.0, 10.5));          // idle link: go now; busy for half a second
/// let (wait, free) = pace(1_000_000, 500_000, 10.1, free);
/// assert!((wait - 0.4).abs() < 1e-9 && (free - 11.0).abs() < 1e-9); // wait for the first to pass
/// ```
pub fn pace(bytes_per_sec: u64, bytes: u64, now: f64, free_at: f64) -> (f64, f64) {
    if bytes_per_sec == 0 {
        return (0.0, now);
    }
    let start = now.max(free_at);
    (start - now, start + bytes as f64 / bytes_per_sec as f64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Category, Constructs, Digest, Epoch, OwnershipToken};

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn record(vector: Option<&str>, consistent: &[(u8, u64)]) -> VolumeRecord {
        VolumeRecord {
            volser: "A00001".parse().unwrap(),
            token: OwnershipToken {
                owner: c(0),
                epoch: Epoch(1),
            },
            category: Category(0xF),
            constructs: Constructs::default(),
            version: 2,
            size: 1,
            digest: Digest::EMPTY,
            consistent_at: consistent
                .iter()
                .map(|(k, v)| (c(*k), *v))
                .collect::<BTreeMap<_, _>>(),
            copy_modes: vector.map(|v| v.parse().unwrap()),
            taken_from: None,
        }
    }

    #[test]
    fn b36_plan_uses_the_writers_vector_and_skips_the_writer() {
        let v: CopyModeVector = "RNDN".parse().unwrap();
        let plan = copy_plan(&v, c(1), (0..4).map(c));
        assert_eq!(plan.run, vec![c(0)]);
        assert_eq!(plan.deferred, vec![c(2)]);
        assert!(plan.sync.is_empty());
        let s: CopyModeVector = "SSD".parse().unwrap();
        assert_eq!(copy_plan(&s, c(0), (0..3).map(c)).sync, vec![c(1)]);
    }

    #[test]
    fn priorities_order_run_before_sync_deferred_before_immediate_deferred_before_deferred() {
        let mut p = vec![
            CopyPriority::Deferred,
            CopyPriority::ImmediateDeferred,
            CopyPriority::Immediate,
            CopyPriority::SyncDeferred,
        ];
        p.sort();
        assert_eq!(
            p,
            [
                CopyPriority::Immediate,
                CopyPriority::SyncDeferred,
                CopyPriority::ImmediateDeferred,
                CopyPriority::Deferred
            ]
        );
    }

    #[test]
    fn b39_missed_run_copy_is_immediate_deferred_and_done_copies_owe_nothing() {
        let r = record(Some("RRDN"), &[(0, 2), (1, 1)]);
        assert_eq!(
            copy_duty(&r, c(1)),
            Some(CopyPriority::ImmediateDeferred),
            "C1 holds only version 1"
        );
        assert_eq!(copy_duty(&r, c(2)), Some(CopyPriority::Deferred));
        assert_eq!(copy_duty(&r, c(3)), None, "No Copy");
        assert_eq!(copy_duty(&r, c(0)), None, "already consistent");
        assert_eq!(
            copy_duty(&record(None, &[(0, 2)]), c(1)),
            None,
            "no class, no copies"
        );
    }
}
