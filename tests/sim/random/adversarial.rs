//! Adversarial random schedules (issue 9; DESIGN §8; spec §4.1 O1-O5, T1, T18, T34): per seed, a
//! grid drawn from five topologies takes faults and host jobs drawn from the seed, keeps the
//! invariants after every step, and settles completely afterwards.
//!
//! Topologies: 2 clusters + a witness, 3 clusters, 3 + a witness, 4 clusters, 5 clusters.
//!
//! Faults, each on its own probability (at most one voter down at a time):
//! - a grid path cut between two voters, both ways or one way;
//! - a voter isolated; a full heal (which also releases held paths);
//! - messages between two voters *held* for 6..15 s and then released, longer than any RPC
//!   deadline (T18): whatever was sent meanwhile arrives late, in order;
//! - the tape host's path to one data cluster lost for 2..8 s (T1);
//! - a voter crashed (power cut) and restarted 1..4 s later;
//! - a disk fault on one data cluster's volume store for 2..8 s (`vtgrid_tvc::faults`): ENOSPC
//!   on every write, EIO on every write, EIO on every fsync, or every fsync 0.5..3 s slow;
//! - a crash point armed (`vtgrid_node::faults`): the seed picks the point (any of
//!   `FaultPoint::ALL`: mount, obtain, surrender, unload, publish, copy, adopt, Sync duplex), the
//!   data cluster and whether the 1st or 2nd arrival fires; if it is reached within
//!   [`ARMED_FOR`] the driver crashes that cluster right after the step, and it is restarted
//!   1..4 s later; otherwise it is disarmed. While one is armed no other crash is made, and none
//!   is armed while a voter is down.
//!
//! Jobs (two workers, at the owner or anywhere): a specific-mount write, a scratch write, a read,
//! a category change, an append (the host reads the base first, so it knows the bytes of the new
//! version), a write with a host sync point between its halves, a write of several 1 MiB chunks,
//! and two cancelling clients: one drops its write stream mid-way and walks away, one gives up on
//! its rewind-unload after a few milliseconds (the host then does not know whether the version
//! exists: the ledger holds it in doubt).
//!
//! An error is expected only when the schedule made it so, and the history names why: a fault
//! active during the job or up to [`SETTLE`] before it (a crash point counts from the step it
//! fired in), a disk fault at a cluster the job wrote to (its mount cluster, and the sync
//! clusters for a Sync class) during the job or up to [`SETTLE`] before, the other worker
//! holding the same volume, or the job's own cancel. A disk fault's error loses nothing
//! acknowledged: the invariants at the end are the same. At the end every path is healed and every voter restarted (no
//! restart of a stuck owner: nothing may stay stuck), then within bounded simulated time every
//! voter is ready, catalogs are identical, every owed copy is made, nothing is left mounted, held,
//! in doubt, duplexed or reserved, no quarantine holds anything (there is no takeover: an
//! acknowledged version is never refused), and every volume reads back through its owner with the
//! catalog's digest, at or after its last acknowledged version.
//!
//! Seeds: 0..200 by default (with `fault_schedule`'s 2 x 400, the default run's 1,000 random
//! schedules); `VTGRID_SIM_SEEDS=n` sweeps 0..n, `VTGRID_SIM_SEED=s` replays one exactly
//! (`VTGRID_SIM_LOG=vtgrid_node=info` adds the clusters' logs).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use vtgrid_core::Volser;
use vtgrid_node::faults::FaultPoint;
use vtgrid_proto::pb::{self, Reason};
use vtgrid_proto::reason_of;
use vtgrid_sim::client::{self, digest_hex};
use vtgrid_sim::cluster::{host_name, HUB_CLASS, PATTERN_CLASSES, SYNC_CLASSES};
use vtgrid_sim::grid::{GridControl, SimGrid};
use vtgrid_sim::invariants::{self, Invariants};
use vtgrid_sim::ledger::Ledger;
use vtgrid_sim::rand::rngs::StdRng;
use vtgrid_sim::rand::{Rng, SeedableRng};
use vtgrid_sim::seed::for_each_seed_in_parallel;
use vtgrid_tvc::DiskFaults;

use super::fault_schedule::{classed, payload};

