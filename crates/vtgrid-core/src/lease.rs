//! The self-fencing lease (issue 10 item 5, beyond the seed): a whole site lost, node and agent
//! together, is taken over without an operator, because the lost cluster stops writing by itself
//! before the majority takes its volumes.
//!
//! ```text
//!   owner P (every data cluster)               leader L (confirms a quorum each time)
//!   sent = now_P ── RenewLease{P} ──────────>  commit a barrier; no WOT grant for P?
//!                                              heard[P] = now_L
//!           <──────────────────────── ok ───
//!   lease holds while now_P < sent + after     P may be taken over once
//!   (after that: no write of its own volume,   now_L - max(heard[P], became_leader)
//!    WRITE_PROTECTED, reads go on)                   >= after + drift_margin
//! ```
//!
//! Why it is safe, and what it assumes:
//! - P measures from when it *sent* the renewal, L from when it *received* it: the send comes
//!   first in real time, so L's quiet period starts no earlier than P's lease.
//! - Only a round trip renews: P cannot know its one-way messages arrive. A one-way cut in either
//!   direction fences P (no answers) and, if L still hears P, never lets L grant.
//! - L is leader when it answers (a quorum confirmed it) and has applied every committed entry; a
//!   grant an earlier leader left behind is therefore seen before a renewal is answered, and a
//!   renewal of a cluster with a grant standing is refused.
//! - A new leader has heard nothing yet: it counts from its own election.
//! - Clocks are monotonic and their rates differ by little: over `after`, P's clock may run slow
//!   against L's by less than `drift_margin`, which also covers the time between a job's last
//!   gate check and its durable commit. The margin is configured, not measured (DESIGN §3).

use std::time::Duration;

/// The lease as the grid file sets it (`[lease]`): the same for every cluster of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSetting {
    /// A data cluster that has not renewed through the leader for this long writes nothing.
    pub self_fence_after: Duration,
    /// How much longer the majority waits before it takes the cluster's volumes.
    pub drift_margin: Duration,
}

impl LeaseSetting {
    /// The owner's side: until when (on its own clock) a renewal sent at `sent` and answered lets
    /// it write.
    pub fn valid_until(&self, sent: Duration) -> Duration {
        sent + self.self_fence_after
    }

    /// The owner's side: may it write at `now`, given the send time of its last answered renewal?
    pub fn holds(&self, last_renewal_sent: Option<Duration>, now: Duration) -> bool {
        last_renewal_sent.is_some_and(|sent| now < self.valid_until(sent))
    }

    /// The majority's side: the peer has been quiet this long on the leader's clock (since the
    /// later of its last renewal received here and this leader's election). Has it certainly
    /// stopped writing?
    pub fn surely_fenced(&self, quiet: Duration) -> bool {
        quiet >= self.self_fence_after + self.drift_margin
    }

    /// The longest rate by which the owner's clock may run slow against the leader's and the rule
    /// stays safe: `drift_margin / (self_fence_after + drift_margin)`. A clock that runs at rate
    /// `r` (<1: slow) sees `after` pass after `after / r` of real time.
    pub fn tolerated_slowdown(&self) -> f64 {
        let total = (self.self_fence_after + self.drift_margin).as_secs_f64();
        self.drift_margin.as_secs_f64() / total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn setting() -> LeaseSetting {
        LeaseSetting {
            self_fence_after: S(30),
            drift_margin: S(6),
        }
    }

    #[test]
    fn a_lease_holds_from_the_send_of_the_last_answered_renewal() {
        let l = setting();
        assert!(!l.holds(None, S(0)), "no renewal yet: fenced");
        assert!(l.holds(Some(S(10)), S(39)));
        assert!(!l.holds(Some(S(10)), S(40)), "after the lease: fenced");
    }

    #[test]
    fn the_majority_waits_the_lease_and_the_margin() {
        let l = setting();
        assert!(!l.surely_fenced(S(30)));
        assert!(!l.surely_fenced(S(35)));
        assert!(l.surely_fenced(S(36)));
    }

    /// Real time: the owner sends at t, the leader receives at t + d (d >= 0). The owner's clock
    /// runs at rate r (local = real * r); the leader's at 1. The owner fences at real
    /// t + after / r; the leader grants at real t + d + after + margin. Safe for every r down
    /// to 1 - tolerated_slowdown, for any delay.
    #[test]
    fn the_grant_comes_after_the_fence_for_every_drift_within_the_tolerance() {
        let l = setting();
        let after = l.self_fence_after.as_secs_f64();
        let margin = l.drift_margin.as_secs_f64();
        let floor = 1.0 - l.tolerated_slowdown();
        for step in 0..=100 {
            let r = floor + (1.0 - floor) * f64::from(step) / 100.0;
            for d in [0.0, 0.5, 7.0] {
                let fence = after / r;
                let grant = d + after + margin;
                assert!(
                    fence <= grant + 1e-9,
                    "rate {r}, delay {d}: fence {fence} > grant {grant}"
                );
            }
        }
        // A clock slower than the tolerance is the assumption broken: the grant can come first.
        let r = floor * 0.9;
        assert!(after / r > after + margin);
    }
}
