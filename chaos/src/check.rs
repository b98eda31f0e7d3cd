//! The rules a chaos run is held to (issue 11), over its [`History`] and [`FinalState`]:
//!
//! - **catalogs identical** after the heal, at every cluster;
//! - **one writer**: no two acknowledged writes of one volume at two clusters overlap in time,
//!   unless a takeover fenced one of them (its version is in its writer's quarantine) or the
//!   later one wrote on top of the other (a higher version: its mount waited for the first);
//! - **kept**: every acknowledged version is the catalog's, or an older one the grid moved on
//!   from; one that is not was lost: never for RUN, Sync or No Copy (kill -9 loses nothing
//!   fsynced; a takeover quarantines, it does not delete); for Deferred only if the grid reported
//!   it in its backlog when a fault struck after the acknowledgement;
//! - **copies verified**: every copy of a volume's current version has the catalog's digest;
//! - **reads return written bytes**: a read's digest is one a host wrote to that volume.
//!
//! Two acknowledged writes of the same version with different bytes (a fork) keep at most one:
//! the one the catalog holds if that is the version, else the later one (the grid went on from
//! it); the other was lost.

use std::collections::BTreeMap;
use std::fmt;

use crate::history::{CopyMode, History, Op, OpKind, Outcome};
use crate::measure::{self, Measures};
use crate::state::FinalState;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    CatalogsDiffer {
        a: u8,
        b: u8,
        volser: String,
    },
    TwoWriters {
        first: u64,
        second: u64,
        volser: String,
    },
    Lost {
        op: u64,
        volser: String,
        version: u64,
        mode: CopyMode,
        why: String,
    },
    CopyMismatch {
        cluster: u8,
        volser: String,
        version: u64,
    },
    ReadUnwritten {
        op: u64,
        volser: String,
        version: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::CatalogsDiffer { a, b, volser } => {
                write!(f, "catalogs of C{a} and C{b} differ after the heal, first at {volser}")
            }
            Violation::TwoWriters { first, second, volser } => write!(
                f,
                "{volser} written at two clusters at once: operations {first} and {second}"
            ),
            Violation::Lost { op, volser, version, mode, why } => write!(
                f,
                "{volser} version {version} ({}) acknowledged by operation {op} is lost: {why}",
                mode.name()
            ),
            Violation::CopyMismatch { cluster, volser, version } => write!(
                f,
                "C{cluster}'s copy of {volser} version {version} does not match the catalog's digest"
            ),
            Violation::ReadUnwritten { op, volser, version } => write!(
                f,
                "operation {op} read {volser} version {version} with bytes no host wrote"
            ),
        }
    }
}

/// What the checker found: every violation, and the run's measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub measures: Measures,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            writeln!(f, "checker: no violation")?;
        } else {
            writeln!(f, "checker: {} violation(s)", self.violations.len())?;
            for v in &self.violations {
                writeln!(f, "  VIOLATION {v}")?;
            }
        }
        write!(f, "{}", self.measures)
    }
}

/// Judge a run.
pub fn check(history: &History, state: &FinalState) -> Report {
    let mut violations = catalogs_identical(state);
    violations.extend(one_writer(history, state));
    let (lost, kept_violations) = kept(history, state);
    violations.extend(kept_violations);
    violations.extend(copies_verified(state));
    violations.extend(reads_return_written(history));
    Report {
        violations,
        measures: measure::measures(history, &lost),
    }
}

fn catalogs_identical(state: &FinalState) -> Vec<Violation> {
    let Some((first, rest)) = state.clusters.split_first() else {
        return vec![];
    };
    let sorted = |c: &crate::state::ClusterState| {
        let mut v = c.catalog.clone();
        v.sort_by(|a, b| a.volser.cmp(&b.volser));
        v
    };
    let base = sorted(first);
    rest.iter()
        .filter_map(|other| {
            let theirs = sorted(other);
            let differs = base
                .iter()
                .zip(&theirs)
                .find(|(a, b)| a != b)
                .map(|(a, _)| a.volser.clone())
                .or_else(|| {
                    (base.len() != theirs.len()).then(|| {
                        let longer = if base.len() > theirs.len() {
                            &base
                        } else {
                            &theirs
                        };
                        longer[base.len().min(theirs.len())].volser.clone()
                    })
                })?;
            Some(Violation::CatalogsDiffer {
                a: first.id,
                b: other.id,
                volser: differs,
            })
        })
        .collect()
}