/// (data clusters, witnesses).
const TOPOLOGIES: [(u8, u8); 5] = [(2, 1), (3, 0), (3, 1), (4, 0), (5, 0)];
const WORKERS: usize = 2;
const TICK: Duration = Duration::from_millis(10);
const DURATION: Duration = Duration::from_secs(900);
/// How long after a fault ends its effects may still explain an error (elections, catching up,
/// surrender and proposal timeouts of 5-8 s).
const SETTLE: Duration = Duration::from_secs(12);
/// How long a job a cancelling client walked away from may hold its volume: the grid's default
/// `[jobs] idle_timeout_secs` (300 s) plus the Sync duplex margin.
const LINGER: Duration = Duration::from_secs(330);
/// The key under which scratch jobs record their spans (they pick their volume themselves).
const SCRATCH: &str = "<scratch>";
/// The worker number of a job whose client walked away (see [`History::job_lingers`]).
const WALKED_AWAY: usize = usize::MAX;

/// Bytes of the large writes: several of the volume store's 1 MiB chunks.
const LARGE: usize = (5 << 20) / 2;

const CLASSES: [Option<&str>; 9] = [
    None,
    Some("STANDARD"),
    Some(PATTERN_CLASSES[0]),
    Some(PATTERN_CLASSES[1]),
    Some(PATTERN_CLASSES[2]),
    Some(PATTERN_CLASSES[3]),
    Some(HUB_CLASS),
    Some(SYNC_CLASSES[0].0),
    Some(SYNC_CLASSES[1].0),
];

#[derive(Debug, Clone, Copy)]
enum Fault {
    Cut(u8, u8),
    OneWay(u8, u8),
    Isolate(u8),
    Hold(u8, u8, Duration),
    HostPathLost(u8, Duration),
    Heal,
    Crash(u8, Duration),
    /// A disk fault on a data cluster's volume store for a while.
    Disk(u8, DiskFault, Duration),
    /// Crash a data cluster the `nth` time it reaches a crash point (if it does within
    /// [`ARMED_FOR`]), and restart it after the duration.
    CrashAt(u8, FaultPoint, u32, Duration),
}

/// The disk faults of the schedule (`vtgrid_tvc::faults`).
#[derive(Debug, Clone, Copy)]
enum DiskFault {
    /// ENOSPC on every write.
    NoSpace,
    WriteEio,
    FsyncEio,
    /// Every fsync takes this long.
    SlowFsync(Duration),
}

impl DiskFault {
    fn faults(self) -> DiskFaults {
        match self {
            DiskFault::NoSpace => DiskFaults::no_space(),
            DiskFault::WriteEio => DiskFaults::write_eio(),
            DiskFault::FsyncEio => DiskFaults::fsync_eio(),
            DiskFault::SlowFsync(d) => DiskFaults::slow_fsync(d),
        }
    }
}

/// How long an armed crash point waits to be reached before it is disarmed.
const ARMED_FOR: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Scratch,
    Read,
    Recategorise,
    Append,
    SyncPoint,
    Large,
    CancelWrite,
    CancelUnload,
}

#[derive(Debug, Clone)]
struct Job {
    kind: Kind,
    at: u8,
    volser: String,
    len: usize,
    class: Option<&'static str>,
}

struct Plan {
    clusters: u8,
    witnesses: u8,
    voters: Vec<u8>,
    at_owner: bool,
    faults: Vec<(Duration, Fault)>,
    workers: Vec<Vec<(Duration, Job)>>,
}

const PRIVATE_PER_CLUSTER: u32 = 3;

fn scratch_per_cluster(at_owner: bool) -> u32 {
    if at_owner {
        10
    } else {
        2
    }
}

fn volsers(clusters: u8, at_owner: bool) -> Vec<String> {
    (0..clusters)
        .flat_map(|i| {
            (0..PRIVATE_PER_CLUSTER)
                .map(move |n| format!("P{i}{n:04}"))
                .chain((0..scratch_per_cluster(at_owner)).map(move |n| format!("S{i}{n:04}")))
        })
        .collect()
}

fn inserted_by(volser: &str) -> u8 {
    volser.as_bytes()[1] - b'0'
}

