//! The history of a chaos run: JSON lines, one [`Event`] each, in the order the runner saw them
//! end. Times are milliseconds since the run began, from one monotonic clock in the runner.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

/// What a write's management class asks of the cluster it was written at (B36): the guarantee
/// the checker holds it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyMode {
    /// RUN: the unload waited for the copies.
    Run,
    /// Sync: every byte duplexed to the second sync cluster before the sync point.
    Sync,
    /// Deferred: copied afterwards from a durable queue (the backlog).
    Deferred,
    /// No Copy: one cluster holds it.
    NoCopy,
}

impl CopyMode {
    pub const ALL: [CopyMode; 4] = [
        CopyMode::Run,
        CopyMode::Sync,
        CopyMode::Deferred,
        CopyMode::NoCopy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CopyMode::Run => "RUN",
            CopyMode::Sync => "Sync",
            CopyMode::Deferred => "Deferred",
            CopyMode::NoCopy => "No Copy",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A specific mount written from the beginning.
    Write,
    /// A specific mount read, then written after its last version's end.
    Append,
    /// A scratch mount written (then returned to scratch: the host expires it at once).
    ScratchWrite,
    /// A specific mount read to the end.
    Read,
}

impl OpKind {
    pub fn writes(self) -> bool {
        !matches!(self, OpKind::Read)
    }
}

/// How a host operation ended, as the host saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: the rewind-unload (or the read) succeeded.
    Ok,
    /// Refused with a reason string (DESIGN §7).
    Failed { reason: String },
    /// The host does not know (its call timed out or the connection broke before the answer):
    /// the version may or may not exist.
    Unknown,
}

/// One host operation: a mount, its I/O and its rewind-unload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub id: u64,
    pub kind: OpKind,
    /// The cluster the host mounted through.
    pub cluster: u8,
    pub volser: String,
    /// For writes: the copy mode the class gave the mount cluster.
    #[serde(default)]
    pub mode: Option<CopyMode>,
    pub start_ms: u64,
    pub end_ms: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The version written (acknowledged) or read.
    #[serde(default)]
    pub version: Option<u64>,
    /// blake3 of the volume's bytes at that version, hex.
    #[serde(default)]
    pub digest: Option<String>,
}

impl Op {
    /// An acknowledged write: the grid promised to keep this version.
    pub fn acknowledged_write(&self) -> bool {
        self.kind.writes() && self.outcome == Outcome::Ok && self.version.is_some()
    }

    /// Did this operation and `other` run at the same time (for at least a moment)?
    pub fn concurrent_with(&self, other: &Op) -> bool {
        self.start_ms < other.end_ms && other.start_ms < self.end_ms
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// kill -9 of a node (its agent stays: agent takeover).
    KillNode,
    /// kill -9 of an agent.
    KillAgent,
    /// kill -9 of node and agent together (a whole site: only the lease takes over).
    KillSite,
    /// SIGSTOP of a node.
    Stop,
    /// SIGCONT of a stopped node.
    Cont,
    /// The grid path between two clusters cut both ways.
    Cut,
    /// The grid path cut from the first cluster to the second only.
    CutOneWay,
    /// The heartbeat path between two clusters' agents cut.
    HeartbeatCut,
    /// A cluster cut from every other, grid and heartbeat.
    Isolate,
    /// A cluster's data dir filesystem full.
    DiskFull,
    /// A killed node or agent started again.
    Restart,
    /// Every path restored, every disk freed.
    Heal,
}

impl FaultKind {
    /// Does the fault kill a node, so survivors may take its volumes over?
    pub fn kills_node(self) -> bool {
        matches!(self, FaultKind::KillNode | FaultKind::KillSite)
    }
}

/// A copy the grid owed when a fault struck, as the clusters reported it (their Deferred
/// backlog): a version lost with its cluster may be only one of these.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Owed {
    pub volser: String,
    pub version: u64,
}

/// A fault the runner injected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub id: u64,
    pub at_ms: u64,
    pub kind: FaultKind,
    /// The clusters it struck (one, or the two ends of a path).
    pub clusters: Vec<u8>,
    /// The grid's reported backlog of owed copies just before the fault.
    #[serde(default)]
    pub backlog: Vec<Owed>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Op(Op),
    Fault(Fault),
}

/// A whole history, split by kind, each in time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub ops: Vec<Op>,
    pub faults: Vec<Fault>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("reading the history: {0}")]
    Io(#[from] std::io::Error),
    #[error("history line {line}: {source}")]
    Line {
        line: usize,
        source: serde_json::Error,
    },
}

impl History {
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> History {
        let mut h = History::default();
        for e in events {
            match e {
                Event::Op(op) => h.ops.push(op),
                Event::Fault(f) => h.faults.push(f),
            }
        }
        h.ops.sort_by_key(|o| (o.start_ms, o.id));
        h.faults.sort_by_key(|f| (f.at_ms, f.id));
        h
    }

    /// Read JSON lines; a line that does not parse is an error naming it (a truncated last
    /// line, from a runner that was killed, included: the history is then not trusted).
    pub fn read(reader: impl BufRead) -> Result<History, HistoryError> {
        let mut events = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(&line).map_err(|source| HistoryError::Line {
                line: n + 1,
                source,
            })?;
            events.push(event);
        }
        Ok(History::from_events(events))
    }

    /// The first fault at or after `ms`.
    pub fn fault_after(&self, ms: u64) -> Option<&Fault> {
        self.faults.iter().find(|f| f.at_ms >= ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_reads_back_what_was_written() {
        let op = Event::Op(Op {
            id: 1,
            kind: OpKind::Write,
            cluster: 0,
            volser: "A00001".into(),
            mode: Some(CopyMode::Run),
            start_ms: 10,
            end_ms: 20,
            outcome: Outcome::Failed {
                reason: "OWNER_UNREACHABLE".into(),
            },
            version: None,
            digest: None,
        });
        let fault = Event::Fault(Fault {
            id: 2,
            at_ms: 15,
            kind: FaultKind::KillNode,
            clusters: vec![1],
            backlog: vec![Owed {
                volser: "A00002".into(),
                version: 3,
            }],
        });
        let text = [&op, &fault]
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains(r#""result":"failed""#), "{text}");
        let h = History::read(text.as_bytes()).unwrap();
        assert_eq!(h, History::from_events([op, fault]));
    }

    #[test]
    fn a_truncated_line_is_an_error_that_names_it() {
        let text = "{\"type\":\"fault\",\"id\":1,\"at_ms\":5,\"kind\":\"heal\",\"clusters\":[]}\n{\"type\":\"op\",\"id\":";
        match History::read(text.as_bytes()) {
            Err(HistoryError::Line { line: 2, .. }) => {}
            other => panic!("expected line 2 refused, got {other:?}"),
        }
    }
}
