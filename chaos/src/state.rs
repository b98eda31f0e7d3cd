//! Each cluster's state after the heal, as the runner dumped it (`state.json`): its catalog
//! view, the copies in its volume store (their digests computed from the files), and its
//! quarantine.

use serde::{Deserialize, Serialize};

/// A volume as one cluster's catalog shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeState {
    pub volser: String,
    /// 0 for a volume never written.
    pub version: u64,
    #[serde(default)]
    pub digest: Option<String>,
    pub owner: u8,
    pub epoch: u64,
    /// The cluster a takeover took it from, if one did.
    #[serde(default)]
    pub taken_from: Option<u8>,
}

/// A copy in a cluster's volume store, its digest computed from the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyState {
    pub volser: String,
    pub version: u64,
    pub digest: String,
}

/// A version a cluster holds in quarantine (refused by the catalog: a takeover fenced it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub volser: String,
    pub version: u64,
    pub digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub id: u8,
    pub catalog: Vec<VolumeState>,
    #[serde(default)]
    pub copies: Vec<CopyState>,
    #[serde(default)]
    pub quarantine: Vec<Quarantined>,
}

impl ClusterState {
    pub fn volume(&self, volser: &str) -> Option<&VolumeState> {
        self.catalog.iter().find(|v| v.volser == volser)
    }

    /// Does this cluster hold `volser` at `version` with `digest` in quarantine?
    pub fn quarantines(&self, volser: &str, version: u64, digest: Option<&str>) -> bool {
        self.quarantine.iter().any(|q| {
            q.volser == volser && q.version == version && digest.is_none_or(|d| d == q.digest)
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalState {
    pub clusters: Vec<ClusterState>,
}

impl FinalState {
    pub fn cluster(&self, id: u8) -> Option<&ClusterState> {
        self.clusters.iter().find(|c| c.id == id)
    }

    /// The catalog the checker judges by: the first cluster's (the check that all are identical
    /// runs first and reports any difference).
    pub fn catalog(&self) -> &[VolumeState] {
        self.clusters.first().map_or(&[], |c| &c.catalog[..])
    }

    pub fn volume(&self, volser: &str) -> Option<&VolumeState> {
        self.catalog().iter().find(|v| v.volser == volser)
    }
}