/// A takeover fenced this write: its version sits in its writer's quarantine.
fn fenced(op: &Op, state: &FinalState) -> bool {
    let (Some(version), digest) = (op.version, op.digest.as_deref()) else {
        return false;
    };
    state
        .cluster(op.cluster)
        .is_some_and(|c| c.quarantines(&op.volser, version, digest))
}

/// Acknowledged writes not fenced by a takeover, by volume, in start order.
fn acknowledged(history: &History, state: &FinalState) -> BTreeMap<String, Vec<Op>> {
    let mut by_volume: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for op in history
        .ops
        .iter()
        .filter(|op| op.acknowledged_write() && !fenced(op, state))
    {
        by_volume
            .entry(op.volser.clone())
            .or_default()
            .push(op.clone());
    }
    by_volume
}

fn one_writer(history: &History, state: &FinalState) -> Vec<Violation> {
    let mut found = Vec::new();
    for (volser, ops) in acknowledged(history, state) {
        for (i, a) in ops.iter().enumerate() {
            for b in &ops[i + 1..] {
                if a.cluster != b.cluster && a.concurrent_with(b) && !serial(a, b) {
                    found.push(Violation::TwoWriters {
                        first: a.id,
                        second: b.id,
                        volser: volser.clone(),
                    });
                }
            }
        }
    }
    found
}

/// Two overlapping operations were still one job after the other when the one that ended later
/// wrote the higher version: the host's interval of a write holds its mount, which waits while
/// the owner's job ends and the token moves (chaos seed 0: a write at C0 began 2 ms before the
/// host heard C1's unload of the version it then wrote over), and a job can only write on top of
/// a version the catalog had once the job before it committed. Two writers at once write the
/// same version number, or the later one a lower one.
fn serial(a: &Op, b: &Op) -> bool {
    let (first, second) = if (a.end_ms, a.id) <= (b.end_ms, b.id) {
        (a, b)
    } else {
        (b, a)
    };
    second.version > first.version
}

/// Every acknowledged version the grid no longer has (with its mode), and the violations among
/// them.
fn kept(history: &History, state: &FinalState) -> (Vec<Op>, Vec<Violation>) {
    let mut lost = Vec::new();
    let mut violations = Vec::new();
    for (volser, ops) in acknowledged(history, state) {
        let (final_version, final_digest) = state
            .volume(&volser)
            .map_or((0, None), |v| (v.version, v.digest.clone()));
        let mut by_version: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
        for op in &ops {
            by_version
                .entry(op.version.unwrap_or(0))
                .or_default()
                .push(op);
        }
        for (version, writes) in by_version {
            let winner: Option<String> = if version == final_version {
                final_digest.clone()
            } else if version < final_version {
                writes
                    .iter()
                    .max_by_key(|o| (o.end_ms, o.id))
                    .and_then(|o| o.digest.clone())
            } else {
                None
            };
            for op in writes {
                if winner.is_some() && op.digest == winner {
                    continue;
                }
                let why = if version > final_version {
                    format!("the catalog is at version {final_version}")
                } else {
                    "the grid kept other bytes for that version".to_string()
                };
                let mode = op.mode.unwrap_or(CopyMode::NoCopy);
                let excused = mode == CopyMode::Deferred
                    && history.faults.iter().any(|f| {
                        f.at_ms >= op.end_ms
                            && f.backlog
                                .iter()
                                .any(|o| o.volser == volser && o.version == version)
                    });
                if !excused {
                    violations.push(Violation::Lost {
                        op: op.id,
                        volser: volser.clone(),
                        version,
                        mode,
                        why,
                    });
                }
                lost.push(op.clone());
            }
        }
    }
    (lost, violations)
}

fn copies_verified(state: &FinalState) -> Vec<Violation> {
    let mut found = Vec::new();
    for cluster in &state.clusters {
        for copy in &cluster.copies {
            let Some(volume) = state.volume(&copy.volser) else {
                continue;
            };
            if copy.version == volume.version
                && volume.digest.as_deref() != Some(copy.digest.as_str())
            {
                found.push(Violation::CopyMismatch {
                    cluster: cluster.id,
                    volser: copy.volser.clone(),
                    version: copy.version,
                });
            }
        }
    }
    found
}

