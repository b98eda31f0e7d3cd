//! Events a cluster raises for operators (the seed's host messages; DESIGN §7). The last
//! [`EVENT_LOG_LEN`] stay in memory for `StatusService.ListEvents`, and `WatchEvents` streams
//! them as they are raised. Codes are stable: tests and operators' alerting match on them, never
//! on the message text.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::time::Instant;
use vtgrid_core::Volser;

/// A version written while cut off was refused by the catalog and quarantined (DESIGN §3).
pub const OWNERSHIP_CONFLICT: &str = "OWNERSHIP_CONFLICT";

/// A RUN copy could not be made before rewind-unload returned; it is queued as immediate-deferred
/// (B39; the seed's "Immediate Mode Copy Completion's Deferred").
pub const IMMEDIATE_COPY_DEFERRED: &str = "IMMEDIATE_COPY_DEFERRED";

/// A Sync job lost its second sync cluster and went on alone; the copy is queued as
/// sync-deferred (B43, `on_sync_failure = "defer"`).
pub const SYNC_DEFERRED: &str = "SYNC_DEFERRED";

/// A peer stopped answering on the grid network: "G0013 Library libname has experienced an
/// unexpected outage with its peer library libname" (SEED L36).
pub const G0013: &str = "G0013";

// Grid-state transitions (B59-B62, B64-B69), raised by the link monitor when a flag of
// `GetGridState` changes (see `crate::links::grid_state_events`). The seed gives message IDs for
// two of the states and none for their end or for Grid Links Degraded, so those codes are the
// state's own name, and its end is named `..._RESTORED`.

/// The grid entered the Grid Links Degraded state: a peer does not answer on the grid network.
/// The seed names the state without a message ID (SEED L76, L90, L103, L135, L149; B59).
pub const GRID_LINKS_DEGRADED: &str = "GRID_LINKS_DEGRADED";

/// Every peer answers on the grid network again; Grid Links Degraded is over (B62, INF).
pub const GRID_LINKS_RESTORED: &str = "GRID_LINKS_RESTORED";

/// "CBR3786E VTS operations degraded in library" (SEED L35): VTS_OPERATIONS_DEGRADED was set.
pub const CBR3786E: &str = "CBR3786E";

/// VTS_OPERATIONS_DEGRADED cleared (B62). The seed has no message for it.
pub const VTS_OPERATIONS_RESTORED: &str = "VTS_OPERATIONS_RESTORED";

/// "CBR3785E Copy operations disabled in library" (SEED L34): COPY_OPERATIONS_DISABLED was set.
pub const CBR3785E: &str = "CBR3785E";

/// COPY_OPERATIONS_DISABLED cleared: copies to and from every data cluster can run (B62). The
/// seed has no message for it.
pub const COPY_OPERATIONS_RESTORED: &str = "COPY_OPERATIONS_RESTORED";

/// "Call Home support is invoked" (SEED L80, L91, L104, L137, L151, L166: scenarios 2,
/// 3, 4, 6, 7, 8; B59): raised once each
/// time GRID_LINKS_DEGRADED or VTS_OPERATIONS_DEGRADED is newly set. It is the alert hook's
/// event; an operator's alerting follows `WatchEvents` for this code.
pub const CALL_HOME: &str = "CALL_HOME";

/// Amnesia (issue 9): this voter's catalog is empty in a grid that formed, so it does not vote or
/// form the grid until `vtgrid admin rejoin --as-new` or its data dir is restored.
pub const REJOIN_REQUIRED: &str = "REJOIN_REQUIRED";

/// The voter that lost its catalog was readmitted as a new member and votes again.
pub const REJOINED: &str = "REJOINED";

/// This cluster was forced standalone (`vtgrid admin force-standalone`, DESIGN §3): it is the
/// whole grid and owns every volume; raised at each start while the catalog records it.
pub const FORCED_STANDALONE: &str = "FORCED_STANDALONE";

