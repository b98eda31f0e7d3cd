//! What the seed sells, measured on a run (issue 11): RPO per copy mode (what a fault cost, in
//! versions and in seconds of writes, against the backlog the grid reported) and RTO (from the
//! kill of a node to the first acknowledged write of one of its volumes at a survivor: agent
//! takeover when only the node died, the self-fencing lease when its agent died with it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::history::{CopyMode, FaultKind, History, Op};

/// Recovery point of one copy mode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rpo {
    /// Versions the hosts had acknowledged.
    pub acknowledged: u32,
    /// Of those, the ones the grid no longer has (and did not quarantine).
    pub lost_versions: u32,
    /// The longest span of acknowledged writes lost: from a lost version's acknowledgement to
    /// the fault that followed it.
    pub worst_seconds: f64,
}

/// Recovery time after one node kill: to the first acknowledged write of one of its volumes at
/// a survivor, by takeover (the agents', or the lease's when node and agent died together) or,
/// if the cluster came back first, by the usual ownership handover.
#[derive(Clone, Debug, PartialEq)]
pub struct Rto {
    pub fault: u64,
    pub kind: FaultKind,
    pub dead: u8,
    /// The first acknowledged write at a survivor of a volume last written at the dead cluster,
    /// and how long after the kill it was acknowledged; None if no survivor did.
    pub first_write: Option<(u64, u64)>,
    /// How long after the kill the dead cluster was started again, if it was during the run.
    pub back_after_ms: Option<u64>,
}

impl Rto {
    /// The survivor wrote before the dead cluster was back: a takeover, not a handover.
    pub fn by_takeover(&self) -> Option<u64> {
        let (_, ms) = self.first_write?;
        match self.back_after_ms {
            Some(back) if back <= ms => None,
            _ => Some(ms),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measures {
    pub rpo: BTreeMap<CopyMode, Rpo>,
    /// The largest backlog of owed copies the grid reported at a fault.
    pub largest_backlog: usize,
    pub rto: Vec<Rto>,
}

pub fn measures(history: &History, lost: &[Op]) -> Measures {
    let mut rpo: BTreeMap<CopyMode, Rpo> =
        CopyMode::ALL.iter().map(|m| (*m, Rpo::default())).collect();
    for op in history.ops.iter().filter(|o| o.acknowledged_write()) {
        rpo.entry(op.mode.unwrap_or(CopyMode::NoCopy))
            .or_default()
            .acknowledged += 1;
    }
    for op in lost {
        let r = rpo.entry(op.mode.unwrap_or(CopyMode::NoCopy)).or_default();
        r.lost_versions += 1;
        if let Some(fault) = history.fault_after(op.end_ms) {
            let secs = (fault.at_ms - op.end_ms) as f64 / 1000.0;
            r.worst_seconds = r.worst_seconds.max(secs);
        }
    }
    Measures {
        rpo,
        largest_backlog: history
            .faults
            .iter()
            .map(|f| f.backlog.len())
            .max()
            .unwrap_or(0),
        rto: rto(history),
    }
}

fn rto(history: &History) -> Vec<Rto> {
    history
        .faults
        .iter()
        .filter(|f| f.kind.kills_node())
        .filter_map(|f| {
            let dead = *f.clusters.first()?;
            // The volumes the dead cluster surely owned at the kill: their last operation begun
            // before it, of any kind and at any cluster, was a write acknowledged there before the
            // kill. A read or a refused mount elsewhere since may have moved the token, and a
            // survivor writing such a volume later took nothing over.
            let mut last_op: BTreeMap<&str, &Op> = BTreeMap::new();
            for op in history.ops.iter().filter(|o| o.start_ms < f.at_ms) {
                let later = last_op
                    .get(op.volser.as_str())
                    .is_none_or(|prev| (prev.start_ms, prev.id) < (op.start_ms, op.id));
                if later {
                    last_op.insert(&op.volser, op);
                }
            }
            let its: BTreeSet<&str> = last_op
                .into_iter()
                .filter(|(_, o)| o.cluster == dead && o.acknowledged_write() && o.end_ms <= f.at_ms)
                .map(|(v, _)| v)
                .collect();
            let first_write = history
                .ops
                .iter()
                .filter(|o| {
                    o.acknowledged_write()
                        && o.cluster != dead
                        && o.start_ms >= f.at_ms
                        && its.contains(o.volser.as_str())
                })
                .min_by_key(|o| o.end_ms)
                .map(|o| (o.id, o.end_ms - f.at_ms));
            let back_after_ms = history
                .faults
                .iter()
                .find(|r| {
                    r.kind == FaultKind::Restart
                        && r.at_ms > f.at_ms
                        && r.clusters.first() == Some(&dead)
                })
                .map(|r| r.at_ms - f.at_ms);
            Some(Rto {
                fault: f.id,
                kind: f.kind,
                dead,
                first_write,
                back_after_ms,
            })
        })
        .collect()
}

impl fmt::Display for Measures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "RPO        acknowledged   lost   worst (s)")?;
        for (mode, r) in &self.rpo {
            writeln!(
                f,
                "{:<10} {:>12} {:>6} {:>11.1}",
                mode.name(),
                r.acknowledged,
                r.lost_versions,
                r.worst_seconds
            )?;
        }
        writeln!(
            f,
            "largest backlog reported at a fault: {}",
            self.largest_backlog
        )?;
        for r in &self.rto {
            let how = match r.kind {
                FaultKind::KillSite => "node and agent killed",
                _ => "node killed",
            };
            match r.first_write {
                Some((op, ms)) => writeln!(
                    f,
                    "RTO C{} {how}: {:.1} s (operation {op}, {})",
                    r.dead,
                    ms as f64 / 1000.0,
                    if r.by_takeover().is_some() {
                        "taken over"
                    } else {
                        "after its return"
                    }
                )?,
                None => writeln!(f, "RTO C{} {how}: no survivor wrote its volumes", r.dead)?,
            }
        }
        Ok(())
    }
}

