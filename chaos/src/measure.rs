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
            // The volumes the dead cluster wrote last before the kill: it owned them.
            let mut last_writer: BTreeMap<&str, u8> = BTreeMap::new();
            for op in history
                .ops
                .iter()
                .filter(|o| o.acknowledged_write() && o.end_ms <= f.at_ms)
            {
                last_writer.insert(&op.volser, op.cluster);
            }
            let its: BTreeSet<&str> = last_writer
                .into_iter()
                .filter(|(_, c)| *c == dead)
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
            Some(Rto {
                fault: f.id,
                kind: f.kind,
                dead,
                first_write,
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
                    "RTO C{} {how}: {:.1} s (operation {op})",
                    r.dead,
                    ms as f64 / 1000.0
                )?,
                None => writeln!(f, "RTO C{} {how}: no survivor wrote its volumes", r.dead)?,
            }
        }
        Ok(())
    }
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

    #[test]
    fn rto_runs_from_the_kill_to_the_first_survivor_write_of_the_dead_clusters_volume() {
        let fault = Fault {
            id: 10,
            at_ms: 1_000,
            kind: FaultKind::KillNode,
            clusters: vec![0],
            backlog: vec![],
        };
        let h = History::from_events(
            [
                write(1, 0, "A00001", (0, 100)),
                write(2, 1, "B00001", (0, 100)),
                // At a survivor, but of a volume the dead cluster did not own: not recovery.
                write(3, 1, "B00001", (1_100, 1_200)),
                write(4, 2, "A00001", (5_000, 7_500)),
            ]
            .into_iter()
            .map(crate::Event::Op)
            .chain([crate::Event::Fault(fault)]),
        );
        let m = measures(&h, &[]);
        assert_eq!(m.rto.len(), 1);
        assert_eq!(m.rto[0].first_write, Some((4, 6_500)));
        assert!(m.to_string().contains("RTO C0 node killed: 6.5 s"), "{m}");
        assert_eq!(m.rpo[&CopyMode::Run].acknowledged, 4);
    }

    #[test]
    fn rpo_counts_lost_versions_and_the_span_they_cover() {
        let fault = Fault {
            id: 10,
            at_ms: 3_000,
            kind: FaultKind::KillSite,
            clusters: vec![0],
            backlog: vec![],
        };
        let lost = write(1, 0, "A00001", (0, 500));
        let h = History::from_events([crate::Event::Op(lost.clone()), crate::Event::Fault(fault)]);
        let m = measures(&h, &[lost]);
        assert_eq!(m.rpo[&CopyMode::Run].lost_versions, 1);
        assert!((m.rpo[&CopyMode::Run].worst_seconds - 2.5).abs() < 1e-9);
        assert!(
            m.to_string().contains("no survivor wrote its volumes"),
            "{m}"
        );
    }
}
