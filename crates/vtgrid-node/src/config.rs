//! The grid file: one TOML document describing a whole grid (DESIGN §2).
//!
//! Parsing happens in two steps: serde turns the text into [`GridConfig`] (rejecting unknown keys,
//! so a misspelt key is an error, not a silently ignored setting), then [`GridConfig::validate`]
//! checks the rules serde cannot express. Every error names the field it is about, such as
//! `cluster[1].host` or `management_class[0].copy_modes.C3`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;
use vtgrid_core::aotm::AotmSetting;
use vtgrid_core::takeover::TakeoverMode;
use vtgrid_core::{
    Category, CategoryDefinition, ClusterId, ConstructName, CopyModeVector, ManagementClass,
};

/// The single-cluster grid `vtgrid grid up` runs when no file is given.
pub const EMBEDDED_GRID: &str = include_str!("../../../cluster-config/local.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read grid file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("grid file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("grid file {path}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: Problem,
    },
}

/// What is wrong with a field that parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    #[error("not an address (want HOST:PORT, e.g. 127.0.0.1:7400): {0:?}")]
    BadAddress(String),
    #[error("address {0} is used twice in this grid")]
    DuplicateAddress(String),
    #[error("not a cluster (want C0..C7): {0:?}")]
    BadClusterKey(String),
    #[error("id {0} is used twice")]
    DuplicateId(u8),
    #[error("a data cluster id is 0..7")]
    ClusterIdRange,
    #[error("a witness id is 8..15")]
    WitnessIdRange,
    #[error("a grid needs at least one data cluster")]
    NoClusters,
    #[error("{0}")]
    Domain(vtgrid_core::DomainError),
    #[error("category {0} is not defined in [[category]]")]
    UndefinedCategory(Category),
    #[error("category {0} is defined twice")]
    DuplicateCategory(Category),
    #[error("insert category {0} must be Fast Ready (scratch), or inserted volumes cannot be scratch mounted")]
    InsertNotFastReady(Category),
    #[error(
        "private category {0} must not be Fast Ready, or written volumes would read back blank"
    )]
    PrivateIsFastReady(Category),
    #[error("names cluster C{0}, which the grid does not have")]
    UnknownCluster(u8),
    #[error("management class {0} is defined twice")]
    DuplicateClass(String),
    #[error("must not be empty")]
    Empty,
    #[error("at least 1: the writer's own copy counts")]
    RunCopiesRequired,
    #[error("copies pulled at once must be 1..64")]
    CopyConcurrency,
    #[error("an idle timeout is 1..=86400 seconds")]
    IdleTimeout,
    #[error("the vector has {len} letters but the grid has {clusters} data clusters")]
    VectorLength { len: usize, clusters: usize },
    #[error("a takeover names two different data clusters of the grid (at, for)")]
    TakeoverPair,
    #[error("a takeover mode is \"rot\" or \"wot\"")]
    TakeoverMode,
    #[error("(at, for) is set twice")]
    DuplicateTakeover,
    #[error("a grace or retry period is 1..=86400 seconds")]
    TakeoverPeriod,
    #[error("an agent's fence_after_secs is 1..=86400")]
    FenceAfter,
    #[error("{0} is not on loopback and the grid has no [tls]: set up certificates (`vtgrid certs init`), or say `insecure = true` in [grid] to run without them")]
    InsecureAddress(String),
    #[error("a role is \"host\", \"operator\" or \"service\"")]
    TokenRole,
    #[error("want the SHA-256 of the token's secret: 64 hex digits")]
    TokenHash,
    #[error("the same token is listed twice")]
    DuplicateToken,
    #[error("a limit is at least 1")]
    Limit,
    #[error("a lease's self_fence_after_secs is 0 (no lease) or 2..=86400, its drift_margin_secs 1..=86400")]
    LeasePeriod,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    pub grid: GridSection,
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<ClusterConfig>,
    #[serde(default, rename = "witness")]
    pub witnesses: Vec<WitnessConfig>,
    #[serde(default, rename = "category")]
    pub categories: Vec<CategoryConfig>,
    #[serde(default, rename = "management_class")]
    pub management_classes: Vec<ManagementClassConfig>,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub copy: CopyConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
    /// Autonomic takeover (AOTM, B27): what a surviving cluster does when the agents confirm
    /// another one down. None: no cluster takes over on its own.
    #[serde(default, rename = "takeover")]
    pub takeovers: Vec<TakeoverConfig>,
    #[serde(default)]
    pub agent: AgentConfig,
    /// The self-fencing lease (issue 10, beyond the seed): off unless set.
    #[serde(default)]
    pub lease: LeaseConfig,
    /// Mutual TLS on the grid and heartbeat networks (docs/security.md); none: plain TCP, which
    /// only a grid on loopback or one marked `insecure` may use.
    pub tls: Option<TlsConfig>,
    /// Host and operator tokens (docs/security.md); none: every host-port call is allowed.
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Where the file came from, for messages.
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSection {
    pub name: String,
    /// Category of inserted volumes when the insert names none. Must be Fast Ready.
    #[serde(default = "default_insert")]
    pub insert_category: String,
    /// Category a scratch-mounted volume moves to when its job commits.
    #[serde(default = "default_private")]
    pub private_category: String,
    /// A grid with addresses off loopback and no `[tls]` runs only with this set: anyone who
    /// can reach its grid port could then command it (docs/security.md).
    #[serde(default)]
    pub insecure: bool,
}

