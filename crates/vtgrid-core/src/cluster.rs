//! Cluster identity and the ownership token (DESIGN §3).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// The most data clusters a grid holds (DESIGN §2). Witnesses take ids after them.
pub const MAX_CLUSTERS: u8 = 8;
/// The most Raft voters (data clusters plus witnesses).
pub const MAX_VOTERS: u8 = 16;

/// A cluster's index in the grid: `C0`, `C1`, ... It is also the position of the cluster's letter in
/// a copy-mode vector and, as a `u64`, the cluster's Raft node id. Data clusters are 0..7,
/// witnesses 8..15 (DESIGN §2).
///
/// Stored as its number; reading one back goes through [`ClusterId::new`], so `C200` never exists.
///
/// ```
/// use vtgrid_core::ClusterId;
/// let c: ClusterId = serde_json::from_str("3").unwrap();
/// assert!(c.is_data_cluster());
/// assert!(!ClusterId::new(9).unwrap().is_data_cluster(), "a witness");
/// assert!(serde_json::from_str::<ClusterId>("16").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct ClusterId(u8);

impl ClusterId {
    /// The lowest id (C0): where a range over clusters starts.
    pub const FIRST: ClusterId = ClusterId(0);

    pub fn new(id: u8) -> Result<Self, DomainError> {
        if id >= MAX_VOTERS {
            return Err(DomainError::InvalidClusterId {
                input: i64::from(id),
                max: MAX_VOTERS - 1,
            });
        }
        Ok(ClusterId(id))
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The Raft node id of this cluster.
    pub fn raft_id(self) -> u64 {
        u64::from(self.0)
    }

    /// A data cluster (0..7) holds volumes and serves hosts; the ids above are witnesses, which
    /// keep the catalog only and may never own, write or hold a volume.
    pub fn is_data_cluster(self) -> bool {
        self.0 < MAX_CLUSTERS
    }

    pub fn from_raft_id(id: u64) -> Result<Self, DomainError> {
        let small = u8::try_from(id).map_err(|_| DomainError::InvalidClusterId {
            input: id as i64,
            max: MAX_VOTERS - 1,
        })?;
        ClusterId::new(small)
    }
}

impl TryFrom<u8> for ClusterId {
    type Error = DomainError;
    fn try_from(id: u8) -> Result<Self, Self::Error> {
        ClusterId::new(id)
    }
}

impl From<ClusterId> for u8 {
    fn from(c: ClusterId) -> u8 {
        c.0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "C{}", self.0)
    }
}

impl fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "C{}", self.0)
    }
}

/// A fencing number for one volume's ownership. Every ownership change increments it, and every
/// command about the volume carries the epoch its sender holds, so a former owner's late commands
/// are rejected (DESIGN §3, "Epoch fencing").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch of a freshly inserted volume.
    pub const FIRST: Epoch = Epoch(1);

    /// The epoch after this one. Panics past `u64::MAX`; the catalog, which must never panic on
    /// what it is sent, uses [`Epoch::checked_next`] and refuses the change instead.
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }

    /// The epoch after this one, if there is one.
    pub fn checked_next(self) -> Option<Epoch> {
        self.0.checked_add(1).map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who may control a volume, and since which ownership change.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct OwnershipToken {
    pub owner: ClusterId,
    pub epoch: Epoch,
}

impl OwnershipToken {
    /// Does a command sent by `sender` holding `held` still speak for the owner?
    pub fn admits(&self, sender: ClusterId, held: Epoch) -> bool {
        self.owner == sender && self.epoch == held
    }
}
