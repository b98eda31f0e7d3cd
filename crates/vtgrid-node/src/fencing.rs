//! The self-fencing lease at work (`[lease]`; the rule and why it is safe: `vtgrid_core::lease`).
//!
//! ```text
//!   every data cluster, every RENEW_EVERY:
//!     sent = now; RenewLease -> the leader (itself when it leads; every voter when no leader
//!     is known here)                                              -> answered: renewed(sent)
//!     the fence goes up or down                                   -> SELF_FENCED / LEASE_RENEWED
//!   the leader, on RenewLease{P}:
//!     confirm leadership: a barrier committed through a quorum and applied here
//!     a write-takeover grant for P stands, or one is being proposed -> refuse (P stays fenced)
//!     else remember "heard P now" and answer
//!   the leader, every RENEW_EVERY, for each data peer P with `[[takeover]] ... mode = "wot"`:
//!     P quiet (since heard, or since this term began) >= after + margin
//!       -> propose SetWriteTakeover{P -> each taker}                  -> LEASE_TAKEOVER
//! ```
//!
//! A renewal and a grant for the same cluster never interleave (`Lease::decide`): a renewal is
//! never answered between the leader's decision to grant and the grant's commit.

use std::sync::Arc;
use std::time::Duration;

use vtgrid_core::catalog::CatalogCommand;
use vtgrid_core::ClusterId;
use vtgrid_proto::internal::RenewLeaseRequest;

use crate::cluster::Cluster;
use crate::config::Role;
use crate::error::{CatalogFailure, NodeError};
use crate::events::{LEASE_RENEWED, LEASE_TAKEOVER, SELF_FENCED};

/// How often a cluster renews (and the leader looks for peers whose lease ran out): a quarter of
/// the lease, at most a second.
fn renew_every(after: Duration) -> Duration {
    (after / 4).min(Duration::from_secs(1))
}

/// How long one renewal may take, the leader's quorum check included.
fn renew_timeout(after: Duration) -> Duration {
    (after / 2).min(Duration::from_secs(3))
}

impl Cluster {
    /// Renew this cluster's lease and, while leading, grant takeovers of clusters whose lease
    /// surely ran out. Returns at once without a `[lease]`. Until the task is dropped.
    pub(crate) async fn run_lease(self: Arc<Self>) {
        let Some(setting) = self.lease.setting() else {
            return;
        };
        let every = renew_every(setting.self_fence_after);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_fenced = true;
        loop {
            ticker.tick().await;
            if self.role == Role::Data {
                // Renewed in its own task: a slow leader does not delay the leader's duties here.
                let me = self.clone();
                tokio::spawn(async move { me.renew_lease(setting.self_fence_after).await });
                // Up one round early: the gate reads this flag until the next round.
                let fenced = self.lease.refresh(every + every / 2);
                if fenced != was_fenced {
                    self.announce_fence(fenced, setting.self_fence_after);
                    was_fenced = fenced;
                }
            }
            self.grant_expired_leases().await;
        }
    }

    /// At start, with a `[lease]`: wait (at most one lease period) for the first renewal, so a
    /// cluster that says it is ready can write. Past that it serves anyway, fenced: reads go on.
    pub(crate) async fn await_first_lease(&self) {
        let Some(setting) = self.lease.setting() else {
            return;
        };
        self.lease.unfenced_within(setting.self_fence_after).await;
    }

    fn announce_fence(&self, fenced: bool, after: Duration) {
        let name = self.grid.name_of(self.id.get()).unwrap_or("?").to_string();
        if fenced {
            self.events.raise(
                SELF_FENCED,
                None,
                format!("Library {name} has not renewed its lease through the catalog's majority within {after:?}: it writes none of its volumes until it does (reads go on); the majority may take them over"),
            );
        } else {
            self.events.raise(
                LEASE_RENEWED,
                None,
                format!("Library {name} renewed its lease: writes resume"),
            );
        }
    }

    /// One renewal round trip through the leader; the lease counts from when it was sent. With
    /// no leader known here (a cut that hides the leader's messages, a fresh start) every voter
    /// is asked: only the leader answers, and being heard keeps it from granting.
    async fn renew_lease(&self, after: Duration) {
        let sent = self.lease.now();
        let asked: Vec<ClusterId> = match self.catalog.leader() {
            Some(leader) => vec![leader],
            None => self
                .grid
                .voters()
                .keys()
                .filter_map(|id| ClusterId::from_raft_id(*id).ok())
                .collect(),
        };
        let calls = asked.into_iter().map(|voter| async move {
            if voter == self.id {
                return self.answer_renewal(self.id).await;
            }
            let request = RenewLeaseRequest {
                from_cluster: u32::from(self.id.get()),
            };
            // Within the round's deadline, so an unanswered renewal marks the link failed (its
            // pooled connection dropped) before the round gives up.
            self.grid_call(
                voter.get(),
                renew_timeout(after).mul_f64(0.9),
                |mut c| async move { c.renew_lease(request).await },
            )
            .await
            .map(|_| ())
            .map_err(|status| NodeError::leader_unreachable(format!("voter {voter}"), status))
        });
        let answers =
            tokio::time::timeout(renew_timeout(after), futures::future::join_all(calls)).await;
        match answers {
            Ok(answers) if answers.iter().any(Result::is_ok) => {
                tracing::debug!(?sent, "lease renewed");
                self.lease.renewed(sent);
                self.lease
                    .refresh(renew_every(after) + renew_every(after) / 2);
            }
            Ok(answers) => {
                tracing::debug!(refusals = ?answers.iter().filter_map(|a| a.as_ref().err().map(ToString::to_string)).collect::<Vec<_>>(), "lease not renewed")
            }
            Err(_) => tracing::debug!("lease renewal timed out"),
        }
    }

