//! What happened in a schedule, and when: the faults (with their end once known), the jobs on
//! each volume, and a line per event. An error is expected only when this history explains it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use vtgrid_sim::grid::GridControl;

/// How long after a fault ends its effects may still explain an error (elections, catching up,
/// surrender and proposal timeouts of 5-8 s).
pub const SETTLE: Duration = Duration::from_secs(12);
/// How long a job a cancelling client walked away from may hold its volume: the schedules' idle
/// timeout plus the Sync duplex margin, and a little for the abort itself.
const LINGER: Duration = Duration::from_secs(super::IDLE_TIMEOUT.as_secs() + 35);
/// The key under which scratch jobs record their spans (they pick their volume themselves).
pub const SCRATCH: &str = "<scratch>";
/// The worker number of a job whose client walked away (see [`History::job_lingers`]).
pub const WALKED_AWAY: usize = usize::MAX;

/// A fault's span: start, end (None while it lasts), what it is.
type FaultSpan = (Instant, Option<Instant>, String);
/// A worker's job on a volume: worker, start, end (None while it runs).
type JobSpan = (usize, Instant, Option<Instant>);

/// A disk fault's span: start, end (None while it lasts), the data cluster, what it is.
type DiskSpan = (Instant, Option<Instant>, u8, String);

/// What happened, when: faults (with their end once known), jobs on volumes, notes.
#[derive(Clone)]
pub struct History {
    pub start: Instant,
    /// turmoil's simulated time at `start`, to place the driver's crash-point crashes.
    sim_start: Duration,
    /// The grid, for the crashes armed crash points caused (the driver applies them).
    control: GridControl,
    /// Disk faults: they explain errors of jobs that touched their cluster only.
    disk: Arc<Mutex<Vec<DiskSpan>>>,
    /// Set while a crash point is armed or its crash not yet restarted: no other crash then.
    pub point_pending: Arc<std::sync::atomic::AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
    /// Faults: (start, end or None while active, what).
    faults: Arc<Mutex<Vec<FaultSpan>>>,
    /// Jobs in progress per volume: (worker, start).
    busy: Arc<Mutex<BTreeMap<String, Vec<JobSpan>>>>,
}

impl History {
    pub fn new(control: GridControl) -> History {
        History {
            start: Instant::now(),
            sim_start: turmoil::sim_elapsed().unwrap_or_default(),
            control,
            disk: Arc::default(),
            point_pending: Arc::default(),
            lines: Arc::default(),
            faults: Arc::default(),
            busy: Arc::default(),
        }
    }

    pub fn note(&self, line: String) {
        vtgrid_sim::trace::note(|| format!("host {line}"));
        let at = self.start.elapsed();
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{:>8.3}s {line}", at.as_secs_f64()));
    }

    pub fn fault_began(&self, what: String) -> usize {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        f.push((Instant::now(), None, what));
        f.len() - 1
    }

    pub fn fault_ended(&self, i: usize) {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = f.get_mut(i) {
            entry.1.get_or_insert(Instant::now());
        }
    }

    /// A heal: every network fault ends now. A crash does not (its restart ends it; a heal
    /// restarts nothing).
    pub fn end_all_faults(&self) {
        let now = Instant::now();
        for entry in self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .filter(|(_, _, what)| {
                !["Crash(", "SiteLost(", "CutOffThenCrash("]
                    .iter()
                    .any(|down| what.starts_with(down))
            })
        {
            entry.1.get_or_insert(now);
        }
    }

    /// The faults whose effects overlap `[from, to]` (an ended fault counts for [`SETTLE`] more),
    /// and the crash points that fired in it (the driver records those; the task that restarts
    /// the cluster may not have seen the crash yet).
    pub fn faults_during(&self, from: Instant, to: Instant) -> Vec<String> {
        let mut found: Vec<String> = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(start, end, _)| *start <= to && end.is_none_or(|e| e + SETTLE >= from))
            .map(|(_, _, what)| what.clone())
            .collect();
        for c in self.control.point_crashes() {
            let at = self.start + c.at.saturating_sub(self.sim_start);
            if at >= from - SETTLE && at <= to {
                found.push(format!("crash point {:?} fired at C{}", c.point, c.voter));
            }
        }
        found
    }

    pub fn disk_fault_began(&self, cluster: u8, what: String) -> usize {
        let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        d.push((Instant::now(), None, cluster, what));
        d.len() - 1
    }

    pub fn disk_fault_ended(&self, i: usize) {
        let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = d.get_mut(i) {
            entry.1.get_or_insert(Instant::now());
        }
    }

    /// The disk faults at any of `clusters` whose effects overlap `[from, to]`.
    pub fn disk_faults_during(&self, clusters: &[u8], from: Instant, to: Instant) -> Vec<String> {
        self.disk
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(start, end, c, _)| {
                clusters.contains(c) && *start <= to && end.is_none_or(|e| e + SETTLE >= from)
            })
            .map(|(_, _, _, what)| what.clone())
            .collect()
    }

    pub fn job_began(&self, volser: &str, worker: usize) -> Instant {
        let now = Instant::now();
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(volser.to_string())
            .or_default()
            .push((worker, now, None));
        now
    }

    /// A cancelling client walked away: its mount (or its unload's commit) may hold the volume
    /// until the cluster's idle timeout ends it, for any worker, itself included.
    pub fn job_lingers(&self, volser: &str, worker: usize, began: Instant) {
        let until = Instant::now() + LINGER;
        self.end_span(volser, worker, began, WALKED_AWAY, until);
    }

    pub fn job_ended(&self, volser: &str, worker: usize, began: Instant) {
        self.end_span(volser, worker, began, worker, Instant::now());
    }

    /// Give `worker`'s job on `volser` that began at `began` its end, under the worker `as_worker`.
    fn end_span(
        &self,
        volser: &str,
        worker: usize,
        began: Instant,
        as_worker: usize,
        end: Instant,
    ) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let spans = busy.get_mut(volser).into_iter().flatten();
        for span in spans.filter(|(w, start, _)| *w == worker && *start == began) {
            span.0 = as_worker;
            span.2 = Some(end);
        }
    }

    /// Another worker had a job on `volser` overlapping `[from, to]`.
    pub fn contended(
        &self,
        volser: &str,
        worker: usize,
        from: Instant,
        to: Instant,
    ) -> Option<usize> {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(volser)?
            .iter()
            .find(|(w, start, end)| *w != worker && *start <= to && end.is_none_or(|e| e >= from))
            .map(|(w, _, _)| *w)
    }

    pub fn dump(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n  ")
    }
}
