//! `vtgrid-chaos`: chaos runs on real vtgrid processes (issue 11). `run` starts a grid from a
//! grid file, breaks it on a seeded schedule while hosts work, and judges the run; `check`
//! judges a saved run alone.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vtgrid_chaos::{check, FinalState, History};

#[derive(Parser)]
#[command(
    name = "vtgrid-chaos",
    about = "Chaos runs on real vtgrid processes, and their checker"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a grid from a grid file as real processes, break it, judge it: exit 1 on a
    /// violation. Writes grid.toml, logs, history.jsonl, state.json and report.txt under --out.
    Run {
        /// The grid file (e.g. cluster-config/three-site-ha-dr.toml); ports and data dirs are
        /// replaced by the run's own.
        #[arg(long)]
        config: PathBuf,
        /// The (first) seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How many seeds to run, one after another from --seed, each in `--out/seed-N/`.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// How long faults and hosts run, in seconds (per seed).
        #[arg(long, default_value_t = 120)]
        secs: u64,
        /// The whole run's length instead: each seed gets an equal share of it (settling and
        /// checking come on top).
        #[arg(long)]
        minutes: Option<u64>,
        #[arg(long, default_value_t = 6)]
        max_faults: usize,
        #[arg(long)]
        out: PathBuf,
        /// The vtgrid binary (default: VTGRID_BIN, else `vtgrid` beside this binary).
        #[arg(long)]
        vtgrid: Option<PathBuf>,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// The takeover grace period written for every pair of clusters, in seconds.
        #[arg(long, default_value_t = 10)]
        grace_secs: u64,
        /// The self-fencing lease, in seconds (0: none), written unless the grid file has a
        /// `[lease]`: with it a site lost whole (node and agent) is taken over too.
        #[arg(long, default_value_t = 0)]
        lease_secs: u64,
        /// How long the healed grid gets to settle before it is judged, in seconds.
        #[arg(long, default_value_t = 180)]
        settle_secs: u64,
        /// Run on loopback with process faults only, even as root.
        #[arg(long)]
        loopback: bool,
        /// Break every node on purpose (`VTGRID_BREAK`, debug builds of vtgrid only), so the
        /// checker has something to catch: `ack-before-journal`.
        #[arg(long = "break", value_parser = ["ack-before-journal"])]
        break_build: Option<String>,
    },
    /// Check a saved run: exit 1 on a violation, naming the operations involved.
    Check {
        /// The run's history (JSON lines).
        #[arg(long)]
        history: PathBuf,
        /// The clusters' final state (JSON).
        #[arg(long)]
        state: PathBuf,
    },
}

fn main() -> ExitCode {
    let Args { command } = Args::parse();
    match command {
        Command::Run {
            config,
            seed,
            seeds,
            secs,
            minutes,
            max_faults,
            out,
            vtgrid,
            workers,
            grace_secs,
            lease_secs,
            settle_secs,
            loopback,
            break_build,
        } => {
            let vtgrid = vtgrid
                .or_else(|| std::env::var_os("VTGRID_BIN").map(PathBuf::from))
                .or_else(|| {
                    let exe = std::env::current_exe().ok()?;
                    Some(exe.parent()?.join("vtgrid"))
                })
                .unwrap_or_else(|| PathBuf::from("vtgrid"));
            let seeds = seeds.max(1);
            let span = minutes.map_or(secs, |m| (m * 60 / seeds).max(10));
            let mut config = vtgrid_chaos::runner::RunConfig {
                template: config,
                seed,
                span: std::time::Duration::from_secs(span),
                max_faults,
                out,
                vtgrid,
                workers,
                grace: std::time::Duration::from_secs(grace_secs),
                break_build,
                lease: (lease_secs > 0).then(|| std::time::Duration::from_secs(lease_secs)),
                settle: std::time::Duration::from_secs(settle_secs),
            };
            // Namespaces before the runtime: its threads inherit the host namespace.
            let netns = if !loopback && vtgrid_chaos::netns::Netns::available() {
                let run = format!("{}", std::process::id() % 100_000);
                let voters: Vec<u8> = match vtgrid_chaos::runner::voters_of(&config.template) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("vtgrid-chaos: {e}");
                        return ExitCode::from(2);
                    }
                };
                match vtgrid_chaos::netns::Netns::create(&run, &voters)
                    .and_then(|n| n.enter_host().map(|()| n))
                {
                    Ok(n) => Some(n),
                    Err(e) => {
                        eprintln!("vtgrid-chaos: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                None
            };
            match &netns {
                Some(_) => eprintln!(
                    "vtgrid-chaos: network namespaces: process, path and disk faults; seed {seed}"
                ),
                None => eprintln!(
                    "vtgrid-chaos: loopback mode, process faults only (kill -9, SIGSTOP): {}; seed {seed}",
                    if loopback { "--loopback" } else { "not root, or no `ip`" }
                ),
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("vtgrid-chaos: {e}");
                    return ExitCode::from(2);
                }
            };
            let base = config.out.clone();
            let mut failed = Vec::new();
            let mut measures = Vec::new();
            for seed in seed..seed + seeds {
                config.seed = seed;
                if seeds > 1 {
                    config.out = base.join(format!("seed-{seed}"));
                }
                let result = runtime.block_on(async {
                    tokio::select! {
                        r = vtgrid_chaos::runner::run(&config, netns.as_ref()) => Some(r),
                        _ = tokio::signal::ctrl_c() => None,
                    }
                });
                match result {
                    Some(Ok(report)) => {
                        println!("== seed {seed} ({}):", config.out.display());
                        print!("{report}");
                        if !report.passed() {
                            failed.push(seed);
                        }
                        measures.push(report.measures);
                    }
                    Some(Err(e)) => {
                        eprintln!("vtgrid-chaos: seed {seed}: {e}");
                        return ExitCode::from(2);
                    }
                    None => {
                        eprintln!("vtgrid-chaos: interrupted; every process of the run is stopped");
                        return ExitCode::from(130);
                    }
                }
            }
            if seeds > 1 {
                print!("{}", vtgrid_chaos::measure::table(&measures));
                println!(
                    "== {seeds} seeds from {seed} of {span} s each: {}",
                    if failed.is_empty() {
                        "no violation".to_string()
                    } else {
                        format!("violations in seeds {failed:?}")
                    }
                );
            }
            if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Check { history, state } => match load(&history, &state) {
            Ok((h, s)) => {
                let report = check(&h, &s);
                print!("{report}");
                if report.passed() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("vtgrid-chaos: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn load(
    history: &PathBuf,
    state: &PathBuf,
) -> Result<(History, FinalState), Box<dyn std::error::Error>> {
    let open = |p: &PathBuf| File::open(p).map_err(|e| format!("{}: {e}", p.display()));
    let h = History::read(BufReader::new(open(history)?))?;
    let s: FinalState = serde_json::from_reader(BufReader::new(open(state)?))
        .map_err(|e| format!("{}: {e}", state.display()))?;
    Ok((h, s))
}