/// "G0009 AOTM within library X has determined that library Y is unavailable. The Read/Write
/// ownership takeover mode has been enabled." (B30, B32): the takeover agent confirmed a peer down
/// and this cluster set WOT for it.
pub const G0009: &str = "G0009";

/// G0009's read-only twin: "... The Read-Only ownership takeover mode has been enabled."
pub const G0010: &str = "G0010";

/// A takeover mode was set, changed or cleared at this cluster by an operator (B25: an audit
/// event names who set what, and whether it was forced past a live peer).
pub const TAKEOVER_MODE_SET: &str = "TAKEOVER_MODE_SET";

/// The takeover modes for this cluster were cleared because it is back (B22b).
pub const TAKEOVER_MODE_CLEARED: &str = "TAKEOVER_MODE_CLEARED";

/// A cluster entered service prep, service mode, or left service (B23).
pub const SERVICE_STATE: &str = "SERVICE_STATE";

/// This cluster's self-fencing lease ran out (`[lease]`): it has not renewed through the
/// catalog's leader in time and writes none of its volumes until it does (reads go on).
pub const SELF_FENCED: &str = "SELF_FENCED";

/// The lease was renewed again after it had run out: writes resume.
pub const LEASE_RENEWED: &str = "LEASE_RENEWED";

/// The leader granted write takeover for a cluster whose lease had surely run out: no agent
/// was asked (the whole site may be gone, node and agent together).
pub const LEASE_TAKEOVER: &str = "LEASE_TAKEOVER";

/// An operator or service call on the host port, with who made it and how it ended (also in
/// `data_dir/audit.log`; docs/security.md).
pub const AUDIT: &str = "AUDIT";

/// How many events a cluster remembers.
pub const EVENT_LOG_LEN: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub code: &'static str,
    pub volser: Option<Volser>,
    pub message: String,
    /// Milliseconds since the cluster started (monotonic).
    pub at_ms: u64,
    /// Wall-clock time it was raised.
    pub time: SystemTime,
    /// 1 for the first event this process raised, then one more for each: a watcher resumes
    /// after the last it saw without a gap. Restarts at 1 with the process ([`EventLog::boot`]).
    pub sequence: u64,
}

/// What a watcher gets first: the remembered events it asked for, how many it asked for that
/// are no longer remembered, and a receiver of every later event.
pub struct Watch {
    pub backlog: Vec<Event>,
    pub missed: u64,
    pub live: tokio::sync::broadcast::Receiver<Event>,
}

pub struct EventLog {
    started: Instant,
    /// Wall-clock time the process started: with the sequence, it names an event uniquely.
    boot: SystemTime,
    recent: Mutex<Recent>,
    /// Live subscribers (`WatchEvents`). One that falls more than [`WATCH_BACKLOG`] behind misses
    /// events and is told so.
    live: tokio::sync::broadcast::Sender<Event>,
}

#[derive(Default)]
struct Recent {
    events: VecDeque<Event>,
    /// The sequence number of the last event raised (0: none yet).
    last: u64,
}

/// How many events a slow watcher may lag before it misses some.
const WATCH_BACKLOG: usize = 256;

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            started: Instant::now(),
            boot: SystemTime::now(),
            recent: Mutex::new(Recent::default()),
            live: tokio::sync::broadcast::channel(WATCH_BACKLOG).0,
        }
    }
}

impl EventLog {
    pub fn raise(&self, code: &'static str, volser: Option<Volser>, message: String) {
        tracing::warn!(code, volser = ?volser, "{message}");
        let at_ms = self.started.elapsed().as_millis() as u64;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.events.len() == EVENT_LOG_LEN {
            recent.events.pop_front();
        }
        recent.last += 1;
        let event = Event {
            code,
            volser,
            message,
            at_ms,
            time: SystemTime::now(),
            sequence: recent.last,
        };
        recent.events.push_back(event.clone());
        // Sent while the log is locked, and `watch` subscribes under the same lock, so a watcher
        // sees every event exactly once: in its snapshot or on its channel.
        let _ = self.live.send(event);
    }

