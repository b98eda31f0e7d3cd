//! What a seed draws: the grid, the faults with their times, and each worker's jobs. Pure: the
//! same seed and profile give the same plan (the replay test depends on it).

use std::time::Duration;

use vtgrid_node::faults::FaultPoint;
use vtgrid_sim::cluster::{HUB_CLASS, PATTERN_CLASSES, SYNC_CLASSES};
use vtgrid_sim::rand::rngs::StdRng;
use vtgrid_sim::rand::{Rng, SeedableRng};
use vtgrid_tvc::DiskFaults;

/// (data clusters, witnesses) of the full profile.
const TOPOLOGIES: [(u8, u8); 5] = [(2, 1), (3, 0), (3, 1), (4, 0), (5, 0)];
pub const WORKERS: usize = 2;

/// Bytes of the large writes: several of the volume store's 1 MiB chunks.
pub const LARGE: usize = (5 << 20) / 2;

/// The management classes a write job picks from (B36, B44; see `vtgrid_sim::cluster`): none (no
/// copies), STANDARD (RUN at the writer only), the pattern classes RRD, RDN, DDR and NNR (the same
/// vector on every cluster), HUB (a different vector per cluster) and the Sync classes SSD
/// (strict) and SYNCDEF (deferred on a sync cluster's failure).
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

/// The catalog commands a stalled or duplicated message carries (their JSON tag, which a
/// forwarded Propose carries verbatim): ownership moves and fences, publishes and category
/// changes, copy reports, the read barrier a requester commits before it asks for a surrender.
pub const COMMANDS: [&str; 5] = [
    "\"Transfer\"",
    "\"Reclaim\"",
    "\"UpdateVolume\"",
    "\"CopyDone\"",
    "\"Barrier\"",
];

/// What a schedule draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Every topology, every fault, every job kind.
    Full,
    /// The shape of the first random schedules: c0, c1, c2 and witness w8; links cut, voters
    /// isolated, healed, crashed; specific and scratch writes, reads, category changes. Many
    /// cheap seeds of the ownership and copy paths, with jobs at the owner or anywhere.
    Light { at_owner: bool },
    /// Takeover (issue 10): c0, c1, c2 and witness w8 with a takeover agent beside each data
    /// cluster and `[[takeover]]` entries (WOT or ROT, grace 2..5 s) drawn per seed, a
    /// self-fencing lease in some seeds; nodes down long enough for the agents to take their
    /// volumes over, agents crashed, heartbeat paths cut, whole sites lost; jobs anywhere.
    Takeover,
}