fn plan(seed: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xADE5_A21A);
    let (clusters, witnesses) = TOPOLOGIES[rng.random_range(0..TOPOLOGIES.len())];
    let voters: Vec<u8> = (0..clusters)
        .chain((8..).take(usize::from(witnesses)))
        .collect();
    let at_owner = rng.random_bool(0.5);
    let pick = |rng: &mut StdRng, from: &[u8]| from[rng.random_range(0..from.len())];
    let data: Vec<u8> = (0..clusters).collect();
    let mut faults = Vec::new();
    let mut t = Duration::ZERO;
    let mut back_at = Duration::ZERO;
    for _ in 0..rng.random_range(3..=7) {
        t += Duration::from_millis(rng.random_range(300..2500));
        let a = pick(&mut rng, &voters);
        let others: Vec<u8> = voters.iter().copied().filter(|v| *v != a).collect();
        let b = pick(&mut rng, &others);
        let fault = match rng.random_range(0..26) {
            0..=3 => Fault::Cut(a, b),
            4..=5 => Fault::OneWay(a, b),
            6..=7 => Fault::Isolate(a),
            8..=10 => Fault::Hold(a, b, Duration::from_millis(rng.random_range(6000..15000))),
            11..=12 => Fault::HostPathLost(
                pick(&mut rng, &data),
                Duration::from_millis(rng.random_range(2000..8000)),
            ),
            13..=15 => Fault::Heal,
            20..=21 => {
                let c = pick(&mut rng, &data);
                let kind = match rng.random_range(0..4) {
                    0 => DiskFault::NoSpace,
                    1 => DiskFault::WriteEio,
                    2 => DiskFault::FsyncEio,
                    _ => DiskFault::SlowFsync(Duration::from_millis(rng.random_range(500..3000))),
                };
                Fault::Disk(c, kind, Duration::from_millis(rng.random_range(2000..8000)))
            }
            22..=25 => {
                let c = pick(&mut rng, &data);
                let point = FaultPoint::ALL[rng.random_range(0..FaultPoint::ALL.len())];
                let down = Duration::from_millis(rng.random_range(1000..4000));
                Fault::CrashAt(c, point, rng.random_range(1..=2), down)
            }
            _ if t > back_at => {
                let down = Duration::from_millis(rng.random_range(1000..4000));
                back_at = t + down;
                Fault::Crash(a, down)
            }
            _ => Fault::Heal,
        };
        faults.push((t, fault));
    }
    let all = volsers(clusters, at_owner);
    let workers = (0..WORKERS)
        .map(|_| {
            (0..rng.random_range(3..=5))
                .map(|_| {
                    let pause = Duration::from_millis(rng.random_range(0..1000));
                    let volser = all[rng.random_range(0..all.len())].clone();
                    let anywhere = pick(&mut rng, &data);
                    let at = if at_owner {
                        inserted_by(&volser)
                    } else {
                        anywhere
                    };
                    let kind = match rng.random_range(0..30) {
                        0..=6 => Kind::Write,
                        7..=10 => Kind::Scratch,
                        11..=15 => Kind::Read,
                        16..=17 => Kind::Recategorise,
                        18..=20 => Kind::Append,
                        21..=23 => Kind::SyncPoint,
                        24..=25 => Kind::Large,
                        26..=27 => Kind::CancelWrite,
                        _ => Kind::CancelUnload,
                    };
                    let job = Job {
                        kind,
                        at: if kind == Kind::Scratch { anywhere } else { at },
                        volser,
                        len: rng.random_range(16..400),
                        class: CLASSES[rng.random_range(0..CLASSES.len())],
                    };
                    (pause, job)
                })
                .collect()
        })
        .collect();
    Plan {
        clusters,
        witnesses,
        voters,
        at_owner,
        faults,
        workers,
    }
}

/// A fault's span: start, end (None while it lasts), what it is.
type FaultSpan = (Instant, Option<Instant>, String);
/// A worker's job on a volume: worker, start, end (None while it runs).
type JobSpan = (usize, Instant, Option<Instant>);

/// A disk fault's span: start, end (None while it lasts), the data cluster, what it is.
type DiskSpan = (Instant, Option<Instant>, u8, String);

