//! Elections only with a quorum in reach: the stand-in for pre-vote that openraft 0.9 lacks
//! (issue 9: term inflation; the rule is [`vtgrid_core::election`]).
//!
//! A task per voter decides, every [`PROBE_EVERY`], whether openraft may start elections here
//! (`Raft::runtime_config().elect(..)`):
//!
//! ```text
//!   leader?          a quorum acked it within QUORUM_ACK_FRESH        ─┐
//!   heard a leader   within LEADER_LATELY (an AppendEntries it took)   ├─> ElectionGate::observe
//!   otherwise        elections off while it asks: ping every other     │     ──> elect(on/off)
//!                    voter (PROBE_TIMEOUT); a majority answered?      ─┘
//! ```
//!
//! Why it is safe to leave elections on while a leader is heard: openraft starts none until
//! `leader_lease + election_timeout` (1.2 s at least) after the last one, and this task looks again
//! long before that. Elections start off (`raft_config`); forming a grid needs none, because
//! `Raft::initialize` elects its caller directly.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::time::MissedTickBehavior;
use vtgrid_core::election::{quorum_in_reach, ElectionGate};

use crate::cluster::Cluster;

/// How often the gate looks again.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long a probe ping may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// An AppendEntries from a leader this recent means one is in charge (heartbeats every 100 ms).
const LEADER_LATELY: Duration = Duration::from_millis(300);
/// A leader whose quorum acked this recently still has one.
const QUORUM_ACK_FRESH: Duration = Duration::from_millis(1_000);

/// A leader has a quorum behind it when one acked it lately, or when it has had no ack yet: it
/// was elected a moment ago by a quorum's votes. (Seed 276 of the full random profile: a fresh
/// leader that counted "no ack yet" as "no quorum" turned its elections off and, once deposed,
/// waited out the 2 s grace while a voter whose log was behind campaigned again and again, at
/// terms it could not win, deposing each leader of the same term: no leader for 120 s.)
fn leader_has_quorum(millis_since_quorum_ack: Option<u64>, fresh_ms: u64) -> bool {
    millis_since_quorum_ack.is_none_or(|ms| ms < fresh_ms)
}

impl Cluster {
    /// Keep openraft's elections on only while a quorum of voters is in reach, until the task is
    /// dropped.
    pub(crate) async fn guard_elections(self: Arc<Self>) {
        let mut gate = ElectionGate::default();
        let mut allowed = false;
        let mut ticker = tokio::time::interval(PROBE_EVERY);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let in_reach = match self.leader_or_quorum_known() {
                Some(known) => known,
                None => {
                    // Nothing heard lately: no election on an old answer while we ask.
                    self.catalog.raft.runtime_config().elect(false);
                    self.quorum_answers().await
                }
            };
            let allow = gate.observe(self.started.elapsed(), in_reach);
            self.catalog.raft.runtime_config().elect(allow);
            if allow != allowed {
                if allow {
                    tracing::info!(cluster = %self.id, "a quorum of voters is in reach: elections on");
                } else {
                    tracing::warn!(
                        cluster = %self.id,
                        "fewer than a quorum of voters in reach: no elections (the term stays put)"
                    );
                }
                allowed = allow;
            }
        }
    }

    /// Whether a quorum is in reach, when Raft itself says so: a leader whose quorum acked it
    /// lately, or a follower that heard its leader lately. `None`: ask the peers.
    fn leader_or_quorum_known(&self) -> Option<bool> {
        let m = self.catalog.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            let fresh = QUORUM_ACK_FRESH.as_millis() as u64;
            return Some(leader_has_quorum(m.millis_since_quorum_ack, fresh));
        }
        self.catalog
            .leader_heard_within(LEADER_LATELY)
            .then_some(true)
    }

    /// Ping every other voter of the group (any of its links); does a majority answer? Returns
    /// as soon as enough have: a dead peer costs the answer no time unless the quorum needs it.
    async fn quorum_answers(&self) -> bool {
        use futures::stream::{FuturesUnordered, StreamExt};
        let voters: Vec<u64> = {
            let m = self.catalog.raft.metrics().borrow().clone();
            let ids: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            if ids.is_empty() {
                // No membership yet (a grid not formed): the grid file's voters.
                self.grid.voters().keys().copied().collect()
            } else {
                ids
            }
        };
        let total = voters.len().max(1);
        if quorum_in_reach(total, 0) {
            return true;
        }
        let me = self.id.raft_id();
        let mut peers: FuturesUnordered<_> = voters
            .iter()
            .filter(|v| **v != me)
            .map(|v| async move {
                let paths = self.grid.grid_paths(*v as u8);
                let pings = paths
                    .iter()
                    .map(|addr| self.ping_within(addr, PROBE_TIMEOUT));
                futures::future::join_all(pings)
                    .await
                    .into_iter()
                    .any(|ok| ok)
            })
            .collect();
        let mut answering = 0;
        while let Some(answered) = peers.next().await {
            answering += usize::from(answered);
            if quorum_in_reach(total, answering) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::leader_has_quorum;

    #[test]
    fn a_fresh_leader_counts_its_election_as_a_quorum() {
        assert!(leader_has_quorum(None, 1_000), "just elected: no ack yet");
        assert!(leader_has_quorum(Some(200), 1_000));
        assert!(
            !leader_has_quorum(Some(1_500), 1_000),
            "no quorum acked it lately"
        );
    }
}