impl Profile {
    /// Mixed into the seed, so the profiles draw different schedules from the same seed.
    fn salt(self) -> u64 {
        match self {
            Profile::Full => 0xADE5_A21A,
            Profile::Light { at_owner: true } => 0x0001_0C41,
            Profile::Light { at_owner: false } => 0x0002_0C41,
            Profile::Takeover => 0x0003_7A4E,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Cut(u8, u8),
    OneWay(u8, u8),
    Isolate(u8),
    /// Every message between two voters held for a while, then released in order (T18).
    Hold(u8, u8, Duration),
    HostPathLost(u8, Duration),
    Heal,
    Crash(u8, Duration),
    /// A disk fault on a data cluster's volume store for a while.
    Disk(u8, DiskFault, Duration),
    /// Crash the first data cluster that reaches this crash point (for the `nth` time since it
    /// was armed, if one does within [`ARMED_FOR`]), and restart it after the duration.
    CrashAt(FaultPoint, u32, Duration),
    /// The next message between two voters that carries this catalog command (if one is sent
    /// within [`ARMED_FOR`]) is held on its own connection (the connection breaks behind it) for
    /// the duration and then delivered, while later connections pass (`vtgrid_sim::net::Stall`;
    /// sequence A, T18).
    Stall(&'static str, Duration),
    /// The next message between two voters that carries this catalog command (if one is sent
    /// within [`ARMED_FOR`]) is delivered again the duration later, on a new connection
    /// (`vtgrid_sim::net::Tap`).
    Duplicate(&'static str, Duration),
    /// A data cluster's takeover agent crashed, restarted after the duration.
    AgentCrash(u8, Duration),
    /// The heartbeat path between two data clusters' agents cut (until a heal).
    HeartbeatCut(u8, u8),
    /// A whole site lost: node and agent crashed together, both restarted after the duration.
    SiteLost(u8, Duration),
    /// A data cluster cut off from every voter (its host path stays) for the first duration,
    /// answering its host from its journal, then crashed (and healed) and restarted after the
    /// second: its agent says DOWN, a survivor may take over what it never published (B134).
    CutOffThenCrash(u8, Duration, Duration),
}

/// The disk faults of the schedule (`vtgrid_tvc::faults`).
#[derive(Debug, Clone, Copy)]
pub enum DiskFault {
    /// ENOSPC on every write.
    NoSpace,
    WriteEio,
    FsyncEio,
    /// Every fsync takes this long.
    SlowFsync(Duration),
}

impl DiskFault {
    pub fn faults(self) -> DiskFaults {
        match self {
            DiskFault::NoSpace => DiskFaults::no_space(),
            DiskFault::WriteEio => DiskFaults::write_eio(),
            DiskFault::FsyncEio => DiskFaults::fsync_eio(),
            DiskFault::SlowFsync(d) => DiskFaults::slow_fsync(d),
        }
    }
}

/// How long an armed crash point, stall or duplicate waits to be reached before it is disarmed.
pub const ARMED_FOR: Duration = Duration::from_secs(12);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
pub struct Job {
    pub kind: Kind,
    pub at: u8,
    pub volser: String,
    pub len: usize,
    pub class: Option<&'static str>,
}

/// The takeover settings of a [`Profile::Takeover`] seed.
#[derive(Debug, Clone)]
pub struct TakeoverPlan {
    /// `[[takeover]]` entries: (at, for, mode).
    pub entries: Vec<(u8, u8, &'static str)>,
    pub grace: Duration,
    /// `[lease]` self_fence_after and drift_margin, when the seed sets one.
    pub lease: Option<(Duration, Duration)>,
}

/// How long an agent lets its node stay silent before it kills it (fencing before DOWN, T21).
pub const AGENT_FENCE_AFTER: Duration = Duration::from_secs(3);

pub struct Plan {
    pub takeover: Option<TakeoverPlan>,
    pub clusters: u8,
    pub witnesses: u8,
    pub voters: Vec<u8>,
    pub at_owner: bool,
    pub faults: Vec<(Duration, Fault)>,
    pub workers: Vec<Vec<(Duration, Job)>>,
}

pub const PRIVATE_PER_CLUSTER: u32 = 3;

/// Scratch volumes each cluster inserts: at the owner, more than two workers' jobs can use.
pub fn scratch_per_cluster(at_owner: bool) -> u32 {
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

/// The cluster that inserted (and, with jobs at the owner, still owns) `volser`.
fn inserted_by(volser: &str) -> u8 {
    volser.as_bytes()[1] - b'0'
}

pub fn plan(seed: u64, profile: Profile) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed ^ profile.salt());
    let (clusters, witnesses, at_owner) = match profile {
        Profile::Full => {
            let (c, w) = TOPOLOGIES[rng.random_range(0..TOPOLOGIES.len())];
            (c, w, rng.random_bool(0.5))
        }
        Profile::Light { at_owner } => (3, 1, at_owner),
        Profile::Takeover => (3, 1, false),
    };
    let voters: Vec<u8> = (0..clusters)
        .chain((8..).take(usize::from(witnesses)))
        .collect();
    let data: Vec<u8> = (0..clusters).collect();
    let all = volsers(clusters, at_owner);
    let workers = (0..WORKERS)
        .map(|_| {
            let jobs = match profile {
                Profile::Full => rng.random_range(4..=6),
                Profile::Light { .. } => rng.random_range(3..=5),
                // Jobs for as long as a node may stay down, so some meet a takeover.
                Profile::Takeover => rng.random_range(8..=12),
            };
            let max_pause = if profile == Profile::Takeover {
                2000
            } else {
                1000
            };
            (0..jobs)
                .map(|_| {
                    let pause = Duration::from_millis(rng.random_range(0..max_pause));
                    let volser = all[rng.random_range(0..all.len())].clone();
                    let anywhere = pick(&mut rng, &data);
                    let at = if at_owner {
                        inserted_by(&volser)
                    } else {
                        anywhere
                    };
                    let kind = match profile {
                        Profile::Full => match rng.random_range(0..30) {
                            0..=6 => Kind::Write,
                            7..=10 => Kind::Scratch,
                            11..=15 => Kind::Read,
                            16..=17 => Kind::Recategorise,
                            18..=20 => Kind::Append,
                            21..=23 => Kind::SyncPoint,
                            24..=25 => Kind::Large,
                            26..=27 => Kind::CancelWrite,
                            _ => Kind::CancelUnload,
                        },
                        Profile::Light { .. } | Profile::Takeover => {
                            match rng.random_range(0..20) {
                                0..=6 => Kind::Write,
                                7..=10 => Kind::Scratch,
                                11..=15 => Kind::Read,
                                _ => Kind::Recategorise,
                            }
                        }
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
        .collect::<Vec<Vec<(Duration, Job)>>>();
    let mut workers = workers;
    let faults = match profile {
        Profile::Full => {
            let points = reachable_points(at_owner, &workers);
            full_faults(&mut rng, &voters, &data, &points)
        }
        Profile::Light { .. } => light_faults(&mut rng, &voters),
        Profile::Takeover => takeover_faults(&mut rng, &voters, &data),
    };
    let takeover = (profile == Profile::Takeover).then(|| takeover_plan(&mut rng, &data));
    if let Some(worker) = takeover
        .as_ref()
        .and_then(|t| fenced_version_worker(&faults, t))
    {
        workers.push(worker);
    }
    Plan {
        takeover,
        clusters,
        witnesses,
        voters,
        at_owner,
        faults,
        workers,
    }
}

/// The volume of cluster `i` that only [`fenced_version_worker`] writes (inserted by `i` in the
/// takeover schedules, so `i` owns it until a takeover).
pub fn fenced_volser(i: u8) -> String {
    format!("Q{i}0000")
}

/// The worker that reaches the fenced-version path (B134) in a takeover schedule with a
/// [`Fault::CutOffThenCrash`] of a data cluster some survivor may take over with WOT: it writes
/// the cut-off owner's own volume through its host path while the cut lasts (the owner
/// journals it, unpublished), then writes the same volume at that survivor after the crash and
/// the grace period, twice 3 s apart (the takeover may need the agent's retry). Once the owner
/// is back, its journal entry is refused and quarantined. Drawn from the plan alone (no random
/// numbers), so adding it changes no other draw of the seed.
fn fenced_version_worker(
    faults: &[(Duration, Fault)],
    takeover: &TakeoverPlan,
) -> Option<Vec<(Duration, Job)>> {
    faults.iter().find_map(|(t, fault)| {
        let Fault::CutOffThenCrash(owner, cut, _) = *fault else {
            return None;
        };
        let (survivor, ..) = takeover
            .entries
            .iter()
            .find(|(_, failed, mode)| *failed == owner && *mode == "wot")?;
        let write = |at: u8| Job {
            kind: Kind::Write,
            at,
            volser: fenced_volser(owner),
            len: 64,
            class: None,
        };
        Some(vec![
            (*t + cut / 2, write(owner)),
            (
                cut + takeover.grace + Duration::from_secs(2),
                write(*survivor),
            ),
            (Duration::from_secs(3), write(*survivor)),
        ])
    })
}

fn pick(rng: &mut StdRng, from: &[u8]) -> u8 {
    from[rng.random_range(0..from.len())]
}

/// The crash points this seed's jobs can reach, so an armed point is rarely wasted: the
/// surrender and obtain points only when jobs run anywhere (at the owner no ownership moves),
/// the Sync duplex point only when a job writes with a Sync class.
fn reachable_points(at_owner: bool, workers: &[Vec<(Duration, Job)>]) -> Vec<FaultPoint> {
    let writes_sync = workers.iter().flatten().any(|(_, job)| {
        !matches!(job.kind, Kind::Read | Kind::Recategorise)
            && job
                .class
                .is_some_and(|c| SYNC_CLASSES.iter().any(|(name, _)| *name == c))
    });
    FaultPoint::ALL
        .into_iter()
        .filter(|point| match point {
            FaultPoint::ObtainAfterReply
            | FaultPoint::SurrenderAfterFlush
            | FaultPoint::SurrenderAfterDoubt
            | FaultPoint::SurrenderAfterTransfer => !at_owner,
            FaultPoint::DuplexAfterCommit => writes_sync,
            _ => true,
        })
        .collect()
}

fn full_faults(
    rng: &mut StdRng,
    voters: &[u8],
    data: &[u8],
    points: &[FaultPoint],
) -> Vec<(Duration, Fault)> {
    let mut faults = Vec::new();
    let mut t = Duration::ZERO;
    let mut back_at = Duration::ZERO;
    // Faults 0.3..1.5 s apart, so most strike while the jobs run.
    for _ in 0..rng.random_range(3..=7) {
        t += Duration::from_millis(rng.random_range(300..1500));
        let a = pick(rng, voters);
        let others: Vec<u8> = voters.iter().copied().filter(|v| *v != a).collect();
        let b = pick(rng, &others);
        let fault = match rng.random_range(0..30) {
            0..=3 => Fault::Cut(a, b),
            4..=5 => Fault::OneWay(a, b),
            6..=7 => Fault::Isolate(a),
            8..=10 => Fault::Hold(a, b, Duration::from_millis(rng.random_range(6000..15000))),
            11..=12 => Fault::HostPathLost(
                pick(rng, data),
                Duration::from_millis(rng.random_range(2000..8000)),
            ),
            13..=15 => Fault::Heal,
            20..=21 => {
                let c = pick(rng, data);
                let kind = match rng.random_range(0..4) {
                    0 => DiskFault::NoSpace,
                    1 => DiskFault::WriteEio,
                    2 => DiskFault::FsyncEio,
                    _ => DiskFault::SlowFsync(Duration::from_millis(rng.random_range(500..3000))),
                };
                Fault::Disk(c, kind, Duration::from_millis(rng.random_range(2000..8000)))
            }
            22..=25 => {
                let point = points[rng.random_range(0..points.len())];
                let down = Duration::from_millis(rng.random_range(1000..4000));
                let nth = if rng.random_bool(0.75) { 1 } else { 2 };
                Fault::CrashAt(point, nth, down)
            }
            26..=27 => Fault::Stall(
                COMMANDS[rng.random_range(0..COMMANDS.len())],
                Duration::from_millis(rng.random_range(6000..15000)),
            ),
            28..=29 => Fault::Duplicate(
                COMMANDS[rng.random_range(0..COMMANDS.len())],
                Duration::from_millis(rng.random_range(1000..10000)),
            ),
            _ if t > back_at => {
                let down = Duration::from_millis(rng.random_range(1000..4000));
                back_at = t + down;
                Fault::Crash(a, down)
            }
            _ => Fault::Heal,
        };
        faults.push((t, fault));
    }
    faults
}

/// Which cluster may take which one's volumes, how: each ordered pair of data clusters has an
/// entry with probability 0.6, WOT three times in four; a lease in three seeds of ten.
fn takeover_plan(rng: &mut StdRng, data: &[u8]) -> TakeoverPlan {
    let mut entries = Vec::new();
    for at in data {
        for failed in data.iter().filter(|f| *f != at) {
            if rng.random_bool(0.6) {
                let mode = if rng.random_bool(0.75) { "wot" } else { "rot" };
                entries.push((*at, *failed, mode));
            }
        }
    }
    TakeoverPlan {
        entries,
        grace: Duration::from_secs(rng.random_range(2..=5)),
        lease: rng
            .random_bool(0.3)
            .then(|| (Duration::from_secs(6), Duration::from_secs(2))),
    }
}

/// The takeover schedules' faults: cuts, isolations, heals, at most two node crashes or site
/// losses (restarted 4..16 s later: often past the grace period, so the agents take over),
/// agent crashes and heartbeat cuts.
fn takeover_faults(rng: &mut StdRng, voters: &[u8], data: &[u8]) -> Vec<(Duration, Fault)> {
    let mut faults = Vec::new();
    let mut t = Duration::ZERO;
    let mut back_at = Duration::ZERO;
    let mut crashes = 0;
    for _ in 0..rng.random_range(3..=6) {
        t += Duration::from_millis(rng.random_range(300..2500));
        let a = pick(rng, voters);
        let others: Vec<u8> = voters.iter().copied().filter(|v| *v != a).collect();
        let d = pick(rng, data);
        let other_data: Vec<u8> = data.iter().copied().filter(|v| *v != d).collect();
        let down = Duration::from_millis(rng.random_range(4000..16000));
        let fault = match rng.random_range(0..12) {
            0..=2 => Fault::Cut(a, pick(rng, &others)),
            3 => Fault::Isolate(a),
            4..=5 => Fault::Heal,
            6 => Fault::AgentCrash(d, down),
            7 => Fault::HeartbeatCut(d, pick(rng, &other_data)),
            8..=9 if crashes < 2 && t > back_at => {
                back_at = t + down;
                crashes += 1;
                Fault::Crash(a, down)
            }
            10 if crashes < 2 && t > back_at => {
                back_at = t + down;
                crashes += 1;
                Fault::SiteLost(d, down)
            }
            11 if crashes < 2 && t > back_at => {
                let cut = Duration::from_millis(rng.random_range(1000..3000));
                back_at = t + cut + down;
                crashes += 1;
                Fault::CutOffThenCrash(d, cut, down)
            }
            _ => Fault::Heal,
        };
        faults.push((t, fault));
    }
    faults
}

/// The first schedules' faults: at most two crashes, each restarted 1..4 s later.
fn light_faults(rng: &mut StdRng, voters: &[u8]) -> Vec<(Duration, Fault)> {
    let mut faults = Vec::new();
    let mut t = Duration::ZERO;
    let mut back_at = Duration::ZERO;
    let mut crashes = 0;
    for _ in 0..rng.random_range(3..=6) {
        t += Duration::from_millis(rng.random_range(300..2500));
        let a = pick(rng, voters);
        let others: Vec<u8> = voters.iter().copied().filter(|v| *v != a).collect();
        let fault = match rng.random_range(0..10) {
            0..=3 => Fault::Cut(a, pick(rng, &others)),
            4..=5 => Fault::Isolate(a),
            6..=7 => Fault::Heal,
            _ if crashes < 2 && t > back_at => {
                let down = Duration::from_millis(rng.random_range(1000..4000));
                back_at = t + down;
                crashes += 1;
                Fault::Crash(a, down)
            }
            _ => Fault::Heal,
        };
        faults.push((t, fault));
    }
    faults
}

#[test]
fn a_plan_depends_only_on_its_seed_and_profile() {
    let show = |p: &Plan| format!("{:?} {:?}", p.faults, p.workers);
    for profile in [
        Profile::Full,
        Profile::Light { at_owner: true },
        Profile::Light { at_owner: false },
        Profile::Takeover,
    ] {
        assert_eq!(show(&plan(5, profile)), show(&plan(5, profile)));
        assert_ne!(show(&plan(5, profile)), show(&plan(6, profile)));
    }
    assert_ne!(
        show(&plan(5, Profile::Light { at_owner: true })),
        show(&plan(5, Profile::Light { at_owner: false })),
        "each profile draws its own schedules"
    );
}

#[test]
fn crash_points_are_drawn_from_what_the_jobs_reach() {
    let job = |class: Option<&'static str>| {
        vec![(
            Duration::ZERO,
            Job {
                kind: Kind::Write,
                at: 0,
                volser: "P00000".into(),
                len: 16,
                class,
            },
        )]
    };
    let at_owner = reachable_points(true, &[job(None)]);
    assert!(!at_owner.contains(&FaultPoint::SurrenderAfterDoubt));
    assert!(!at_owner.contains(&FaultPoint::DuplexAfterCommit));
    assert!(at_owner.contains(&FaultPoint::UnloadAfterJournal));
    let anywhere_sync = reachable_points(false, &[job(Some(SYNC_CLASSES[0].0))]);
    assert!(anywhere_sync.contains(&FaultPoint::SurrenderAfterDoubt));
    assert!(anywhere_sync.contains(&FaultPoint::DuplexAfterCommit));
    assert_eq!(anywhere_sync.len(), FaultPoint::ALL.len());
}
