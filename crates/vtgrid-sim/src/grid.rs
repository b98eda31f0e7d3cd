//! A whole simulated grid: voters as turmoil hosts, the faults a test injects, and the driver loop
//! that checks invariants after every `sim.step()`.
//!
//! ```text
//!   test driver (outside the hosts)              simulated hosts
//!   SimGrid::run ── sim.step() ──────────────>  c0, c1, .., w8 (run_cluster), tape host (client)
//!        │  apply queued crash/restart  <──────  GridControl::crash(id).await (from the client)
//!        │  check(&SimGrid): invariants over the running clusters' Arc<Cluster> (ClusterSlot)
//!        └─ error: "seed S, step N (T simulated): <violation>"
//! ```
//!
//! Partitions need no driver: turmoil's `partition`/`repair` work from inside the simulation, so
//! [`GridControl`] applies them at once. Crashes and restarts need `Sim`, which only the driver
//! holds: the client queues them and waits (in simulated time) until the driver has applied them,
//! which happens right after the step that queued them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use turmoil::Sim;
use vtgrid_node::config::GridConfig;
use vtgrid_node::faults::FaultPoint;
use vtgrid_node::Cluster;

use crate::agent::agent_host_name;
use crate::cluster::{host_name, run_cluster, sim_grid, SimDisks, FIRST_WITNESS};

/// How long a simulation may run before turmoil fails it, unless the test says otherwise.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(600);

/// turmoil's default: one step is one millisecond of simulated time.
pub const DEFAULT_TICK: Duration = Duration::from_millis(1);

/// A fault only the driver can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostFault {
    Crash(u8),
    Restart(u8),
    /// The takeover agent of data cluster `id` (a whole site lost with its node, T8).
    CrashAgent(u8),
    /// Start that agent again (turmoil's bounce: the host's software from the beginning).
    RestartAgent(u8),
}

#[derive(Default)]
struct ControlState {
    queue: VecDeque<HostFault>,
    /// Faults queued so far, and how many of them the driver has applied.
    requested: u64,
    applied: u64,
    /// Voters crashed and not restarted.
    down: BTreeSet<u8>,
    /// Bumped at each crash and restart of a voter, so a job can tell whether its cluster went
    /// away while it ran (a reasonless transport error is then expected).
    lives: BTreeMap<u8, u64>,
    /// The crashes armed crash points caused, in order.
    point_crashes: Vec<PointCrash>,
    /// Takeover agents run beside the data clusters ([`SimGrid::add_agents`]).
    agents: bool,
}

/// A crash an armed crash point caused (see [`GridControl::arm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointCrash {
    pub voter: u8,
    pub point: FaultPoint,
    /// Simulated time since the start of the simulation (`turmoil::sim_elapsed`) when the
    /// driver crashed the voter, right after the step in which the point was reached.
    pub at: Duration,
}

/// The test's handle on the grid from inside the simulation (the tape host's side): faults, and
/// the running clusters' handles for conditions a test waits for (Raft metrics, journals).
#[derive(Clone)]
pub struct GridControl {
    state: Arc<Mutex<ControlState>>,
    voters: Arc<BTreeMap<u8, SimDisks>>,
}

impl GridControl {
    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every voter id: data clusters then witnesses.
    pub fn voters(&self) -> Vec<u8> {
        self.voters.keys().copied().collect()
    }

    /// The data clusters' ids.
    pub fn data_clusters(&self) -> Vec<u8> {
        self.voters
            .keys()
            .copied()
            .filter(|id| *id < FIRST_WITNESS)
            .collect()
    }

    /// Voter `id`'s running cluster, if it runs.
    pub fn cluster(&self, id: u8) -> Option<Arc<Cluster>> {
        self.voters.get(&id).and_then(SimDisks::running)
    }

