//! `vtgrid bench ...`: benchmarks on a grid of real `vtgrid node` processes the command starts on
//! free loopback ports, with its data in a temporary directory it removes afterwards.
//!
//! - [`ownership`]: how fast volume ownership moves between clusters.
//! - [`takeover`]: from a node's kill -9 to the first write mount of its volume at a survivor,
//!   under the agents' takeover.
//! - [`copy`]: RUN copies and Sync writes against the machine's own limits (loopback TCP, disk
//!   write + fsync, a single-cluster write), measured in the same run.
//!
//! Figures are printed as ratios against limits measured in the same run, never asserted in
//! timed tests: the machine decides the absolute numbers.

mod copy;
mod floor;
mod ownership;
mod takeover;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use vtgrid_proto::pb::{self, mount_request};

use crate::args::BenchCommand;
use crate::client::{self, CliError};

pub async fn run(cmd: BenchCommand) -> Result<(), CliError> {
    match cmd {
        BenchCommand::Ownership {
            seconds,
            clients,
            tls,
        } => ownership::run(Duration::from_secs(seconds), &clients, tls).await,
        BenchCommand::Copy {
            size_mib,
            runs,
            dir,
            tls,
        } => copy::run(size_mib, runs, dir, tls).await,
        BenchCommand::Takeover {
            grace_secs,
            lease_secs,
        } => takeover::run(grace_secs, lease_secs).await,
    }
}

/// A grid of `vtgrid node` processes, one per data cluster, in its own directory.
struct Grid {
    dir: PathBuf,
    children: Vec<Child>,
    hosts: Vec<String>,
    /// `vtgrid agent` processes, when the bench started them.
    agents: Vec<Child>,
    config: PathBuf,
    /// Mutual TLS between the clusters.
    tls: bool,
}

impl Grid {
    /// Start `clusters` data clusters (C0..) in a new directory under `parent`; `extra` is appended
    /// to the grid file (management classes, copy settings). Returns once every cluster is ready.
    async fn start(
        parent: &Path,
        clusters: usize,
        extra: &str,
        tls: bool,
    ) -> Result<Grid, CliError> {
        let dir = parent.join(format!("vtgrid-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| CliError::Io {
            what: "creating the bench directory",
            source,
        })?;
        let ports = free_ports(clusters * 3)?;
        let mut toml = String::from("[grid]\nname = \"bench\"\n");
        let mut hosts = Vec::new();
        for i in 0..clusters {
            let (h, g, b) = (ports[i * 3], ports[i * 3 + 1], ports[i * 3 + 2]);
            hosts.push(format!("http://127.0.0.1:{h}"));
            toml += &format!(
                "[[cluster]]\nid = {i}\nname = \"C{i}\"\nhost = \"127.0.0.1:{h}\"\ngrid = \"127.0.0.1:{g}\"\nheartbeat = \"127.0.0.1:{b}\"\ndata_dir = {:?}\n",
                dir.join(format!("c{i}")).display().to_string()
            );
        }
        toml += "[[category]]\nid = \"0001\"\nname = \"SCRATCH\"\nfast_ready = true\n[[category]]\nid = \"000F\"\nname = \"PRIVATE\"\n";
        toml += extra;
        let certs = dir.join("certs");
        if tls {
            toml += &format!("[tls]\ndir = {:?}\n", certs.display().to_string());
            let fail = |e: vtgrid_transport::certs::CertsError| CliError::Grid(e.to_string());
            let _ = std::fs::remove_dir_all(&certs);
            vtgrid_transport::certs::init_ca(&certs, "bench").map_err(fail)?;
            for i in 0..clusters {
                for member in [
                    vtgrid_transport::names::Member::Voter(i as u8),
                    vtgrid_transport::names::Member::Agent(i as u8),
                ] {
                    vtgrid_transport::certs::issue(&certs, "bench", member, &[]).map_err(fail)?;
                }
            }
        }
        toml += "[telemetry]\nlog = \"warn\"\n";
        let config = dir.join("grid.toml");
        std::fs::write(&config, toml).map_err(|source| CliError::Io {
            what: "writing the bench grid file",
            source,
        })?;
        let exe = std::env::current_exe().map_err(|source| CliError::Io {
            what: "finding the vtgrid binary",
            source,
        })?;
        let mut children = Vec::new();
        for i in 0..clusters {
            children.push(spawn(
                &exe,
                "node",
                &config,
                i,
                &dir.join(format!("c{i}.log")),
            )?);
        }
        let grid = Grid {
            dir,
            children,
            hosts,
            agents: Vec::new(),
            config,
            tls,
        };
        grid.wait_ready().await?;
        Ok(grid)
    }

    /// Start a `vtgrid agent` beside every cluster.
    async fn start_agents(&mut self) -> Result<(), CliError> {
        let exe = std::env::current_exe().map_err(|source| CliError::Io {
            what: "finding the vtgrid binary",
            source,
        })?;
        for i in 0..self.children.len() {
            let log = self.dir.join(format!("agent{i}.log"));
            self.agents
                .push(spawn(&exe, "agent", &self.config, i, &log)?);
        }
        Ok(())
    }

    async fn wait_ready(&self) -> Result<(), CliError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for host in &self.hosts {
            loop {
                let ready = match client::status(host).await {
                    Ok(mut s) => s
                        .get_status(pb::GetStatusRequest {})
                        .await
                        .is_ok_and(|r| r.get_ref().ready),
                    Err(_) => false,
                };
                if ready {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(CliError::Grid(format!(
                        "bench grid not ready; logs in {}",
                        self.dir.display()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    async fn stop(self) {
        let dir = self.dir.clone();
        self.stop_keeping_logs().await;
        remove_dir(&dir);
    }

    /// Stop after a failed measurement: the clusters' data (possibly gigabytes) goes, their logs
    /// and the grid file stay for the operator.
    async fn stop_after_failure(self) {
        let dir = self.dir.clone();
        let clusters = self.children.len();
        self.stop_keeping_logs().await;
        for i in 0..clusters {
            remove_dir(&dir.join(format!("c{i}")));
        }
        eprintln!("cluster logs kept in {}", dir.display());
    }

    async fn stop_keeping_logs(mut self) {
        for c in self.children.iter().chain(&self.agents) {
            if let Some(pid) = c.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        for c in self.children.iter_mut().chain(self.agents.iter_mut()) {
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
    }
}

/// `vtgrid COMMAND --config CONFIG --id ID` with its stderr in `log`.
fn spawn(
    exe: &Path,
    command: &str,
    config: &Path,
    id: usize,
    log: &Path,
) -> Result<Child, CliError> {
    let log = std::fs::File::create(log).map_err(|source| CliError::Io {
        what: "creating a process log",
        source,
    })?;
    Command::new(exe)
        .args([command, "--config"])
        .arg(config)
        .args(["--id", &id.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CliError::Io {
            what: "starting a bench process",
            source,
        })
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("note: could not remove {}: {e}", dir.display());
    }
}

fn free_ports(n: usize) -> Result<Vec<u16>, CliError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CliError::Io {
            what: "finding free loopback ports",
            source,
        })?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CliError::Io {
            what: "finding free loopback ports",
            source,
        })
}

fn specific(volser: &str) -> pb::MountRequest {
    pb::MountRequest {
        target: Some(mount_request::Target::Volser(volser.into())),
        append: false,
        constructs: None,
        private_category: String::new(),
    }
}

/// How the bench grid's clusters talk, for the tables' headers.
fn transport(tls: bool) -> &'static str {
    if tls {
        "grid network with mutual TLS"
    } else {
        "grid network plain TCP"
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPU(s), {model}")
}
