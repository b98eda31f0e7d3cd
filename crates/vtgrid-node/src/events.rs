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
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            started: Instant::now(),
            recent: Mutex::new(VecDeque::new()),
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
        recent.push_back(Event {
            code,
            volser,
            message,
            at_ms,
        });
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