/// What happened, when: faults (with their end once known), jobs on volumes, notes.
#[derive(Clone)]
struct History {
    start: Instant,
    /// turmoil's simulated time at `start`, to place the driver's crash-point crashes.
    sim_start: Duration,
    /// The grid, for the crashes armed crash points caused (the driver applies them).
    control: GridControl,
    /// Disk faults: they explain errors of jobs that touched their cluster only.
    disk: Arc<Mutex<Vec<DiskSpan>>>,
    /// Set while a crash point is armed or its crash not yet restarted: no other crash then.
    point_pending: Arc<std::sync::atomic::AtomicBool>,
    lines: Arc<Mutex<Vec<String>>>,
    /// Faults: (start, end or None while active, what).
    faults: Arc<Mutex<Vec<FaultSpan>>>,
    /// Jobs in progress per volume: (worker, start).
    busy: Arc<Mutex<BTreeMap<String, Vec<JobSpan>>>>,
}

impl History {
    fn new(control: GridControl) -> History {
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

    fn note(&self, line: String) {
        vtgrid_sim::trace::note(|| format!("host {line}"));
        let at = self.start.elapsed();
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{:>8.3}s {line}", at.as_secs_f64()));
    }

    fn fault_began(&self, what: String) -> usize {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        f.push((Instant::now(), None, what));
        f.len() - 1
    }

    fn fault_ended(&self, i: usize) {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = f.get_mut(i) {
            entry.1.get_or_insert(Instant::now());
        }
    }

    fn end_all_faults(&self) {
        let now = Instant::now();
        for entry in self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
        {
            entry.1.get_or_insert(now);
        }
    }

    /// The faults whose effects overlap `[from, to]` (an ended fault counts for [`SETTLE`] more),
    /// and the crash points that fired in it (the driver records those; the task that restarts
    /// the cluster may not have seen the crash yet).
    fn faults_during(&self, from: Instant, to: Instant) -> Vec<String> {
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

    fn disk_fault_began(&self, cluster: u8, what: String) -> usize {
        let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        d.push((Instant::now(), None, cluster, what));
        d.len() - 1
    }

    fn disk_fault_ended(&self, i: usize) {
        let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = d.get_mut(i) {
            entry.1.get_or_insert(Instant::now());
        }
    }

    /// The disk faults at any of `clusters` whose effects overlap `[from, to]`.
    fn disk_faults_during(&self, clusters: &[u8], from: Instant, to: Instant) -> Vec<String> {
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

    fn job_began(&self, volser: &str, worker: usize) -> Instant {
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
    fn job_lingers(&self, volser: &str, began: Instant) {
        let until = Instant::now() + LINGER;
        if let Some(list) = self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(volser)
        {
            for entry in list.iter_mut() {
                if entry.1 == began {
                    entry.0 = WALKED_AWAY;
                    entry.2 = Some(until);
                }
            }
        }
    }

    fn job_ended(&self, volser: &str, worker: usize, began: Instant) {
        if let Some(list) = self
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(volser)
        {
            for entry in list.iter_mut() {
                if entry.0 == worker && entry.1 == began {
                    entry.2 = Some(Instant::now());
                }
            }
        }
    }

    /// Another worker had a job on `volser` overlapping `[from, to]`.
    fn contended(&self, volser: &str, worker: usize, from: Instant, to: Instant) -> Option<usize> {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(volser)?
            .iter()
            .find(|(w, start, end)| *w != worker && *start <= to && end.is_none_or(|e| e >= from))
            .map(|(w, _, _)| *w)
    }

    fn dump(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n  ")
    }
}

async fn run_faults(
    control: &GridControl,
    faults: &[(Duration, Fault)],
    h: &History,
) -> Result<(), String> {
    let mut tasks = Vec::new();
    for (at, fault) in faults {
        tokio::time::sleep_until(h.start + *at).await;
        h.note(format!("fault {fault:?}"));
        match *fault {
            Fault::Cut(a, b) => {
                h.fault_began(format!("{fault:?}"));
                control.partition(a, b)
            }
            Fault::OneWay(a, b) => {
                h.fault_began(format!("{fault:?}"));
                turmoil::partition_oneway(host_name(a), host_name(b));
            }
            Fault::Isolate(x) => {
                h.fault_began(format!("{fault:?}"));
                control.isolate(x)
            }
            Fault::Heal => {
                heal(control);
                h.end_all_faults();
            }
            Fault::Hold(a, b, d) => {
                let i = h.fault_began(format!("{fault:?}"));
                turmoil::hold(host_name(a), host_name(b));
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    turmoil::release(host_name(a), host_name(b));
                    h.note(format!("released C{a}-C{b}"));
                    h.fault_ended(i);
                }));
            }
            Fault::HostPathLost(c, d) => {
                let i = h.fault_began(format!("{fault:?}"));
                turmoil::partition("tape-host", host_name(c));
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    turmoil::repair("tape-host", host_name(c));
                    h.note(format!("tape host reaches C{c} again"));
                    h.fault_ended(i);
                }));
            }
            Fault::Crash(x, d) => {
                if (0..16).any(|id| control.is_down(id)) || h.point_pending.load(Relaxed) {
                    h.note("no crash: a voter is down already or a crash point is armed".into());
                    continue;
                }
                let i = h.fault_began(format!("{fault:?}"));
                control.crash(x).await;
                let (control, h) = (control.clone(), h.clone());
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    control.restart(x).await;
                    h.note(format!("restarted C{x}"));
                    h.fault_ended(i);
                }));
            }
            Fault::Disk(c, kind, d) => {
                let Some(store) = control.volumes(c) else {
                    continue;
                };
                let i = h.disk_fault_began(c, format!("{fault:?}"));
                store.set_faults(kind.faults());
                let h = h.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    store.clear_faults();
                    h.note(format!(
                        "C{c}'s disk healed ({} calls failed so far)",
                        store.faults_injected()
                    ));
                    h.disk_fault_ended(i);
                }));
            }
            Fault::CrashAt(x, point, nth, down) => {
                if (0..16).any(|id| control.is_down(id)) || h.point_pending.load(Relaxed) {
                    h.note("no crash point: a voter is down already or one is armed".into());
                    continue;
                }
                h.point_pending.store(true, Relaxed);
                let fired_before = fired_at(control, x);
                control.arm(x, point, nth);
                let (control, h, fault) = (control.clone(), h.clone(), *fault);
                tasks.push(tokio::spawn(async move {
                    let until = Instant::now() + ARMED_FOR;
                    let mut disarmed = false;
                    while fired_at(&control, x) == fired_before {
                        if Instant::now() >= until && !disarmed {
                            if !control.disarm(x) {
                                break;
                            }
                            // It fired in this very step: the driver crashes it after the step.
                            disarmed = true;
                        }
                        tokio::time::sleep(TICK).await;
                    }
                    if fired_at(&control, x) == fired_before {
                        h.note(format!(
                            "crash point {point:?} at C{x} not reached; disarmed"
                        ));
                    } else {
                        let i = h.fault_began(format!("{fault:?} fired"));
                        h.note(format!("crash point {point:?} fired at C{x}: crashed"));
                        tokio::time::sleep(down).await;
                        control.restart(x).await;
                        h.note(format!("restarted C{x}"));
                        h.fault_ended(i);
                    }
                    h.point_pending.store(false, Relaxed);
                }));
            }
        }
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// How many crashes crash points caused at voter `x` so far.
fn fired_at(control: &GridControl, x: u8) -> usize {
    control
        .point_crashes()
        .iter()
        .filter(|c| c.voter == x)
        .count()
}

