//! The chaos runner (issue 11 item 1), loopback mode: a grid from a `cluster-config/` file as
//! real `vtgrid node`, `vtgrid witness` and `vtgrid agent` processes on free loopback ports, the
//! seeded [`schedule`](crate::schedule) applied to them while [`workload`](crate::workload)
//! rounds run through every cluster, then everything restarted and resumed, the grid left to
//! settle, each cluster's final state asked for, and the run judged ([`check`](crate::check)).
//!
//! ```text
//!   template.toml ──rewrite──> run/grid.toml (free ports, data dirs under run/, takeover for
//!                              every pair unless the file has its own, a short agent fence)
//!   spawn nodes, witnesses, agents ──> wait ready ──> insert volumes
//!   faults (schedule) ‖ workers (rounds)  ──> run/history.jsonl
//!   restart, SIGCONT, settle ──> run/state.json ──> report (run/report.txt)
//! ```
//!
//! Without root, or without network namespaces, only process faults are possible (kill -9,
//! SIGSTOP); the runner says so. Every child is killed when the runner ends, also on an error
//! or Ctrl-C ([`Processes`] kills on drop).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tonic::transport::Endpoint;
use vtgrid_proto::pb;
use vtgrid_proto::pb::admin_service_client::AdminServiceClient;
use vtgrid_proto::pb::status_service_client::StatusServiceClient;

use crate::disk::Disks;
use crate::history::{CopyMode, Fault, FaultKind, Owed};
use crate::netns::{Net, Netns};
use crate::schedule::{self, Limits, Step};
use crate::state::FinalState;
use crate::workload::{self, Class, Mix, Recorder};

/// What a run does.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The grid file the run's grid is made from.
    pub template: PathBuf,
    pub seed: u64,
    /// How long the faults run (the workload with them); settling comes after.
    pub span: Duration,
    pub max_faults: usize,
    /// Where the grid file, data dirs, logs, history, state and report go.
    pub out: PathBuf,
    /// The `vtgrid` binary.
    pub vtgrid: PathBuf,
    /// Host workers running rounds at once.
    pub workers: usize,
    /// `[[takeover]]` grace, when the template has no takeover entries of its own.
    pub grace: Duration,
    /// `VTGRID_BREAK` for every node: a deliberately broken build the checker must catch
    /// (`vtgrid_node::faults::Break`; debug builds of `vtgrid` only).
    pub break_build: Option<String>,
    /// The self-fencing lease written into the grid file (when the template has no `[lease]`):
    /// with it a whole site lost (node and agent) is taken over too, after the lease and its
    /// 2 s drift margin.
    pub lease: Option<Duration>,
    /// How long the healed grid gets to settle (same catalogs, no copy owed) before its state is
    /// taken and judged as it stands.
    pub settle: Duration,
}

impl RunConfig {
    /// What the run's schedule may do, for a grid of `clusters` data clusters.
    pub fn limits(&self, clusters: u8, netns: bool) -> Limits {
        Limits {
            clusters,
            span: self.span,
            max_faults: self.max_faults,
            paths: netns,
            // A volume cache filesystem per cluster needs root, as the namespaces do.
            disk: netns,
            // Past the grace period, and past the lease when there is one, so survivors take
            // a dead cluster's volumes over before it is back.
            max_down: self.grace * 3 + self.lease.map_or(Duration::ZERO, |l| l + LEASE_MARGIN),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the grid file {0}: {1}")]
    Template(PathBuf, String),
    #[error("{0}")]
    Grid(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |e| RunError::Io(what, e)
}

/// One voter or agent of the run's grid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Node,
    Witness,
    Agent,
}

impl Role {
    fn command(&self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Witness => "witness",
            Role::Agent => "agent",
        }
    }
}

/// The run's grid file, rewritten from the template.
#[derive(Clone, Debug)]
pub struct RunGrid {
    pub path: PathBuf,
    /// Data clusters: id, host endpoint.
    pub clusters: Vec<(u8, String)>,
    /// Data clusters' data dirs.
    pub data_dirs: Vec<(u8, PathBuf)>,
    pub witnesses: Vec<u8>,
    pub insert_category: String,
    pub private_category: String,
    pub classes: Vec<Class>,
}

fn free_port() -> Result<u16, RunError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("binding a free port"))?;
    Ok(l.local_addr().map_err(io("a free port"))?.port())
}

