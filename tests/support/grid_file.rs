//! A one-cluster grid file on free loopback ports, in the format of `cluster-config/local.toml`.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

/// The management class every test grid defines: RUN on C0, the only copy.
pub const STANDARD_CLASS: &str = "STANDARD";
/// Fast Ready: inserted volumes land here, scratch mounts pick from here.
pub const SCRATCH_CATEGORY: &str = "0001";
/// Where a scratch-mounted volume goes when its job commits.
pub const PRIVATE_CATEGORY: &str = "000F";

/// One data cluster, C0, with every address on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct GridFile {
    /// HostService, AdminService and StatusService.
    pub host: SocketAddr,
    /// Raft traffic.
    pub grid: SocketAddr,
    /// The takeover agent's network (not bound in this release, but validated).
    pub heartbeat: SocketAddr,
    /// Prometheus text metrics.
    pub metrics: SocketAddr,
    /// The cluster's data directory (RocksDB catalog and `tvc/`).
    pub data_dir: PathBuf,
    /// `cache_quota_bytes`; none: the disk is the limit.
    pub cache_quota_bytes: Option<u64>,
    /// `[telemetry] otlp_endpoint`; none: no span export.
    pub otlp_endpoint: Option<String>,
}

impl GridFile {
    /// A grid file on four distinct ports the kernel just handed out.
    pub fn on_free_ports(data_dir: PathBuf, cache_quota_bytes: Option<u64>) -> GridFile {
        let [host, grid, heartbeat, metrics] = free_loopback_ports::<4>();
        GridFile {
            host,
            grid,
            heartbeat,
            metrics,
            data_dir,
            cache_quota_bytes,
            otlp_endpoint: None,
        }
    }

    /// The `--endpoint` of the cluster.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The TOML text of the grid file.
    pub fn to_toml(&self) -> String {
        let quota = self
            .cache_quota_bytes
            .map(|q| format!("cache_quota_bytes = {q}\n"))
            .unwrap_or_default();
        // TOML basic strings take backslash escapes; a temp path has none on Linux, but Debug
        // quoting keeps any path a valid string.
        let data_dir = format!("{:?}", self.data_dir.display().to_string());
        format!(
            r#"# A one-cluster grid written by the vtgrid real-process tests.
[grid]
name = "proc-test"
insert_category = "{SCRATCH_CATEGORY}"
private_category = "{PRIVATE_CATEGORY}"

[[cluster]]
id = 0
name = "C0"
host = "{host}"
grid = "{grid}"
heartbeat = "{heartbeat}"
metrics = "{metrics}"
data_dir = {data_dir}
{quota}
[[category]]
id = "{SCRATCH_CATEGORY}"
name = "SCRATCH"
fast_ready = true

[[category]]
id = "{PRIVATE_CATEGORY}"
name = "PRIVATE"

[[management_class]]
name = "{STANDARD_CLASS}"
copy_modes = {{ C0 = "R" }}

[telemetry]
log = "info"
{otlp}"#,
            otlp = self
                .otlp_endpoint
                .as_ref()
                .map(|e| format!("otlp_endpoint = {e:?}\n"))
                .unwrap_or_default(),
            host = self.host,
            grid = self.grid,
            heartbeat = self.heartbeat,
            metrics = self.metrics,
        )
    }
}

/// `N` distinct free ports on 127.0.0.1: bind port 0 `N` times at once, read the ports, let go.
/// Another process may take one before the node binds it; [`super::TestGrid`] then starts again
/// on fresh ports.
pub fn free_loopback_ports<const N: usize>() -> [SocketAddr; N] {
    free_loopback_addrs(N)
        .try_into()
        .expect("N listeners give N addresses")
}

/// `n` distinct free ports on 127.0.0.1, all bound at once so the kernel cannot hand out one
/// twice. Everything a grid needs must come from one call: ports from separate calls may repeat,
/// because a port let go by one call is free again for the next.
pub fn free_loopback_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound listener has an address"))
        .collect()
}
