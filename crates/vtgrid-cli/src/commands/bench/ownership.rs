//! `vtgrid bench ownership`: how fast volume ownership moves between clusters.
//!
//! The command starts its own three-cluster grid (`vtgrid node` processes on free loopback ports,
//! data in a temporary directory), inserts one volume per client through C0, and then each client
//! mounts its volume at the next cluster round-robin and unloads it without writing. Every such
//! mount is one ownership transfer: the two-party `Surrender` handshake plus a Raft commit
//! (DESIGN §3). The mount's latency as the host sees it is recorded. Each concurrency level runs for
//! a bounded time and a bounded number of transfers.
//!
//! After each level the same number of clients runs [`super::floor`] for the same time: the
//! least any majority commit of three members costs on this machine (loopback round trip and
//! fsync, no Raft, no gRPC). The ratio of the two rates holds on any machine; issue 14's goal is
//! stated against etcd on the same machine, which the floor stands in for when etcd is absent.

use std::time::{Duration, Instant};

use vtgrid_proto::pb::{self, host_service_client::HostServiceClient};

use super::{floor, machine, specific, Grid};
use crate::client::{self, CliError};

/// Clusters in the benchmark grid.
const CLUSTERS: usize = 3;
/// Upper bound on transfers per client per level, whatever the duration.
const MAX_TRANSFERS_PER_CLIENT: usize = 20_000;

/// One client: move its volume round the clusters until `until`; returns each mount's latency.
async fn client_loop(
    hosts: Vec<HostServiceClient<crate::client::Conn>>,
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

pub(super) async fn run(duration: Duration, levels: &[usize], tls: bool) -> Result<(), CliError> {
    let grid = Grid::start(&std::env::temp_dir(), CLUSTERS, "", tls).await?;
    let result = measure(&grid, duration, levels).await;
    if result.is_err() {
        grid.stop_after_failure().await;
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
        "ownership transfer benchmark: {CLUSTERS} clusters on loopback, {}, {}",
        super::transport(grid.tls),
        machine()
    );
    println!(
        "{:>8}  {:>12}  {:>9}  {:>9}  {:>9}  {:>10}  {:>9}  {:>9}  {:>6}",
        "clients",
        "transfers/s",
        "p50 ms",
        "p99 ms",
        "transfers",
        "floor/s",
        "floor p50",
        "floor p99",
        "ratio"
    );
    let floor_dir = std::env::temp_dir().join(format!("vtgrid-bench-floor-{}", std::process::id()));
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
        let rate = all.len() as f64 / elapsed.as_secs_f64();

        let dir = floor_dir.join(format!("level-{clients}"));
        let floor = tokio::task::spawn_blocking(move || {
            floor::replicated_commits(&dir, clients, duration, MAX_TRANSFERS_PER_CLIENT)
        })
        .await
        .map_err(|e| CliError::Grid(format!("floor clients: {e}")))?
        .map_err(|e| CliError::Grid(format!("measuring the replicated-commit floor: {e}")))?;
        let _ = std::fs::remove_dir_all(floor_dir.join(format!("level-{clients}")));
        let mut floor_lat = floor.latencies;
        floor_lat.sort();
        let floor_rate = floor_lat.len() as f64 / floor.elapsed.as_secs_f64();
        println!(
            "{:>8}  {:>12.1}  {:>9.2}  {:>9.2}  {:>9}  {:>10.1}  {:>9.2}  {:>9.2}  {:>6.2}",
            clients,
            rate,
            percentile(&all, 50.0).as_secs_f64() * 1e3,
            percentile(&all, 99.0).as_secs_f64() * 1e3,
            all.len(),
            floor_rate,
            percentile(&floor_lat, 50.0).as_secs_f64() * 1e3,
            percentile(&floor_lat, 99.0).as_secs_f64() * 1e3,
            rate / floor_rate.max(f64::MIN_POSITIVE)
        );
    }
    let _ = std::fs::remove_dir_all(&floor_dir);
    println!("floor: per client, a majority commit of three members on loopback (send, append + fsync at each, one follower's answer); ratio = transfers/s over floor/s");
    Ok(())
}
