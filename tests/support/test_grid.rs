//! [`TestGrid`]: one real cluster process on loopback, with its grid file and data in a temp dir.
//!
//! ```text
//!  <tempdir>/grid.toml    the grid file (GridFile::to_toml)
//!  <tempdir>/c0/          data_dir: catalog/ (RocksDB), tvc/ (volume files, .partial/)
//!  <tempdir>/process.log  the process's stdout and stderr, every run appended
//! ```
//!
//! The process is `vtgrid node --config grid.toml --id 0`, or `vtgrid grid up grid.toml` (the
//! supervisor, which starts that node as its child). Start-up waits until `GetStatus.ready`. The
//! process is killed when the `TestGrid` drops, and a failing test prints the end of its log.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
use vtgrid_core::{VersionNumber, Volser};
use vtgrid_proto::pb;

use super::cli::{vtgrid_bin, wait_with_deadline, CliCall, CliRun};
use super::grid_file::GridFile;
use super::host::{admin_client, channel, host_client, AdminClient, HostClient};
use super::wait::{poll_blocking, wait_until, POLL};

/// How long a cluster may take to report ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERMed process may take to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a start on ports someone else took is tried again.
const BIND_ATTEMPTS: usize = 5;
/// Lines of the process log a failing test prints.
const LOG_TAIL_LINES: usize = 200;

/// Which process runs the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// `vtgrid node --config F --id 0`.
    Node,
    /// `vtgrid grid up F`: the supervisor, with the node as its child.
    GridUp,
}

/// How to start a [`TestGrid`].
#[derive(Clone, Debug)]
pub struct GridOptions {
    pub launch: Launch,
    pub cache_quota_bytes: Option<u64>,
    /// `[telemetry] otlp_endpoint`: where the node exports its spans.
    pub otlp_endpoint: Option<String>,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            launch: Launch::Node,
            cache_quota_bytes: None,
            otlp_endpoint: None,
        }
    }
}

/// Why a start attempt failed.
enum StartFailure {
    /// The process exited; `bind` when it could not listen on one of its ports.
    Exited {
        status: ExitStatus,
        bind: bool,
    },
    TimedOut,
}

/// One running cluster and everything it owns on disk.
pub struct TestGrid {
    /// Field order matters for `Drop`: the process is stopped in `drop` before the dir goes.
    process: Option<Child>,
    file: GridFile,
    launch: Launch,
    config_path: PathBuf,
    log_path: PathBuf,
    dir: TempDir,
}

impl TestGrid {
    /// A plain `vtgrid node`, ready.
    pub async fn start() -> TestGrid {
        TestGrid::start_with(GridOptions::default()).await
    }