/// Repair every path between voters and to the tape host, release every hold.
fn heal(control: &GridControl) {
    let mut hosts: Vec<String> = control.voters().into_iter().map(host_name).collect();
    hosts.push("tape-host".into());
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            turmoil::repair(a.as_str(), b.as_str());
            turmoil::release(a.as_str(), b.as_str());
        }
    }
}

/// A write stream that sends its open and first chunk and then never ends: the client gives up
/// on it (the call is dropped), as a cancelling host would.
async fn cancel_write(at: u8, mount_id: &str, data: &[u8]) {
    let mut host = client::host(at);
    let first = vec![
        pb::WriteRequest {
            msg: Some(pb::write_request::Msg::Open(pb::WriteOpen {
                mount_id: mount_id.into(),
            })),
        },
        pb::WriteRequest {
            msg: Some(pb::write_request::Msg::Chunk(Bytes::copy_from_slice(data))),
        },
    ];
    let stream =
        futures::StreamExt::chain(futures::stream::iter(first), futures::stream::pending());
    let _ = tokio::time::timeout(Duration::from_millis(300), host.write(stream)).await;
}

/// Run one job; Ok(what it did) or the host's error.
async fn job_outcome(
    seed: u64,
    worker: usize,
    n: usize,
    job: &Job,
    ledger: &Ledger,
) -> Result<String, tonic::Status> {
    let at = job.at;
    let data = payload(seed, worker, n, job.len);
    let specific = || classed(client::specific(&job.volser), job.class);
    match job.kind {
        Kind::Write => client::write_job(at, specific(), &data, ledger)
            .await
            .map(|d| format!("wrote {} v{} copies {:?}", d.volser, d.version, d.copies)),
        Kind::Large => {
            let data = payload(seed, worker, n, LARGE);
            client::write_job(at, specific(), &data, ledger)
                .await
                .map(|d| format!("wrote {} v{} ({} bytes)", d.volser, d.version, d.size))
        }
        Kind::Scratch => client::write_job(
            at,
            classed(client::scratch("0001"), job.class),
            &data,
            ledger,
        )
        .await
        .map(|d| format!("scratch {} v{}", d.volser, d.version)),
        Kind::Read => client::read_job(at, &job.volser)
            .await
            .map(|(m, b)| format!("read {} v{} ({} bytes)", job.volser, m.version, b.len())),
        Kind::Recategorise => {
            let category = if n.is_multiple_of(2) { "0001" } else { "000F" };
            client::change_category(at, &job.volser, category)
                .await
                .map(|v| format!("{} now in {}", job.volser, v.category))
        }
        Kind::Append | Kind::SyncPoint => {
            let mut host = client::host(at);
            let mut request = specific();
            request.append = job.kind == Kind::Append;
            let m = client::deadline(host.mount(request)).await?.into_inner();
            let volser: Volser = m
                .volser
                .parse()
                .map_err(|_| tonic::Status::internal("volser"))?;
            let result = async {
                let mut whole = if job.kind == Kind::Append {
                    client::read_all(&mut host, &m.mount_id).await?
                } else {
                    Vec::new()
                };
                let (a, b) = data.split_at(data.len() / 2);
                client::write(&mut host, &m.mount_id, a).await?;
                if job.kind == Kind::SyncPoint {
                    client::deadline(host.sync(pb::SyncRequest {
                        mount_id: m.mount_id.clone(),
                    }))
                    .await?;
                    // Tape semantics (T17): if the job ends before its unload, the bytes up to
                    // this sync point become the version.
                    let prefix = [whole.as_slice(), a].concat();
                    ledger.in_doubt(volser, &digest_hex(&prefix));
                }
                client::write(&mut host, &m.mount_id, b).await?;
                whole.extend_from_slice(&data);
                Ok::<_, tonic::Status>(whole)
            }
            .await;
            let whole = match result {
                Ok(w) => w,
                Err(e) => {
                    // The cluster may not have failed the job (the host only gave up waiting,
                    // e.g. on a sync point its Sync peer was slow to answer): then this unload
                    // commits what was written, a version the host must count as its own.
                    match client::unload(&mut host, &m.mount_id).await {
                        Ok(done) if done.written => ledger.acknowledge_unload(volser, &done, at),
                        Ok(_) => {}
                        Err(_) if job.kind == Kind::SyncPoint => {
                            let (a, _) = data.split_at(data.len() / 2);
                            ledger.in_doubt(volser, &digest_hex(a));
                            ledger.in_doubt(volser, &digest_hex(&data));
                        }
                        Err(_) => {}
                    }
                    return Err(e);
                }
            };
            match client::unload(&mut host, &m.mount_id).await {
                Ok(done) => {
                    ledger.acknowledge_unload(volser, &done, at);
                    Ok(format!("{:?} {} v{}", job.kind, done.volser, done.version))
                }
                Err(e) => {
                    ledger.in_doubt(volser, &digest_hex(&whole));
                    Err(e)
                }
            }
        }
        Kind::CancelWrite => {
            let mut host = client::host(at);
            let m = client::deadline(host.mount(specific())).await?.into_inner();
            cancel_write(at, &m.mount_id, &data).await;
            Ok(format!("cancelled a write of {} and walked away", m.volser))
        }
        Kind::CancelUnload => {
            let mut host = client::host(at);
            let m = client::deadline(host.mount(specific())).await?.into_inner();
            client::write(&mut host, &m.mount_id, &data).await?;
            let volser: Volser = m
                .volser
                .parse()
                .map_err(|_| tonic::Status::internal("volser"))?;
            ledger.in_doubt(volser, &digest_hex(&data));
            let gave_up = tokio::time::timeout(
                Duration::from_millis(2),
                host.rewind_unload(pb::RewindUnloadRequest {
                    mount_id: m.mount_id.clone(),
                }),
            )
            .await;
            match gave_up {
                Ok(Ok(done)) => {
                    let done = done.into_inner();
                    ledger.acknowledge_unload(volser, &done, at);
                    Ok(format!("unload of {} answered before the cancel", m.volser))
                }
                _ => Ok(format!("gave up on the unload of {}", m.volser)),
            }
        }
    }
}

