//! The seeded, bounded fault schedule of a chaos run (issue 11 item 2): what the runner does to
//! the grid's processes and paths, and when. Pure: the same seed and [`Limits`] give the same
//! schedule, so a failing run replays.
//!
//! Every fault is undone within the schedule (a kill by a restart, a SIGSTOP by a SIGCONT, a cut
//! by a heal), at most one cluster is out at a time (killed, stopped or isolated: the majority
//! stays, so takeover has a side to happen on), and the schedule ends healed. Path faults need
//! network namespaces (the runner is root); without them the schedule holds process faults only.
//! A node stopped longer than its agent's `fence_after` is killed by the agent (T21): its `Cont`
//! then finds no process, and the runner restarts it instead.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::FaultKind;

/// What a schedule may do.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Data clusters of the grid (ids 0..clusters).
    pub clusters: u8,
    /// How long the faults run; the last one is undone by then.
    pub span: Duration,
    /// At most this many faults (each counted with its undoing).
    pub max_faults: usize,
    /// Path faults possible (network namespaces, root).
    pub paths: bool,
    /// A data dir that can be filled (a small filesystem per cluster).
    pub disk: bool,
    /// How long a dead cluster stays down at most: past the takeover grace period, so
    /// survivors take its volumes over.
    pub max_down: Duration,
}

/// One action of the schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub kind: FaultKind,
    pub clusters: Vec<u8>,
}

/// Draw the schedule of `seed`.
pub fn schedule(seed: u64, limits: Limits) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut t = Duration::from_secs(rng.random_range(5..15));
    let mut faults = 0;
    let n = limits.clusters.max(1);
    while faults < limits.max_faults {
        let c = rng.random_range(0..n);
        let other = (c + rng.random_range(1..n.max(2))) % n;
        let hold = Duration::from_millis(
            rng.random_range(2_000..=limits.max_down.as_millis().max(2_001) as u64),
        );
        let (fault, undo, clusters): (FaultKind, FaultKind, Vec<u8>) = match rng.random_range(0..10)
        {
            0..=1 => (FaultKind::KillNode, FaultKind::Restart, vec![c]),
            2 => (FaultKind::KillSite, FaultKind::Restart, vec![c]),
            3 => (FaultKind::KillAgent, FaultKind::Restart, vec![c]),
            4 => (FaultKind::Stop, FaultKind::Cont, vec![c]),
            5 if limits.paths && n > 1 => (FaultKind::Cut, FaultKind::Heal, vec![c, other]),
            6 if limits.paths && n > 1 => (FaultKind::CutOneWay, FaultKind::Heal, vec![c, other]),
            7 if limits.paths && n > 1 => {
                (FaultKind::HeartbeatCut, FaultKind::Heal, vec![c, other])
            }
            8 if limits.paths => (FaultKind::Isolate, FaultKind::Heal, vec![c]),
            9 if limits.disk => (FaultKind::DiskFull, FaultKind::Heal, vec![c]),
            _ => (FaultKind::KillNode, FaultKind::Restart, vec![c]),
        };
        let end = t + hold;
        if end > limits.span {
            break;
        }
        steps.push(Step {
            at: t,
            kind: fault,
            clusters: clusters.clone(),
        });
        steps.push(Step {
            at: end,
            kind: undo,
            clusters,
        });
        faults += 1;
        // The next fault after this one is undone and the grid had a moment to settle.
        t = end + Duration::from_secs(rng.random_range(3..10));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(paths: bool) -> Limits {
        Limits {
            clusters: 3,
            span: Duration::from_secs(600),
            max_faults: 40,
            paths,
            disk: paths,
            max_down: Duration::from_secs(30),
        }
    }

    #[test]
    fn a_schedule_depends_only_on_its_seed() {
        assert_eq!(schedule(7, limits(true)), schedule(7, limits(true)));
        assert_ne!(schedule(7, limits(true)), schedule(8, limits(true)));
    }

    #[test]
    fn every_fault_is_undone_in_time_with_one_cluster_out_at_most() {
        for seed in 0..200 {
            let l = limits(seed % 2 == 0);
            let steps = schedule(seed, l);
            assert!(!steps.is_empty(), "seed {seed}: no fault");
            assert!(steps.len() / 2 <= l.max_faults);
            for pair in steps.chunks(2) {
                let [fault, undo] = pair else {
                    panic!("seed {seed}: a fault without its undoing: {pair:?}");
                };
                assert_eq!(fault.clusters, undo.clusters);
                assert!(
                    undo.at > fault.at && undo.at <= l.span,
                    "seed {seed}: {pair:?}"
                );
                let expected = match fault.kind {
                    FaultKind::KillNode | FaultKind::KillSite | FaultKind::KillAgent => {
                        FaultKind::Restart
                    }
                    FaultKind::Stop => FaultKind::Cont,
                    _ => FaultKind::Heal,
                };
                assert_eq!(undo.kind, expected, "seed {seed}");
            }
            // One at a time: each fault starts after the previous one was undone.
            for w in steps.windows(2) {
                assert!(w[0].at < w[1].at, "seed {seed}: {w:?}");
            }
        }
    }

    #[test]
    fn without_namespaces_only_processes_are_broken() {
        for seed in 0..100 {
            for step in schedule(seed, limits(false)) {
                assert!(
                    matches!(
                        step.kind,
                        FaultKind::KillNode
                            | FaultKind::KillSite
                            | FaultKind::KillAgent
                            | FaultKind::Stop
                            | FaultKind::Restart
                            | FaultKind::Cont
                    ),
                    "seed {seed}: {step:?}"
                );
            }
        }
    }

    #[test]
    fn schedules_reach_every_kind_of_fault() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..50 {
            for step in schedule(seed, limits(true)) {
                seen.insert(format!("{:?}", step.kind));
            }
        }
        assert_eq!(seen.len(), 12, "{seen:?}");
    }
}
