//! `vtgrid bench takeover`: how long a survivor takes to write a dead cluster's volume under
//! autonomic takeover (issue 10; B34).
//!
//! The command starts a three-cluster grid of `vtgrid node` processes and a `vtgrid agent` beside
//! each, with `[[takeover]] at = 1, for = 0, mode = "wot"` and the grace period given. C0 writes
//! V00000 with a RUN copy at C1; then C0's node is killed with SIGKILL and C1 mounts V00000 every
//! 100 ms until a mount succeeds, writes a few bytes and unloads. The time from the kill to that
//! mount, minus the grace period, is what the agents and the node add (goal: at most 2 s: grid
//! loss detection plus one agent round trip).
//!
//! Then the same on a second grid with the self-fencing lease (`[lease]`, `--lease-secs` and a
//! 2 s margin) and no takeover by the agents: C0's node *and* its agent are killed together (the
//! whole site lost, T8), and the leader grants C1 write takeover once C0's lease has surely run
//! out. The time from the kill to C1's first write mount, minus lease and margin, is what the
//! lease path adds.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use vtgrid_proto::pb;

use super::{machine, specific, Grid};
use crate::client::{self, CliError};

const CLASS: &str = "[[management_class]]\nname = \"RRN\"\ncopy_modes = { C0 = \"RRN\", C1 = \"RRN\", C2 = \"RRN\" }\n";

/// How long C1 keeps trying before the bench gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// The lease bench's drift margin.
const LEASE_MARGIN_SECS: u64 = 2;

pub async fn run(grace_secs: u64, lease_secs: u64) -> Result<(), CliError> {
    let extra = format!(
        "{CLASS}[[takeover]]\nat = 1\nfor = 0\nmode = \"wot\"\ngrace_secs = {grace_secs}\nretry_secs = 1\n[agent]\nfence_after_secs = 5\n"
    );
    let took = on_new_grid(&extra, Duration::from_secs(grace_secs), false).await?;
    // The agents are asked only after a day: the lease, not AOTM, takes over here.
    let extra = format!(
        "{CLASS}[[takeover]]\nat = 1\nfor = 0\nmode = \"wot\"\ngrace_secs = 86400\n[lease]\nself_fence_after_secs = {lease_secs}\ndrift_margin_secs = {LEASE_MARGIN_SECS}\n"
    );
    // The first grid's directory is gone (stopped cleanly): the second takes its place.
    let by_lease = on_new_grid(&extra, Duration::from_secs(lease_secs), true).await?;
    let over = took.saturating_sub(Duration::from_secs(grace_secs));
    println!("vtgrid bench takeover on {}", machine());
    println!("{:<44} {:>10}", "measurement", "seconds");
    println!("{:<44} {:>10}", "grace period", grace_secs);
    println!(
        "{:<44} {:>10.2}",
        "kill -9 of C0 -> first write mount at C1",
        took.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.2}",
        "  over the grace period",
        over.as_secs_f64()
    );
    let wait = Duration::from_secs(lease_secs + LEASE_MARGIN_SECS);
    println!("{:<44} {:>10}", "lease + margin", wait.as_secs());
    println!(
        "{:<44} {:>10.2}",
        "kill -9 of C0 node + agent -> write at C1",
        by_lease.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.2}",
        "  over lease + margin",
        by_lease.saturating_sub(wait).as_secs_f64()
    );
    Ok(())
}

/// [`measure`] on a new three-cluster grid with agents, `extra` appended to its grid file; the
/// grid is stopped afterwards (its logs kept when the measurement failed).
async fn on_new_grid(extra: &str, wait: Duration, whole_site: bool) -> Result<Duration, CliError> {
    let mut grid = Grid::start(&std::env::temp_dir(), 3, extra, false).await?;
    grid.start_agents().await?;
    match measure(&grid, wait, whole_site).await {
        Ok(took) => {
            grid.stop().await;
            Ok(took)
        }
        Err(e) => {
            grid.stop_after_failure().await;
            Err(e)
        }
    }
}

/// Write V00000 at C0 with a RUN copy at C1, kill C0's node (and its agent when `whole_site`),
/// then mount V00000 at C1 every 100 ms until a write commits; the time from the kill.
async fn measure(grid: &Grid, wait: Duration, whole_site: bool) -> Result<Duration, CliError> {
    let mut admin = client::admin(&grid.hosts[0]).await?;
    admin
        .insert_volumes(pb::InsertVolumesRequest {
            range: "V00000".into(),
            category: "000F".into(),
        })
        .await?;
    let mut c0 = client::host(&grid.hosts[0]).await?;
    let mut first = specific("V00000");
    first.constructs = Some(pb::Constructs {
        management_class: "RRN".into(),
        ..Default::default()
    });
    write_once(&mut c0, first, b"V00000 v1, with a RUN copy at C1").await?;

    let pid = grid.children[0]
        .id()
        .ok_or_else(|| CliError::Grid("C0 has no pid".into()))?;
    let agent = match (whole_site, grid.agents.first()) {
        (true, Some(agent)) => agent.id(),
        _ => None,
    };
    let killed = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL)
        .map_err(|e| CliError::Grid(format!("kill -9 C0: {e}")))?;
    if let Some(agent) = agent {
        kill(Pid::from_raw(agent as i32), Signal::SIGKILL)
            .map_err(|e| CliError::Grid(format!("kill -9 C0's agent: {e}")))?;
    }
    let mut c1 = client::host(&grid.hosts[1]).await?;
    loop {
        if killed.elapsed() > GIVE_UP_AFTER.max(wait * 3) {
            return Err(CliError::Grid(
                "C1 never took over V00000; see the cluster logs".into(),
            ));
        }
        if write_once(&mut c1, specific("V00000"), b"V00000 v2, at C1")
            .await
            .is_ok()
        {
            return Ok(killed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mount, write `data`, unload.
async fn write_once(
    host: &mut vtgrid_proto::pb::host_service_client::HostServiceClient<crate::client::Conn>,
    mount: pb::MountRequest,
    data: &'static [u8],
) -> Result<(), CliError> {
    let m = host.mount(mount).await?.into_inner();
    let mount_id = m.mount_id.clone();
    let items = vec![
        pb::WriteRequest {
            msg: Some(pb::write_request::Msg::Open(pb::WriteOpen {
                mount_id: mount_id.clone(),
            })),
        },
        pb::WriteRequest {
            msg: Some(pb::write_request::Msg::Chunk(data.into())),
        },
        pb::WriteRequest {
            msg: Some(pb::write_request::Msg::End(pb::WriteEnd {
                total_bytes: data.len() as u64,
            })),
        },
    ];
    host.write(tokio_stream::iter(items)).await?;
    host.rewind_unload(pb::RewindUnloadRequest { mount_id })
        .await?;
    Ok(())
}