/// `[tls]`: the grid's certificates (`vtgrid certs init`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The directory `vtgrid certs init` wrote: `ca.pem`, `m<ID>.pem`/`.key` per voter,
    /// `a<ID>.pem`/`.key` per agent. Relative to where the process starts, like `data_dir`.
    pub dir: PathBuf,
    /// Also serve the host port over TLS (the member's certificate; hosts trust `ca.pem` and
    /// present no certificate of their own).
    #[serde(default)]
    pub host: bool,
}

/// One `[[token]]`: a bearer token for the host port and the role it carries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it, for logs and the audit log (`backup-host`, `ops-alice`).
    pub name: String,
    /// `host`, `operator` or `service` (each includes the ones before it).
    pub role: String,
    /// SHA-256 of the secret, in hex (`vtgrid token new` prints both); the file never holds the
    /// secret itself.
    pub sha256: String,
}

/// `[limits]`: what one cluster takes at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Concurrent mounts per cluster: the virtual drives of the seed (`NO_DEVICE_AVAILABLE`
    /// beyond); default 256.
    #[serde(default = "default_max_mounts")]
    pub max_mounts: usize,
    /// Concurrent calls (streams) one host connection may have open; default 64.
    #[serde(default = "default_max_streams")]
    pub max_streams_per_connection: u32,
    /// Volumes one InsertVolumes call may insert; default 100000.
    #[serde(default = "default_max_insert")]
    pub max_insert_per_call: u64,
}

fn default_max_mounts() -> usize {
    256
}

fn default_max_streams() -> u32 {
    64
}

fn default_max_insert() -> u64 {
    100_000
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_mounts: default_max_mounts(),
            max_streams_per_connection: default_max_streams(),
            max_insert_per_call: default_max_insert(),
        }
    }
}

fn default_insert() -> String {
    Category::DEFAULT_INSERT.to_string()
}

fn default_private() -> String {
    Category::DEFAULT_PRIVATE.to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub id: u8,
    pub name: String,
    /// Host network: HostService, AdminService, StatusService, health, reflection.
    pub host: String,
    /// Grid network: Raft and cluster-to-cluster traffic.
    pub grid: String,
    /// Heartbeat network, for the takeover agent (its own listener, never the grid's).
    pub heartbeat: String,
    /// Prometheus text metrics over HTTP (`GET /metrics`); none when absent.
    pub metrics: Option<String>,
    /// Data directory; a relative path is relative to the directory the process starts in.
    pub data_dir: PathBuf,
    /// Cache quota in bytes for volume data; none: the disk's size is the limit.
    pub cache_quota_bytes: Option<u64>,
    /// More grid-network addresses of this cluster, each a separate link (B7, scenario 3): a peer
    /// reaches it over `grid` first and over these when that link fails.
    #[serde(default)]
    pub grid_links: Vec<String>,
    /// This cluster's copy policy overrides (seed L716-720; B48-B52).
    #[serde(default)]
    pub overrides: CopyPolicyOverrides,
}

/// Copy Policy Override settings of one cluster (B48-B52). They change how mounts *on this
/// cluster* pick their I/O TVC and when RUN completes; they never change a management class, and a
/// setting on C0 has no effect on mounts at C1 (B51).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyPolicyOverrides {
    /// B48 "Prefer local cache for Fast Ready mounts": a scratch mount's TVC is this cluster.
    #[serde(default)]
    pub prefer_local_fast_ready: bool,
    /// B49 "Prefer local cache for non-Fast Ready mounts": a specific mount reads this cluster's
    /// valid copy whenever it has one.
    #[serde(default)]
    pub prefer_local_non_fast_ready: bool,
    /// B50 "Force volume copy to local": a specific mount of a volume this cluster has no valid
    /// copy of first copies it here, as part of the mount; a scratch mount's vector gets R here.
    #[serde(default)]
    pub force_local_copy: bool,
    /// B52 "Allow fewer RUN consistent copies before reporting RUN command complete": rewind-unload
    /// returns once this many clusters (the writer included) hold the version; the other RUN
    /// copies finish later. None: every reachable RUN cluster.
    #[serde(default)]
    pub run_copies_required: Option<u8>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    pub id: u8,
    pub name: String,
    pub grid: String,
    pub heartbeat: String,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub fast_ready: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementClassConfig {
    pub name: String,
    /// Copy-mode vector per defining cluster: `{ C0 = "RND", C1 = "RRD" }`.
    pub copy_modes: BTreeMap<String, String>,
    /// Sync jobs whose second sync cluster fails: `"fail"` (default) or `"defer"` (B43).
    #[serde(default)]
    pub on_sync_failure: Option<String>,
}