    /// The leader's side of `GridService.RenewLease` from `peer` (or from itself).
    pub(crate) async fn answer_renewal(&self, peer: ClusterId) -> Result<(), NodeError> {
        let Some(setting) = self.lease.setting() else {
            return Err(NodeError::InvalidArgument {
                field: "lease",
                problem: "this grid has no [lease]",
            });
        };
        // Leader now: a barrier committed through a quorum after the renewal arrived, and applied
        // here, so every entry committed before it (a grant an earlier leader committed) is
        // visible below. (Not `ensure_linearizable`: its quorum check waits one heartbeat
        // interval, 100 ms, for the answers, shorter than a round trip between sites.)
        let confirmed = tokio::time::timeout(
            renew_timeout(setting.self_fence_after),
            self.catalog.propose_local(CatalogCommand::Barrier),
        )
        .await;
        match confirmed {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "lease renewal: leadership not confirmed");
                return Err(e);
            }
            Err(_) => {
                tracing::debug!(%peer, "lease renewal: leadership not confirmed in time");
                return Err(NodeError::catalog(CatalogFailure::Timeout(renew_timeout(
                    setting.self_fence_after,
                ))));
            }
        }
        let term = self.catalog.raft.metrics().borrow().current_term;
        let _decide = self.lease.decide.lock().await;
        let granted = self
            .catalog
            .view
            .read(|s| s.write_takeovers.iter().any(|(failed, _)| *failed == peer));
        if self.lease.answer(peer, term, granted) {
            Ok(())
        } else {
            Err(NodeError::LeaseRefused { cluster: peer })
        }
    }

    /// While this cluster leads: grant write takeover of every data peer whose lease surely ran
    /// out to the clusters its `[[takeover]]` entries name with mode `wot`.
    async fn grant_expired_leases(&self) {
        let Some(setting) = self.lease.setting() else {
            return;
        };
        let (leader, term) = {
            let m = self.catalog.raft.metrics().borrow().clone();
            (m.current_leader, m.current_term)
        };
        if leader != Some(self.id.raft_id()) {
            return;
        }
        let data = self
            .grid
            .clusters
            .iter()
            .filter_map(|c| ClusterId::new(c.id).ok());
        for peer in data.collect::<Vec<_>>() {
            if peer == self.id {
                continue;
            }
            let takers = self.grid.lease_takers(peer);
            if takers.is_empty() {
                continue;
            }
            let _decide = self.lease.decide.lock().await;
            let missing: Vec<ClusterId> = self.catalog.view.read(|s| {
                takers
                    .iter()
                    .copied()
                    .filter(|to| !s.write_takeovers.contains(&(peer, *to)))
                    .collect()
            });
            if missing.is_empty() {
                continue;
            }
            let quiet = self.lease.quiet(peer, term);
            if !self.lease.is_granting(peer, term) && !setting.surely_fenced(quiet) {
                continue;
            }
            // From here until a proposal's outcome is known, the peer's renewals are refused.
            self.lease.granting(peer, term);
            let mut settled = true;
            for to in missing {
                let grant = CatalogCommand::SetWriteTakeover {
                    failed: peer,
                    to,
                    granted: true,
                };
                match self.catalog.propose(grant).await {
                    Ok(_) => {
                        let name =
                            |c: ClusterId| self.grid.name_of(c.get()).unwrap_or("?").to_string();
                        self.events.raise(
                            LEASE_TAKEOVER,
                            None,
                            format!(
                                "Library {} has not renewed its lease for {quiet:?} (lease {:?} + margin {:?}): library {} holds write takeover for it",
                                name(peer),
                                setting.self_fence_after,
                                setting.drift_margin,
                                name(to)
                            ),
                        );
                    }
                    Err(NodeError::Rejected(r)) => {
                        tracing::warn!(%peer, %to, refusal = %r, "lease takeover refused")
                    }
                    Err(e) => {
                        // Unknown outcome: it may still commit in this term. Try again next round.
                        tracing::warn!(%peer, %to, error = %e, "lease takeover not committed yet");
                        settled = false;
                    }
                }
            }
            if settled {
                self.lease.granted(peer, term);
            }
        }
    }
}