/// The data clusters whose volume store a job writes to: its mount cluster, and with a Sync
/// class both sync clusters (C0 and C1, [`SYNC_CLASSES`]), which duplex its bytes.
fn touched(job: &Job) -> Vec<u8> {
    let mut at = vec![job.at];
    if job
        .class
        .is_some_and(|c| SYNC_CLASSES.iter().any(|(name, _)| *name == c))
    {
        at.extend([0, 1]);
    }
    at
}

/// Why an error was expected, or None.
fn why_expected(
    status: &tonic::Status,
    h: &History,
    job: &Job,
    worker: usize,
    from: Instant,
) -> Option<String> {
    let now = Instant::now();
    let faults = h.faults_during(from, now);
    if !faults.is_empty() {
        return Some(format!("faults {faults:?}"));
    }
    let disk = h.disk_faults_during(&touched(job), from, now);
    if !disk.is_empty() {
        return Some(format!(
            "disk faults {disk:?} at a cluster the job wrote to"
        ));
    }
    match reason_of(status) {
        Some(Reason::VolumeInUse)
            if job.volser.starts_with('S')
                && h.contended(SCRATCH, worker, from - SETTLE, now).is_some() =>
        {
            Some(format!(
                "another worker's scratch mount may have taken {}",
                job.volser
            ))
        }
        Some(Reason::VolumeInUse) => {
            h.contended(&job.volser, worker, from - SETTLE, now)
                .map(|w| match w {
                    WALKED_AWAY => format!("a cancelled job still held {}", job.volser),
                    w => format!("worker {w} held {} meanwhile", job.volser),
                })
        }
        Some(Reason::NoScratchAvailable) if job.kind == Kind::Scratch => {
            Some("the scratch pool is used up".into())
        }
        _ => None,
    }
}

