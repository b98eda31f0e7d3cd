//! `vtgrid grid up [FILE]`: every cluster of a grid file as a local child process.
//!
//! The children are `vtgrid node --config FILE --id N` (this same binary). `grid up` waits until
//! each reports ready, prints where to reach it, and then watches: a child that dies is reported
//! and the rest keep running (a grid survives a cluster's loss). SIGINT or SIGTERM stops every
//! child with SIGTERM (a clean shutdown), and SIGKILL after a grace period.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use vtgrid_node::config::{GridConfig, EMBEDDED_GRID};
use vtgrid_proto::pb::GetStatusRequest;

use crate::args::GridCommand;
use crate::client::{self, CliError};

/// How long a cluster may take to become ready before `grid up` gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
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

struct Running {
    name: String,
    id: u8,
    child: Child,
}

async fn up(file: Option<PathBuf>) -> Result<(), CliError> {
    let path = grid_file(file)?;
    let grid = GridConfig::load(&path)?;
    if !grid.witnesses.is_empty() {
        eprintln!(
            "note: witnesses in {} are not started: this release runs data clusters only",
            path.display()
        );
    }
    let exe = std::env::current_exe().map_err(|source| CliError::Io {
        what: "finding the vtgrid binary",
        source,
    })?;
    let mut running = Vec::new();
    for c in &grid.clusters {
        let child = Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(&path)
            .arg("--id")
            .arg(c.id.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CliError::Io {
                what: "starting a cluster process",
                source,
            })?;
        running.push(Running {
            name: c.name.clone(),
            id: c.id,
            child,
        });
    }
    let started = wait_ready(&grid, &mut running);
    let outcome = tokio::select! {
        r = started => r,
        _ = vtgrid_node::process::wait_for_signal() => Err(CliError::Grid("interrupted while starting".into())),
    };
    if let Err(e) = outcome {
        stop_all(&mut running).await;
        return Err(e);
    }
    println!(
        "grid {:?} is up ({} cluster(s)); Ctrl-C stops it",
        grid.grid.name,
        running.len()
    );
    for c in &grid.clusters {
        let metrics = c
            .metrics
            .as_deref()
            .map(|m| format!(", metrics http://{m}/metrics"))
            .unwrap_or_default();
        println!(
            "  {} (C{}): host {}, grid {}{}, data {}",
            c.name,
            c.id,
            c.host,
            c.grid,
            metrics,
            c.data_dir.display()
        );
    }
    watch(&mut running).await;
    stop_all(&mut running).await;
    println!("grid stopped");
    Ok(())
}

async fn wait_ready(grid: &GridConfig, running: &mut [Running]) -> Result<(), CliError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for c in &grid.clusters {
        let endpoint = format!("http://{}", c.host);
        loop {
            if let Some(r) = running.iter_mut().find(|r| r.id == c.id) {
                if let Ok(Some(status)) = r.child.try_wait() {
                    return Err(CliError::Grid(format!(
                        "{} exited during start-up ({status})",
                        r.name
                    )));
                }
            }
            let ready = match client::status(&endpoint).await {
                Ok(mut s) => s
                    .get_status(GetStatusRequest {})
                    .await
                    .map(|r| r.into_inner().ready)
                    .unwrap_or(false),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(CliError::Grid(format!(
                    "{} did not become ready within {READY_TIMEOUT:?}",
                    c.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Until a signal or until every child has exited.
async fn watch(running: &mut [Running]) {
    let mut signal = Box::pin(vtgrid_node::process::wait_for_signal());
    loop {
        tokio::select! {
            _ = &mut signal => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let mut alive = 0;
        for r in running.iter_mut() {
            match r.child.try_wait() {
                Ok(None) => alive += 1,
                Ok(Some(status)) if r.id != u8::MAX => {
                    eprintln!(
                        "{} (C{}) exited: {status}; the rest of the grid keeps running",
                        r.name, r.id
                    );
                    r.id = u8::MAX;
                }
                _ => {}
            }
        }
        if alive == 0 {
            eprintln!("every cluster has exited");
            return;
        }
    }
}

async fn stop_all(running: &mut [Running]) {
    for r in running.iter_mut() {
        if let Some(pid) = r.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for r in running.iter_mut() {
        match tokio::time::timeout(STOP_GRACE, r.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("{} did not stop within {STOP_GRACE:?}; killing it", r.name);
                let _ = r.child.kill().await;
            }
        }
    }
}