/// Every read returns bytes a host wrote at that version. An append's digest is the node's (it
/// covers bytes the host did not keep), so an append whose answer was lost has none: a version
/// that only such an append can have made is accepted when every read of it agrees on one digest
/// and no acknowledged write claims that version.
fn reads_return_written(history: &History) -> Vec<Violation> {
    let reads = || {
        history
            .ops
            .iter()
            .filter(|op| op.kind == OpKind::Read && op.outcome == Outcome::Ok)
    };
    let unmatched = |read: &Op| -> Option<(u64, String)> {
        let version = read.version?;
        let digest = read.digest.as_deref()?;
        if version == 0 {
            return None;
        }
        let written = history.ops.iter().any(|w| {
            w.kind.writes()
                && w.volser == read.volser
                && w.digest.as_deref() == Some(digest)
                && match w.outcome {
                    Outcome::Ok => w.version == Some(version),
                    Outcome::Unknown => true,
                    Outcome::Failed { .. } => false,
                }
        });
        (!written).then(|| (version, digest.to_string()))
    };
    let lost_append_made = |read: &Op, version: u64| {
        let lost_append = history.ops.iter().any(|w| {
            w.kind == OpKind::Append
                && w.volser == read.volser
                && w.outcome == Outcome::Unknown
                && w.digest.is_none()
                && w.start_ms <= read.end_ms
        });
        let acknowledged = history.ops.iter().any(|w| {
            w.kind.writes()
                && w.volser == read.volser
                && w.outcome == Outcome::Ok
                && w.version == Some(version)
        });
        let digests: std::collections::BTreeSet<Option<&str>> = reads()
            .filter(|r| r.volser == read.volser && r.version == Some(version))
            .map(|r| r.digest.as_deref())
            .collect();
        lost_append && !acknowledged && digests.len() == 1
    };
    reads()
        .filter_map(|read| {
            let (version, _) = unmatched(read)?;
            (!lost_append_made(read, version)).then(|| Violation::ReadUnwritten {
                op: read.id,
                volser: read.volser.clone(),
                version,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Fault, FaultKind, Owed};
    use crate::state::{ClusterState, CopyState, Quarantined, VolumeState};

    fn write(
        id: u64,
        cluster: u8,
        volser: &str,
        mode: CopyMode,
        span: (u64, u64),
        version: u64,
        digest: &str,
    ) -> Op {
        Op {
            id,
            kind: OpKind::Write,
            cluster,
            volser: volser.into(),
            mode: Some(mode),
            start_ms: span.0,
            end_ms: span.1,
            outcome: Outcome::Ok,
            version: Some(version),
            digest: Some(digest.into()),
        }
    }

    fn volume(volser: &str, version: u64, digest: &str, owner: u8) -> VolumeState {
        VolumeState {
            volser: volser.into(),
            version,
            digest: Some(digest.into()),
            owner,
            epoch: 1,
            taken_from: None,
        }
    }

    /// Three clusters with the same catalog.
    fn grid(catalog: Vec<VolumeState>) -> FinalState {
        FinalState {
            clusters: (0..3)
                .map(|id| ClusterState {
                    id,
                    catalog: catalog.clone(),
                    copies: vec![],
                    quarantine: vec![],
                })
                .collect(),
        }
    }

    fn history(ops: Vec<Op>, faults: Vec<Fault>) -> History {
        History::from_events(
            ops.into_iter()
                .map(crate::Event::Op)
                .chain(faults.into_iter().map(crate::Event::Fault)),
        )
    }

    fn kill(id: u64, at_ms: u64, cluster: u8, backlog: Vec<Owed>) -> Fault {
        Fault {
            id,
            at_ms,
            kind: FaultKind::KillNode,
            clusters: vec![cluster],
            backlog,
        }
    }

    fn op(id: u64, kind: OpKind, volser: &str, span: (u64, u64), outcome: Outcome) -> Op {
        Op {
            id,
            kind,
            cluster: 0,
            volser: volser.into(),
            mode: Some(CopyMode::Sync),
            start_ms: span.0,
            end_ms: span.1,
            outcome,
            version: None,
            digest: None,
        }
    }

    fn read(id: u64, volser: &str, span: (u64, u64), version: u64, digest: &str) -> Op {
        Op {
            version: Some(version),
            digest: Some(digest.into()),
            mode: None,
            ..op(id, OpKind::Read, volser, span, Outcome::Ok)
        }
    }

    #[test]
    fn a_read_of_what_only_a_lost_append_made_passes_if_reads_agree_and_nothing_claims_it() {
        let base = write(1, 0, "A00001", CopyMode::Sync, (0, 10), 1, "d1");
        let lost = op(2, OpKind::Append, "A00001", (20, 30), Outcome::Unknown);
        let state = grid(vec![volume("A00001", 2, "d2", 0)]);
        let agree = history(
            vec![
                base.clone(),
                lost.clone(),
                read(3, "A00001", (40, 50), 2, "d2"),
                read(4, "A00001", (60, 70), 2, "d2"),
            ],
            vec![],
        );
        assert!(check(&agree, &state).passed());
        // Two different contents for the one version: one of them no host wrote.
        let differ = history(
            vec![
                base.clone(),
                lost.clone(),
                read(3, "A00001", (40, 50), 2, "d2"),
                read(4, "A00001", (60, 70), 2, "dX"),
            ],
            vec![],
        );
        let report = check(&differ, &state);
        assert!(
            report
                .violations
                .iter()
                .any(|v| matches!(v, Violation::ReadUnwritten { op: 4, .. })),
            "{report}"
        );
        // Without the lost append, an unknown digest is a violation as before.
        let none = history(vec![base, read(3, "A00001", (40, 50), 2, "d2")], vec![]);
        let report = check(&none, &state);
        assert!(
            report.violations.contains(&Violation::ReadUnwritten {
                op: 3,
                volser: "A00001".into(),
                version: 2
            }),
            "{report}"
        );
    }

    #[test]
    fn a_clean_run_passes() {
        let h = history(
            vec![
                write(1, 0, "A00001", CopyMode::Run, (0, 10), 1, "d1"),
                write(2, 1, "A00001", CopyMode::Run, (20, 30), 2, "d2"),
            ],
            vec![],
        );
        let report = check(&h, &grid(vec![volume("A00001", 2, "d2", 1)]));
        assert!(report.passed(), "{report}");
    }

    #[test]
    fn catalogs_that_differ_after_the_heal_fail() {
        let mut state = grid(vec![volume("A00001", 1, "d1", 0)]);
        state.clusters[2].catalog[0].epoch = 2;
        let report = check(&history(vec![], vec![]), &state);
        assert_eq!(
            report.violations,
            vec![Violation::CatalogsDiffer {
                a: 0,
                b: 2,
                volser: "A00001".into()
            }]
        );
    }

    #[test]
    fn two_overlapping_writes_at_two_clusters_fail_unless_a_takeover_fenced_one() {
        let ops = vec![
            write(1, 0, "A00001", CopyMode::NoCopy, (0, 50), 2, "x"),
            write(2, 1, "A00001", CopyMode::Run, (10, 40), 2, "y"),
        ];
        let h = history(ops, vec![]);
        let state = grid(vec![volume("A00001", 2, "y", 1)]);
        let report = check(&h, &state);
        assert!(
            report.violations.contains(&Violation::TwoWriters {
                first: 1,
                second: 2,
                volser: "A00001".into()
            }),
            "{report}"
        );
        // One after the other: the later one wrote on top of the first (its mount waited for
        // the first job to end, so the host's intervals overlap).
        let serial = history(
            vec![
                write(1, 0, "A00001", CopyMode::NoCopy, (0, 50), 2, "x"),
                write(2, 1, "A00001", CopyMode::Run, (45, 90), 3, "y"),
            ],
            vec![],
        );
        let report = check(&serial, &grid(vec![volume("A00001", 3, "y", 1)]));
        assert!(report.passed(), "{report}");
        // The same, with op 1's version in C0's quarantine: a takeover fenced it (B134).
        let mut fenced = state.clone();
        fenced.clusters[0].quarantine.push(Quarantined {
            volser: "A00001".into(),
            version: 2,
            digest: "x".into(),
        });
        let report = check(&h, &fenced);
        assert!(report.passed(), "{report}");
    }

    #[test]
    fn a_run_or_sync_version_the_catalog_lacks_is_lost() {
        for mode in [CopyMode::Run, CopyMode::Sync, CopyMode::NoCopy] {
            let h = history(vec![write(7, 0, "A00001", mode, (0, 10), 3, "d3")], vec![]);
            let report = check(&h, &grid(vec![volume("A00001", 2, "d2", 0)]));
            assert!(
                matches!(
                    &report.violations[..],
                    [Violation::Lost {
                        op: 7,
                        version: 3,
                        ..
                    }]
                ),
                "{mode:?}: {report}"
            );
            assert!(report.to_string().contains("operation 7"), "{report}");
        }
    }

    /// A fork: the survivor wrote version 3 again over a base that lacked the dead cluster's
    /// version 3, and went on to 4; the catalog's newer version does not hide the loss.
    #[test]
    fn a_version_written_twice_with_different_bytes_keeps_only_one() {
        let h = history(
            vec![
                write(1, 0, "A00001", CopyMode::Run, (0, 10), 3, "mine"),
                write(2, 1, "A00001", CopyMode::Run, (100, 110), 3, "theirs"),
                write(3, 1, "A00001", CopyMode::Run, (120, 130), 4, "four"),
            ],
            vec![kill(9, 20, 0, vec![])],
        );
        let report = check(&h, &grid(vec![volume("A00001", 4, "four", 1)]));
        assert_eq!(report.violations.len(), 1, "{report}");
        assert!(matches!(
            report.violations[0],
            Violation::Lost {
                op: 1,
                version: 3,
                ..
            }
        ));
    }

    #[test]
    fn a_deferred_version_may_be_lost_only_if_the_backlog_named_it() {
        let op = write(4, 0, "A00001", CopyMode::Deferred, (0, 10), 2, "d2");
        let state = grid(vec![volume("A00001", 1, "d1", 0)]);
        let unreported = history(vec![op.clone()], vec![kill(9, 20, 0, vec![])]);
        assert!(!check(&unreported, &state).passed());
        let owed = Owed {
            volser: "A00001".into(),
            version: 2,
        };
        let reported = history(vec![op.clone()], vec![kill(9, 20, 0, vec![owed.clone()])]);
        let report = check(&reported, &state);
        assert!(report.passed(), "{report}");
        assert_eq!(report.measures.rpo[&CopyMode::Deferred].lost_versions, 1);
        // A backlog reported before the acknowledgement excuses nothing.
        let early = history(vec![op], vec![kill(9, 5, 0, vec![owed])]);
        assert!(!check(&early, &state).passed());
    }

    #[test]
    fn a_copy_of_the_current_version_with_other_bytes_fails() {
        let mut state = grid(vec![volume("A00001", 2, "d2", 0)]);
        state.clusters[1].copies.push(CopyState {
            volser: "A00001".into(),
            version: 2,
            digest: "bad".into(),
        });
        // An older version's copy is not judged (retention may keep it).
        state.clusters[2].copies.push(CopyState {
            volser: "A00001".into(),
            version: 1,
            digest: "d1".into(),
        });
        let report = check(&history(vec![], vec![]), &state);
        assert_eq!(
            report.violations,
            vec![Violation::CopyMismatch {
                cluster: 1,
                volser: "A00001".into(),
                version: 2
            }]
        );
    }

    #[test]
    fn a_read_of_bytes_no_host_wrote_fails() {
        let mut read = write(5, 2, "A00001", CopyMode::Run, (20, 30), 1, "d1");
        read.kind = OpKind::Read;
        read.mode = None;
        let w = write(1, 0, "A00001", CopyMode::Run, (0, 10), 1, "d1");
        let state = grid(vec![volume("A00001", 1, "d1", 0)]);
        assert!(check(&history(vec![w.clone(), read.clone()], vec![]), &state).passed());
        read.digest = Some("garbage".into());
        let report = check(&history(vec![w, read], vec![]), &state);
        assert_eq!(
            report.violations,
            vec![Violation::ReadUnwritten {
                op: 5,
                volser: "A00001".into(),
                version: 1
            }]
        );
    }
}
