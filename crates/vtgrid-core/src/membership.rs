//! Amnesia: what a voter with an empty catalog may do at start (issue 9).
//!
//! A voter whose data dir was lost comes back with an empty Raft log and vote. Raft's safety
//! rests on votes and acknowledged entries being durable, so such a voter must not vote (it may
//! already have voted in this term, or have counted towards the commit of entries it no longer
//! holds), and the lowest-numbered voter must not form a second group. Its own empty disk cannot
//! tell it whether the grid formed, so it asks its peers, and every voter that forms or joins a
//! grid records that durably in its catalog store, next to the log (lost with it):
//!
//! ```text
//!   own log or vote?        ──yes──> Member (and record membership if it was never recorded)
//!   recorded membership?    ──yes──> Member; the lowest voter also redoes the formation it
//!                                    began (a crash between asking and forming)
//!   a peer's group formed?  ──yes──> Amnesiac: no votes, no log, wait for the operator
//!   lowest voter, and a peer recorded membership? ──> Amnesiac (it had formed the grid before)
//!   lowest voter, every peer answered "empty"     ──> Form: ask each to take part, then form
//!   otherwise                                     ──> Unformed: ask again; a Form may come
//! ```
//!
//! A brand-new grid (every voter empty) so forms on its first start as before, once every voter
//! answers; a whole-grid restart finds its logs; a voter that lost its catalog says so and waits
//! for `vtgrid admin rejoin --as-new` (it joins as a new member) or its data.

/// Where a voter stands in the catalog's Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// It has (or is about to receive) the group's log, and takes part in Raft.
    Member,
    /// Empty and not recorded as a member, in a grid that has not formed (as far as it knows):
    /// it waits for the lowest voter's `Form`.
    Unformed,
    /// Empty in a grid that has formed: it lost its catalog. No votes, no log, no forming.
    Amnesiac,
    /// The operator asked it to join as a new member: it takes the log as a learner, but still
    /// no votes until the leader made it a voter again.
    Rejoining,
    /// Another cluster was forced standalone without it (`vtgrid admin force-standalone`): its
    /// log is the lost majority's old group. No votes, no log, nothing committed or written, for
    /// good; it comes back only wiped, as a new member.
    Superseded,
}

impl Membership {
    /// The name status answers carry.
    pub fn name(self) -> &'static str {
        match self {
            Membership::Member => "MEMBER",
            Membership::Unformed => "UNFORMED",
            Membership::Amnesiac => "AMNESIAC",
            Membership::Rejoining => "REJOINING",
            Membership::Superseded => "SUPERSEDED",
        }
    }

    /// May it answer a vote request?
    pub fn may_vote(self) -> bool {
        self == Membership::Member
    }

    /// May it take entries or a snapshot from a leader?
    pub fn takes_the_log(self) -> bool {
        matches!(self, Membership::Member | Membership::Rejoining)
    }
}

/// What one peer said of its catalog; `None` in [`start_decision`] when it did not answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCatalog {
    /// Its Raft group exists (a log or a vote).
    pub formed: bool,
    /// It recorded that it formed or joined the grid.
    pub member: bool,
}

/// What a starting voter does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartDecision {
    /// Take part (record membership first when `record` says so).
    Member { record: bool },
    /// The lowest voter: ask every peer to take part, then form the group.
    Form,
    /// It lost its catalog in a grid that formed.
    Amnesiac,
    /// Not known yet: ask the peers again later.
    AskAgain,
}

/// The start-up rule above. `lowest`: this is the lowest-numbered voter of the grid file, the one
/// that forms it. `peers`: each other voter's answer.
pub fn start_decision(
    has_log: bool,
    recorded_member: bool,
    lowest: bool,
    peers: &[Option<PeerCatalog>],
) -> StartDecision {
    if has_log {
        return StartDecision::Member {
            record: !recorded_member,
        };
    }
    if recorded_member {
        return if lowest {
            StartDecision::Form
        } else {
            StartDecision::Member { record: false }
        };
    }
    let answered = || peers.iter().flatten();
    if answered().any(|p| p.formed) || (lowest && answered().any(|p| p.member)) {
        return StartDecision::Amnesiac;
    }
    if lowest && peers.iter().all(Option::is_some) {
        return StartDecision::Form;
    }
    StartDecision::AskAgain
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: Option<PeerCatalog> = Some(PeerCatalog {
        formed: false,
        member: false,
    });
    const RECORDED: Option<PeerCatalog> = Some(PeerCatalog {
        formed: false,
        member: true,
    });
    const FORMED: Option<PeerCatalog> = Some(PeerCatalog {
        formed: true,
        member: true,
    });

    #[test]
    fn a_voter_with_a_log_is_a_member_and_records_it_once() {
        assert_eq!(
            start_decision(true, false, true, &[None, None]),
            StartDecision::Member { record: true }
        );
        assert_eq!(
            start_decision(true, true, false, &[FORMED]),
            StartDecision::Member { record: false }
        );
    }

    #[test]
    fn a_brand_new_grid_forms_once_every_voter_answered_empty() {
        assert_eq!(
            start_decision(false, false, true, &[EMPTY, EMPTY]),
            StartDecision::Form
        );
        assert_eq!(
            start_decision(false, false, true, &[EMPTY, None]),
            StartDecision::AskAgain,
            "a voter that did not answer may hold a formed catalog"
        );
        assert_eq!(
            start_decision(false, false, false, &[EMPTY, EMPTY]),
            StartDecision::AskAgain,
            "only the lowest voter forms; the others wait for its Form"
        );
    }

    #[test]
    fn the_lowest_voter_that_lost_its_catalog_does_not_form_a_second_group() {
        assert_eq!(
            start_decision(false, false, true, &[FORMED, None]),
            StartDecision::Amnesiac
        );
        assert_eq!(
            start_decision(false, false, true, &[RECORDED, EMPTY]),
            StartDecision::Amnesiac,
            "a peer took part in a formation only the lowest voter can have begun"
        );
    }

    #[test]
    fn another_voter_that_lost_its_catalog_is_amnesiac_once_a_peer_has_formed() {
        assert_eq!(
            start_decision(false, false, false, &[FORMED, None]),
            StartDecision::Amnesiac
        );
        assert_eq!(
            start_decision(false, false, false, &[RECORDED, EMPTY]),
            StartDecision::AskAgain,
            "the lowest voter recorded itself and is asking the others: that is a formation"
        );
    }

    #[test]
    fn a_recorded_member_with_an_empty_log_waits_for_it_or_redoes_the_formation() {
        assert_eq!(
            start_decision(false, true, false, &[None]),
            StartDecision::Member { record: false }
        );
        assert_eq!(
            start_decision(false, true, true, &[None, None]),
            StartDecision::Form
        );
    }

    #[test]
    fn only_members_vote_and_rejoining_voters_take_the_log() {
        assert!(Membership::Member.may_vote());
        for m in [
            Membership::Unformed,
            Membership::Amnesiac,
            Membership::Rejoining,
        ] {
            assert!(!m.may_vote(), "{m:?}");
        }
        assert!(Membership::Rejoining.takes_the_log());
        assert!(!Membership::Amnesiac.takes_the_log());
        assert!(!Membership::Unformed.takes_the_log());
    }
}
