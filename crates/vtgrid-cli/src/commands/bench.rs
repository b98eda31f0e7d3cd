//! `vtgrid bench ownership`: how fast volume ownership moves between clusters.
//!
//! The command starts its own three-cluster grid (`vtgrid node` processes on free loopback ports,
//! data in a temporary directory), inserts one volume per client through C0, and then each client
//! mounts its volume at the next cluster round-robin and unloads it without writing. Every such
//! mount is one ownership transfer: the two-party `Surrender` handshake plus a Raft commit
//! (DESIGN §3). The mount's latency as the host sees it is recorded. Each concurrency level runs for
//! a bounded time and a bounded number of transfers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use vtgrid_proto::pb::{self, host_service_client::HostServiceClient, mount_request};

use crate::args::BenchCommand;
use crate::client::{self, CliError};

/// Clusters in the benchmark grid.
const CLUSTERS: usize = 3;
/// Upper bound on transfers per client per level, whatever the duration.
const MAX_TRANSFERS_PER_CLIENT: usize = 20_000;

pub async fn run(cmd: BenchCommand) -> Result<(), CliError> {
    match cmd {
        BenchCommand::Ownership { seconds, clients } => {
            ownership(Duration::from_secs(seconds), &clients).await
        }
    }
}

struct Grid {
    dir: PathBuf,
    children: Vec<Child>,
    hosts: Vec<String>,
}

impl Grid {
    async fn start() -> Result<Grid, CliError> {
        let dir = std::env::temp_dir().join(format!("vtgrid-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| CliError::Io {
            what: "creating the bench directory",
            source,
        })?;
        let ports = free_ports(CLUSTERS * 3)?;
        let mut toml = String::from("[grid]\nname = \"bench\"\n");
        let mut hosts = Vec::new();
        for i in 0..CLUSTERS {
            let (h, g, b) = (ports[i * 3], ports[i * 3 + 1], ports[i * 3 + 2]);
            hosts.push(format!("http://127.0.0.1:{h}"));
            toml += &format!(
                "[[cluster]]\nid = {i}\nname = \"C{i}\"\nhost = \"127.0.0.1:{h}\"\ngrid = \"127.0.0.1:{g}\"\nheartbeat = \"127.0.0.1:{b}\"\ndata_dir = {:?}\n",
                dir.join(format!("c{i}")).display().to_string()
            );
        }
        toml += "[[category]]\nid = \"0001\"\nname = \"SCRATCH\"\nfast_ready = true\n[[category]]\nid = \"000F\"\nname = \"PRIVATE\"\n";
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
        for i in 0..CLUSTERS {
            let log = std::fs::File::create(dir.join(format!("c{i}.log"))).map_err(|source| {
                CliError::Io {
                    what: "creating a cluster log",
                    source,
                }
            })?;
            let child = Command::new(&exe)
                .args(["node", "--config"])
                .arg(&config)
                .args(["--id", &i.to_string()])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| CliError::Io {
                    what: "starting a cluster",
                    source,
                })?;
            children.push(child);
        }
        let grid = Grid {
            dir,
            children,
            hosts,
        };
        grid.wait_ready().await?;
        Ok(grid)
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

    async fn stop_keeping_logs(mut self) {
        for c in &self.children {
            if let Some(pid) = c.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        for c in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
    }
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

/// One client: move its volume round the clusters until `until`; returns each mount's latency.
async fn client_loop(
    hosts: Vec<HostServiceClient<Channel>>,
    volser: String,
    until: Instant,
) -> Result<Vec<Duration>, tonic::Status> {
    let mut latencies = Vec::new();
    // Start at the cluster after the volume's owner, so every mount is a transfer.
    let owner = hosts[0].clone().mount(specific(&volser)).await;
    let mut at = match owner {
        // C0 owns it (or just obtained it): unload there and go on from C1.
        Ok(m) => {
            hosts[0]
                .clone()
                .rewind_unload(pb::RewindUnloadRequest {
                    mount_id: m.into_inner().mount_id,
                })
                .await?;
            1
        }
        Err(e) => return Err(e),
    };
    while Instant::now() < until && latencies.len() < MAX_TRANSFERS_PER_CLIENT {
        let mut host = hosts[at].clone();
        let started = Instant::now();
        let m = host.mount(specific(&volser)).await?.into_inner();
        latencies.push(started.elapsed());
        host.rewind_unload(pb::RewindUnloadRequest {
            mount_id: m.mount_id,
        })
        .await?;
        at = (at + 1) % hosts.len();
    }
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
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

async fn ownership(duration: Duration, levels: &[usize]) -> Result<(), CliError> {
    let grid = Grid::start().await?;
    let result = measure(&grid, duration, levels).await;
    if result.is_err() {
        // Keep the clusters' logs for the operator.
        let dir = grid.dir.clone();
        grid.stop_keeping_logs().await;
        eprintln!("cluster logs kept in {}", dir.display());
    } else {
        grid.stop().await;
    }
    result
}

async fn measure(grid: &Grid, duration: Duration, levels: &[usize]) -> Result<(), CliError> {
    let most = levels.iter().copied().max().unwrap_or(1).max(1);
    let mut hosts = Vec::new();
    for h in &grid.hosts {
        hosts.push(client::host(h).await?);
    }
    let range = if most == 1 {
        "B00000".to_string()
    } else {
        format!("B00000-B{:05}", most - 1)
    };
    client::admin(&grid.hosts[0])
        .await?
        .insert_volumes(pb::InsertVolumesRequest {
            range,
            category: "000F".into(),
        })
        .await?;
    println!(
        "ownership transfer benchmark: {CLUSTERS} clusters on loopback, {}",
        machine()
    );
    println!(
        "{:>8}  {:>12}  {:>9}  {:>9}  {:>9}",
        "clients", "transfers/s", "p50 ms", "p99 ms", "transfers"
    );
    // Each level moves the volumes onward from where the previous level left them.
    for &clients in levels {
        let until = Instant::now() + duration;
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|k| tokio::spawn(client_loop(hosts.clone(), format!("B{k:05}"), until)))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            let lat = t
                .await
                .map_err(|e| CliError::Grid(format!("bench client: {e}")))??;
            all.extend(lat);
        }
        let elapsed = started.elapsed();
        all.sort();
        println!(
            "{:>8}  {:>12.1}  {:>9.2}  {:>9.2}  {:>9}",
            clients,
            all.len() as f64 / elapsed.as_secs_f64(),
            percentile(&all, 50.0).as_secs_f64() * 1e3,
            percentile(&all, 99.0).as_secs_f64() * 1e3,
            all.len()
        );
    }
    Ok(())
}
