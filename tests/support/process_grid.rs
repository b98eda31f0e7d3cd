//! [`ProcessGrid`]: a whole grid of real processes on loopback, one per data cluster and witness,
//! each with its own log, killable and restartable alone.
//!
//! ```text
//!  <tempdir>/grid.toml        the grid file (GridLayout::to_toml)
//!  <tempdir>/c0/ c1/ ... w8/  data dirs: catalog/ (RocksDB), tvc/ (data clusters)
//!  <tempdir>/c0.log ...       each voter's stdout and stderr, every run appended
//!  <tempdir>/grid-up.log      `vtgrid grid up` and its children, in supervisor mode
//! ```
//!
//! Two ways to run it: [`ProcessGrid::start`] spawns `vtgrid node` / `vtgrid witness` per voter,
//! and [`ProcessGrid::start_grid_up`] spawns one `vtgrid grid up` that starts them all. Either
//! way the start waits until every voter reports `GetStatus.ready` (a data cluster on its host
//! address, a witness on its grid address). Everything is polled with a deadline; nothing sleeps
//! to synchronise. Dropping the grid kills what still runs, and a failing test prints the end of
//! every log.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
use vtgrid_node::config::Role;
use vtgrid_proto::pb;

use super::cli::{vtgrid_bin, wait_with_deadline};
use super::grid_layout::{GridLayout, Voter};
use super::host::{admin_client, channel, host_client, AdminClient, HostClient};
use super::wait::{poll_blocking, wait_for, POLL};

/// How long a grid (or one restarted voter) may take to report ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERMed process may take to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one status probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a start on ports someone else took is tried again.
const BIND_ATTEMPTS: usize = 5;
/// What `vtgrid grid up` prints once every voter is ready, before its table.
const GRID_UP_READY: &str = "is up:";
/// Lines of each log a failing test prints.
const LOG_TAIL_LINES: usize = 80;

/// One voter's process.
struct VoterProcess {
    voter: Voter,
    child: Option<Child>,
    log_path: PathBuf,
}

/// Why a start attempt failed.
enum StartFailure {
    /// A process exited; `bind` when it could not listen on one of its ports.
    Exited {
        who: String,
        status: ExitStatus,
        bind: bool,
    },
    TimedOut {
        waiting: Vec<String>,
    },
}

/// A grid of real processes and everything they own on disk.
pub struct ProcessGrid {
    /// Field order matters for `Drop`: processes stop before the dir goes.
    voters: Vec<VoterProcess>,
    /// `vtgrid grid up`, in supervisor mode; then `voters` hold no children of their own.
    supervisor: Option<Child>,
    /// `vtgrid agent` processes started by [`ProcessGrid::start_agents`], by cluster id.
    agents: Vec<(u8, Child)>,
    layout: GridLayout,
    config_path: PathBuf,
    supervisor_log: PathBuf,
    dir: TempDir,
}

impl ProcessGrid {
    /// `clusters` data clusters and `witnesses` witnesses, each its own `vtgrid node` /
    /// `vtgrid witness` process, all ready.
    pub async fn start(clusters: u8, witnesses: u8) -> ProcessGrid {
        let mut grid = ProcessGrid::new(clusters, witnesses);
        grid.first_start(false).await;
        grid
    }

    /// The same grid run by one `vtgrid grid up FILE`, all voters ready and the table printed.
    pub async fn start_grid_up(clusters: u8, witnesses: u8) -> ProcessGrid {
        let mut grid = ProcessGrid::new(clusters, witnesses);
        grid.first_start(true).await;
        grid
    }

    /// [`ProcessGrid::start`] with the grid file changed by `configure` first (management
    /// classes, a copy throttle), or with `grid_up`, [`ProcessGrid::start_grid_up`].
    pub async fn start_configured(
        clusters: u8,
        witnesses: u8,
        grid_up: bool,
        configure: impl FnOnce(&mut GridLayout),
    ) -> ProcessGrid {
        let mut grid = ProcessGrid::new(clusters, witnesses);
        configure(&mut grid.layout);
        grid.first_start(grid_up).await;
        grid
    }

