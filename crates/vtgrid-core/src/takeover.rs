//! Ownership takeover: what a surviving cluster may do with a volume whose owner it cannot reach
//! (DESIGN §3 "Takeover modes"; B19-B24, the spec's permissions matrix).
//!
//! A mode is set *at* a surviving cluster Ci *for* a failed cluster Cx (B19):
//!
//! ```text
//!   mode at Ci for Cx     where it lives                       what Ci may do with Cx's volumes
//!   none                  -                                    nothing: OWNER_UNREACHABLE (B14)
//!   ROT (read-only)       Ci's own disk, no quorum needed      read a consistent copy; any change
//!                                                              answers WRITE_PROTECTED (B20)
//!   WOT (write)           a grant in the catalog, via Raft     take the token (`Takeover`) and use
//!                                                              the volume fully (B21)
//!   Cx in service mode    the catalog, via Raft                as WOT, for every cluster (B23)
//! ```
//!
//! WOT is a grid decision: only the side holding the Raft majority can commit the grant or the
//! `Takeover` it allows, and the fenced old owner's late changes carry a stale epoch, so they are
//! quarantined, never published over the taker's (stricter than the seed, where a mistaken WOT
//! can corrupt a volume). A majority is still not a direction: without a grant or service mode
//! nobody takes a live owner's volume.

use serde::{Deserialize, Serialize};

/// The takeover mode a surviving cluster holds for one failed cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TakeoverMode {
    #[default]
    None,
    /// Read ownership takeover (ROT): reads of the failed cluster's volumes from consistent copies
    /// this cluster can reach; nothing changes.
    ReadOnly,
    /// Write ownership takeover (WOT): this cluster may take the failed cluster's tokens.
    Write,
}

impl TakeoverMode {
    /// The name operators type and see: `none`, `rot`, `wot`.
    pub fn name(self) -> &'static str {
        match self {
            TakeoverMode::None => "none",
            TakeoverMode::ReadOnly => "rot",
            TakeoverMode::Write => "wot",
        }
    }
}

impl std::str::FromStr for TakeoverMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(TakeoverMode::None),
            "rot" | "read" | "read-only" => Ok(TakeoverMode::ReadOnly),
            "wot" | "write" => Ok(TakeoverMode::Write),
            other => Err(format!(
                "invalid takeover mode {other:?}: use none, rot (read-only) or wot (write)"
            )),
        }
    }
}

/// A cluster's planned absence (B23).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServiceState {
    /// Announced: the cluster refuses new mounts, finishes or fails its jobs and publishes its
    /// journal. Its volumes still move only by handshake.
    Prep,
    /// Entered once prep finished: any other data cluster may take its volumes.
    Service,
}

/// What a cluster may do with a volume owned by a cluster it cannot get a surrender from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerGone {
    /// Nothing: the owner may be alive (B14). The host sees `OWNER_UNREACHABLE`.
    Refuse,
    /// Serve reads from a consistent copy; any change answers `WRITE_PROTECTED` (ROT, B20).
    ReadOnly,
    /// Take the token through the catalog (`Takeover`), then use the volume fully (WOT or
    /// service mode, B21, B23).
    TakeOwnership,
}

/// The permissions matrix (spec §2.3): `mode` is what this cluster holds for the owner (ROT from
/// its own settings, WOT only if the catalog holds the grant), `owner_in_service` whether the
/// catalog has the owner in service mode.
pub fn owner_gone(mode: TakeoverMode, owner_in_service: bool) -> OwnerGone {
    if owner_in_service {
        return OwnerGone::TakeOwnership;
    }
    match mode {
        TakeoverMode::None => OwnerGone::Refuse,
        TakeoverMode::ReadOnly => OwnerGone::ReadOnly,
        TakeoverMode::Write => OwnerGone::TakeOwnership,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's permissions matrix, one column per mode: mount for read, write, scratch
    /// mount of the owner's volume, category change.
    #[test]
    fn b20_b21_b23_the_permissions_matrix() {
        let reads = |g: OwnerGone| g != OwnerGone::Refuse;
        let changes = |g: OwnerGone| g == OwnerGone::TakeOwnership;
        let none = owner_gone(TakeoverMode::None, false);
        assert!(!reads(none) && !changes(none), "no mode: OWNER_UNREACHABLE");
        let rot = owner_gone(TakeoverMode::ReadOnly, false);
        assert!(
            reads(rot) && !changes(rot),
            "ROT: reads only, WRITE_PROTECTED"
        );
        let wot = owner_gone(TakeoverMode::Write, false);
        assert!(reads(wot) && changes(wot), "WOT: full access");
        for mode in [
            TakeoverMode::None,
            TakeoverMode::ReadOnly,
            TakeoverMode::Write,
        ] {
            assert_eq!(
                owner_gone(mode, true),
                OwnerGone::TakeOwnership,
                "service mode: full access whatever the mode ({mode:?})"
            );
        }
    }

    #[test]
    fn modes_parse_by_their_operator_names() {
        for mode in [
            TakeoverMode::None,
            TakeoverMode::ReadOnly,
            TakeoverMode::Write,
        ] {
            assert_eq!(mode.name().parse::<TakeoverMode>(), Ok(mode));
        }
        assert!("rw".parse::<TakeoverMode>().is_err());
    }
}
