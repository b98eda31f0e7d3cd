//! Is a journal entry the catalog refused as "not the next version" a replay, or a conflict?
//!
//! An owner journals a version, the publisher commits it, and only then removes the entry. A
//! crash in between leaves an entry the catalog already holds; the publisher proposes it again
//! and the catalog answers `VersionNotNext { current, got }` with `current >= got`. That entry
//! is a *replay* and may be dropped. But the same answer comes back for an entry that carries
//! *other bytes* under a number the catalog already has (issue 9, sequence B: a cancelled
//! unload's entry and a later job's entry of the same number). Dropping that one loses an
//! acknowledged version, so it must be quarantined (DESIGN §3: nothing refused is dropped).
//!
//! ```text
//!   got >  current            a gap: refused (quarantine)
//!   got == current            the catalog holds `got`: replay iff it holds it with the entry's
//!                             digest; a view that does not show `got` yet decides later
//!   got <  current            replay: see below
//! ```
//!
//! When `current > got` the catalog no longer holds the digest of `got`. The entry passed the
//! epoch fence (the catalog checks the epoch before the version), so this cluster has owned the
//! volume under the entry's epoch throughout, and every version from `got` to `current` was
//! committed from this cluster's own journal, in journal order. The owner journals at most one
//! entry per version number (rewind-unload journals only the version that follows what the
//! cluster itself shows, and finishes its commit even when the host's call is cancelled), so
//! the committed `got` is this very entry: a replay.

use crate::catalog::NewVersion;
use crate::volume::{Digest, VersionNumber};

/// What the publisher does with an entry refused as `VersionNotNext`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplayVerdict {
    /// The catalog holds this very version: remove the entry.
    Replay,
    /// Another version under this number, or a gap: quarantine the entry.
    Conflict,
    /// The local view does not show the catalog's version yet: decide in a later round.
    Undecided,
}

/// Judge an entry carrying `entry` that the catalog refused with `VersionNotNext { current,
/// got: entry.version }`. `seen` is the version and digest the local catalog view holds for the
/// volume now (it may trail the catalog that answered).
pub fn judge_version_not_next(
    entry: &NewVersion,
    current: VersionNumber,
    seen: (VersionNumber, Digest),
) -> ReplayVerdict {
    let got = entry.version;
    if got > current {
        return ReplayVerdict::Conflict;
    }
    if got < current {
        return ReplayVerdict::Replay;
    }
    match seen {
        (version, digest) if version == got && digest == entry.digest => ReplayVerdict::Replay,
        (version, _) if version == got => ReplayVerdict::Conflict,
        _ => ReplayVerdict::Undecided,
    }
}

/// Judge an entry carrying `entry` that the catalog refused for a stale epoch: the volume was
/// taken over (WOT, service mode) after this cluster wrote the version. If the catalog holds this
/// very version (`seen`: number and digest), the entry had committed before the takeover and the
/// writer never learned it: a replay. Otherwise the version was fenced: a conflict, quarantined.
pub fn judge_stale_epoch(entry: &NewVersion, seen: (VersionNumber, Digest)) -> ReplayVerdict {
    if seen == (entry.version, entry.digest) {
        ReplayVerdict::Replay
    } else {
        ReplayVerdict::Conflict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterId;

    fn entry(version: VersionNumber, digest: u8) -> NewVersion {
        NewVersion {
            version,
            size: 10,
            digest: Digest([digest; 32]),
            written_at: ClusterId::new(0).expect("C0"),
            copy_modes: None,
            held_by: Vec::new(),
        }
    }

    #[test]
    fn same_number_same_digest_is_a_replay() {
        let e = entry(3, 7);
        assert_eq!(
            judge_version_not_next(&e, 3, (3, Digest([7; 32]))),
            ReplayVerdict::Replay
        );
    }

    #[test]
    fn same_number_other_digest_is_a_conflict() {
        let e = entry(3, 7);
        assert_eq!(
            judge_version_not_next(&e, 3, (3, Digest([8; 32]))),
            ReplayVerdict::Conflict
        );
    }

    #[test]
    fn a_view_that_trails_decides_later() {
        let e = entry(3, 7);
        assert_eq!(
            judge_version_not_next(&e, 3, (2, Digest([1; 32]))),
            ReplayVerdict::Undecided
        );
    }

    #[test]
    fn an_older_number_under_the_same_epoch_is_a_replay() {
        let e = entry(3, 7);
        assert_eq!(
            judge_version_not_next(&e, 5, (5, Digest([9; 32]))),
            ReplayVerdict::Replay
        );
    }

    #[test]
    fn a_gap_is_a_conflict() {
        let e = entry(6, 7);
        assert_eq!(
            judge_version_not_next(&e, 4, (4, Digest([9; 32]))),
            ReplayVerdict::Conflict
        );
    }

    /// T14a without the wait at the unload: the entry committed, then the volume was taken over
    /// before the writer heard; its replay meets the new epoch but the catalog holds its bytes.
    #[test]
    fn a_stale_epoch_over_this_very_version_is_a_replay() {
        let e = entry(1, 7);
        assert_eq!(
            judge_stale_epoch(&e, (1, Digest([7; 32]))),
            ReplayVerdict::Replay
        );
        assert_eq!(
            judge_stale_epoch(&e, (0, Digest::EMPTY)),
            ReplayVerdict::Conflict,
            "fenced before it committed"
        );
        assert_eq!(
            judge_stale_epoch(&e, (1, Digest([8; 32]))),
            ReplayVerdict::Conflict,
            "the taker's own v1"
        );
    }
}