    fn new(clusters: u8, witnesses: u8) -> ProcessGrid {
        let dir = tempfile::Builder::new()
            .prefix("vtgrid-grid-")
            .tempdir()
            .expect("create a temp dir");
        let layout = GridLayout::on_free_ports(dir.path(), clusters, witnesses);
        let voters = layout
            .voters
            .iter()
            .map(|v| VoterProcess {
                voter: v.clone(),
                child: None,
                log_path: dir.path().join(format!("{}.log", v.name)),
            })
            .collect();
        ProcessGrid {
            voters,
            supervisor: None,
            agents: Vec::new(),
            layout,
            config_path: dir.path().join("grid.toml"),
            supervisor_log: dir.path().join("grid-up.log"),
            dir,
        }
    }

    /// Start everything; when a port was taken before a process bound it, kill what started,
    /// wipe the data (the Raft group may have been formed with the old addresses) and start
    /// again on new ports.
    async fn first_start(&mut self, grid_up: bool) {
        for attempt in 1..=BIND_ATTEMPTS {
            fs::write(&self.config_path, self.layout.to_toml()).expect("write the grid file");
            let launched = if grid_up {
                self.launch_grid_up().await
            } else {
                self.launch_all().await
            };
            match launched {
                Ok(()) => return,
                Err(StartFailure::Exited { bind: true, .. }) if attempt < BIND_ATTEMPTS => {
                    self.kill_all();
                    for v in &self.layout.voters {
                        let _ = fs::remove_dir_all(&v.data_dir);
                    }
                    self.layout.reassign_ports();
                    for (p, v) in self.voters.iter_mut().zip(&self.layout.voters) {
                        p.voter = v.clone();
                    }
                }
                Err(failure) => self.start_failed(failure),
            }
        }
    }

    async fn launch_all(&mut self) -> Result<(), StartFailure> {
        let offsets: Vec<u64> = self.voters.iter().map(|p| log_len(&p.log_path)).collect();
        for i in 0..self.voters.len() {
            self.spawn_voter(i);
        }
        self.wait_all_ready(&offsets).await
    }