/// The measures of several runs (a multi-seed chaos run) as one table: per copy mode the
/// versions acknowledged and lost and the worst loss in seconds of writes; per kind of kill the
/// recovery times of the takeovers (a survivor's first write before the dead cluster was back).
pub fn table(runs: &[Measures]) -> String {
    let mut out = String::from(
        "| copy mode | acknowledged | lost | worst loss (s of writes) |\n|---|---|---|---|\n",
    );
    for mode in CopyMode::ALL {
        let (mut acked, mut lost, mut worst) = (0u32, 0u32, 0f64);
        for r in runs.iter().filter_map(|m| m.rpo.get(&mode)) {
            acked += r.acknowledged;
            lost += r.lost_versions;
            worst = worst.max(r.worst_seconds);
        }
        out += &format!("| {} | {acked} | {lost} | {worst:.1} |\n", mode.name());
    }
    out += "\n| kill | kills | taken over | RTO min / median / max (s) | not taken over (back first) |\n|---|---|---|---|---|\n";
    for (kind, name) in [
        (FaultKind::KillNode, "node (agent takeover)"),
        (FaultKind::KillSite, "node and agent (lease)"),
    ] {
        let all: Vec<&Rto> = runs
            .iter()
            .flat_map(|m| &m.rto)
            .filter(|r| r.kind == kind)
            .collect();
        let mut taken: Vec<u64> = all.iter().filter_map(|r| r.by_takeover()).collect();
        taken.sort_unstable();
        let secs = |ms: u64| ms as f64 / 1000.0;
        let spread = match (taken.first(), taken.get(taken.len() / 2), taken.last()) {
            (Some(a), Some(m), Some(z)) => {
                format!("{:.1} / {:.1} / {:.1}", secs(*a), secs(*m), secs(*z))
            }
            _ => "-".to_string(),
        };
        out += &format!(
            "| {name} | {} | {} | {spread} | {} |\n",
            all.len(),
            taken.len(),
            all.len() - taken.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Fault, Op, OpKind, Outcome};

    fn write(id: u64, cluster: u8, volser: &str, span: (u64, u64)) -> Op {
        Op {
            id,
            kind: OpKind::Write,
            cluster,
            volser: volser.into(),
            mode: Some(CopyMode::Run),
            start_ms: span.0,
            end_ms: span.1,
            outcome: Outcome::Ok,
            version: Some(id),
            digest: Some(format!("d{id}")),
        }
    }

    /// `ops`, then a fault of `kind` at C0 at `at_ms`.
    fn ops_and_a_kill(ops: impl IntoIterator<Item = Op>, at_ms: u64, kind: FaultKind) -> History {
        let fault = Fault {
            id: 10,
            at_ms,
            kind,
            clusters: vec![0],
            backlog: vec![],
        };
        History::from_events(
            ops.into_iter()
                .map(crate::Event::Op)
                .chain([crate::Event::Fault(fault)]),
        )
    }

    #[test]
    fn rto_runs_from_the_kill_to_the_first_survivor_write_of_the_dead_clusters_volume() {
        let h = ops_and_a_kill(
            [
                write(1, 0, "A00001", (0, 100)),
                write(2, 1, "B00001", (0, 100)),
                // At a survivor, but of a volume the dead cluster did not own: not recovery.
                write(3, 1, "B00001", (1_100, 1_200)),
                write(4, 2, "A00001", (5_000, 7_500)),
            ],
            1_000,
            FaultKind::KillNode,
        );
        let m = measures(&h, &[]);
        assert_eq!(m.rto.len(), 1);
        assert_eq!(m.rto[0].first_write, Some((4, 6_500)));
        assert!(m.to_string().contains("RTO C0 node killed: 6.5 s"), "{m}");
        assert_eq!(m.rpo[&CopyMode::Run].acknowledged, 4);
    }

    #[test]
    fn rpo_counts_lost_versions_and_the_span_they_cover() {
        let lost = write(1, 0, "A00001", (0, 500));
        let h = ops_and_a_kill([lost.clone()], 3_000, FaultKind::KillSite);
        let m = measures(&h, &[lost]);
        assert_eq!(m.rpo[&CopyMode::Run].lost_versions, 1);
        assert!((m.rpo[&CopyMode::Run].worst_seconds - 2.5).abs() < 1e-9);
        assert!(
            m.to_string().contains("no survivor wrote its volumes"),
            "{m}"
        );
    }

    /// CI once printed a takeover 0.4 s after a kill with a 6 s lease: the survivor had read the
    /// volume after the dead cluster's last write, so it held the token and took nothing over.
    #[test]
    fn a_volume_touched_elsewhere_after_its_last_write_does_not_time_a_takeover() {
        let mut read = write(2, 1, "A00001", (200, 300));
        read.kind = OpKind::Read;
        read.mode = None;
        read.version = None;
        // Begun at C0 just before the kill, its answer lost: whether C0 held the token is not
        // known, so a survivor's write of it is not timed.
        let mut open = write(4, 0, "A00002", (900, 1_000));
        open.outcome = Outcome::Unknown;
        let h = ops_and_a_kill(
            [
                write(1, 0, "A00001", (0, 100)),
                read,
                write(3, 1, "A00001", (1_100, 1_400)),
                open,
                write(7, 1, "A00002", (1_050, 1_200)),
                write(5, 0, "A00003", (0, 100)),
                write(6, 2, "A00003", (9_000, 9_500)),
            ],
            1_000,
            FaultKind::KillNode,
        );
        let m = measures(&h, &[]);
        assert_eq!(m.rto[0].first_write, Some((6, 8_500)), "{m}");
    }

    /// A survivor's write after the dead cluster was back is a handover, not a takeover: the
    /// table leaves it out of the recovery times and counts it apart.
    #[test]
    fn the_table_counts_only_writes_before_the_return_as_takeovers() {
        let kill = |id, at_ms, kind| Fault {
            id,
            at_ms,
            kind,
            clusters: vec![0],
            backlog: vec![],
        };
        let restart = |id, at_ms| Fault {
            id,
            at_ms,
            kind: FaultKind::Restart,
            clusters: vec![0],
            backlog: vec![],
        };
        let h = History::from_events(
            [
                write(1, 0, "A00001", (0, 100)),
                // Taken over 2 s after the first kill, before C0 is back at 5 s.
                write(2, 1, "A00001", (1_500, 3_000)),
                write(3, 0, "A00002", (6_000, 6_100)),
                // After the second kill C0 is back at 12 s before anyone writes its volume.
                write(4, 2, "A00002", (12_500, 13_000)),
            ]
            .into_iter()
            .map(crate::Event::Op)
            .chain(
                [
                    kill(10, 1_000, FaultKind::KillNode),
                    restart(11, 5_000),
                    kill(12, 7_000, FaultKind::KillNode),
                    restart(13, 12_000),
                ]
                .map(crate::Event::Fault),
            ),
        );
        let m = measures(&h, &[]);
        assert_eq!(m.rto[0].by_takeover(), Some(2_000));
        assert_eq!(m.rto[1].by_takeover(), None);
        assert!(
            m.to_string()
                .contains("6.0 s (operation 4, after its return)"),
            "{m}"
        );
        let table = table(&[m]);
        assert!(
            table.contains("| node (agent takeover) | 2 | 1 | 2.0 / 2.0 / 2.0 | 1 |"),
            "{table}"
        );
        assert!(table.contains("| RUN | 4 | 0 | 0.0 |"), "{table}");
    }
}