/// The copy mode a class vector gives a write at `at`: the strongest mode it names for any
/// other cluster (Sync, then RUN, then Deferred); none: No Copy.
pub fn mode_at(vector: &str, at: usize) -> CopyMode {
    let others: Vec<char> = vector
        .chars()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .map(|(_, c)| c.to_ascii_uppercase())
        .collect();
    if others.contains(&'S') {
        CopyMode::Sync
    } else if others.contains(&'R') {
        CopyMode::Run
    } else if others.contains(&'D') {
        CopyMode::Deferred
    } else {
        CopyMode::NoCopy
    }
}

/// The lease's drift margin in a run's grid file.
const LEASE_MARGIN: Duration = Duration::from_secs(2);

/// Rewrite `template` into `out/grid.toml`: free loopback ports, data dirs under `out/`, and
/// (when the template has none) WOT takeover entries for every ordered pair of data clusters
/// with `grace`, an agent that fences a silent node after 5 s, and `lease`.
pub fn rewrite(
    template: &Path,
    out: &Path,
    grace: Duration,
    lease: Option<Duration>,
    netns: bool,
) -> Result<RunGrid, RunError> {
    let bad = |why: &str| RunError::Template(template.to_path_buf(), why.to_string());
    let text = fs::read_to_string(template).map_err(io(template.display().to_string()))?;
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(&e.to_string()))?;
    let grid = doc
        .get("grid")
        .and_then(|g| g.as_table())
        .ok_or_else(|| bad("no [grid]"))?;
    let category = |key: &str, default: &str| {
        grid.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .to_string()
    };
    let (insert_category, private_category) = (
        category("insert_category", "0001"),
        category("private_category", "000F"),
    );
    if netns {
        // The namespaces' addresses are off loopback but inside networks this run made and no
        // one else reaches: plain TCP there is the grid file's `insecure` case.
        if let Some(g) = doc.get_mut("grid").and_then(|g| g.as_table_mut()) {
            g.insert("insecure".into(), toml::Value::Boolean(true));
        }
    }
    let mut clusters = Vec::new();
    let mut data_dirs = Vec::new();
    let mut witnesses = Vec::new();
    for (kind, keys) in [
        ("cluster", &["host", "grid", "heartbeat", "metrics"][..]),
        ("witness", &["grid", "heartbeat"][..]),
    ] {
        let Some(entries) = doc.get_mut(kind).and_then(|v| v.as_array_mut()) else {
            continue;
        };
        for entry in entries.iter_mut() {
            let t = entry
                .as_table_mut()
                .ok_or_else(|| bad("a voter is not a table"))?;
            let id = t
                .get("id")
                .and_then(|v| v.as_integer())
                .ok_or_else(|| bad("a voter without an id"))? as u8;
            let name = t
                .get("name")
                .and_then(|v| v.as_str())
                .map_or_else(|| format!("v{id}"), str::to_string);
            for key in keys {
                if t.contains_key(*key) {
                    let addr = if netns {
                        let (net, port) = match *key {
                            "host" => (Net::Host, 7600),
                            "grid" => (Net::Grid, 7601),
                            "heartbeat" => (Net::Heartbeat, 7602),
                            _ => (Net::Host, 7603),
                        };
                        format!("{}:{port}", Netns::addr(id, net))
                    } else {
                        format!("127.0.0.1:{}", free_port()?)
                    };
                    t.insert(key.to_string(), addr.into());
                }
            }
            let dir = out.join("data").join(&name);
            t.insert("data_dir".into(), dir.display().to_string().into());
            if kind == "cluster" {
                data_dirs.push((id, dir.clone()));
                let host = t.get("host").and_then(|v| v.as_str()).unwrap_or_default();
                clusters.push((id, format!("http://{host}")));
            } else {
                witnesses.push(id);
            }
        }
    }
    if clusters.is_empty() {
        return Err(bad("no [[cluster]]"));
    }
    if !doc.contains_key("takeover") {
        let mut entries = toml::value::Array::new();
        for (at, _) in &clusters {
            for (failed, _) in clusters.iter().filter(|(f, _)| f != at) {
                let mut e = toml::Table::new();
                e.insert("at".into(), i64::from(*at).into());
                e.insert("for".into(), i64::from(*failed).into());
                e.insert("mode".into(), "wot".into());
                e.insert("grace_secs".into(), (grace.as_secs() as i64).into());
                e.insert("retry_secs".into(), 5.into());
                entries.push(e.into());
            }
        }
        doc.insert("takeover".into(), entries.into());
    }
    if let Some(lease) = lease {
        doc.entry("lease").or_insert_with(|| {
            let mut l = toml::Table::new();
            l.insert(
                "self_fence_after_secs".into(),
                (lease.as_secs().max(2) as i64).into(),
            );
            l.insert(
                "drift_margin_secs".into(),
                (LEASE_MARGIN.as_secs() as i64).into(),
            );
            l.into()
        });
    }
    doc.entry("agent").or_insert_with(|| {
        let mut a = toml::Table::new();
        a.insert("fence_after_secs".into(), 5.into());
        a.into()
    });
    let ids: Vec<u8> = clusters.iter().map(|(id, _)| *id).collect();
    // The workload writes under every copy mode (issue 11 item 3): a grid file with no Sync
    // class gets one, its first two data clusters duplexed (a sync cluster dropping out defers
    // its copy rather than failing the job).
    let has_sync = doc
        .get("management_class")
        .and_then(|v| v.as_array())
        .is_some_and(|list| {
            list.iter().any(|mc| {
                mc.get("copy_modes")
                    .and_then(|v| v.as_table())
                    .is_some_and(|t| {
                        t.values()
                            .any(|v| v.as_str().is_some_and(|s| s.contains('S')))
                    })
            })
        });
    if !has_sync && ids.len() >= 2 {
        let vector: String = (0..ids.len())
            .map(|i| if i < 2 { 'S' } else { 'N' })
            .collect();
        let mut modes = toml::Table::new();
        for id in &ids {
            modes.insert(format!("C{id}"), vector.clone().into());
        }
        let mut mc = toml::Table::new();
        mc.insert("name".into(), "SYNCDUP".into());
        mc.insert("copy_modes".into(), modes.into());
        mc.insert("on_sync_failure".into(), "defer".into());
        match doc
            .get_mut("management_class")
            .and_then(|v| v.as_array_mut())
        {
            Some(list) => list.push(mc.into()),
            None => {
                doc.insert(
                    "management_class".into(),
                    vec![toml::Value::from(mc)].into(),
                );
            }
        }
    }
    let classes = doc
        .get("management_class")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|mc| {
                    let name = mc.get("name")?.as_str()?.to_string();
                    let vectors = mc.get("copy_modes")?.as_table()?;
                    let modes = ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| {
                            vectors
                                .get(&format!("C{id}"))
                                .and_then(|v| v.as_str())
                                .map_or(CopyMode::NoCopy, |v| mode_at(v, i))
                        })
                        .collect();
                    Some(Class { name, modes })
                })
                .collect()
        })
        .unwrap_or_default();
    fs::create_dir_all(out).map_err(io(out.display().to_string()))?;
    let path = out.join("grid.toml");
    fs::write(
        &path,
        toml::to_string(&doc).map_err(|e| bad(&e.to_string()))?,
    )
    .map_err(io(path.display().to_string()))?;
    Ok(RunGrid {
        path,
        clusters,
        data_dirs,
        witnesses,
        insert_category,
        private_category,
        classes,
    })
}

