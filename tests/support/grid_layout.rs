//! A multi-voter grid file on free loopback ports: N data clusters and M witnesses, in the
//! format of `cluster-config/*.toml`.
//!
//! By default every data cluster defines [`STANDARD_CLASS`] as RUN on itself and No Copy
//! elsewhere, so a job on one cluster never waits for another: most grid tests here are about the
//! catalog's Raft group, not about copies. A copy test sets [`GridLayout::management_classes`]
//! (and a `[copy]` throttle in [`GridLayout::extra_toml`]) before the grid starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use vtgrid_node::config::Role;

use super::grid_file::{free_loopback_addrs, PRIVATE_CATEGORY, SCRATCH_CATEGORY, STANDARD_CLASS};

/// Witness ids start here (DESIGN §2: data clusters are 0..7, witnesses 8..15).
pub const FIRST_WITNESS_ID: u8 = vtgrid_core::cluster::MAX_CLUSTERS;

/// One Raft voter of the grid file and its addresses.
#[derive(Clone, Debug)]
pub struct Voter {
    pub id: u8,
    pub name: String,
    pub role: Role,
    /// HostService and friends; none for a witness, which serves no hosts.
    pub host: Option<SocketAddr>,
    /// Raft and cluster-to-cluster traffic; a witness also answers `StatusService` here.
    pub grid: SocketAddr,
    /// The takeover agent's network (validated, not bound in this release).
    pub heartbeat: SocketAddr,
    /// Prometheus metrics; none for a witness.
    pub metrics: Option<SocketAddr>,
    /// `catalog/` (RocksDB) and, for a data cluster, `tvc/`.
    pub data_dir: PathBuf,
}

impl Voter {
    /// Where its `StatusService` answers: the host address, or a witness's grid address.
    pub fn status_endpoint(&self) -> String {
        format!("http://{}", self.host.unwrap_or(self.grid))
    }

    /// The host endpoint of a data cluster.
    pub fn endpoint(&self) -> String {
        let host = self
            .host
            .unwrap_or_else(|| panic!("{} is a witness: it has no host address", self.name));
        format!("http://{host}")
    }

    /// The addresses it listens on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.host.into_iter().chain([self.grid]).collect()
    }
}

/// A whole grid: data clusters `0..clusters`, witnesses from id 8 on.
#[derive(Clone, Debug)]
pub struct GridLayout {
    pub name: String,
    pub voters: Vec<Voter>,
    /// `[[management_class]]` tables that replace the default STANDARD class; none: the default.
    pub management_classes: Option<String>,
    /// TOML appended to the grid file, e.g. a `[copy]` throttle.
    pub extra_toml: String,
}

impl GridLayout {
    /// `clusters` data clusters (`c0`, `c1`, ...) and `witnesses` witnesses (`w8`, ...), each with
    /// its data dir under `root` and its own free loopback ports.
    pub fn on_free_ports(root: &Path, clusters: u8, witnesses: u8) -> GridLayout {
        let data = (0..clusters).map(|id| (id, Role::Data, format!("c{id}")));
        let witness = (0..witnesses).map(|i| {
            let id = FIRST_WITNESS_ID + i;
            (id, Role::Witness, format!("w{id}"))
        });
        let members: Vec<_> = data.chain(witness).collect();
        let mut ports = free_loopback_addrs(members.len() * 4).into_iter();
        let mut next = || ports.next().expect("four ports per voter were taken");
        let voters = members
            .into_iter()
            .map(|(id, role, name)| {
                let [host, grid, heartbeat, metrics] = [next(), next(), next(), next()];
                let data_role = role == Role::Data;
                Voter {
                    id,
                    data_dir: root.join(&name),
                    name,
                    role,
                    host: data_role.then_some(host),
                    grid,
                    heartbeat,
                    metrics: data_role.then_some(metrics),
                }
            })
            .collect();
        GridLayout {
            name: "proc-grid".into(),
            voters,
            management_classes: None,
            extra_toml: String::new(),
        }
    }

    /// New free ports for every voter (after another process took one before we bound it).
    pub fn reassign_ports(&mut self) {
        let mut ports = free_loopback_addrs(self.voters.len() * 4).into_iter();
        let mut next = || ports.next().expect("four ports per voter were taken");
        for v in &mut self.voters {
            let [host, grid, heartbeat, metrics] = [next(), next(), next(), next()];
            v.host = v.host.map(|_| host);
            v.grid = grid;
            v.heartbeat = heartbeat;
            v.metrics = v.metrics.map(|_| metrics);
        }
    }

    pub fn voter(&self, id: u8) -> &Voter {
        self.voters
            .iter()
            .find(|v| v.id == id)
            .unwrap_or_else(|| panic!("the test grid has no voter {id}"))
    }

    pub fn data_clusters(&self) -> impl Iterator<Item = &Voter> {
        self.voters.iter().filter(|v| v.role == Role::Data)
    }

    /// Every voter id, data clusters first.
    pub fn ids(&self) -> Vec<u8> {
        self.voters.iter().map(|v| v.id).collect()
    }

    /// The TOML text of the grid file.
    pub fn to_toml(&self) -> String {
        let clusters: Vec<&Voter> = self.data_clusters().collect();
        let mut out = format!(
            r#"# A {n}-cluster, {w}-witness grid written by the vtgrid real-process tests.
[grid]
name = "{name}"
insert_category = "{SCRATCH_CATEGORY}"
private_category = "{PRIVATE_CATEGORY}"
"#,
            n = clusters.len(),
            w = self.voters.len() - clusters.len(),
            name = self.name,
        );
        for v in &self.voters {
            // Debug quoting keeps any path a valid TOML basic string.
            let data_dir = format!("{:?}", v.data_dir.display().to_string());
            match (v.role, v.host, v.metrics) {
                (Role::Data, Some(host), Some(metrics)) => out.push_str(&format!(
                    r#"
[[cluster]]
id = {id}
name = "{name}"
host = "{host}"
grid = "{grid}"
heartbeat = "{heartbeat}"
metrics = "{metrics}"
data_dir = {data_dir}
"#,
                    id = v.id,
                    name = v.name,
                    grid = v.grid,
                    heartbeat = v.heartbeat,
                )),
                _ => out.push_str(&format!(
                    r#"
[[witness]]
id = {id}
name = "{name}"
grid = "{grid}"
heartbeat = "{heartbeat}"
data_dir = {data_dir}
"#,
                    id = v.id,
                    name = v.name,
                    grid = v.grid,
                    heartbeat = v.heartbeat,
                )),
            }
        }
        // RUN on the defining cluster, No Copy on the others: "RNN", "NRN", "NNR".
        let vectors: Vec<String> = clusters
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let vector: String = (0..clusters.len())
                    .map(|j| if i == j { 'R' } else { 'N' })
                    .collect();
                format!("C{} = \"{vector}\"", v.id)
            })
            .collect();
        let classes = self.management_classes.clone().unwrap_or_else(|| {
            format!(
                r#"[[management_class]]
name = "{STANDARD_CLASS}"
copy_modes = {{ {vectors} }}
"#,
                vectors = vectors.join(", ")
            )
        });
        out.push_str(&format!(
            r#"
[[category]]
id = "{SCRATCH_CATEGORY}"
name = "SCRATCH"
fast_ready = true

[[category]]
id = "{PRIVATE_CATEGORY}"
name = "PRIVATE"

{classes}
[telemetry]
log = "info"
"#
        ));
        out.push_str(&self.extra_toml);
        out
    }
}