async fn run_worker(
    seed: u64,
    worker: usize,
    jobs: &[(Duration, Job)],
    ledger: &Ledger,
    h: &History,
) -> Result<(), String> {
    for (n, (pause, job)) in jobs.iter().enumerate() {
        tokio::time::sleep(*pause).await;
        // A scratch mount picks its own volume: its span is kept under SCRATCH, so a job on a
        // scratch volume that meets it knows why.
        let key = if job.kind == Kind::Scratch {
            SCRATCH
        } else {
            job.volser.as_str()
        };
        let began = h.job_began(key, worker);
        let outcome = job_outcome(seed, worker, n, job, ledger).await;
        h.job_ended(key, worker, began);
        if matches!(job.kind, Kind::CancelWrite | Kind::CancelUnload) {
            h.job_lingers(&job.volser, began);
        }
        match outcome {
            Ok(done) => h.note(format!("worker {worker} job {n} at C{}: {done}", job.at)),
            Err(status) => match why_expected(&status, h, job, worker, began) {
                Some(why) => h.note(format!(
                    "worker {worker} job {n} at C{}: {job:?} failed ({why}): {:?} {}",
                    job.at,
                    reason_of(&status),
                    status.message()
                )),
                None => {
                    let line = format!(
                        "worker {worker} job {n} at C{}: {job:?} FAILED with no fault to explain \
                         it: {:?} {:?}: {}",
                        job.at,
                        reason_of(&status),
                        status.code(),
                        status.message()
                    );
                    h.note(line.clone());
                    return Err(line);
                }
            },
        }
    }
    Ok(())
}

