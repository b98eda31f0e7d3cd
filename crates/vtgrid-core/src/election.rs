//! When a voter may start a Raft election (issue 9: term inflation).
//!
//! openraft 0.9 has no pre-vote: a voter that hears no leader starts an election, and every
//! election it starts raises its term by one, whether or not anyone can hear it. A voter cut off
//! from the others for 30 s so climbs from term 2 to about 34, and when the grid heals, the first
//! answer it sends the majority's leader carries that higher term, which makes the leader step
//! down: the whole grid loses its leader for a new election it did not need.
//!
//! The rule here stands in for pre-vote: a voter starts elections only while it reaches a quorum
//! of the voters (itself included), and only once that has held for [`QUORUM_GRACE`]. A leader
//! that reaches this voter counts as a quorum in reach (a leader has one behind it), so a voter
//! that follows a leader keeps elections enabled and takes over at once when that leader dies
//! while its peers still answer. The grace covers the heal: a voter back from isolation gives
//! the majority's leader time to reach it before it could start an election of its own.
//!
//! ```text
//!   quorum in reach?   no ──> elections off, forget since when
//!                      yes ─> remember since when; elections on once that is QUORUM_GRACE ago
//! ```

use std::time::Duration;

/// How long a quorum must have been in reach before a voter starts elections: longer than a
/// leader needs to reach a peer that has come back (heartbeats every 100 ms, a failed Raft
/// connection redialled at the next call, openraft's back-off after an unreachable peer).
pub const QUORUM_GRACE: Duration = Duration::from_secs(2);

/// Do `peers_answering` other voters, with this one, make a majority of `voters` (every voter
/// of the group, this one included)?
///
/// ```
/// use vtgrid_core::election::quorum_in_reach;
/// assert!(quorum_in_reach(3, 1));
/// assert!(!quorum_in_reach(3, 0));
/// assert!(quorum_in_reach(1, 0));
/// ```
pub fn quorum_in_reach(voters: usize, peers_answering: usize) -> bool {
    peers_answering + 1 > voters / 2
}

/// One voter's election gate: fed what it saw each round, answers whether elections are on.
/// Time is passed in (`now`: any monotonic clock, e.g. time since the cluster started).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElectionGate {
    /// Since when a quorum has been in reach without a break; `None` while it is not.
    quorum_since: Option<Duration>,
}

impl ElectionGate {
    /// Record what this round saw and say whether this voter may start elections now.
    pub fn observe(&mut self, now: Duration, quorum_in_reach: bool) -> bool {
        if !quorum_in_reach {
            self.quorum_since = None;
            return false;
        }
        let since = *self.quorum_since.get_or_insert(now);
        now.saturating_sub(since) >= QUORUM_GRACE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_majority_counts_this_voter() {
        assert!(quorum_in_reach(5, 2));
        assert!(!quorum_in_reach(5, 1));
        assert!(!quorum_in_reach(2, 0));
        assert!(quorum_in_reach(2, 1));
        assert!(quorum_in_reach(4, 2));
        assert!(!quorum_in_reach(4, 1));
    }

    #[test]
    fn elections_wait_for_the_grace_after_a_quorum_comes_into_reach() {
        let mut gate = ElectionGate::default();
        assert!(!gate.observe(S(10), true));
        assert!(!gate.observe(S(11), true));
        assert!(gate.observe(S(12), true));
        assert!(gate.observe(S(40), true));
    }

    #[test]
    fn losing_the_quorum_turns_elections_off_and_restarts_the_grace() {
        let mut gate = ElectionGate::default();
        gate.observe(S(0), true);
        assert!(gate.observe(S(5), true));
        assert!(!gate.observe(S(6), false), "cut off: no elections");
        assert!(!gate.observe(S(36), false), "still cut off after 30 s");
        assert!(
            !gate.observe(S(37), true),
            "healed: the leader gets the grace to reach us"
        );
        assert!(gate.observe(S(39), true));
    }
}