/// The per-cluster copy throttle for queued (deferred and immediate-deferred) copies. RUN copies
/// a host is waiting for are not throttled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyConfig {
    /// Bytes per second all queued copies of one cluster share; 0: no limit.
    #[serde(default)]
    pub bytes_per_sec: u64,
    /// Queued copies one cluster pulls at the same time.
    #[serde(default = "default_copy_concurrency")]
    pub concurrency: usize,
}

fn default_copy_concurrency() -> usize {
    2
}

impl Default for CopyConfig {
    fn default() -> Self {
        CopyConfig {
            bytes_per_sec: 0,
            concurrency: default_copy_concurrency(),
        }
    }
}

/// Host jobs, grid-wide (`[jobs]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// A mount with no host call for this long is aborted as if its job abended (partial version
    /// dropped, volume demounted), so a host that vanished without a word cannot hold a volume
    /// until the cluster restarts. A sync cluster drops a duplex whose writer sent nothing for
    /// this long plus [`DUPLEX_IDLE_MARGIN`]. 1..=86400 seconds; default 300.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

/// How much longer a sync cluster waits on a silent duplex than the writer waits on an idle
/// mount: the writer's own idle abort, which closes the duplex, comes first.
pub const DUPLEX_IDLE_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

fn default_idle_timeout_secs() -> u64 {
    300
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            idle_timeout_secs: default_idle_timeout_secs(),
        }
    }
}

impl JobsConfig {
    /// How long a mount may go without a host call.
    pub fn mount_idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.idle_timeout_secs)
    }

    /// How long a sync cluster waits for the next message of a duplex.
    pub fn duplex_idle_timeout(&self) -> std::time::Duration {
        self.mount_idle_timeout() + DUPLEX_IDLE_MARGIN
    }
}

/// One `[[takeover]]`: when the agents confirm `for` down, `at` sets `mode` for it (B27, B30).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeoverConfig {
    pub at: u8,
    #[serde(rename = "for")]
    pub for_cluster: u8,
    /// `rot` (read-only takeover) or `wot` (write takeover).
    pub mode: String,
    /// How long after the loss of grid contact the agents are asked; default 1200 (the seed's
    /// 20 minutes).
    #[serde(default = "default_grace_secs")]
    pub grace_secs: u64,
    /// How often they are asked again when they do not say DOWN; default 300.
    #[serde(default = "default_retry_secs")]
    pub retry_secs: u64,
}

fn default_grace_secs() -> u64 {
    1200
}

fn default_retry_secs() -> u64 {
    300
}

/// `[agent]`: the takeover agents of every site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// An agent whose node stops answering its local channel for this long kills it, and only
    /// then reports it DOWN (fencing before reporting, T21); default 60.
    #[serde(default = "default_fence_after_secs")]
    pub fence_after_secs: u64,
}

fn default_fence_after_secs() -> u64 {
    60
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            fence_after_secs: default_fence_after_secs(),
        }
    }
}

/// `[lease]`: the self-fencing lease of every data cluster (`vtgrid_core::lease`). With it, a
/// cluster that has not renewed through the catalog's leader for `self_fence_after_secs` writes
/// nothing, and the leader grants the `[[takeover]]` entries with mode `wot` for it after that
/// plus `drift_margin_secs`, with no agent asked. Every cluster of a grid must have the same.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// 0 (the default): no lease; a whole site lost waits for an operator (T8).
    #[serde(default)]
    pub self_fence_after_secs: u64,
    /// Default 10: covers clock rate drift over the lease and a job's commit after its last
    /// gate check.
    #[serde(default = "default_drift_margin_secs")]
    pub drift_margin_secs: u64,
}