    /// When this process started: a watcher that sees it change knows the sequence restarted.
    pub fn boot(&self) -> SystemTime {
        self.boot
    }

    /// The remembered events and a receiver of every later one, none lost or repeated.
    pub fn watch(&self) -> (Vec<Event>, tokio::sync::broadcast::Receiver<Event>) {
        let w = self.watch_from(1);
        (w.backlog, w.live)
    }

    /// The remembered events from sequence `from` on, how many of those asked for are
    /// forgotten (the log keeps [`EVENT_LOG_LEN`]), and a receiver of every later event.
    pub fn watch_from(&self, from: u64) -> Watch {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let from = from.max(1);
        let oldest = recent
            .events
            .front()
            .map_or(recent.last + 1, |e| e.sequence);
        Watch {
            backlog: recent
                .events
                .iter()
                .filter(|e| e.sequence >= from)
                .cloned()
                .collect(),
            missed: oldest.saturating_sub(from),
            live: self.live.subscribe(),
        }
    }

    pub fn recent(&self) -> Vec<Event> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watcher_sees_each_event_once_in_the_snapshot_or_live() {
        let log = EventLog::default();
        log.raise(OWNERSHIP_CONFLICT, None, "before".into());
        let (snapshot, mut live) = log.watch();
        log.raise(IMMEDIATE_COPY_DEFERRED, None, "after".into());
        assert_eq!(
            snapshot
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>(),
            ["before"]
        );
        let next = live.recv().await.expect("the live event");
        assert_eq!(
            (next.code, next.message.as_str()),
            (IMMEDIATE_COPY_DEFERRED, "after")
        );
        assert!(live.try_recv().is_err(), "nothing twice");
    }

    /// Issue 12: a watcher resumes after the last sequence it saw, without a gap or a repeat,
    /// and hears how many it asked for are no longer remembered.
    #[test]
    fn a_watch_from_a_sequence_resumes_without_gaps_and_counts_what_is_forgotten() {
        let log = EventLog::default();
        for i in 0..5 {
            log.raise(OWNERSHIP_CONFLICT, None, i.to_string());
        }
        let w = log.watch_from(3);
        assert_eq!(
            w.backlog.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(w.missed, 0);
        assert!(log.watch_from(6).backlog.is_empty());
        for i in 0..EVENT_LOG_LEN {
            log.raise(OWNERSHIP_CONFLICT, None, i.to_string());
        }
        let w = log.watch_from(2);
        assert_eq!(w.backlog.first().map(|e| e.sequence), Some(6));
        assert_eq!(w.missed, 4, "sequences 2..=5 are forgotten");
        assert_eq!(w.backlog.len(), EVENT_LOG_LEN);
    }

    /// Every code this module defines is listed in docs/events.md and in the proto's comment on
    /// `Event`, so a client author finds each one.
    #[test]
    fn every_event_code_is_documented_in_docs_and_proto() {
        let docs = include_str!("../../../docs/events.md");
        let proto = include_str!("../../../proto/vtgrid/v1/status.proto");
        let codes: Vec<&str> = include_str!("events.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter(|l| l.contains(": &str = \""))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert!(codes.len() >= 20, "{codes:?}");
        for code in codes.iter().chain(&["EVENTS_MISSED"]) {
            assert!(
                docs.contains(&format!("| `{code}` |")),
                "docs/events.md lacks {code}"
            );
            assert!(
                proto.contains(code),
                "status.proto's Event comment lacks {code}"
            );
        }
    }

    #[test]
    fn the_log_keeps_the_last_thousand() {
        let log = EventLog::default();
        for i in 0..EVENT_LOG_LEN + 5 {
            log.raise(OWNERSHIP_CONFLICT, None, i.to_string());
        }
        let recent = log.recent();
        assert_eq!(recent.len(), EVENT_LOG_LEN);
        assert_eq!(recent[0].message, "5");
    }
}
