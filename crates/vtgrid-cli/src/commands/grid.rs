//! `vtgrid grid up [FILE]`: every data cluster and witness of a grid file as a local child
//! process.
//!
//! The children are `vtgrid node --config FILE --id N` for each `[[cluster]]` and
//! `vtgrid witness --config FILE --id N` for each `[[witness]]` (this same binary). `grid up`
//! waits until each reports ready (a data cluster on its host address, a witness on its grid
//! address, where it serves `StatusService`), prints a table of where to reach them, and then
//! watches: a child that dies is reported and the rest keep running (a grid survives a cluster's
//! loss). SIGINT or SIGTERM stops every child with SIGTERM (a clean shutdown), and SIGKILL after
//! a grace period.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use vtgrid_node::config::{GridConfig, Role, EMBEDDED_GRID};
use vtgrid_node::process::StopSignal;
use vtgrid_proto::pb::GetStatusRequest;

use crate::args::GridCommand;
use crate::client::{self, CliError};

/// How long the grid may take to become ready before `grid up` gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one status probe of a starting child may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two rounds of status probes, and between two looks at the children.
const POLL: Duration = Duration::from_millis(200);
/// How long a stopping child may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub async fn run(cmd: GridCommand) -> Result<(), CliError> {
    match cmd {
        GridCommand::Up { file } => up(file).await,
    }
}

/// The grid file to run: the given one, or the embedded one written to ./vtgrid-data/grid.toml.
fn grid_file(file: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(f) = file {
        return Ok(f);
    }
    let dir = Path::new("vtgrid-data");
    std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
        what: "creating ./vtgrid-data",
        source,
    })?;
    let path = dir.join("grid.toml");
    std::fs::write(&path, EMBEDDED_GRID).map_err(|source| CliError::Io {
        what: "writing ./vtgrid-data/grid.toml",
        source,
    })?;
    Ok(path)
}

/// One voter of the grid file, as `grid up` runs it.
struct Member {
    name: String,
    id: u8,
    role: Role,
    /// Host address (data cluster) or none (witness).
    host: Option<String>,
    grid: String,
    metrics: Option<String>,
    data_dir: PathBuf,
}

impl Member {
    fn of(grid: &GridConfig) -> Vec<Member> {
        let clusters = grid.clusters.iter().map(|c| Member {
            name: c.name.clone(),
            id: c.id,
            role: Role::Data,
            host: Some(c.host.clone()),
            grid: c.grid.clone(),
            metrics: c.metrics.clone(),
            data_dir: c.data_dir.clone(),
        });
        let witnesses = grid.witnesses.iter().map(|w| Member {
            name: w.name.clone(),
            id: w.id,
            role: Role::Witness,
            host: None,
            grid: w.grid.clone(),
            metrics: None,
            data_dir: w.data_dir.clone(),
        });
        clusters.chain(witnesses).collect()
    }

    /// The `vtgrid` subcommand that runs it.
    fn command(&self) -> &'static str {
        match self.role {
            Role::Data => "node",
            Role::Witness => "witness",
        }
    }

    fn role_name(&self) -> &'static str {
        match self.role {
            Role::Data => "data",
            Role::Witness => "witness",
        }
    }

    /// Where its `StatusService` answers: a witness serves it on its grid address.
    fn status_endpoint(&self) -> String {
        format!("http://{}", self.host.as_deref().unwrap_or(&self.grid))
    }
}

/// A started member and its process.
struct Running {
    member: Member,
    child: Child,
    /// Set once its exit has been seen (and reported).
    exited: Option<ExitStatus>,
}

impl Running {
    /// Whether the process has exited; the first time it has, the status is kept.
    fn check_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }
}

