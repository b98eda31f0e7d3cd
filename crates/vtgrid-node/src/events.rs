//! Events a cluster raises for operators (the seed's host messages; DESIGN §7). This release keeps
//! the last [`EVENT_LOG_LEN`] in memory for `StatusService.ListEvents`; the streaming
//! `WatchEvents` arrives with the grid-state work.

use std::collections::VecDeque;
use std::sync::Mutex;

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

/// A peer stopped answering on the grid network (the seed's G0013).
pub const G0013: &str = "G0013";

/// How many events a cluster remembers.
pub const EVENT_LOG_LEN: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub code: &'static str,
    pub volser: Option<Volser>,
    pub message: String,
    /// Milliseconds since the cluster started.
    pub at_ms: u64,
}

pub struct EventLog {
    started: Instant,
    recent: Mutex<VecDeque<Event>>,
    /// Live subscribers (`WatchEvents`). One that falls more than [`WATCH_BACKLOG`] behind misses
    /// events and is told so.
    live: tokio::sync::broadcast::Sender<Event>,
}

/// How many events a slow watcher may lag before it misses some.
const WATCH_BACKLOG: usize = 256;

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            started: Instant::now(),
            recent: Mutex::new(VecDeque::new()),
            live: tokio::sync::broadcast::channel(WATCH_BACKLOG).0,
        }
    }
}

impl EventLog {
    pub fn raise(&self, code: &'static str, volser: Option<Volser>, message: String) {
        tracing::warn!(code, volser = ?volser, "{message}");
        let at_ms = self.started.elapsed().as_millis() as u64;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == EVENT_LOG_LEN {
            recent.pop_front();
        }
        let event = Event {
            code,
            volser,
            message,
            at_ms,
        };
        recent.push_back(event.clone());
        // Sent while the log is locked, and `watch` subscribes under the same lock, so a watcher
        // sees every event exactly once: in its snapshot or on its channel.
        let _ = self.live.send(event);
    }

    /// The remembered events and a receiver of every later one, none lost or repeated.
    pub fn watch(&self) -> (Vec<Event>, tokio::sync::broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        (recent.iter().cloned().collect(), self.live.subscribe())
    }

    pub fn recent(&self) -> Vec<Event> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
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