    pub async fn start_with(options: GridOptions) -> TestGrid {
        let dir = tempfile::Builder::new()
            .prefix("vtgrid-proc-")
            .tempdir()
            .expect("create a temp dir");
        let data_dir = dir.path().join("c0");
        let mut grid = TestGrid {
            process: None,
            file: GridFile {
                otlp_endpoint: options.otlp_endpoint.clone(),
                ..GridFile::on_free_ports(data_dir, options.cache_quota_bytes)
            },
            launch: options.launch,
            config_path: dir.path().join("grid.toml"),
            log_path: dir.path().join("process.log"),
            dir,
        };
        // A free port can be taken between our probe and the node's bind: start again on others.
        for attempt in 1..=BIND_ATTEMPTS {
            grid.write_grid_file();
            match grid.launch_and_wait_ready().await {
                Ok(()) => return grid,
                Err(StartFailure::Exited { bind: true, .. }) if attempt < BIND_ATTEMPTS => {
                    let data_dir = grid.file.data_dir.clone();
                    grid.file = GridFile {
                        otlp_endpoint: options.otlp_endpoint.clone(),
                        ..GridFile::on_free_ports(data_dir, options.cache_quota_bytes)
                    };
                }
                Err(failure) => grid.start_failed(failure),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    fn write_grid_file(&self) {
        fs::write(&self.config_path, self.file.to_toml()).expect("write the grid file");
    }

    /// Spawn the process (its output appended to the log) and wait until the cluster is ready.
    async fn launch_and_wait_ready(&mut self) -> Result<(), StartFailure> {
        let log_start = fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the process log");
        let mut cmd = Command::new(vtgrid_bin());
        match self.launch {
            Launch::Node => cmd
                .arg("node")
                .arg("--config")
                .arg(&self.config_path)
                .args(["--id", "0"]),
            Launch::GridUp => cmd.args(["grid", "up"]).arg(&self.config_path),
        };
        let child = cmd
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", vtgrid_bin().display()));
        self.process = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .process
                .as_mut()
                .expect("just spawned")
                .try_wait()
                .expect("try_wait on the cluster process");
            if let Some(status) = exited {
                self.process = None;
                let bind = self.log_since(log_start).contains("listening on");
                return Err(StartFailure::Exited { status, bind });
            }
            if self.is_ready().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::TimedOut);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn start_failed(&self, failure: StartFailure) -> ! {
        let why = match failure {
            StartFailure::Exited { status, .. } => format!("exited during start-up ({status})"),
            StartFailure::TimedOut => format!("was not ready within {READY_TIMEOUT:?}"),
        };
        panic!(
            "the cluster ({:?}) {why}; its log:\n{}",
            self.launch,
            self.log_tail()
        );
    }

    /// `GetStatus.ready`, false while the cluster cannot answer.
    pub async fn is_ready(&self) -> bool {
        let Ok(channel) = channel(&self.endpoint()).await else {
            return false;
        };
        let mut status = pb::status_service_client::StatusServiceClient::new(channel);
        let probe = status.get_status(pb::GetStatusRequest {});
        matches!(
            tokio::time::timeout(Duration::from_secs(2), probe).await,
            Ok(Ok(r)) if r.get_ref().ready
        )
    }

    pub fn endpoint(&self) -> String {
        self.file.endpoint()
    }

    pub fn host_addr(&self) -> SocketAddr {
        self.file.host
    }

    pub fn grid_file(&self) -> &GridFile {
        &self.file
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// `<data_dir>/tvc`: the volume store.
    pub fn tvc_dir(&self) -> PathBuf {
        self.file.data_dir.join("tvc")
    }

    /// `<data_dir>/tvc/.partial`: versions being written.
    pub fn partial_dir(&self) -> PathBuf {
        self.tvc_dir().join(vtgrid_tvc::file::PARTIAL_DIR)
    }

    /// The files in `.partial/` with their sizes.
    pub fn partial_files(&self) -> Vec<(PathBuf, u64)> {
        let dir = self.partial_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("listing {}: {e}", dir.display()),
        };
        entries
            .filter_map(Result::ok)
            .map(|e| (e.path(), e.metadata().map_or(0, |m| m.len())))
            .collect()
    }

    /// Where committed `version` of `volser` is stored.
    pub fn version_path(&self, volser: &str, version: VersionNumber) -> PathBuf {
        let volser: Volser = volser.parse().expect("a test VOLSER is valid");
        vtgrid_tvc::version_path(&self.tvc_dir(), volser, version)
    }

    pub async fn host(&self) -> HostClient {
        host_client(&self.endpoint()).await
    }

    pub async fn admin(&self) -> AdminClient {
        admin_client(&self.endpoint()).await
    }

    pub async fn status(&self) -> pb::ClusterStatus {
        let mut client = super::host::status_client(&self.endpoint()).await;
        client
            .get_status(pb::GetStatusRequest {})
            .await
            .expect("GetStatus")
            .into_inner()
    }

    /// `vtgrid --endpoint <this cluster> ARGS...`.
    pub fn cli_call<S: AsRef<str>>(&self, args: &[S]) -> CliCall {
        let mut call = CliCall::new(args);
        call.args
            .splice(0..0, ["--endpoint".to_string(), self.endpoint()]);
        call
    }

    /// Run `vtgrid --endpoint <this cluster> ARGS...` to completion.
    pub async fn cli<S: AsRef<str>>(&self, args: &[S]) -> CliRun {
        self.cli_call(args).run().await
    }

    /// Insert `range` into `category` (empty: the grid's insert category, 0001); returns the count.
    pub async fn insert(&self, range: &str, category: &str) -> u64 {
        let req = pb::InsertVolumesRequest {
            range: range.to_string(),
            category: category.to_string(),
        };
        self.admin()
            .await
            .insert_volumes(req)
            .await
            .unwrap_or_else(|s| panic!("insert {range} into {category:?}: {s:?}"))
            .into_inner()
            .count
    }

    pub async fn volume(&self, volser: &str) -> pb::Volume {
        self.admin()
            .await
            .get_volume(pb::GetVolumeRequest {
                volser: volser.to_string(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("GetVolume {volser}: {s:?}"))
            .into_inner()
    }

    fn pid(&self) -> Pid {
        let child = self
            .process
            .as_ref()
            .expect("the cluster process is running");
        Pid::from_raw(child.id() as i32)
    }

    /// Processes the running process started (for `grid up`: its node), from `/proc`.
    pub fn child_pids(&self) -> Vec<Pid> {
        let pid = self.pid();
        let tasks = format!("/proc/{pid}/task");
        let mut out = Vec::new();
        for task in fs::read_dir(&tasks).into_iter().flatten().flatten() {
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

    /// SIGKILL the process and reap it: a crash, with no chance to clean up.
    pub fn kill9(&mut self) {
        assert_eq!(
            self.launch,
            Launch::Node,
            "kill9 is for a node; SIGKILL of grid up would orphan its node"
        );
        kill(self.pid(), Signal::SIGKILL).expect("SIGKILL the node");
        let mut child = self.process.take().expect("running");
        let status = child.wait().expect("reap the killed node");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(Signal::SIGKILL as i32),
            "the node died of SIGKILL"
        );
    }

    /// Start the same cluster again: same grid file, ports and data dir. A port the previous
    /// process held can be briefly busy, so a start that fails to bind is tried again.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "restart after kill9 or stop");
        for attempt in 1..=BIND_ATTEMPTS {
            match self.launch_and_wait_ready().await {
                Ok(()) => return,
                Err(StartFailure::Exited { bind: true, .. }) if attempt < BIND_ATTEMPTS => {
                    wait_until(
                        "the cluster's ports to be free again",
                        Duration::from_secs(10),
                        || async { !self.host_port_accepts() },
                    )
                    .await;
                }
                Err(failure) => self.start_failed(failure),
            }
        }
    }

    /// SIGTERM, then wait (with a deadline) for a clean exit: status 0.
    pub fn stop(&mut self) {
        kill(self.pid(), Signal::SIGTERM).expect("SIGTERM the cluster process");
        let mut child = self.process.take().expect("running");
        let status = wait_with_deadline(&mut child, STOP_TIMEOUT);
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{:?} did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log:\n{}",
                self.launch,
                self.log_tail()
            );
        };
        assert!(
            status.success(),
            "{:?} exited with {status} after SIGTERM, not 0; its log:\n{}",
            self.launch,
            self.log_tail()
        );
    }

    /// Whether something accepts TCP connections on the host address.
    pub fn host_port_accepts(&self) -> bool {
        TcpStream::connect_timeout(&self.file.host, Duration::from_millis(500)).is_ok()
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                let mut bytes = Vec::new();
                let _ = f.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        text
    }

    /// The whole process log (every run).
    pub fn log(&self) -> String {
        self.log_since(0)
    }

    /// The last lines of the process log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for TestGrid {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let pid = Pid::from_raw(child.id() as i32);
            if self.launch == Launch::GridUp {
                // SIGTERM lets grid up stop its node; SIGKILL both if that does not happen.
                self.process = Some(child);
                let nodes = self.child_pids();
                child = self.process.take().expect("put back above");
                let _ = kill(pid, Signal::SIGTERM);
                if poll_blocking(STOP_TIMEOUT, || child.try_wait().ok().flatten()).is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                    // grid up did not reap its nodes, so these pids are still theirs.
                    for node in nodes {
                        let _ = kill(node, Signal::SIGKILL);
                    }
                }
            } else {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "---- log of the {:?} process ({}), last {LOG_TAIL_LINES} lines ----\n{}\n---- end of log ----",
                self.launch,
                self.log_path.display(),
                self.log_tail()
            );
        }
    }
}
