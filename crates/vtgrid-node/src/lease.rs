//! The state of the self-fencing lease (`[lease]`; the rule is `vtgrid_core::lease`, the
//! behaviour around it `crate::fencing`): when this cluster last renewed its own lease, and, while
//! it leads, when it last answered each peer's renewal.
//!
//! Every time here is on the lease clock: monotonic, from the cluster's start, at the rate a
//! simulation may set to model a drifting clock (`FaultPoints::set_clock_rate`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use vtgrid_core::lease::LeaseSetting;
use vtgrid_core::ClusterId;

/// A monotonic clock from the cluster's start, at a fixed rate against real time.
pub struct LeaseClock {
    origin: Instant,
    rate: f64,
}

impl LeaseClock {
    pub fn new(rate: f64) -> LeaseClock {
        LeaseClock {
            origin: Instant::now(),
            rate,
        }
    }

    pub fn now(&self) -> Duration {
        self.origin.elapsed().mul_f64(self.rate)
    }
}

/// What the leader knows of the renewals in its current term.
#[derive(Default)]
struct Leading {
    /// The term, and when (lease clock) this cluster was first seen leading in it.
    term: Option<(u64, Duration)>,
    /// The last renewal answered for each peer in this term.
    heard: BTreeMap<ClusterId, Duration>,
    /// Peers a grant was proposed for in this term: their renewals are refused from then on, even
    /// if the proposal's outcome is unknown (it may still commit in this term).
    granting: BTreeSet<ClusterId>,
}

impl Leading {
    /// This leader's knowledge in `term` (first seen `now`): an earlier term's is forgotten.
    fn in_term(&mut self, term: u64, now: Duration) -> &mut Leading {
        if self.term.map(|(t, _)| t) != Some(term) {
            *self = Leading {
                term: Some((term, now)),
                ..Leading::default()
            };
        }
        self
    }
}

/// The lease of one cluster: its own, and the peers' as the leader sees them.
pub struct Lease {
    setting: Option<LeaseSetting>,
    clock: LeaseClock,
    /// The send time of this cluster's last answered renewal.
    renewed: Mutex<Option<Duration>>,
    /// The fence as of the last [`Lease::refresh`]: up from one refresh interval before the
    /// lease runs out, so it is never late between refreshes. A flag, not a clock reading, so
    /// that the gate answers the same from anywhere (a simulation's driver has no host clock);
    /// a watch, so that a start can wait for it to go down.
    fenced: tokio::sync::watch::Sender<bool>,
    leading: Mutex<Leading>,
    /// Held while a renewal is answered and while a grant is decided and proposed: a renewal and
    /// a grant for the same cluster never interleave.
    pub(crate) decide: tokio::sync::Mutex<()>,
}

impl Lease {
    pub fn new(setting: Option<LeaseSetting>, clock: LeaseClock) -> Lease {
        Lease {
            setting,
            clock,
            renewed: Mutex::default(),
            fenced: tokio::sync::watch::Sender::new(setting.is_some()),
            leading: Mutex::default(),
            decide: tokio::sync::Mutex::new(()),
        }
    }

    pub fn setting(&self) -> Option<LeaseSetting> {
        self.setting
    }

    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// Has this cluster's own lease run out (or will it before the next refresh)? Never
    /// without a `[lease]`.
    pub fn fenced(&self) -> bool {
        *self.fenced.borrow()
    }