    async fn launch_grid_up(&mut self) -> Result<(), StartFailure> {
        let offset = log_len(&self.supervisor_log);
        let log = open_log(&self.supervisor_log);
        let child = Command::new(vtgrid_bin())
            .args(["grid", "up"])
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", vtgrid_bin().display()));
        self.supervisor = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .supervisor
                .as_mut()
                .expect("just spawned")
                .try_wait()
                .expect("try_wait on grid up");
            if let Some(status) = exited {
                self.supervisor = None;
                let bind = read_from(&self.supervisor_log, offset).contains("listening on");
                return Err(StartFailure::Exited {
                    who: "grid up".into(),
                    status,
                    bind,
                });
            }
            let mut waiting = self.not_ready(&self.layout.ids()).await;
            // Every voter answers ready a moment before grid up has seen it and printed its
            // table; the start is done when both are.
            if !read_from(&self.supervisor_log, offset).contains(GRID_UP_READY) {
                waiting.push("grid up".into());
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::TimedOut { waiting });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn spawn_voter(&mut self, index: usize) {
        let p = &mut self.voters[index];
        assert!(p.child.is_none(), "{} is already running", p.voter.name);
        let command = match p.voter.role {
            Role::Data => "node",
            Role::Witness => "witness",
        };
        let log = open_log(&p.log_path);
        let child = Command::new(vtgrid_bin())
            .arg(command)
            .arg("--config")
            .arg(&self.config_path)
            .args(["--id", &p.voter.id.to_string()])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", vtgrid_bin().display()));
        p.child = Some(child);
    }

    /// Until every voter process is ready; `offsets` are where each log stood before the spawn.
    async fn wait_all_ready(&mut self, offsets: &[u64]) -> Result<(), StartFailure> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let ids: Vec<u8> = self
            .voters
            .iter()
            .filter(|p| p.child.is_some())
            .map(|p| p.voter.id)
            .collect();
        loop {
            for (p, offset) in self.voters.iter_mut().zip(offsets) {
                let Some(child) = p.child.as_mut() else {
                    continue;
                };
                if let Some(status) = child.try_wait().expect("try_wait on a voter") {
                    p.child = None;
                    let bind = read_from(&p.log_path, *offset).contains("listening on");
                    return Err(StartFailure::Exited {
                        who: p.voter.name.clone(),
                        status,
                        bind,
                    });
                }
            }
            let waiting = self.not_ready(&ids).await;
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::TimedOut { waiting });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The names of the voters among `ids` that are not (yet) ready.
    async fn not_ready(&self, ids: &[u8]) -> Vec<String> {
        let mut waiting = Vec::new();
        for &id in ids {
            if !self.try_status(id).await.is_some_and(|s| s.ready) {
                waiting.push(self.voter(id).name.clone());
            }
        }
        waiting
    }

    fn start_failed(&self, failure: StartFailure) -> ! {
        let why = match failure {
            StartFailure::Exited { who, status, .. } => {
                format!("{who} exited during start-up ({status})")
            }
            StartFailure::TimedOut { waiting } => {
                format!("not ready within {READY_TIMEOUT:?}: {}", waiting.join(", "))
            }
        };
        panic!("the test grid did not start: {why} (logs follow)");
    }

    pub fn layout(&self) -> &GridLayout {
        &self.layout
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn voter(&self, id: u8) -> &Voter {
        self.layout.voter(id)
    }

    fn process(&mut self, id: u8) -> &mut VoterProcess {
        self.voters
            .iter_mut()
            .find(|p| p.voter.id == id)
            .unwrap_or_else(|| panic!("the test grid has no voter {id}"))
    }

    fn index_of(&self, id: u8) -> usize {
        self.voters
            .iter()
            .position(|p| p.voter.id == id)
            .unwrap_or_else(|| panic!("the test grid has no voter {id}"))
    }

    /// What voter `id` sees, or none while it cannot answer.
    pub async fn try_status(&self, id: u8) -> Option<pb::ClusterStatus> {
        let endpoint = self.voter(id).status_endpoint();
        let probe = async {
            let channel = channel(&endpoint).await.ok()?;
            let mut client = pb::status_service_client::StatusServiceClient::new(channel);
            client.get_status(pb::GetStatusRequest {}).await.ok()
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Some(reply)) => Some(reply.into_inner()),
            _ => None,
        }
    }

    /// What voter `id` sees; it must answer.
    pub async fn status(&self, id: u8) -> pb::ClusterStatus {
        self.try_status(id)
            .await
            .unwrap_or_else(|| panic!("{} does not answer GetStatus", self.voter(id).name))
    }

    /// Wait until every voter in `ids` names the same leader, itself one of `ids`, and return it.
    pub async fn wait_for_leader(&self, ids: &[u8], timeout: Duration) -> u8 {
        let what = format!("voters {ids:?} to agree on a leader among themselves");
        wait_for(&what, timeout, || async {
            let mut leaders = BTreeSet::new();
            for &id in ids {
                leaders.insert(self.try_status(id).await?.raft_leader?);
            }
            let leader = u8::try_from(*leaders.first()?).ok()?;
            (leaders.len() == 1 && ids.contains(&leader)).then_some(leader)
        })
        .await
    }

    /// The host endpoint of data cluster `id`.
    pub fn endpoint(&self, id: u8) -> String {
        self.voter(id).endpoint()
    }

    pub async fn host(&self, id: u8) -> HostClient {
        host_client(&self.endpoint(id)).await
    }

    pub async fn admin(&self, id: u8) -> AdminClient {
        admin_client(&self.endpoint(id)).await
    }

    /// `vtgrid admin rejoin --as-new` at voter `id` (a witness through its grid address); it
    /// must succeed.
    pub async fn rejoin_as_new(&self, id: u8) {
        let endpoint = self.voter(id).status_endpoint();
        super::cli::CliCall::new(&["--endpoint", &endpoint, "admin", "rejoin", "--as-new"])
            .timeout(Duration::from_secs(150))
            .run()
            .await
            .assert_success();
    }

    /// Insert `range` into `category` through data cluster `id`; returns the response.
    pub async fn insert(&self, id: u8, range: &str, category: &str) -> pb::InsertVolumesResponse {
        let req = pb::InsertVolumesRequest {
            range: range.to_string(),
            category: category.to_string(),
        };
        self.admin(id)
            .await
            .insert_volumes(req)
            .await
            .unwrap_or_else(|s| panic!("insert {range} through C{id}: {s:?}"))
            .into_inner()
    }

    /// Every volume in data cluster `id`'s catalog view, in VOLSER order.
    pub async fn list_volumes(&self, id: u8) -> Vec<pb::Volume> {
        let mut admin = self.admin(id).await;
        vtgrid_proto::paging::list_volumes(
            &mut admin,
            pb::ListVolumesRequest {
                consistency: pb::Consistency::Local.into(),
                ..Default::default()
            },
            0,
        )
        .await
        .unwrap_or_else(|s| panic!("ListVolumes on C{id}: {s:?}"))
    }

    /// Wait until every data cluster among `ids` lists the same volumes and those volumes are
    /// `settled` (for instance: a version the owner wrote is in the catalog), and return them.
    ///
    /// Equal alone is not caught up: an owner records a new version in its journal, and
    /// rewind-unload returns, before the version is published to the catalog (DESIGN §3, local
    /// autonomy), so the clusters can agree on the catalog as it was before the publication.
    pub async fn wait_for_equal_catalogs(
        &self,
        ids: &[u8],
        timeout: Duration,
        settled: impl Fn(&[pb::Volume]) -> bool,
    ) -> Vec<pb::Volume> {
        let what = format!("clusters {ids:?} to list the same, settled volumes");
        wait_for(&what, timeout, || async {
            let first = self.list_volumes(ids[0]).await;
            for &id in &ids[1..] {
                if self.list_volumes(id).await != first {
                    return None;
                }
            }
            settled(&first).then_some(first)
        })
        .await
    }

    /// Wait until every data cluster among `ids` lists exactly `expected`; on timeout, fail with
    /// the difference seen last.
    pub async fn wait_for_catalogs(&self, ids: &[u8], expected: &[pb::Volume], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut behind = None;
            for &id in ids {
                let seen = self.list_volumes(id).await;
                if seen != expected {
                    behind = Some((id, seen));
                    break;
                }
            }
            let Some((id, seen)) = behind else {
                return;
            };
            if Instant::now() >= deadline {
                let differ: Vec<String> = expected
                    .iter()
                    .filter(|v| !seen.contains(v))
                    .map(|v| format!("want {v:?}"))
                    .chain(
                        seen.iter()
                            .filter(|v| !expected.contains(v))
                            .map(|v| format!("saw  {v:?}")),
                    )
                    .collect();
                panic!(
                    "C{id} does not list the expected {} volumes after {timeout:?}; it lists {}:\n{}",
                    expected.len(),
                    seen.len(),
                    differ.join("\n")
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn pid(&mut self, id: u8) -> Pid {
        let p = self.process(id);
        let child = p
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", p.voter.name));
        Pid::from_raw(child.id() as i32)
    }

    /// SIGKILL voter `id` and reap it: a crash, with no chance to clean up.
    pub fn kill9(&mut self, id: u8) {
        kill(self.pid(id), Signal::SIGKILL).expect("SIGKILL a voter");
        let p = self.process(id);
        let mut child = p.child.take().expect("running");
        let status = child.wait().expect("reap the killed voter");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::SIGKILL as i32),
            "{} died of SIGKILL",
            p.voter.name
        );
    }

    /// Under `grid up`: SIGKILL the child process running voter `id` and wait until it is gone
    /// (`grid up` reaps it, reports it and keeps the rest running). [`ProcessGrid::restart`]
    /// then starts the voter again as a process of its own, as an operator would.
    pub fn kill9_grid_up_voter(&mut self, id: u8) {
        let supervisor = self.supervisor.as_ref().expect("grid up is running");
        let supervisor = Pid::from_raw(supervisor.id() as i32);
        let id_arg = id.to_string();
        let pid = child_pids(supervisor)
            .into_iter()
            .find(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                // The voter, not the takeover agent beside it (same `--id`).
                let voter = args.iter().any(|a| *a == b"node" || *a == b"witness");
                voter
                    && args
                        .windows(2)
                        .any(|w| w[0] == b"--id" && w[1] == id_arg.as_bytes())
            })
            .unwrap_or_else(|| panic!("grid up runs no child with --id {id}"));
        kill(pid, Signal::SIGKILL).expect("SIGKILL a voter under grid up");
        let gone = poll_blocking(STOP_TIMEOUT, || {
            (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        });
        assert!(
            gone.is_some(),
            "voter {id} (pid {pid}) was not reaped by grid up within {STOP_TIMEOUT:?}"
        );
    }

    /// SIGTERM every running voter at once, then wait for each to exit 0.
    pub fn stop_all(&mut self) {
        let ids: Vec<u8> = self
            .voters
            .iter()
            .filter(|p| p.child.is_some())
            .map(|p| p.voter.id)
            .collect();
        for &id in &ids {
            kill(self.pid(id), Signal::SIGTERM).expect("SIGTERM a voter");
        }
        for id in ids {
            self.wait_stopped(id);
        }
    }

    /// SIGTERM voter `id` and wait for a clean exit: status 0.
    pub fn stop(&mut self, id: u8) {
        kill(self.pid(id), Signal::SIGTERM).expect("SIGTERM a voter");
        self.wait_stopped(id);
    }

    fn wait_stopped(&mut self, id: u8) {
        let p = self.process(id);
        let mut child = p.child.take().expect("running");
        let name = p.voter.name.clone();
        let Some(status) = wait_with_deadline(&mut child, STOP_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not exit within {STOP_TIMEOUT:?} of SIGTERM");
        };
        assert!(
            status.success(),
            "{name} exited with {status} after SIGTERM, not 0"
        );
    }

    /// Start stopped voter `id` again without waiting for it to be ready (a voter that lost its
    /// catalog never is until the operator acts).
    pub fn spawn(&mut self, id: u8) {
        let index = self.index_of(id);
        self.spawn_voter(index);
    }

    /// Start voter `id` again: same grid file, ports and data dir; wait until it is ready. A port
    /// the previous process held can be briefly busy, so a start that fails to bind is retried.
    pub async fn restart(&mut self, id: u8) {
        self.restart_all(&[id]).await;
    }

    /// Start the stopped voters `ids` again, together, and wait until all are ready.
    pub async fn restart_all(&mut self, ids: &[u8]) {
        for attempt in 1..=BIND_ATTEMPTS {
            let offsets: Vec<u64> = self.voters.iter().map(|p| log_len(&p.log_path)).collect();
            for &id in ids {
                if self.process(id).child.is_none() {
                    let index = self.index_of(id);
                    self.spawn_voter(index);
                }
            }
            match self.wait_all_ready(&offsets).await {
                Ok(()) => return,
                Err(StartFailure::Exited { bind: true, .. }) if attempt < BIND_ATTEMPTS => {
                    let addrs: Vec<SocketAddr> = ids
                        .iter()
                        .flat_map(|&id| self.voter(id).listen_addrs())
                        .collect();
                    wait_for("the voters' ports to be free again", STOP_TIMEOUT, || {
                        let busy = addrs.iter().any(|a| accepts(*a));
                        async move { (!busy).then_some(()) }
                    })
                    .await;
                }
                Err(failure) => self.start_failed(failure),
            }
        }
    }

    /// SIGTERM `grid up` and wait for it to exit; returns its exit status.
    pub fn stop_grid_up(&mut self) -> ExitStatus {
        let mut child = self.supervisor.take().expect("grid up is running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM grid up");
        wait_with_deadline(&mut child, STOP_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("grid up did not exit within {STOP_TIMEOUT:?} of SIGTERM")
        })
    }

    /// What `grid up` printed (and its children logged), every run.
    pub fn grid_up_log(&self) -> String {
        read_from(&self.supervisor_log, 0)
    }

    /// Everything voter `id` logged, every run.
    pub fn log(&self, id: u8) -> String {
        let p = self
            .voters
            .iter()
            .find(|p| p.voter.id == id)
            .unwrap_or_else(|| panic!("the test grid has no voter {id}"));
        read_from(&p.log_path, 0)
    }

    /// Whether anything accepts TCP connections on `addr`.
    pub fn accepts(&self, addr: SocketAddr) -> bool {
        accepts(addr)
    }

    /// Start `vtgrid agent` beside every data cluster (as `grid up` does); they stop with the
    /// grid.
    pub fn start_agents(&mut self) {
        let ids: Vec<u8> = self
            .voters
            .iter()
            .filter(|p| p.voter.role == Role::Data)
            .map(|p| p.voter.id)
            .collect();
        for id in ids {
            let log = open_log(&self.dir.path().join(format!("agent-{id}.log")));
            let child = Command::new(vtgrid_bin())
                .arg("agent")
                .arg("--config")
                .arg(&self.config_path)
                .args(["--id", &id.to_string()])
                .current_dir(self.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn the agent: {e}"));
            self.agents.push((id, child));
        }
    }

    /// The log of data cluster `id`'s agent.
    pub fn agent_log(&self, id: u8) -> String {
        read_from(&self.dir.path().join(format!("agent-{id}.log")), 0)
    }

    /// Send `signal` to voter `id`'s process (SIGSTOP, SIGCONT: a zombie owner, T21).
    pub fn signal(&mut self, id: u8, signal: Signal) {
        kill(self.pid(id), signal).expect("signal a voter");
    }

    /// Wait until voter `id`'s process has exited (within `within`) and reap it.
    pub fn wait_exit(&mut self, id: u8, within: Duration) -> Option<ExitStatus> {
        let p = self.process(id);
        let child = p.child.as_mut()?;
        let status = poll_blocking(within, || child.try_wait().ok().flatten())?;
        p.child = None;
        Some(status)
    }

    fn kill_all(&mut self) {
        for (_, mut agent) in self.agents.drain(..) {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        for p in &mut self.voters {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(mut child) = self.supervisor.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let voters = child_pids(pid);
            let _ = kill(pid, Signal::SIGTERM);
            if poll_blocking(STOP_TIMEOUT, || child.try_wait().ok().flatten()).is_none() {
                let _ = child.kill();
                let _ = child.wait();
                // grid up did not reap its voters, so these pids are still theirs.
                for voter in voters {
                    let _ = kill(voter, Signal::SIGKILL);
                }
            }
        }
    }

    fn print_logs(&self) {
        let mut logs: Vec<(String, &Path)> = self
            .voters
            .iter()
            .map(|p| (p.voter.name.clone(), p.log_path.as_path()))
            .collect();
        logs.push(("grid up".into(), self.supervisor_log.as_path()));
        for (name, path) in logs {
            if !path.exists() {
                continue;
            }
            let text = read_from(path, 0);
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "---- log of {name} ({}), last {LOG_TAIL_LINES} lines ----\n{}\n---- end of {name} ----",
                path.display(),
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            );
        }
    }
}

impl Drop for ProcessGrid {
    fn drop(&mut self) {
        self.kill_all();
        if std::thread::panicking() {
            self.print_logs();
        }
    }
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open a process log")
}

fn log_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// Processes `pid` started, from `/proc`.
fn child_pids(pid: Pid) -> Vec<Pid> {
    let mut out = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(Pid::from_raw),
        );
    }
    out
}