/// The ids of every voter (data clusters and witnesses) in a grid file.
pub fn voters_of(template: &Path) -> Result<Vec<u8>, RunError> {
    let bad = |why: String| RunError::Template(template.to_path_buf(), why);
    let text = fs::read_to_string(template).map_err(io(template.display().to_string()))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.to_string()))?;
    let mut ids = Vec::new();
    for kind in ["cluster", "witness"] {
        for entry in doc
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let id = entry
                .get("id")
                .and_then(|v| v.as_integer())
                .ok_or_else(|| bad("a voter without an id".into()))?;
            ids.push(id as u8);
        }
    }
    Ok(ids)
}

/// The run's child processes; all killed on drop.
pub struct Processes {
    /// Each voter in its own namespace (`ip netns exec`), or all on loopback.
    namespaces: Option<Vec<(u8, Vec<String>)>>,
    vtgrid: PathBuf,
    grid: PathBuf,
    logs: PathBuf,
    /// `VTGRID_BREAK` for nodes, if the run breaks them on purpose.
    break_build: Option<String>,
    children: BTreeMap<(Role, u8), Child>,
}

impl Processes {
    pub fn new(
        vtgrid: &Path,
        grid: &RunGrid,
        logs: &Path,
        netns: Option<&Netns>,
        break_build: Option<String>,
    ) -> Processes {
        let namespaces = netns.map(|n| {
            grid.clusters
                .iter()
                .map(|(id, _)| *id)
                .chain(grid.witnesses.iter().copied())
                .map(|id| (id, n.exec_prefix(id)))
                .collect()
        });
        Processes {
            namespaces,
            vtgrid: vtgrid.to_path_buf(),
            grid: grid.path.clone(),
            logs: logs.to_path_buf(),
            break_build,
            children: BTreeMap::new(),
        }
    }