    /// Wait until the fence is down, at most `limit`; is it down?
    pub async fn unfenced_within(&self, limit: Duration) -> bool {
        let mut rx = self.fenced.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|fenced| !*fenced))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Set the fence for the next `interval`: up if the lease runs out within it. Returns the
    /// fence.
    pub fn refresh(&self, interval: Duration) -> bool {
        let Some(setting) = self.setting else {
            return false;
        };
        let fenced = !setting.holds(*lock(&self.renewed), self.clock.now() + interval);
        self.fenced
            .send_if_modified(|now| std::mem::replace(now, fenced) != fenced);
        fenced
    }

    /// How long ago (lease clock) the last answered renewal was sent.
    pub fn renewed_ago(&self) -> Option<Duration> {
        lock(&self.renewed).map(|sent| self.clock.now().saturating_sub(sent))
    }

    /// A renewal sent at `sent` was answered.
    pub fn renewed(&self, sent: Duration) {
        let mut last = lock(&self.renewed);
        *last = Some(last.map_or(sent, |l| l.max(sent)));
    }

    /// A renewal from `peer` reached this leader in `term` (whether answered or not: being
    /// heard only ever delays a grant).
    pub fn heard(&self, peer: ClusterId, term: u64) {
        let now = self.clock.now();
        lock(&self.leading)
            .in_term(term, now)
            .heard
            .insert(peer, now);
    }

    /// The leader has heard `peer`'s renewal in `term`; may it answer? Not once the catalog
    /// holds a write-takeover grant for it (`taken_over`: it stays fenced until its return
    /// clears the grant), nor while a grant for it is being proposed in this term. Being heard
    /// only ever delays a new grant.
    pub fn answer(&self, peer: ClusterId, term: u64, taken_over: bool) -> bool {
        self.heard(peer, term);
        !taken_over && !self.is_granting(peer, term)
    }

    /// How long `peer` has been quiet as this leader sees it in `term`: since its last renewal
    /// answered here, or since this cluster leads, whichever is later.
    pub fn quiet(&self, peer: ClusterId, term: u64) -> Duration {
        let now = self.clock.now();
        let mut leading = lock(&self.leading);
        let leading = leading.in_term(term, now);
        let since = leading.term.map_or(now, |(_, t)| t);
        let since = leading.heard.get(&peer).map_or(since, |h| (*h).max(since));
        now.saturating_sub(since)
    }

    /// A grant for `peer` is being proposed in `term`: no renewal is answered until
    /// [`Lease::granted`].
    pub fn granting(&self, peer: ClusterId, term: u64) {
        let now = self.clock.now();
        lock(&self.leading).in_term(term, now).granting.insert(peer);
    }

    /// Is a grant for `peer` being proposed in `term` (its outcome not known yet)?
    pub fn is_granting(&self, peer: ClusterId, term: u64) -> bool {
        let now = self.clock.now();
        lock(&self.leading)
            .in_term(term, now)
            .granting
            .contains(&peer)
    }

    /// The grant's outcome is known (committed, or refused): the catalog answers from now on.
    pub fn granted(&self, peer: ClusterId, term: u64) {
        let now = self.clock.now();
        lock(&self.leading)
            .in_term(term, now)
            .granting
            .remove(&peer);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_term_counts_from_its_start_and_forgets_grants() {
        let lease = Lease::new(
            Some(LeaseSetting {
                self_fence_after: Duration::from_secs(10),
                drift_margin: Duration::from_secs(2),
            }),
            LeaseClock::new(1.0),
        );
        assert!(lease.fenced(), "no renewal yet");
        lease.renewed(lease.now());
        assert!(!lease.refresh(Duration::from_secs(1)));
        assert!(!lease.fenced());
        assert!(lease.answer(c(1), 3, false));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(lease.quiet(c(1), 3), Duration::from_secs(5));
        lease.granting(c(1), 3);
        assert!(
            !lease.answer(c(1), 3, false),
            "no renewal while a grant is being proposed"
        );
        lease.granted(c(1), 3);
        assert!(
            lease.answer(c(1), 3, false),
            "the catalog answers once the outcome is known"
        );
        assert!(
            !lease.answer(c(1), 3, true),
            "no renewal for a cluster the catalog holds a grant for"
        );
        lease.granting(c(1), 3);
        assert_eq!(
            lease.quiet(c(1), 4),
            Duration::ZERO,
            "a new term counts from its start"
        );
        assert!(lease.answer(c(1), 4, false));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!lease.fenced(), "the flag holds until the next refresh");
        assert!(
            lease.refresh(Duration::from_secs(1)),
            "up one interval before the lease runs out (at 10 s; now 9 s)"
        );
        assert!(lease.fenced());
    }
}