async fn up(file: Option<PathBuf>) -> Result<(), CliError> {
    // Watch the stop signals before the first child starts, so none is lost.
    let mut signals = StopSignal::watch().map_err(|source| CliError::Io {
        what: "watching for SIGINT and SIGTERM",
        source,
    })?;
    let path = grid_file(file)?;
    let grid = GridConfig::load(&path)?;
    super::security::ensure_local_certs(&grid)?;
    if grid.tls.is_none() && grid.tokens.is_empty() {
        println!("grid up: no TLS and no tokens (loopback only; docs/security.md)");
    }
    let exe = std::env::current_exe().map_err(|source| CliError::Io {
        what: "finding the vtgrid binary",
        source,
    })?;
    let mut running = Vec::new();
    for member in Member::of(&grid) {
        let spawned = Command::new(&exe)
            .arg(member.command())
            .arg("--config")
            .arg(&path)
            .arg("--id")
            .arg(member.id.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(source) => {
                stop_all(&mut running).await;
                return Err(CliError::Io {
                    what: "starting a cluster process",
                    source,
                });
            }
        };
        running.push(Running {
            member,
            child,
            exited: None,
        });
    }
    // The takeover agent of every data cluster, beside its node (DESIGN §5).
    let mut agents = Vec::new();
    for c in &grid.clusters {
        let spawned = Command::new(&exe)
            .arg("agent")
            .arg("--config")
            .arg(&path)
            .arg("--id")
            .arg(c.id.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match spawned {
            Ok(child) => agents.push(child),
            Err(source) => {
                stop_all(&mut running).await;
                return Err(CliError::Io {
                    what: "starting a takeover agent",
                    source,
                });
            }
        }
    }
    let outcome = tokio::select! {
        r = wait_ready(&mut running, &grid) => r,
        _ = signals.recv() => Err(CliError::Grid("interrupted while starting".into())),
    };
    if let Err(e) = outcome {
        stop_all(&mut running).await;
        return Err(e);
    }
    println!(
        "grid {:?} is up: {} data cluster(s), {} witness(es); Ctrl-C stops it",
        grid.grid.name,
        grid.clusters.len(),
        grid.witnesses.len()
    );
    print!("{}", table(running.iter().map(|r| &r.member)));
    watch(&mut running, &mut signals).await;
    stop_all(&mut running).await;
    stop_agents(&mut agents).await;
    println!("grid stopped");
    Ok(())
}

/// Until every member reports ready; a member that exits first, or the deadline, is an error.
async fn wait_ready(running: &mut [Running], grid: &GridConfig) -> Result<(), CliError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut ready = vec![false; running.len()];
    loop {
        for (r, ready) in running.iter_mut().zip(ready.iter_mut()) {
            if let Some(status) = r.check_exit() {
                return Err(CliError::Grid(format!(
                    "{} ({} {}) exited during start-up ({status})",
                    r.member.name,
                    r.member.role_name(),
                    r.member.id
                )));
            }
            if !*ready {
                *ready = is_ready(&r.member, grid).await;
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let waiting: Vec<&str> = running
                .iter()
                .zip(&ready)
                .filter(|(_, ready)| !**ready)
                .map(|(r, _)| r.member.name.as_str())
                .collect();
            return Err(CliError::Grid(format!(
                "not ready within {READY_TIMEOUT:?}: {}",
                waiting.join(", ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A channel to `member`'s StatusService: its host port (over TLS when `[tls] host`), or a
/// witness's grid port (mutual TLS with the witness's own certificate when the grid has `[tls]`:
/// `grid up` runs on the machine that holds the members' files).
async fn status_channel(member: &Member, grid: &GridConfig) -> Option<tonic::transport::Channel> {
    use vtgrid_node::transport::{Connector, GridTls, TlsConnector};
    let tls = grid.tls.as_ref();
    match (&member.host, tls) {
        (None, Some(t)) => {
            let me = vtgrid_node::transport::names::Member::Voter(member.id);
            let tls = GridTls::load(&t.dir, &grid.grid.name, me, grid.member_addresses()).ok()?;
            Some(TlsConnector::new(tls).channel(&member.grid))
        }
        (Some(host), Some(t)) if t.host => {
            let ca = std::fs::read(t.dir.join(vtgrid_node::transport::certs::CA_CERT)).ok()?;
            let name = host
                .rsplit_once(':')
                .map(|(h, _)| h)?
                .trim_matches(['[', ']']);
            let config = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                .domain_name(name);
            let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{host}"))
                .ok()?
                .tls_config(config)
                .ok()?;
            endpoint.connect().await.ok()
        }
        _ => client::raw_channel(&member.status_endpoint()).await.ok(),
    }
}

/// `GetStatus.ready` of `member`; false while it cannot answer.
async fn is_ready(member: &Member, grid: &GridConfig) -> bool {
    let probe = async {
        let channel = status_channel(member, grid).await?;
        let mut status = vtgrid_proto::pb::status_service_client::StatusServiceClient::new(channel);
        let reply = status.get_status(GetStatusRequest {}).await.ok()?;
        Some(reply.into_inner().ready)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Some(true))
    )
}

/// The members as an aligned table: name, id, role, addresses, data dir.
fn table<'a>(members: impl Iterator<Item = &'a Member>) -> String {
    let header = ["NAME", "ID", "ROLE", "HOST", "GRID", "METRICS", "DATA"].map(String::from);
    let mut rows = vec![header];
    for m in members {
        rows.push([
            m.name.clone(),
            m.id.to_string(),
            m.role_name().to_string(),
            m.host.clone().unwrap_or_else(|| "-".into()),
            m.grid.clone(),
            m.metrics
                .as_deref()
                .map_or_else(|| "-".into(), |a| format!("http://{a}/metrics")),
            m.data_dir.display().to_string(),
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Until a signal or until every child has exited.
async fn watch(running: &mut [Running], signals: &mut StopSignal) {
    loop {
        tokio::select! {
            _ = signals.recv() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let mut alive = 0;
        for r in running.iter_mut() {
            let seen = r.exited.is_some();
            match r.check_exit() {
                None => alive += 1,
                Some(status) if !seen => eprintln!(
                    "{} ({} {}) exited: {status}; the rest of the grid keeps running",
                    r.member.name,
                    r.member.role_name(),
                    r.member.id
                ),
                Some(_) => {}
            }
        }
        if alive == 0 {
            eprintln!("every cluster and witness has exited");
            return;
        }
    }
}

async fn stop_all(running: &mut [Running]) {
    for r in running.iter_mut() {
        if r.check_exit().is_none() {
            if let Some(pid) = r.child.id() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
    }
    for r in running.iter_mut() {
        if tokio::time::timeout(STOP_GRACE, r.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "{} did not stop within {STOP_GRACE:?}; killing it",
                r.member.name
            );
            let _ = r.child.kill().await;
        }
    }
}

/// Stop the agents once their nodes have stopped (they keep no state).
async fn stop_agents(agents: &mut [Child]) {
    for agent in agents.iter_mut() {
        if let Some(pid) = agent.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for agent in agents.iter_mut() {
        if tokio::time::timeout(STOP_GRACE, agent.wait())
            .await
            .is_err()
        {
            let _ = agent.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_its_columns_and_marks_what_a_witness_lacks() {
        let members = [
            Member {
                name: "duo-c0".into(),
                id: 0,
                role: Role::Data,
                host: Some("127.0.0.1:7500".into()),
                grid: "127.0.0.1:7501".into(),
                metrics: Some("127.0.0.1:7503".into()),
                data_dir: "vtgrid-data/duo-c0".into(),
            },
            Member {
                name: "duo-w8".into(),
                id: 8,
                role: Role::Witness,
                host: None,
                grid: "127.0.0.1:7581".into(),
                metrics: None,
                data_dir: "vtgrid-data/duo-w8".into(),
            },
        ];
        let text = table(members.iter());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("NAME") && lines[0].contains("ROLE"),
            "{text}"
        );
        let grid_column = lines[0].find("GRID").expect("a GRID column");
        assert_eq!(lines[1].find("127.0.0.1:7501"), Some(grid_column), "{text}");
        assert_eq!(lines[2].find("127.0.0.1:7581"), Some(grid_column), "{text}");
        assert!(
            lines[2].contains("witness") && lines[2].contains(" - "),
            "{text}"
        );
    }
}