    /// Start `role` `id` unless it runs.
    pub fn spawn(&mut self, role: Role, id: u8) -> Result<(), RunError> {
        if self.running(&role, id) {
            return Ok(());
        }
        let log_path = self.logs.join(format!("{}-{id}.log", role.command()));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(log_path.display().to_string()))?;
        let prefix = self
            .namespaces
            .as_ref()
            .and_then(|all| all.iter().find(|(v, _)| *v == id))
            .map(|(_, p)| p.clone());
        let mut command = match &prefix {
            Some(prefix) => {
                let mut c = Command::new("ip");
                c.args(prefix).arg(&self.vtgrid);
                c
            }
            None => Command::new(&self.vtgrid),
        };
        if let (Role::Node, Some(b)) = (&role, &self.break_build) {
            command.env("VTGRID_BREAK", b);
        }
        let child = command
            .arg(role.command())
            .arg("--config")
            .arg(&self.grid)
            .args(["--id", &id.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("a log handle"))?)
            .stderr(log)
            .spawn()
            .map_err(io(format!("starting {}", self.vtgrid.display())))?;
        self.children.insert((role, id), child);
        Ok(())
    }

    /// Does `role` `id` run (started and not exited)?
    pub fn running(&mut self, role: &Role, id: u8) -> bool {
        match self.children.get_mut(&(role.clone(), id)) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// kill -9, and reap.
    pub fn kill9(&mut self, role: Role, id: u8) {
        if let Some(mut child) = self.children.remove(&(role, id)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&mut self, role: Role, id: u8, signal: Signal) {
        if let Some(child) = self.children.get(&(role, id)) {
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
        }
    }

    pub fn kill_all(&mut self) {
        let keys: Vec<(Role, u8)> = self.children.keys().cloned().collect();
        for (role, id) in keys {
            // A stopped process takes SIGKILL too.
            self.kill9(role, id);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.kill_all();
    }
}

async fn status(endpoint: &str) -> Option<pb::ClusterStatus> {
    let channel = Endpoint::from_shared(endpoint.to_string())
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .ok()?;
    StatusServiceClient::new(channel)
        .get_status(pb::GetStatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Wait until every data cluster answers ready, at most `limit`.
pub async fn wait_ready(grid: &RunGrid, limit: Duration) -> Result<(), RunError> {
    let deadline = Instant::now() + limit;
    for (id, endpoint) in &grid.clusters {
        loop {
            if status(endpoint).await.is_some_and(|s| s.ready) {
                break;
            }
            if Instant::now() > deadline {
                return Err(RunError::Grid(format!("C{id} not ready within {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// The copies every reachable cluster reports owed (its incoming queue): a fault's backlog.
async fn backlog(grid: &RunGrid) -> Vec<Owed> {
    let mut owed = Vec::new();
    for (_, endpoint) in &grid.clusters {
        let Ok(ep) = Endpoint::from_shared(endpoint.clone()) else {
            continue;
        };
        let Ok(channel) = ep
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .connect()
            .await
        else {
            continue;
        };
        if let Ok(queue) = StatusServiceClient::new(channel)
            .list_copy_queue(pb::ListCopyQueueRequest { per_volume: true })
            .await
        {
            owed.extend(queue.into_inner().copies.into_iter().map(|e| Owed {
                volser: e.volser,
                version: e.version,
            }));
        }
    }
    owed.sort();
    owed.dedup();
    owed
}

/// Apply one step of the schedule (loopback mode: process faults).
async fn apply(
    procs: &mut Processes,
    netns: Option<&Netns>,
    disks: Option<&Disks>,
    grid: &RunGrid,
    step: &Step,
    recorder: &Recorder,
) -> Result<(), RunError> {
    let c = step.clusters.first().copied().unwrap_or(0);
    let backlog = if matches!(
        step.kind,
        FaultKind::Restart | FaultKind::Cont | FaultKind::Heal
    ) {
        vec![]
    } else {
        backlog(grid).await
    };
    match step.kind {
        FaultKind::KillNode => procs.kill9(Role::Node, c),
        FaultKind::KillAgent => procs.kill9(Role::Agent, c),
        FaultKind::KillSite => {
            procs.kill9(Role::Agent, c);
            procs.kill9(Role::Node, c);
        }
        FaultKind::Stop => procs.signal(Role::Node, c, Signal::SIGSTOP),
        FaultKind::Cont | FaultKind::Restart => {
            procs.signal(Role::Node, c, Signal::SIGCONT);
            // A node its agent fenced while stopped (T21) is started again.
            procs.spawn(Role::Node, c)?;
            procs.spawn(Role::Agent, c)?;
        }
        FaultKind::DiskFull => {
            // Only scheduled with a volume cache filesystem per cluster (root).
            if let Some(d) = disks {
                d.fill(c).map_err(|e| RunError::Grid(e.to_string()))?;
            }
        }
        FaultKind::Heal => heal(netns, disks)?,
        kind => {
            // Path faults need network namespaces (a loopback schedule has none).
            let (Some(n), Some(&b)) = (netns, step.clusters.get(1).or(step.clusters.first()))
            else {
                return Ok(());
            };
            let done = match kind {
                FaultKind::Cut => n.cut(c, b, Net::Grid, true),
                FaultKind::CutOneWay => n.cut(c, b, Net::Grid, false),
                FaultKind::HeartbeatCut => n.cut(c, b, Net::Heartbeat, true),
                FaultKind::Isolate => n.isolate(c),
                _ => return Ok(()),
            };
            done.map_err(|e| RunError::Grid(e.to_string()))?;
        }
    }
    recorder
        .fault(Fault {
            id: recorder.next_id(),
            at_ms: recorder.now_ms(),
            kind: step.kind,
            clusters: step.clusters.clone(),
            backlog,
        })
        .map_err(io("writing the history"))
}

/// Every path back and every volume cache freed.
fn heal(netns: Option<&Netns>, disks: Option<&Disks>) -> Result<(), RunError> {
    if let Some(n) = netns {
        n.heal().map_err(|e| RunError::Grid(e.to_string()))?;
    }
    if let Some(d) = disks {
        d.free_all().map_err(|e| RunError::Grid(e.to_string()))?;
    }
    Ok(())
}

async fn insert(endpoint: &str, range: &str, category: &str) -> Result<(), RunError> {
    let channel = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| RunError::Grid(e.to_string()))?
        .connect()
        .await
        .map_err(|e| RunError::Grid(format!("{endpoint}: {e}")))?;
    AdminServiceClient::new(channel)
        .insert_volumes(pb::InsertVolumesRequest {
            range: range.into(),
            category: category.into(),
        })
        .await
        .map_err(|s| RunError::Grid(format!("inserting {range}: {s}")))?;
    Ok(())
}

/// Wait until the data clusters list the same volumes, none mounted, and owe no copy.
async fn settle(grid: &RunGrid, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut states = Vec::new();
        for (id, endpoint) in &grid.clusters {
            match crate::collect::cluster_state(*id, endpoint).await {
                Ok(s) => states.push(s),
                Err(_) => break,
            }
        }
        let all = states.len() == grid.clusters.len();
        let same = states.windows(2).all(|w| w[0].catalog == w[1].catalog);
        if all && same && backlog(grid).await.is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Run the whole thing; returns the report. The children die with the returned future.
/// With `netns`, every voter runs in its own namespace and path faults are in the schedule; the
/// caller has moved into its host namespace ([`Netns::enter_host`]) before the runtime started.
pub async fn run(config: &RunConfig, netns: Option<&Netns>) -> Result<crate::Report, RunError> {
    let grid = rewrite(
        &config.template,
        &config.out,
        config.grace,
        config.lease,
        netns.is_some(),
    )?;
    // Before the processes (each node sees the mount table as it stands when it starts), and
    // dropped after them: unmounted once nothing runs on them.
    let disks = match netns {
        Some(_) => Some(Disks::mount(&grid.data_dirs).map_err(|e| RunError::Grid(e.to_string()))?),
        None => None,
    };
    let mut procs = Processes::new(
        &config.vtgrid,
        &grid,
        &config.out,
        netns,
        config.break_build.clone(),
    );
    for id in &grid.witnesses {
        procs.spawn(Role::Witness, *id)?;
    }
    for (id, _) in &grid.clusters {
        procs.spawn(Role::Node, *id)?;
        procs.spawn(Role::Agent, *id)?;
    }
    wait_ready(&grid, Duration::from_secs(120)).await?;
    let mut volumes = Vec::new();
    for (id, endpoint) in &grid.clusters {
        insert(
            endpoint,
            &format!("P{id}0000-P{id}0019"),
            &grid.private_category,
        )
        .await?;
        insert(
            endpoint,
            &format!("S{id}0000-S{id}0099"),
            &grid.insert_category,
        )
        .await?;
        volumes.extend((0..20).map(|n| format!("P{id}{n:04}")));
    }
    let history_path = config.out.join("history.jsonl");
    let file = File::create(&history_path).map_err(io(history_path.display().to_string()))?;
    let recorder = Arc::new(Recorder::new(BufWriter::new(file)));
    let mix = Mix {
        volumes,
        scratch_category: grid.insert_category.clone(),
        classes: grid.classes.iter().map(|c| c.name.clone()).collect(),
        random_writes: 10,
        max_len: 256 << 10,
    };
    let limits = config.limits(grid.clusters.len() as u8, netns.is_some());
    let steps = schedule::schedule(config.seed, limits);
    let began = Instant::now();
    let mut workers = Vec::new();
    let stride = config.workers.max(1) as u64;
    for w in 0..config.workers.max(1) {
        let (recorder, grid, mix, seed, span) = (
            recorder.clone(),
            grid.clone(),
            mix.clone(),
            config.seed,
            config.span,
        );
        workers.push(tokio::spawn(async move {
            let mut n = w as u64;
            while began.elapsed() < span {
                let clusters = grid.clusters.len() as u8;
                for (c, planned) in workload::round(seed, n, &mix, clusters) {
                    if began.elapsed() >= span {
                        break;
                    }
                    let (id, endpoint) = &grid.clusters[usize::from(c)];
                    workload::run(&recorder, seed, *id, endpoint, &planned, &grid.classes).await?;
                }
                // Worker w runs rounds w, w + workers, w + 2 workers, ...: each its own.
                n += stride;
            }
            Ok::<(), std::io::Error>(())
        }));
    }
    for step in &steps {
        tokio::time::sleep_until((began + step.at).into()).await;
        apply(&mut procs, netns, disks.as_ref(), &grid, step, &recorder).await?;
    }
    for w in workers {
        w.await
            .map_err(|e| RunError::Grid(format!("a worker: {e}")))?
            .map_err(io("writing the history"))?;
    }
    // A broken build answers unloads before their journal entries (`--break`): the entries of
    // the last writes land `Break::UNSYNCED_FOR` (10 s) later, so what the checker finds lost is
    // what the faults lost, not what the end of the run cut off. A timer of the broken node, not
    // a wait for an event: nothing tells when it fires.
    if config.break_build.is_some() {
        tokio::time::sleep(Duration::from_secs(12)).await;
    }
    // Heal: every path back, every disk freed, everything running and resumed.
    heal(netns, disks.as_ref())?;
    for (id, _) in &grid.clusters {
        procs.signal(Role::Node, *id, Signal::SIGCONT);
        procs.spawn(Role::Node, *id)?;
        procs.spawn(Role::Agent, *id)?;
    }
    wait_ready(&grid, Duration::from_secs(120)).await?;
    let settled = settle(&grid, config.settle).await;
    let mut state = FinalState::default();
    for (id, endpoint) in &grid.clusters {
        state.clusters.push(
            crate::collect::cluster_state(*id, endpoint)
                .await
                .map_err(|e| RunError::Grid(format!("C{id}'s final state: {e}")))?,
        );
    }
    // The copies, read back from the files once every process is stopped.
    procs.kill_all();
    for (id, dir) in &grid.data_dirs {
        let copies = crate::collect::copies(dir)
            .map_err(|e| RunError::Grid(format!("C{id}'s volume store: {e}")))?;
        if let Some(c) = state.clusters.iter_mut().find(|c| c.id == *id) {
            c.copies = copies;
        }
    }
    let state_path = config.out.join("state.json");
    fs::write(
        &state_path,
        serde_json::to_string_pretty(&state).map_err(|e| RunError::Grid(e.to_string()))?,
    )
    .map_err(io(state_path.display().to_string()))?;
    drop(recorder);
    let history = crate::History::read(std::io::BufReader::new(
        File::open(&history_path).map_err(io(history_path.display().to_string()))?,
    ))
    .map_err(|e| RunError::Grid(e.to_string()))?;
    let report = crate::check(&history, &state);
    let text = format!(
        "seed {} over {:?}, {} faults scheduled ({}){}{}\n{report}",
        config.seed,
        config.span,
        steps.len() / 2,
        if netns.is_some() {
            "network namespaces: process, path and disk faults"
        } else {
            "loopback: process faults only"
        },
        if settled {
            String::new()
        } else {
            format!("; the grid did not settle within {:?}", config.settle)
        },
        config
            .break_build
            .as_ref()
            .map_or_else(String::new, |b| format!("; BROKEN BUILD: VTGRID_BREAK={b}")),
    );
    fs::write(config.out.join("report.txt"), &text).map_err(io("writing the report"))?;
    procs.kill_all();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_vector_gives_each_writer_its_strongest_copy_mode() {
        assert_eq!(mode_at("RRD", 0), CopyMode::Run);
        assert_eq!(mode_at("RND", 0), CopyMode::Deferred);
        assert_eq!(mode_at("RNN", 0), CopyMode::NoCopy);
        assert_eq!(mode_at("SSD", 1), CopyMode::Sync);
        assert_eq!(
            mode_at("NRN", 1),
            CopyMode::NoCopy,
            "its own letter does not count"
        );
    }

    #[test]
    fn a_template_is_rewritten_onto_free_ports_and_the_run_dir() {
        let dir = tempfile::tempdir().unwrap();
        let template =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster-config/three-site-ha-dr.toml");
        let grid = rewrite(
            &template,
            dir.path(),
            Duration::from_secs(7),
            Some(Duration::from_secs(6)),
            false,
        )
        .unwrap();
        assert_eq!(
            grid.clusters.iter().map(|c| c.0).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(grid
            .clusters
            .iter()
            .all(|(_, e)| e.starts_with("http://127.0.0.1:")));
        assert!(!grid.clusters.iter().any(|(_, e)| e.ends_with(":7600")));
        let text = fs::read_to_string(&grid.path).unwrap();
        assert!(
            text.contains(&dir.path().join("data").display().to_string()),
            "{text}"
        );
        assert_eq!(text.matches("grace_secs = 7").count(), 6, "{text}");
        assert!(text.contains("self_fence_after_secs = 6"), "{text}");
        assert!(!grid.classes.is_empty());
        assert!(grid.classes.iter().all(|c| c.modes.len() == 3));
        assert!(
            grid.classes
                .iter()
                .any(|c| c.name == "SYNCDUP" && c.modes[0] == CopyMode::Sync),
            "a Sync class is added: {text}"
        );
    }
}
