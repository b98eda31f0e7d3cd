//! Copy consistency points and management classes (DESIGN §4).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterId, MAX_CLUSTERS};
use crate::construct::ConstructName;
use crate::error::{DomainError, VectorProblem};

/// When a cluster gets its copy of a version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum CopyMode {
    /// R: before rewind-unload returns.
    Run,
    /// D: after rewind-unload, from the copy queue.
    Deferred,
    /// S: duplexed to two sync clusters while the host writes.
    Sync,
    /// N: never.
    NoCopy,
}

impl CopyMode {
    pub fn letter(self) -> char {
        match self {
            CopyMode::Run => 'R',
            CopyMode::Deferred => 'D',
            CopyMode::Sync => 'S',
            CopyMode::NoCopy => 'N',
        }
    }

    pub fn from_letter(c: char) -> Result<Self, DomainError> {
        match c.to_ascii_uppercase() {
            'R' => Ok(CopyMode::Run),
            'D' => Ok(CopyMode::Deferred),
            'S' => Ok(CopyMode::Sync),
            'N' => Ok(CopyMode::NoCopy),
            _ => Err(DomainError::InvalidCopyMode {
                input: c.to_string(),
            }),
        }
    }
}

/// One copy mode per cluster index, as a management class defines it on one cluster.
///
/// ```
/// use vtgrid_core::{CopyMode, CopyModeVector};
/// let v: CopyModeVector = "RND".parse().unwrap();
/// assert_eq!(v.modes(), &[CopyMode::Run, CopyMode::NoCopy, CopyMode::Deferred]);
/// assert_eq!(v.to_string(), "RND");
/// let s: CopyModeVector = "S,S,D".parse().unwrap();
/// assert_eq!(s.to_string(), "SSD");
/// assert!("SDD".parse::<CopyModeVector>().is_err(), "Sync needs two clusters");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CopyModeVector(Vec<CopyMode>);

impl CopyModeVector {
    pub fn modes(&self) -> &[CopyMode] {
        &self.0
    }

    /// The same vector with `cluster`'s entry set to `mode` (the vector grows with No Copy entries
    /// when it is shorter). Used for "Force volume copy to local" (B50), which ORs R into the
    /// mount cluster's entry without changing the class.
    ///
    /// ```
    /// use vtgrid_core::{ClusterId, CopyMode, CopyModeVector};
    /// let v: CopyModeVector = "NND".parse().unwrap();
    /// let forced = v.with_mode(ClusterId::new(1).unwrap(), CopyMode::Run);
    /// assert_eq!(forced.to_string(), "NRD");
    /// ```
    pub fn with_mode(&self, cluster: ClusterId, mode: CopyMode) -> CopyModeVector {
        let mut modes = self.0.clone();
        if modes.len() <= cluster.index() {
            modes.resize(cluster.index() + 1, CopyMode::NoCopy);
        }
        modes[cluster.index()] = mode;
        CopyModeVector(modes)
    }

    /// The mode for a cluster; clusters beyond the vector get No Copy.
    pub fn mode_for(&self, cluster: ClusterId) -> CopyMode {
        self.0
            .get(cluster.index())
            .copied()
            .unwrap_or(CopyMode::NoCopy)
    }
}

impl FromStr for CopyModeVector {
    type Err = DomainError;
    /// Accepts `RND`, `R,N,D`, `R-N-D` and `[R,N,D]`, as the seed writes them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| DomainError::InvalidCopyModeVector {
            input: s.to_string(),
            why,
        };
        let letters: Vec<char> = s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .chars()
            .filter(|c| !matches!(c, ',' | '-' | ' '))
            .collect();
        if letters.is_empty() {
            return Err(bad(VectorProblem::Empty));
        }
        if letters.len() > usize::from(MAX_CLUSTERS) {
            return Err(bad(VectorProblem::TooLong));
        }
        let modes = letters
            .into_iter()
            .map(CopyMode::from_letter)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| DomainError::InvalidCopyMode {
                input: s.to_string(),
            })?;
        let syncs = modes.iter().filter(|m| **m == CopyMode::Sync).count();
        if syncs != 0 && syncs != 2 {
            return Err(bad(VectorProblem::SyncCount));
        }
        Ok(CopyModeVector(modes))
    }
}

impl TryFrom<String> for CopyModeVector {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CopyModeVector> for String {
    fn from(v: CopyModeVector) -> String {
        v.to_string()
    }
}

impl fmt::Display for CopyModeVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|m| write!(f, "{}", m.letter()))
    }
}

impl fmt::Debug for CopyModeVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CopyModeVector({self})")
    }
}

/// What a Sync job does when its second sync cluster stops answering (B43; the seed is silent,
/// TS7700 offers both as a per-class choice).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncFailure {
    /// Strict: the write or sync point fails and so does the job (`SYNC_PEER_UNAVAILABLE`). No
    /// acknowledged byte ever lives in one cache only.
    #[default]
    Fail,
    /// Synchronous-deferred: the job goes on at the mount cluster alone, the grid raises
    /// `SYNC_DEFERRED`, and the missing copy is queued as a sync-deferred copy.
    Defer,
}

impl SyncFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncFailure::Fail => "fail",
            SyncFailure::Defer => "defer",
        }
    }
}

impl FromStr for SyncFailure {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "fail" => Ok(SyncFailure::Fail),
            "defer" => Ok(SyncFailure::Defer),
            _ => Err(DomainError::InvalidSyncFailure {
                input: s.to_string(),
            }),
        }
    }
}

/// A management class: one copy-mode vector per defining cluster, because the same class name may
/// mean different copy policies on different clusters (seed L313-336; B36).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ManagementClass {
    pub name: ConstructName,
    pub vectors: BTreeMap<ClusterId, CopyModeVector>,
    /// Only matters for vectors with Sync clusters (B43).
    #[serde(default)]
    pub on_sync_failure: SyncFailure,
}

impl ManagementClass {
    /// The vector that applies to a mount on `mount_cluster`, if the class is defined there.
    pub fn vector_on(&self, mount_cluster: ClusterId) -> Option<&CopyModeVector> {
        self.vectors.get(&mount_cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_spellings_agree() {
        for s in ["RNDN", "R,N,D,N", "R-N-D-N", "[R,N,D,N]", "rndn"] {
            assert_eq!(
                s.parse::<CopyModeVector>().unwrap().to_string(),
                "RNDN",
                "{s}"
            );
        }
    }

    #[test]
    fn vector_rejects() {
        assert!("".parse::<CopyModeVector>().is_err());
        assert!("RX".parse::<CopyModeVector>().is_err());
        assert!("RRRRRRRRR".parse::<CopyModeVector>().is_err());
        assert!("SSS".parse::<CopyModeVector>().is_err());
    }

    #[test]
    fn mode_for_beyond_vector_is_no_copy() {
        let v: CopyModeVector = "RD".parse().unwrap();
        assert_eq!(v.mode_for(ClusterId::new(1).unwrap()), CopyMode::Deferred);
        assert_eq!(v.mode_for(ClusterId::new(5).unwrap()), CopyMode::NoCopy);
    }
}