fn default_drift_margin_secs() -> u64 {
    10
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            self_fence_after_secs: 0,
            drift_margin_secs: default_drift_margin_secs(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `tracing` filter, e.g. `info` or `vtgrid_node=debug,info`. `RUST_LOG` wins when set.
    pub log: Option<String>,
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`. Spans are exported only when set.
    pub otlp_endpoint: Option<String>,
}

/// `HOST:PORT` where HOST is an IP address or a name (IPv6 in brackets) and PORT a number.
pub fn is_host_port(text: &str) -> bool {
    if text.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match text.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok()
                && !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        }
        None => false,
    }
}

/// `HOST:PORT` whose host is a loopback address (127.0.0.0/8, ::1) or `localhost`.
pub fn is_loopback(addr: &str) -> bool {
    if let Ok(sock) = addr.parse::<SocketAddr>() {
        return sock.ip().is_loopback();
    }
    addr.rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

/// What a Raft voter does in the grid (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A data cluster: hosts, volumes, catalog.
    Data,
    /// A witness: the catalog only; no volume data, no hosts.
    Witness,
}

impl GridConfig {
    /// Read, parse and validate a grid file.
    pub fn load(path: &Path) -> Result<GridConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        GridConfig::parse(&text, path)
    }

    /// Parse and validate grid-file text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<GridConfig, ConfigError> {
        let mut config: GridConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            source: Box::new(e),
        })?;
        config.source = path.into();
        config.validate()?;
        Ok(config)
    }

    pub fn embedded() -> GridConfig {
        GridConfig::parse(EMBEDDED_GRID, Path::new("<embedded local.toml>"))
            .expect("the embedded grid file is checked by a unit test")
    }

    fn invalid(&self, field: impl Into<String>, problem: Problem) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.clone(),
            field: field.into(),
            problem,
        }
    }

    /// Check what serde cannot: addresses, ids, categories, vectors.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.grid.name.trim().is_empty() {
            return Err(self.invalid("grid.name", Problem::Empty));
        }
        if self.clusters.is_empty() {
            return Err(self.invalid("cluster", Problem::NoClusters));
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        let mut check_addr = |field: String, text: &str| -> Result<(), ConfigError> {
            if !is_host_port(text) {
                return Err(self.invalid(&field, Problem::BadAddress(text.into())));
            }
            if !addrs.insert(text.to_string()) {
                return Err(self.invalid(field, Problem::DuplicateAddress(text.into())));
            }
            Ok(())
        };
        for (i, c) in self.clusters.iter().enumerate() {
            if c.id >= vtgrid_core::cluster::MAX_CLUSTERS {
                return Err(self.invalid(format!("cluster[{i}].id"), Problem::ClusterIdRange));
            }
            if !ids.insert(c.id) {
                return Err(self.invalid(format!("cluster[{i}].id"), Problem::DuplicateId(c.id)));
            }
            check_addr(format!("cluster[{i}].host"), &c.host)?;
            check_addr(format!("cluster[{i}].grid"), &c.grid)?;
            for (k, link) in c.grid_links.iter().enumerate() {
                check_addr(format!("cluster[{i}].grid_links[{k}]"), link)?;
            }
            if c.overrides.run_copies_required == Some(0) {
                return Err(self.invalid(
                    format!("cluster[{i}].overrides.run_copies_required"),
                    Problem::RunCopiesRequired,
                ));
            }
            check_addr(format!("cluster[{i}].heartbeat"), &c.heartbeat)?;
            if let Some(m) = &c.metrics {
                check_addr(format!("cluster[{i}].metrics"), m)?;
            }
            if c.data_dir.as_os_str().is_empty() {
                return Err(self.invalid(format!("cluster[{i}].data_dir"), Problem::Empty));
            }
        }
        for (i, w) in self.witnesses.iter().enumerate() {
            if !(vtgrid_core::cluster::MAX_CLUSTERS..vtgrid_core::cluster::MAX_VOTERS)
                .contains(&w.id)
            {
                return Err(self.invalid(format!("witness[{i}].id"), Problem::WitnessIdRange));
            }
            if !ids.insert(w.id) {
                return Err(self.invalid(format!("witness[{i}].id"), Problem::DuplicateId(w.id)));
            }
            check_addr(format!("witness[{i}].grid"), &w.grid)?;
            check_addr(format!("witness[{i}].heartbeat"), &w.heartbeat)?;
        }
        let categories = self.category_definitions()?;
        let insert = self.insert_category()?;
        let private = self.private_category()?;
        match categories.iter().find(|d| d.category == insert) {
            None => {
                return Err(self.invalid("grid.insert_category", Problem::UndefinedCategory(insert)))
            }
            Some(d) if !d.fast_ready => {
                return Err(
                    self.invalid("grid.insert_category", Problem::InsertNotFastReady(insert))
                )
            }
            Some(_) => {}
        }
        match categories.iter().find(|d| d.category == private) {
            None => {
                return Err(
                    self.invalid("grid.private_category", Problem::UndefinedCategory(private))
                )
            }
            Some(d) if d.fast_ready => {
                return Err(self.invalid(
                    "grid.private_category",
                    Problem::PrivateIsFastReady(private),
                ))
            }
            Some(_) => {}
        }
        self.management_classes()?;
        if self.copy.concurrency == 0 || self.copy.concurrency > 64 {
            return Err(self.invalid("copy.concurrency", Problem::CopyConcurrency));
        }
        if !(1..=86_400).contains(&self.jobs.idle_timeout_secs) {
            return Err(self.invalid("jobs.idle_timeout_secs", Problem::IdleTimeout));
        }
        let mut pairs = BTreeSet::new();
        for (i, t) in self.takeovers.iter().enumerate() {
            let data = |id: u8| self.role_of(id) == Some(Role::Data);
            if t.at == t.for_cluster || !data(t.at) || !data(t.for_cluster) {
                return Err(self.invalid(format!("takeover[{i}]"), Problem::TakeoverPair));
            }
            if !matches!(
                t.mode.parse::<TakeoverMode>(),
                Ok(TakeoverMode::ReadOnly | TakeoverMode::Write)
            ) {
                return Err(self.invalid(format!("takeover[{i}].mode"), Problem::TakeoverMode));
            }
            if !pairs.insert((t.at, t.for_cluster)) {
                return Err(self.invalid(format!("takeover[{i}]"), Problem::DuplicateTakeover));
            }
            for (field, secs) in [("grace_secs", t.grace_secs), ("retry_secs", t.retry_secs)] {
                if !(1..=86_400).contains(&secs) {
                    return Err(
                        self.invalid(format!("takeover[{i}].{field}"), Problem::TakeoverPeriod)
                    );
                }
            }
        }
        if !(1..=86_400).contains(&self.agent.fence_after_secs) {
            return Err(self.invalid("agent.fence_after_secs", Problem::FenceAfter));
        }
        let lease = &self.lease;
        if lease.self_fence_after_secs == 1 || lease.self_fence_after_secs > 86_400 {
            return Err(self.invalid("lease.self_fence_after_secs", Problem::LeasePeriod));
        }
        if !(1..=86_400).contains(&lease.drift_margin_secs) {
            return Err(self.invalid("lease.drift_margin_secs", Problem::LeasePeriod));
        }
        self.validate_security()
    }

    /// Tokens, limits, and the rule that plain TCP stays on loopback unless the file says
    /// `insecure = true` (docs/security.md).
    fn validate_security(&self) -> Result<(), ConfigError> {
        let mut hashes = BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if t.name.trim().is_empty() {
                return Err(self.invalid(format!("token[{i}].name"), Problem::Empty));
            }
            if crate::access::Role::parse(&t.role).is_none() {
                return Err(self.invalid(format!("token[{i}].role"), Problem::TokenRole));
            }
            let hash = t.sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(self.invalid(format!("token[{i}].sha256"), Problem::TokenHash));
            }
            if !hashes.insert(hash) {
                return Err(self.invalid(format!("token[{i}].sha256"), Problem::DuplicateToken));
            }
        }
        let limits = &self.limits;
        if limits.max_mounts == 0 {
            return Err(self.invalid("limits.max_mounts", Problem::Limit));
        }
        if limits.max_streams_per_connection == 0 {
            return Err(self.invalid("limits.max_streams_per_connection", Problem::Limit));
        }
        if limits.max_insert_per_call == 0 {
            return Err(self.invalid("limits.max_insert_per_call", Problem::Limit));
        }
        if let Some(tls) = &self.tls {
            if tls.dir.as_os_str().is_empty() {
                return Err(self.invalid("tls.dir", Problem::Empty));
            }
        } else if !self.grid.insecure {
            for (field, addr) in self.member_addresses_by_field() {
                if !is_loopback(&addr) {
                    return Err(self.invalid(field, Problem::InsecureAddress(addr)));
                }
            }
        }
        Ok(())
    }

    /// Every grid, link and heartbeat address of the file with the member that serves it.
    pub fn member_addresses(&self) -> Vec<(String, vtgrid_transport::names::Member)> {
        use vtgrid_transport::names::Member;
        let mut out = Vec::new();
        for c in &self.clusters {
            out.push((c.grid.clone(), Member::Voter(c.id)));
            out.extend(
                c.grid_links
                    .iter()
                    .map(|l| (l.clone(), Member::Voter(c.id))),
            );
            out.push((c.heartbeat.clone(), Member::Agent(c.id)));
        }
        for w in &self.witnesses {
            out.push((w.grid.clone(), Member::Voter(w.id)));
            out.push((w.heartbeat.clone(), Member::Agent(w.id)));
        }
        out
    }

    /// Every address of the file (host ones too) with the field it is in.
    fn member_addresses_by_field(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, c) in self.clusters.iter().enumerate() {
            out.push((format!("cluster[{i}].host"), c.host.clone()));
            out.push((format!("cluster[{i}].grid"), c.grid.clone()));
            for (k, l) in c.grid_links.iter().enumerate() {
                out.push((format!("cluster[{i}].grid_links[{k}]"), l.clone()));
            }
            out.push((format!("cluster[{i}].heartbeat"), c.heartbeat.clone()));
        }
        for (i, w) in self.witnesses.iter().enumerate() {
            out.push((format!("witness[{i}].grid"), w.grid.clone()));
            out.push((format!("witness[{i}].heartbeat"), w.heartbeat.clone()));
        }
        out
    }

    /// The self-fencing lease, when the grid file sets one.
    pub fn lease(&self) -> Option<vtgrid_core::lease::LeaseSetting> {
        (self.lease.self_fence_after_secs > 0).then(|| vtgrid_core::lease::LeaseSetting {
            self_fence_after: std::time::Duration::from_secs(self.lease.self_fence_after_secs),
            drift_margin: std::time::Duration::from_secs(self.lease.drift_margin_secs),
        })
    }

    /// The clusters the leader grants write takeover for `failed` once its lease has surely run
    /// out: the `[[takeover]]` entries with mode `wot` for it, in grid-file order.
    pub fn lease_takers(&self, failed: ClusterId) -> Vec<ClusterId> {
        self.takeovers
            .iter()
            .filter(|t| t.for_cluster == failed.get())
            .filter(|t| matches!(t.mode.parse(), Ok(TakeoverMode::Write)))
            .filter_map(|t| ClusterId::new(t.at).ok())
            .collect()
    }

    /// What `at` does when the agents confirm `failed` down (B27), if anything.
    pub fn aotm_for(&self, at: ClusterId, failed: ClusterId) -> Option<AotmSetting> {
        let t = self
            .takeovers
            .iter()
            .find(|t| t.at == at.get() && t.for_cluster == failed.get())?;
        Some(AotmSetting {
            mode: t.mode.parse().ok()?,
            grace: std::time::Duration::from_secs(t.grace_secs),
            retry: std::time::Duration::from_secs(t.retry_secs),
        })
    }

    /// The heartbeat address of cluster `id` (its agent's listener).
    pub fn heartbeat_of(&self, id: u8) -> Option<&str> {
        self.cluster(id)
            .map(|c| c.heartbeat.as_str())
            .or_else(|| self.witness(id).map(|w| w.heartbeat.as_str()))
    }

    pub fn insert_category(&self) -> Result<Category, ConfigError> {
        self.grid
            .insert_category
            .parse()
            .map_err(|e| self.invalid("grid.insert_category", Problem::Domain(e)))
    }

    pub fn private_category(&self) -> Result<Category, ConfigError> {
        self.grid
            .private_category
            .parse()
            .map_err(|e| self.invalid("grid.private_category", Problem::Domain(e)))
    }

    pub fn category_definitions(&self) -> Result<Vec<CategoryDefinition>, ConfigError> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, c) in self.categories.iter().enumerate() {
            let category: Category =
                c.id.parse()
                    .map_err(|e| self.invalid(format!("category[{i}].id"), Problem::Domain(e)))?;
            if !seen.insert(category) {
                return Err(self.invalid(
                    format!("category[{i}].id"),
                    Problem::DuplicateCategory(category),
                ));
            }
            out.push(CategoryDefinition {
                category,
                name: c.name.clone(),
                fast_ready: c.fast_ready,
            });
        }
        Ok(out)
    }

    pub fn management_classes(&self) -> Result<Vec<ManagementClass>, ConfigError> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let data_clusters = self.clusters.len();
        for (i, mc) in self.management_classes.iter().enumerate() {
            let name: ConstructName = mc.name.parse().map_err(|e| {
                self.invalid(format!("management_class[{i}].name"), Problem::Domain(e))
            })?;
            if !seen.insert(name.clone()) {
                return Err(self.invalid(
                    format!("management_class[{i}].name"),
                    Problem::DuplicateClass(mc.name.clone()),
                ));
            }
            let mut vectors = BTreeMap::new();
            for (key, text) in &mc.copy_modes {
                let field = format!("management_class[{i}].copy_modes.{key}");
                let n: u8 = key
                    .trim_start_matches(['C', 'c'])
                    .parse()
                    .map_err(|_| self.invalid(&field, Problem::BadClusterKey(key.clone())))?;
                if !self.clusters.iter().any(|c| c.id == n) {
                    return Err(self.invalid(&field, Problem::UnknownCluster(n)));
                }
                let vector: CopyModeVector = text
                    .parse()
                    .map_err(|e| self.invalid(&field, Problem::Domain(e)))?;
                if vector.modes().len() != data_clusters {
                    return Err(self.invalid(
                        &field,
                        Problem::VectorLength {
                            len: vector.modes().len(),
                            clusters: data_clusters,
                        },
                    ));
                }
                let id = ClusterId::new(n).map_err(|e| self.invalid(&field, Problem::Domain(e)))?;
                vectors.insert(id, vector);
            }
            if vectors.is_empty() {
                return Err(
                    self.invalid(format!("management_class[{i}].copy_modes"), Problem::Empty)
                );
            }
            let on_sync_failure = match &mc.on_sync_failure {
                None => Default::default(),
                Some(text) => text.parse().map_err(|e| {
                    self.invalid(
                        format!("management_class[{i}].on_sync_failure"),
                        Problem::Domain(e),
                    )
                })?,
            };
            out.push(ManagementClass {
                name,
                vectors,
                on_sync_failure,
            });
        }
        Ok(out)
    }

    pub fn cluster(&self, id: u8) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.id == id)
    }

    pub fn witness(&self, id: u8) -> Option<&WitnessConfig> {
        self.witnesses.iter().find(|w| w.id == id)
    }

    /// The role of Raft voter `id`, if the grid has it.
    pub fn role_of(&self, id: u8) -> Option<Role> {
        if self.cluster(id).is_some() {
            Some(Role::Data)
        } else if self.witness(id).is_some() {
            Some(Role::Witness)
        } else {
            None
        }
    }

    /// The name operators know voter `id` by.
    pub fn name_of(&self, id: u8) -> Option<&str> {
        self.cluster(id)
            .map(|c| c.name.as_str())
            .or_else(|| self.witness(id).map(|w| w.name.as_str()))
    }

    /// Every grid-network address of voter `id`, one per link, the primary first (B7).
    pub fn grid_paths(&self, id: u8) -> Vec<String> {
        match (self.cluster(id), self.witness(id)) {
            (Some(c), _) => std::iter::once(c.grid.clone())
                .chain(c.grid_links.iter().cloned())
                .collect(),
            (None, Some(w)) => vec![w.grid.clone()],
            (None, None) => Vec::new(),
        }
    }

    /// Every Raft voter (data clusters and witnesses) with its grid address.
    pub fn voters(&self) -> BTreeMap<u64, String> {
        self.clusters
            .iter()
            .map(|c| (u64::from(c.id), c.grid.clone()))
            .chain(
                self.witnesses
                    .iter()
                    .map(|w| (u64::from(w.id), w.grid.clone())),
            )
            .collect()
    }
}

impl ClusterConfig {
    pub fn cluster_id(&self) -> ClusterId {
        ClusterId::new(self.id).expect("validated by GridConfig::validate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GridConfig, ConfigError> {
        GridConfig::parse(text, Path::new("t.toml"))
    }

    const OK: &str = r#"
[grid]
name = "t"
[[cluster]]
id = 0
name = "C0"
host = "127.0.0.1:1"
grid = "127.0.0.1:2"
heartbeat = "127.0.0.1:3"
data_dir = "d"
[[category]]
id = "0001"
name = "SCRATCH"
fast_ready = true
[[category]]
id = "000F"
name = "PRIVATE"
[[management_class]]
name = "MC1"
copy_modes = { C0 = "R" }
"#;

    #[test]
    fn embedded_grid_is_valid() {
        let g = GridConfig::embedded();
        assert_eq!(g.clusters.len(), 1);
        assert!(!g.management_classes().unwrap().is_empty());
    }

    #[test]
    fn minimal_grid_parses() {
        let g = parse(OK).unwrap();
        assert_eq!(g.voters().len(), 1);
        let named = parse(
            &OK.replace("127.0.0.1:2", "c0.example:7401")
                .replace("name = \"t\"", "name = \"t\"\ninsecure = true"),
        )
        .unwrap();
        assert_eq!(named.voters()[&0], "c0.example:7401");
    }

    #[test]
    fn plain_tcp_off_loopback_needs_tls_or_insecure() {
        let off = OK.replace("127.0.0.1:2", "10.1.0.5:7401");
        let e = parse(&off).unwrap_err();
        assert!(e.to_string().contains("insecure = true"), "{e}");
        assert_eq!(field_of(e), "cluster[0].grid");
        let insecure = off.replace("name = \"t\"", "name = \"t\"\ninsecure = true");
        assert!(parse(&insecure).unwrap().grid.insecure);
        let tls = format!("{off}\n[tls]\ndir = \"certs\"\n");
        assert!(parse(&tls).unwrap().tls.is_some());
        let v6 = OK.replace("127.0.0.1:2", "[::1]:7401");
        assert!(parse(&v6).is_ok(), "::1 is loopback");
        let local = OK.replace("127.0.0.1:2", "localhost:7401");
        assert!(parse(&local).is_ok(), "localhost is loopback");
    }

    #[test]
    fn tokens_and_limits_are_checked() {
        let token = |role: &str, hash: &str| {
            format!("{OK}\n[[token]]\nname = \"a\"\nrole = \"{role}\"\nsha256 = \"{hash}\"\n")
        };
        let good = "ab".repeat(32);
        assert_eq!(parse(&token("operator", &good)).unwrap().tokens.len(), 1);
        assert_eq!(
            field_of(parse(&token("root", &good)).unwrap_err()),
            "token[0].role"
        );
        assert_eq!(
            field_of(parse(&token("host", "abc")).unwrap_err()),
            "token[0].sha256"
        );
        let twice = format!(
            "{}\n[[token]]\nname = \"b\"\nrole = \"host\"\nsha256 = \"{good}\"\n",
            token("host", &good)
        );
        assert_eq!(field_of(parse(&twice).unwrap_err()), "token[1].sha256");
        let zero = format!("{OK}\n[limits]\nmax_mounts = 0\n");
        assert_eq!(field_of(parse(&zero).unwrap_err()), "limits.max_mounts");
        assert_eq!(
            parse(OK).unwrap().limits.max_mounts,
            256,
            "the seed's 256 drives"
        );
    }

    fn field_of(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(&OK.replace("127.0.0.1:2", "nowhere")).unwrap_err();
        assert_eq!(field_of(e), "cluster[0].grid");
        let e = parse(&OK.replace("127.0.0.1:2", "c0:99999")).unwrap_err();
        assert_eq!(field_of(e), "cluster[0].grid");
        let e = parse(&OK.replace("127.0.0.1:2", "127.0.0.1:1")).unwrap_err();
        assert_eq!(field_of(e), "cluster[0].grid");
        let e = parse(&OK.replace("C0 = \"R\"", "C0 = \"RX\"")).unwrap_err();
        assert_eq!(field_of(e), "management_class[0].copy_modes.C0");
        let e = parse(&OK.replace("C0 = \"R\"", "C3 = \"R\"")).unwrap_err();
        assert_eq!(field_of(e), "management_class[0].copy_modes.C3");
        let e = parse(&OK.replace("id = \"000F\"", "id = \"XYZ\"")).unwrap_err();
        assert_eq!(field_of(e), "category[1].id");
        let e = parse(&OK.replace("fast_ready = true", "")).unwrap_err();
        assert_eq!(field_of(e), "grid.insert_category");
    }

    #[test]
    fn b43_b48_b52_class_policy_overrides_and_links_are_read_and_checked() {
        let text = OK
            .replace(
                "data_dir = \"d\"",
                "data_dir = \"d\"\ngrid_links = [\"127.0.0.2:2\"]\n\
                 [cluster.overrides]\nforce_local_copy = true\nrun_copies_required = 1",
            )
            .replace(
                "copy_modes = { C0 = \"R\" }",
                "copy_modes = { C0 = \"R\" }\non_sync_failure = \"defer\"",
            );
        let g = parse(&text).unwrap();
        let c = &g.clusters[0];
        assert!(c.overrides.force_local_copy && !c.overrides.prefer_local_fast_ready);
        assert_eq!(c.overrides.run_copies_required, Some(1));
        assert_eq!(g.grid_paths(0), ["127.0.0.1:2", "127.0.0.2:2"]);
        let classes = g.management_classes().unwrap();
        assert_eq!(classes[0].on_sync_failure, vtgrid_core::SyncFailure::Defer);
        assert_eq!(
            parse(OK).unwrap().management_classes().unwrap()[0].on_sync_failure,
            vtgrid_core::SyncFailure::Fail,
            "strict by default"
        );
        let e = parse(&text.replace("\"defer\"", "\"maybe\"")).unwrap_err();
        assert_eq!(field_of(e), "management_class[0].on_sync_failure");
        let e =
            parse(&text.replace("run_copies_required = 1", "run_copies_required = 0")).unwrap_err();
        assert_eq!(field_of(e), "cluster[0].overrides.run_copies_required");
        let e = parse(&text.replace("127.0.0.2:2", "127.0.0.1:1")).unwrap_err();
        assert_eq!(field_of(e), "cluster[0].grid_links[0]");
        let e = parse(&text.replace("force_local_copy", "force_everything")).unwrap_err();
        assert!(e.to_string().contains("force_everything"), "{e}");
    }

    #[test]
    fn copy_throttle_is_read_and_checked() {
        let g = parse(&format!(
            "{OK}\n[copy]\nbytes_per_sec = 1048576\nconcurrency = 4\n"
        ))
        .unwrap();
        assert_eq!((g.copy.bytes_per_sec, g.copy.concurrency), (1_048_576, 4));
        assert_eq!(parse(OK).unwrap().copy.concurrency, 2, "default");
        let e = parse(&format!("{OK}\n[copy]\nconcurrency = 0\n")).unwrap_err();
        assert_eq!(field_of(e), "copy.concurrency");
    }

    #[test]
    fn job_idle_timeout_is_read_and_checked() {
        let g = parse(&format!("{OK}\n[jobs]\nidle_timeout_secs = 60\n")).unwrap();
        assert_eq!(
            g.jobs.mount_idle_timeout(),
            std::time::Duration::from_secs(60)
        );
        assert_eq!(
            g.jobs.duplex_idle_timeout(),
            std::time::Duration::from_secs(60) + DUPLEX_IDLE_MARGIN
        );
        assert_eq!(parse(OK).unwrap().jobs.idle_timeout_secs, 300, "default");
        let e = parse(&format!("{OK}\n[jobs]\nidle_timeout_secs = 0\n")).unwrap_err();
        assert_eq!(field_of(e), "jobs.idle_timeout_secs");
    }

    #[test]
    fn the_self_fencing_lease_is_off_unless_set_and_checked() {
        assert_eq!(parse(OK).unwrap().lease(), None, "off by default");
        let g = parse(&format!(
            "{OK}\n[lease]\nself_fence_after_secs = 30\ndrift_margin_secs = 5\n"
        ))
        .unwrap();
        assert_eq!(
            g.lease(),
            Some(vtgrid_core::lease::LeaseSetting {
                self_fence_after: std::time::Duration::from_secs(30),
                drift_margin: std::time::Duration::from_secs(5),
            })
        );
        let e = parse(&format!("{OK}\n[lease]\nself_fence_after_secs = 1\n")).unwrap_err();
        assert_eq!(field_of(e), "lease.self_fence_after_secs");
        let e = parse(&format!(
            "{OK}\n[lease]\nself_fence_after_secs = 30\ndrift_margin_secs = 0\n"
        ))
        .unwrap_err();
        assert_eq!(field_of(e), "lease.drift_margin_secs");
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_parse_errors_with_a_location() {
        let e = parse(&OK.replace("name = \"C0\"", "name = \"C0\"\nhots = \"x\"")).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ConfigError::Parse { .. }));
        assert!(text.contains("hots"), "{text}");
        let e = parse("[grid\nname=").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }));
    }
}
