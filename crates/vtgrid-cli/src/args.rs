//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vtgrid",
    version,
    about = "A replication grid for virtual tape volumes"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Host endpoint of the cluster to talk to.
    #[arg(
        long,
        global = true,
        env = "VTGRID_ENDPOINT",
        default_value = "http://127.0.0.1:7400"
    )]
    pub endpoint: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Read catalog state (volumes, categories, classes) from this cluster's own view as it
    /// stands (fast, no majority needed, may trail by a moment) instead of a linearizable read.
    #[arg(long, global = true)]
    pub local: bool,
    /// Bearer token for a grid that lists `[[token]]`s (docs/security.md).
    #[arg(long, global = true, env = "VTGRID_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The grid's CA certificate (`ca.pem`), for an `https://` endpoint.
    #[arg(long, global = true, env = "VTGRID_CA")]
    pub ca: Option<PathBuf>,
}

impl Global {
    /// The consistency of catalog reads this invocation asks for (`--local`).
    pub fn consistency(&self) -> i32 {
        if self.local {
            vtgrid_proto::pb::Consistency::Local.into()
        } else {
            vtgrid_proto::pb::Consistency::Linearizable.into()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one data cluster of a grid file as this process.
    Node {
        #[arg(long)]
        config: PathBuf,
        /// The data cluster's id (0..7).
        #[arg(long)]
        id: u8,
    },
    /// Run one witness of a grid file as this process: a Raft voter that keeps the catalog only.
    Witness {
        #[arg(long)]
        config: PathBuf,
        /// The witness's id (8..15).
        #[arg(long)]
        id: u8,
    },
    /// Run the takeover agent of one data cluster (one per site, beside its node, on the
    /// heartbeat address): it watches the node through its data directory and answers the other
    /// sites' agents ALIVE, DOWN (gone, or killed after it stopped answering) or UNKNOWN.
    Agent {
        #[arg(long)]
        config: PathBuf,
        /// The data cluster's id (0..7).
        #[arg(long)]
        id: u8,
    },
    /// Run a whole grid on this machine.
    #[command(subcommand)]
    Grid(GridCommand),
    /// Check grid files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Insert, write, read, list and show volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Define and list categories.
    #[command(subcommand)]
    Category(CategoryCommand),
    /// Define and list management classes.
    #[command(subcommand)]
    Class(ClassCommand),
    /// What the cluster at --endpoint sees.
    Status,
    /// Versions this cluster wrote while cut off that the catalog refused (kept, never dropped).
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Operator actions on the cluster at --endpoint.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Events the cluster at --endpoint raised since it started (e.g. OWNERSHIP_CONFLICT).
    Events {
        /// Keep printing new events as they are raised (Ctrl-C stops).
        #[arg(long, short)]
        follow: bool,
        /// Start at this event sequence number (the last one seen + 1) to resume without a gap.
        #[arg(long, default_value_t = 0)]
        from: u64,
    },
    /// The copies the cluster at --endpoint owes, by priority (its incoming copy queue).
    Copies {
        /// List each queued copy too.
        #[arg(long)]
        volumes: bool,
    },
    /// Benchmarks on a grid this command starts on loopback.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The grid's certificates for mutual TLS (docs/security.md).
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Host and operator tokens (docs/security.md).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make the grid's CA and a certificate for every voter and agent of the grid file, in the
    /// file's `[tls] dir` (or --dir).
    Init {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Issue (or reissue) the certificates of one voter id and its agent with the grid's CA.
    Issue {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        id: u8,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new random secret and the `[[token]]` entry (its SHA-256) for the grid file.
    New {
        /// Who will hold it (logs and the audit log name it).
        #[arg(long)]
        name: String,
        /// host, operator or service.
        #[arg(long)]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ownership transfers per second and their latency (p50/p99) at 1 and at 64 concurrent
    /// clients, on a three-cluster grid of real processes on loopback.
    Ownership {
        /// How long each concurrency level runs, in seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrency levels to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,64")]
        clients: Vec<usize>,
        /// Run the grid with mutual TLS between clusters (certificates made for the run).
        #[arg(long)]
        tls: bool,
    },
    /// Autonomic takeover on a three-cluster grid of real processes with their agents: kill -9
    /// C0's node, time until C1's first successful write mount of C0's volume, and that time
    /// minus the grace period.
    Takeover {
        /// The `[[takeover]]` grace period, in seconds.
        #[arg(long, default_value_t = 5)]
        grace_secs: u64,
        /// The `[lease]` self_fence_after_secs of the second grid (whole site lost), in seconds.
        #[arg(long, default_value_t = 5)]
        lease_secs: u64,
    },
    /// A RUN copy between two clusters as a ratio to loopback TCP + write + fsync of the same
    /// bytes, and a Sync-mode write as a ratio to a single-cluster write, all measured in this
    /// run on a two-cluster grid of real processes on loopback.
    Copy {
        /// Bytes per measurement, in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Runs of every measurement; the table shows the medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Directory to put the grid's and the baseline's data under (default: the system's
        /// temporary directory); its filesystem is the one measured.
        #[arg(long)]
        dir: Option<PathBuf>,

        /// Run the grid with mutual TLS between clusters (certificates made for the run).
        #[arg(long)]
        tls: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GridCommand {
    /// Start every data cluster and witness of a grid file as a local process; Ctrl-C stops
    /// them. Without a file, runs the embedded single-cluster grid with its data under
    /// ./vtgrid-data.
    Up { file: Option<PathBuf> },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate a grid file; errors name the field.
    Check { file: PathBuf },
    /// Print the embedded single-cluster grid file.
    Embedded,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Insert a range of volumes (e.g. A00000-A09999); the cluster at --endpoint owns them.
    Insert {
        range: String,
        /// Category for the new volumes (default: the grid's insert category).
        #[arg(long)]
        category: Option<String>,
    },
    /// Write stdin to a volume as its next version and print the VOLSER.
    Write {
        /// The volume to write (a specific mount); omit with --scratch.
        volser: Option<String>,
        /// Scratch mount: any free volume of the scratch category.
        #[arg(long, conflicts_with = "volser")]
        scratch: bool,
        /// Scratch category to mount from (default: the grid's insert category).
        #[arg(long, requires = "scratch")]
        category: Option<String>,
        /// Management class for the volume.
        #[arg(long)]
        mc: Option<String>,
        /// Storage class for the volume.
        #[arg(long)]
        sc: Option<String>,
        /// Data class for the volume.
        #[arg(long)]
        dc: Option<String>,
        /// Keep the volume's data and append stdin to it.
        #[arg(long, conflicts_with = "scratch")]
        append: bool,
    },
    /// Write a volume's data to stdout.
    Read { volser: String },
    /// List volumes.
    List {
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        owner: Option<u32>,
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many volumes (0 = all).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one volume.
    Show { volser: String },
    /// Return a volume to scratch (default: the grid's insert category).
    Scratch {
        volser: String,
        #[arg(long)]
        category: Option<String>,
    },
    /// Move a volume to another category.
    Category { volser: String, category: String },
}

#[derive(Debug, Subcommand)]
pub enum CategoryCommand {
    /// Define or redefine a category.
    Define {
        /// Four hex digits, e.g. 0012.
        id: String,
        #[arg(long)]
        name: String,
        /// Scratch (Fast Ready): mounts return a blank volume.
        #[arg(long)]
        fast_ready: bool,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClassCommand {
    /// Define or redefine a management class: `--copy-modes C0=RND --copy-modes C1=RRD`.
    Define {
        name: String,
        #[arg(long = "copy-modes", required = true)]
        copy_modes: Vec<String>,
        /// Sync jobs whose second sync cluster fails: `fail` (the job fails) or `defer` (it goes
        /// on alone and the copy is made later).
        #[arg(long = "on-sync-failure", default_value = "fail", value_parser = ["fail", "defer"])]
        on_sync_failure: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// End the job on a volume mounted on this cluster as if it abended (its host is gone): the
    /// partial version is dropped and the volume is free at once. NOT_MOUNTED when it is not.
    Demount { volser: String },
    /// A voter that lost its catalog (status: membership AMNESIAC) joins the grid again as a new
    /// member: the leader removes it, catches it up and makes it a voter again.
    Rejoin {
        /// Join as a new member (required: the other way back is to restore its data dir).
        #[arg(long)]
        as_new: bool,
    },
    /// The takeover mode this cluster holds for a failed cluster: `rot` (read its volumes from
    /// consistent copies; no quorum needed), `wot` (write takeover, committed through the
    /// catalog: only from the majority side) or `none`.
    Takeover {
        /// The failed cluster: `C0` or `0`.
        #[arg(long = "for")]
        for_cluster: String,
        #[arg(long, value_parser = ["rot", "wot", "none"])]
        mode: String,
        /// WOT even though the cluster answers on the grid network. Never for a test (B25).
        #[arg(long)]
        force: bool,
    },
    /// Disaster recovery of the catalog when the majority is gone for good (DESIGN §3): OFFLINE,
    /// on one stopped survivor, rewrite its catalog as a grid of that cluster alone. It then owns
    /// every volume; copies at the lost clusters stop counting; entries it never knew committed
    /// are dropped. The lost clusters may come back only as new members (empty data dir, then
    /// `vtgrid admin rejoin --as-new`). Keep them down before running this. Runbook:
    /// docs/runbooks/force-standalone.md.
    ForceStandalone {
        /// The survivor's grid file.
        #[arg(long)]
        config: PathBuf,
        /// The survivor's data cluster id (0..7); its node must be stopped.
        #[arg(long)]
        id: u8,
        /// Confirm: the lost clusters' data is given up.
        #[arg(long)]
        yes: bool,
    },
    /// Service prep, service mode and their end for a cluster (B23): `prep` drains it and then
    /// enters service mode on its own; `enter` forces service mode after prep; `exit` ends it.
    Service {
        #[arg(value_parser = ["prep", "enter", "exit"])]
        step: String,
        /// The cluster: `C0` or `0`.
        cluster: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined versions.
    List,
    /// Write a quarantined version's bytes to stdout.
    Read { volser: String, version: u64 },
    /// Forget a quarantined version and free its space.
    Discard { volser: String, version: u64 },
}
