//! The catalog record of one volume.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::category::Category;
use crate::cluster::{ClusterId, OwnershipToken};
use crate::construct::Constructs;
use crate::volser::Volser;

/// The number of a volume's version. Version 0 is the empty volume an insert creates; every
/// rewind-unload after a write commits the next one.
pub type VersionNumber = u64;

/// A BLAKE3 digest of a whole version's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of no bytes: what version 0 holds.
    pub const EMPTY: Digest = Digest([
        0xaf, 0x13, 0x49, 0xb9, 0xf5, 0xf9, 0xa1, 0xa6, 0xa0, 0x40, 0x4d, 0xea, 0x36, 0xdc, 0xc9,
        0x49, 0x9b, 0xcb, 0x25, 0xc9, 0xad, 0xc1, 0x12, 0xb7, 0xcc, 0x9a, 0x93, 0xca, 0xe4, 0x1f,
        0x32, 0x62,
    ]);

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

/// What the catalog knows about one volume.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub volser: Volser,
    pub token: OwnershipToken,
    pub category: Category,
    pub constructs: Constructs,
    /// The latest committed version.
    pub version: VersionNumber,
    pub size: u64,
    pub digest: Digest,
    /// Which clusters hold a verified copy, and of which version.
    pub consistent_at: BTreeMap<ClusterId, VersionNumber>,
    /// The copy-mode vector of the version's management class as defined on the cluster that
    /// wrote it (B36); none when the job named no class.
    #[serde(default)]
    pub copy_modes: Option<crate::copy_mode::CopyModeVector>,
    /// The token the volume was last taken over from (a `Takeover`, B21/B23): the old owner's
    /// changes at that epoch or before are fenced. For operators and for the checks that allow
    /// a fenced owner's unpublished versions to be lost (B134); none if never taken over.
    #[serde(default)]
    pub taken_from: Option<OwnershipToken>,
}

impl VolumeRecord {
    /// Clusters holding the latest version.
    pub fn consistent_clusters(&self) -> impl Iterator<Item = ClusterId> + '_ {
        self.consistent_at
            .iter()
            .filter(move |(_, v)| **v == self.version)
            .map(|(c, _)| *c)
    }
}