/// Every volume the host wrote holds a version the host wrote, at or after the last acknowledged
/// one, and reads back through its owner with the catalog's digest.
async fn read_back(ledger: &Ledger, h: &History) -> Result<(), String> {
    let latest = ledger.latest();
    for v in ledger.volumes() {
        let volser = v.to_string();
        let seen = client::volume(0, &volser)
            .await
            .map_err(|e| format!("GetVolume {volser}: {e}"))?;
        if let Some(ack) = latest.get(&v) {
            if seen.version < ack.version
                || (seen.version == ack.version && seen.digest != ack.digest)
            {
                return Err(format!(
                    "B37: {volser} was acknowledged at v{} ({}) at C{}, the healed catalog has \
                     v{} ({})",
                    ack.version, ack.digest, ack.written_at, seen.version, seen.digest
                ));
            }
        }
        if seen.version == 0 {
            continue;
        }
        if !ledger.wrote(v, &seen.digest) {
            return Err(format!(
                "{volser} v{} has a digest the host never wrote ({})",
                seen.version, seen.digest
            ));
        }
        let owner = u8::try_from(seen.owner).map_err(|e| e.to_string())?;
        if seen.category == "0001" {
            client::change_category(owner, &volser, "000F")
                .await
                .map_err(|e| format!("making {volser} private to read it: {e}"))?;
        }
        let (_, bytes) = client::read_job(owner, &volser)
            .await
            .map_err(|e| format!("reading {volser} back through C{owner}: {e}"))?;
        if digest_hex(&bytes) != seen.digest {
            return Err(format!(
                "{volser} v{} reads back as {}, the catalog says {}",
                seen.version,
                digest_hex(&bytes),
                seen.digest
            ));
        }
        h.note(format!(
            "read back {volser} v{} through C{owner}",
            seen.version
        ));
    }
    Ok(())
}

async fn scenario(
    seed: u64,
    control: GridControl,
    ledger: Ledger,
    history: Arc<Mutex<Option<History>>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let plan = plan(seed);
    client::wait_grid_ready(&control, Duration::from_secs(60)).await?;
    let at_owner = plan.at_owner;
    let last = scratch_per_cluster(at_owner) - 1;
    let inserts = (0..plan.clusters).flat_map(|i| {
        [
            (
                i,
                format!("P{i}0000-P{i}{:04}", PRIVATE_PER_CLUSTER - 1),
                "000F",
            ),
            (i, format!("S{i}0000-S{i}{last:04}"), "0001"),
        ]
    });
    futures::future::try_join_all(
        inserts
            .map(|(i, range, category)| async move { client::insert(i, &range, category).await }),
    )
    .await?;
    client::wait_quiescent(&control, Duration::from_secs(30)).await?;

    let h = History::new(control.clone());
    *history.lock().unwrap_or_else(|p| p.into_inner()) = Some(h.clone());
    h.note(format!(
        "grid of {} clusters and {} witnesses (voters {:?}), jobs {}",
        plan.clusters,
        plan.witnesses,
        plan.voters,
        if at_owner { "at the owner" } else { "anywhere" }
    ));
    let workers = futures::future::try_join_all(
        plan.workers
            .iter()
            .enumerate()
            .map(|(w, jobs)| run_worker(seed, w, jobs, &ledger, &h)),
    );
    futures::future::try_join(run_faults(&control, &plan.faults, &h), workers).await?;

    h.note("heal everything, restart what is down".into());
    heal(&control);
    for id in control.voters() {
        if control.is_down(id) {
            control.restart(id).await;
        }
    }
    client::wait_settled(&control).await?;
    h.note("quiet, every copy owed made, nothing left behind".into());
    let running: Vec<_> = control
        .voters()
        .into_iter()
        .filter_map(|id| control.cluster(id))
        .collect();
    invariants::no_quarantine(&running)?;
    read_back(&ledger, &h).await?;
    client::wait_quiescent(&control, Duration::from_secs(60)).await?;
    Ok(())
}

fn run(seed: u64) -> Result<(), String> {
    let p = plan(seed);
    let mut grid = SimGrid::with_timing(seed, p.clusters, p.witnesses, DURATION, TICK);
    let ledger = Ledger::new();
    let history = Arc::new(Mutex::new(None::<History>));
    grid.client(
        "tape-host",
        scenario(seed, grid.control(), ledger.clone(), history.clone()),
    );
    Invariants::new(ledger).run(&mut grid).map_err(|e| {
        let lines = history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(History::dump)
            .unwrap_or_default();
        format!("{e}\nfaults {:?}\nhistory:\n  {lines}", p.faults)
    })
}

#[test]
fn adversarial_schedules_on_every_topology_keep_the_invariants_and_settle() {
    let fixed: Vec<u64> = (0..200).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for_each_seed_in_parallel(
        "adversarial_schedules_on_every_topology_keep_the_invariants_and_settle",
        &fixed,
        threads,
        run,
    );
}