    /// Commit `command` at whichever running voter leads, retrying for `within` while a majority
    /// elects one: a test standing in for a decision only the leader makes (a fenced takeover's
    /// Transfer), which no other voter may forward (`CatalogCommand::may_be_forwarded_by`). The
    /// last error once `within` has passed.
    pub async fn propose_at_leader(
        &self,
        command: vtgrid_core::catalog::CatalogCommand,
        within: Duration,
    ) -> Result<vtgrid_core::catalog::Applied, vtgrid_node::NodeError> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let mut last = None;
            for id in self.voters() {
                let Some(cluster) = self.cluster(id) else {
                    continue;
                };
                match cluster.probe().propose_as_leader(command.clone()).await {
                    Ok(applied) => return Ok(applied),
                    Err(e) => last = Some(e),
                }
            }
            if tokio::time::Instant::now() >= until {
                return Err(last.unwrap_or_else(|| {
                    vtgrid_node::NodeError::catalog(vtgrid_node::error::CatalogFailure::NoLeader)
                }));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn is_down(&self, id: u8) -> bool {
        self.lock().down.contains(&id)
    }

    /// How many times voter `id` was crashed or restarted so far.
    pub fn life(&self, id: u8) -> u64 {
        self.lock().lives.get(&id).copied().unwrap_or(0)
    }

    /// Cut the grid link between voters `a` and `b` (both directions).
    pub fn partition(&self, a: u8, b: u8) {
        turmoil::partition(host_name(a), host_name(b));
    }

    pub fn repair(&self, a: u8, b: u8) {
        turmoil::repair(host_name(a), host_name(b));
    }

    /// Cut voter `id` off from every other voter. Hosts (the tape host) still reach it.
    pub fn isolate(&self, id: u8) {
        for other in self.voters() {
            if other != id {
                self.partition(id, other);
            }
        }
    }

    /// Repair every link between voters.
    pub fn heal(&self) {
        let ids = self.voters();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                self.repair(*a, *b);
            }
        }
        if self.lock().agents {
            let data = self.data_clusters();
            for (i, a) in data.iter().enumerate() {
                for b in &data[i + 1..] {
                    self.repair_heartbeat(*a, *b);
                }
            }
        }
    }

    /// Crash voter `id` the `nth` time (1 = next) it reaches `point` (`vtgrid_node::faults`):
    /// the driver crashes it right after that step, as [`GridControl::crash`] would, and it
    /// stays down until restarted. Replaces what was armed at `id`.
    pub fn arm(&self, id: u8, point: FaultPoint, nth: u32) {
        if let Some(disks) = self.voters.get(&id) {
            disks.faults.arm(point, nth);
        }
    }

    /// Disarm voter `id`'s crash point; true when it fired since it was armed.
    pub fn disarm(&self, id: u8) -> bool {
        self.voters.get(&id).is_some_and(|d| d.faults.disarm())
    }

    /// Every crash an armed point caused so far.
    pub fn point_crashes(&self) -> Vec<PointCrash> {
        self.lock().point_crashes.clone()
    }

    /// Voter `id`'s volume store, which outlives its crashes: a test sets disk faults on it
    /// (`MemVolumeStore::set_faults`).
    pub fn volumes(&self, id: u8) -> Option<vtgrid_tvc::MemVolumeStore> {
        self.voters.get(&id).map(|d| d.volumes.clone())
    }

    /// Cut the heartbeat network between the agents of data clusters `a` and `b` (T9, T10).
    pub fn cut_heartbeat(&self, a: u8, b: u8) {
        turmoil::partition(agent_host_name(a), agent_host_name(b));
    }

    pub fn repair_heartbeat(&self, a: u8, b: u8) {
        turmoil::repair(agent_host_name(a), agent_host_name(b));
    }

    /// Crash data cluster `id`'s takeover agent (it stays down until [`Self::restart_agent`]).
    pub async fn crash_agent(&self, id: u8) {
        self.request(HostFault::CrashAgent(id)).await;
    }

    /// Start data cluster `id`'s crashed takeover agent again.
    pub async fn restart_agent(&self, id: u8) {
        self.request(HostFault::RestartAgent(id)).await;
    }

    /// Crash voter `id` (power cut: unsynced writes are lost); returns once the driver did it.
    pub async fn crash(&self, id: u8) {
        self.request(HostFault::Crash(id)).await;
    }

    /// Start crashed voter `id` again on its disks; returns once the driver did it.
    pub async fn restart(&self, id: u8) {
        self.request(HostFault::Restart(id)).await;
    }

    async fn request(&self, fault: HostFault) {
        let ticket = {
            let mut s = self.lock();
            s.queue.push_back(fault);
            s.requested += 1;
            s.requested
        };
        // The driver applies it right after the current step; this waits in simulated time.
        while self.lock().applied < ticket {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// A simulated grid and its driver. See the module doc.
pub struct SimGrid {
    pub sim: Sim<'static>,
    pub seed: u64,
    pub grid: Arc<GridConfig>,
    control: GridControl,
    steps: u64,
    /// Each voter's Raft (term, leader, last applied index) as last written to the trace.
    traced_raft: BTreeMap<u8, (u64, Option<u64>, Option<u64>)>,
}

impl SimGrid {
    /// `clusters` data clusters `c0..` and `witnesses` witnesses `w8..`, each a turmoil host
    /// started at once, with [`DEFAULT_DURATION`].
    pub fn new(seed: u64, clusters: u8, witnesses: u8) -> SimGrid {
        SimGrid::with_duration(seed, clusters, witnesses, DEFAULT_DURATION)
    }

    /// [`SimGrid::new`] with a bound on simulated time.
    pub fn with_duration(seed: u64, clusters: u8, witnesses: u8, duration: Duration) -> SimGrid {
        SimGrid::with_timing(seed, clusters, witnesses, duration, DEFAULT_TICK)
    }

    /// [`SimGrid::new`] with a bound on simulated time and the simulated time one step covers.
    /// A longer tick means fewer steps (and invariant checks) per simulated second; timers and
    /// message deliveries then happen at that granularity. Raft's timing (100 ms heartbeats,
    /// 400-800 ms elections) is unaffected by ticks up to about 10 ms.
    pub fn with_timing(
        seed: u64,
        clusters: u8,
        witnesses: u8,
        duration: Duration,
        tick: Duration,
    ) -> SimGrid {
        SimGrid::with_config(seed, sim_grid(clusters, witnesses), duration, tick)
    }

    /// A simulated grid on a grid file the test adjusted first (per-cluster overrides, extra
    /// grid links): one turmoil host per voter of `grid`.
    pub fn with_config(seed: u64, grid: GridConfig, duration: Duration, tick: Duration) -> SimGrid {
        let sim = crate::cluster::sim_builder(seed)
            .simulation_duration(duration)
            .tick_duration(tick)
            .build();
        vtgrid_catalog::runtime::seed_thread_rng(seed);
        crate::net::Link::repair_all();
        let grid = Arc::new(grid);
        let voters: BTreeMap<u8, SimDisks> = grid
            .voters()
            .into_keys()
            .filter_map(|id| u8::try_from(id).ok())
            .map(|id| (id, SimDisks::new()))
            .collect();
        let mut sim_grid = SimGrid {
            sim,
            seed,
            grid,
            control: GridControl {
                state: Arc::default(),
                voters: Arc::new(voters),
            },
            steps: 0,
            traced_raft: BTreeMap::new(),
        };
        for id in sim_grid.control.voters() {
            let (grid, disks) = (sim_grid.grid.clone(), sim_grid.control.voters[&id].clone());
            sim_grid.sim.host(host_name(id), move || {
                run_cluster(grid.clone(), id, disks.clone())
            });
        }
        crate::cluster::vary_link_latencies(&sim_grid.sim, seed, &sim_grid.control.voters());
        sim_grid
    }

    /// Start a takeover agent beside every data cluster (hosts `a0`.., on the heartbeat
    /// addresses): they kill a node that stops answering for `fence_after` before they report it
    /// down; `None`: they never fence.
    pub fn add_agents(&mut self, fence_after: Option<Duration>) {
        self.control.lock().agents = true;
        for id in self.control.data_clusters() {
            let (grid, control) = (self.grid.clone(), self.control.clone());
            self.sim.host(agent_host_name(id), move || {
                crate::agent::run_agent(grid.clone(), id, control.clone(), fence_after)
            });
        }
    }

    /// The handle a client (the tape host) uses for faults and cluster handles.
    pub fn control(&self) -> GridControl {
        self.control.clone()
    }

    /// Add a client host, e.g. the tape host running the test's sequence.
    pub fn client<F>(&mut self, name: &str, body: F)
    where
        F: Future<Output = Result<(), Box<dyn std::error::Error>>> + 'static,
    {
        self.sim.client(name, body);
    }

    pub fn voters(&self) -> Vec<u8> {
        self.control.voters()
    }

    /// Voter `id`'s running cluster, if it runs.
    pub fn cluster(&self, id: u8) -> Option<Arc<Cluster>> {
        self.control.cluster(id)
    }

    /// The running (not crashed) clusters and witnesses, by id.
    pub fn running(&self) -> Vec<Arc<Cluster>> {
        self.voters()
            .into_iter()
            .filter(|id| !self.control.is_down(*id))
            .filter_map(|id| self.cluster(id))
            .collect()
    }

    /// The disks of voter `id` (what survives its crashes).
    pub fn disks(&self, id: u8) -> &SimDisks {
        &self.control.voters[&id]
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Crash voter `id` now (power cut).
    pub fn crash(&mut self, id: u8) {
        self.sim.crash(host_name(id));
        self.control.voters[&id].slot.set(None);
        let mut s = self.control.lock();
        s.down.insert(id);
        *s.lives.entry(id).or_default() += 1;
    }

    /// Start voter `id` again (turmoil's bounce: crash if running, then start the host anew).
    pub fn restart(&mut self, id: u8) {
        self.sim.bounce(host_name(id));
        self.control.voters[&id].slot.set(None);
        let mut s = self.control.lock();
        s.down.remove(&id);
        *s.lives.entry(id).or_default() += 1;
    }

    pub fn partition(&self, a: u8, b: u8) {
        self.sim.partition(host_name(a), host_name(b));
    }

    pub fn repair(&self, a: u8, b: u8) {
        self.sim.repair(host_name(a), host_name(b));
    }

    /// Cut voter `id` off from every other voter.
    pub fn isolate(&self, id: u8) {
        for other in self.voters() {
            if other != id {
                self.partition(id, other);
            }
        }
    }

    fn apply_requested_faults(&mut self) {
        loop {
            let next = self.control.lock().queue.pop_front();
            let Some(fault) = next else { break };
            match fault {
                HostFault::Crash(id) => self.crash(id),
                HostFault::Restart(id) => self.restart(id),
                HostFault::CrashAgent(id) => self.sim.crash(agent_host_name(id)),
                HostFault::RestartAgent(id) => self.sim.bounce(agent_host_name(id)),
            }
            self.control.lock().applied += 1;
        }
    }

    /// Crash every voter whose armed crash point fired during the last step.
    fn apply_fired_points(&mut self) {
        for id in self.voters() {
            let Some(point) = self.control.voters[&id].faults.take_fired() else {
                continue;
            };
            if self.control.is_down(id) {
                continue;
            }
            self.crash(id);
            let at = self.sim.elapsed();
            crate::trace::note(|| format!("crash point {point:?} fired at {}", host_name(id)));
            self.control.lock().point_crashes.push(PointCrash {
                voter: id,
                point,
                at,
            });
        }
    }

    /// Step until every client is done, applying the faults clients queue and calling `check`
    /// after every step. A failure names the seed, the step and the simulated time.
    pub fn run(
        &mut self,
        mut check: impl FnMut(&SimGrid) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let done = self.sim.step().map_err(|e| self.failure(&e.to_string()))?;
            self.steps += 1;
            self.apply_requested_faults();
            self.apply_fired_points();
            self.trace_raft();
            check(self).map_err(|e| self.failure(&e))?;
            if done {
                return Ok(());
            }
        }
    }

    /// Write each voter's Raft term, leader and last applied index to the trace when they change
    /// (the commits of the run, as every voter applied them).
    fn trace_raft(&mut self) {
        if !crate::trace::recording() {
            return;
        }
        for id in self.voters() {
            let Some(c) = self.cluster(id) else { continue };
            let m = c.probe().raft_metrics();
            let now = (
                m.current_term,
                m.current_leader,
                m.last_applied.map(|l| l.index),
            );
            if self.traced_raft.get(&id) != Some(&now) {
                self.traced_raft.insert(id, now);
                crate::trace::note(|| {
                    format!(
                        "raft {} term {} leader {:?} applied {:?}",
                        host_name(id),
                        now.0,
                        now.1,
                        now.2
                    )
                });
            }
        }
    }

    /// "seed S, step N (T simulated): what".
    pub fn failure(&self, what: &str) -> String {
        format!(
            "seed {}, step {} ({:?} simulated): {what}",
            self.seed,
            self.steps,
            self.sim.elapsed()
        )
    }
}

#[derive(Default)]
struct TripState {
    /// Watch this voter's Raft log; fire once it grows past `baseline`.
    armed: Option<(u8, u64)>,
    /// The grid links to cut when it fires.
    cut: Vec<(u8, u8)>,
    fired: bool,
}

/// Cuts grid links at an exact point of a Raft exchange: in the gap after the step in which a
/// voter's Raft log grows past a baseline (an entry arrived, not yet committed: the followers'
/// acknowledgements come in a later step). A client arms it; the driver calls
/// [`LogTripwire::check`] after every step. turmoil drops what is sent after a cut, so the answers
/// to that entry, and the commit that follows, never cross the cut links.
#[derive(Clone, Default)]
pub struct LogTripwire(Arc<Mutex<TripState>>);

impl LogTripwire {
    fn lock(&self) -> std::sync::MutexGuard<'_, TripState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fire when voter `watch`'s Raft log grows past its current last index, cutting `cut`.
    pub fn arm(&self, control: &GridControl, watch: u8, cut: Vec<(u8, u8)>) {
        self.arm_after(control, watch, 0, cut)
    }

    /// [`LogTripwire::arm`], letting `skip` entries go by first: e.g. the read barrier a
    /// requester commits before it asks an owner to surrender, ahead of the owner's Transfer.
    pub fn arm_after(&self, control: &GridControl, watch: u8, skip: u64, cut: Vec<(u8, u8)>) {
        let baseline = control
            .cluster(watch)
            .and_then(|c| c.probe().raft_metrics().last_log_index)
            .unwrap_or(0)
            + skip;
        let mut s = self.lock();
        s.armed = Some((watch, baseline));
        s.cut = cut;
        s.fired = false;
    }

    pub fn fired(&self) -> bool {
        self.lock().fired
    }

    /// The driver's part: fire if armed and the watched log grew.
    pub fn check(&self, grid: &SimGrid) {
        let mut s = self.lock();
        let Some((watch, baseline)) = s.armed else {
            return;
        };
        let grown = grid
            .cluster(watch)
            .is_some_and(|c| c.probe().raft_metrics().last_log_index > Some(baseline));
        if grown {
            for (a, b) in &s.cut {
                grid.partition(*a, *b);
            }
            s.armed = None;
            s.fired = true;
        }
    }
}
