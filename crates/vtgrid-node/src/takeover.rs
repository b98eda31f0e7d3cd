//! Takeover at this cluster: the modes it holds for failed peers, taking a volume whose owner
//! cannot be asked, service prep and service mode, and coming back after a takeover (DESIGN §3;
//! B19-B24; the rule is [`vtgrid_core::takeover`]).
//!
//! ```text
//!   admin takeover --for CX --mode rot   ──> ReadTakeovers (this cluster's disk)       no quorum
//!   admin takeover --for CX --mode wot   ──> SetWriteTakeover{CX, to: me} via Raft     majority only
//!   mount of a CX-owned V at me:
//!       grant or CX in service  ──> Takeover{V, to: me, epoch} via Raft ──> owner here, full use
//!       surrender unanswered, ROT ──> a read-only job: reads from a consistent copy,
//!                                     any change WRITE_PROTECTED
//!       otherwise               ──> OWNER_UNREACHABLE (B14)
//!   CX back (its settle step)   ──> ClusterRestored{CX}: every grant for it ends; what was
//!                                   taken stays taken; its late journal entries are quarantined
//! ```

use std::sync::Arc;
use std::time::Duration;

use vtgrid_core::catalog::CatalogCommand;
use vtgrid_core::takeover::{owner_gone, OwnerGone, ServiceState, TakeoverMode};
use vtgrid_core::{ClusterId, OwnershipToken, Volser};

use crate::cluster::Cluster;
use crate::config::Role;
use crate::error::NodeError;
use crate::events::{G0009, G0010, SERVICE_STATE, TAKEOVER_MODE_CLEARED, TAKEOVER_MODE_SET};

/// How often a cluster in service prep looks whether it has drained.
const PREP_CHECK_EVERY: Duration = Duration::from_millis(500);
/// How often a cluster looks at the peers it lost, for AOTM.
const AOTM_EVERY: Duration = Duration::from_secs(1);
/// How long the local agent may take to ask a peer's agent and answer.
const AGENT_ANSWER: Duration = Duration::from_secs(8);

/// How often a cluster looks whether the catalog still holds takeover grants for it.
const RESTORED_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Cluster {
    /// The takeover mode this cluster holds for `failed`: WOT while the catalog grants it, else
    /// ROT if set here, else none.
    pub fn takeover_mode(&self, failed: ClusterId) -> TakeoverMode {
        let granted = self
            .catalog
            .view
            .read(|s| s.write_takeovers.contains(&(failed, self.id)));
        if granted {
            TakeoverMode::Write
        } else if self.read_takeovers.holds(failed) {
            TakeoverMode::ReadOnly
        } else {
            TakeoverMode::None
        }
    }

    /// Does this cluster's view show a write-takeover grant for it (taken for failed while it
    /// was away)? Then it writes none of its volumes (the gate's `taken_over`) until its return
    /// ends the grant ([`Cluster::run_restored_check`]).
    pub fn taken_over(&self) -> bool {
        self.catalog.view.read(|s| {
            s.write_takeovers
                .iter()
                .any(|(failed, _)| *failed == self.id)
        })
    }

    /// Every takeover mode this cluster holds, by failed cluster.
    pub fn takeover_modes(&self) -> Vec<(ClusterId, TakeoverMode)> {
        let mut failed: std::collections::BTreeSet<ClusterId> = self.read_takeovers.all();
        self.catalog.view.read(|s| {
            failed.extend(
                s.write_takeovers
                    .iter()
                    .filter(|(_, to)| *to == self.id)
                    .map(|(f, _)| *f),
            )
        });
        failed
            .into_iter()
            .map(|f| (f, self.takeover_mode(f)))
            .filter(|(_, m)| *m != TakeoverMode::None)
            .collect()
    }

    /// What this cluster may do with a volume of `owner`, which it cannot get a surrender from.
    pub(crate) fn owner_gone(&self, owner: ClusterId) -> OwnerGone {
        let in_service = self
            .catalog
            .view
            .read(|s| s.service_state(owner) == Some(ServiceState::Service));
        owner_gone(self.takeover_mode(owner), in_service)
    }

    /// Set the mode this cluster holds for `failed` (B19; `vtgrid admin takeover`). WOT commits
    /// a grant through Raft and is refused against a peer that answers on the grid network unless
    /// `force` (B25: never WOT against a live owner, never for a test); ROT is this cluster's own
    /// and needs no quorum, but leaving WOT does. Raises an audit event.
    pub async fn set_takeover_mode(
        &self,
        failed: ClusterId,
        mode: TakeoverMode,
        force: bool,
    ) -> Result<(), NodeError> {
        if self.role == Role::Witness {
            return Err(NodeError::Witness);
        }
        if failed == self.id || self.grid.role_of(failed.get()) != Some(Role::Data) {
            return Err(NodeError::InvalidArgument {
                field: "for",
                problem: "must name another data cluster of the grid",
            });
        }
        let alive = mode == TakeoverMode::Write
            && (self
                .links
                .peer_states()
                .get(&failed)
                .is_some_and(|l| l.reachable())
                || self.answers_now(failed).await);
        if mode == TakeoverMode::Write && !force {
            // B25, B35: not against a cluster the grid network or the agents say is alive.
            if alive || self.ask_agents(failed).await == Some(vtgrid_core::aotm::NodeState::Alive) {
                return Err(NodeError::PeerAlive { peer: failed });
            }
        }
        let granted = self.takeover_mode(failed) == TakeoverMode::Write;
        if granted != (mode == TakeoverMode::Write) {
            self.propose_grant(failed, mode == TakeoverMode::Write)
                .await?;
        }
        self.read_takeovers
            .set(failed, mode == TakeoverMode::ReadOnly)
            .await?;
        let name = |c: ClusterId| self.grid.name_of(c.get()).unwrap_or("?").to_string();
        self.events.raise(
            TAKEOVER_MODE_SET,
            None,
            format!(
                "Library {} holds takeover mode {} for library {}{}",
                name(self.id),
                mode.name(),
                name(failed),
                if force && alive {
                    " (forced: the library answers on the grid network)"
                } else {
                    ""
                }
            ),
        );
        Ok(())
    }

    /// Commit (or revoke) the write-takeover grant for `failed` to this cluster. Only the side
    /// holding the catalog's majority can.
    async fn propose_grant(&self, failed: ClusterId, granted: bool) -> Result<(), NodeError> {
        let cmd = CatalogCommand::SetWriteTakeover {
            failed,
            to: self.id,
            granted,
        };
        match self.catalog.propose(cmd).await {
            Ok(_) => Ok(()),
            Err(NodeError::CatalogUnavailable(cause)) => Err(NodeError::TakeoverNeedsMajority {
                failed,
                cluster: self.id,
                cause,
            }),
            Err(e) => Err(e),
        }
    }

    /// Take `volser` from its owner without asking it (a grant or service mode; B21, B23), at
    /// the epoch this cluster's fresh view shows (`seen`).
    pub(crate) async fn take_over(
        &self,
        volser: Volser,
        seen: OwnershipToken,
    ) -> Result<OwnershipToken, NodeError> {
        let cmd = CatalogCommand::Takeover {
            volser,
            to: self.id,
            epoch: seen.epoch,
        };
        match self.catalog.propose(cmd).await {
            Ok(_) => {}
            Err(NodeError::CatalogUnavailable(cause)) => {
                return Err(NodeError::TakeoverNeedsMajority {
                    failed: seen.owner,
                    cluster: self.id,
                    cause,
                })
            }
            // The grant ended meanwhile: the owner cannot be had (B14).
            Err(NodeError::Rejected(vtgrid_core::CatalogRejection::NoTakeoverGrant {
                owner,
                ..
            })) => return Err(NodeError::OwnerUnreachable { volser, owner }),
            Err(e) => return Err(e),
        }
        self.metrics.ownership_transfers_in.inc();
        let record = self.effective(&volser)?;
        if record.token.owner != self.id {
            return Err(NodeError::OwnerUnreachable {
                volser,
                owner: record.token.owner,
            });
        }
        tracing::warn!(%volser, from = %seen.owner, epoch = %record.token.epoch, "ownership taken over");
        Ok(record.token)
    }

    /// This cluster's own service state, if it is in prep or service: it takes no new mounts.
    pub(crate) fn refuse_mounts_in_service(&self) -> Result<(), NodeError> {
        match self.catalog.view.read(|s| s.service_state(self.id)) {
            None => Ok(()),
            Some(state) => Err(NodeError::InService {
                cluster: self.id,
                state: service_name(Some(state)),
            }),
        }
    }

    /// Move `cluster` into service prep, service mode, or out of service (B23, T22; `vtgrid
    /// admin service prep|enter|exit`). Service mode normally follows prep on its own once the
    /// cluster has drained ([`Cluster::run_service_prep`]); `enter` forces it, for a cluster
    /// that went down during prep. Leaving service reclaims nothing.
    pub async fn set_service(
        &self,
        cluster: ClusterId,
        state: Option<ServiceState>,
    ) -> Result<(), NodeError> {
        self.catalog
            .propose(CatalogCommand::SetService { cluster, state })
            .await?;
        let name = self.grid.name_of(cluster.get()).unwrap_or("?").to_string();
        self.events.raise(
            SERVICE_STATE,
            None,
            format!("Library {name} is in {}", service_name(state)),
        );
        Ok(())
    }

    /// In service prep, wait until no job is mounted here and the journal is published, then
    /// enter service mode; until the task is dropped.
    pub(crate) async fn run_service_prep(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(PREP_CHECK_EVERY);
        loop {
            ticker.tick().await;
            let prep =
                self.catalog.view.read(|s| s.service_state(self.id)) == Some(ServiceState::Prep);
            if !prep || self.mounts.count() > 0 || self.journal.pending_count() > 0 {
                continue;
            }
            match self.set_service(self.id, Some(ServiceState::Service)).await {
                Ok(()) => {
                    tracing::info!(cluster = %self.id, "service prep finished: in service mode")
                }
                Err(e) => tracing::warn!(error = %e, "entering service mode; retrying"),
            }
        }
    }

    /// Back after a takeover (B22b, T20): while this cluster is ready (its view caught up with
    /// the leader at start) and its view shows write-takeover grants for it, it commits
    /// `ClusterRestored`, which ends them; until the task is dropped. Its late changes to volumes
    /// taken meanwhile are refused by epoch and quarantined by the publisher, never published
    /// over the taker's; the volumes stay with their takers.
    pub(crate) async fn run_restored_check(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(RESTORED_CHECK_EVERY);
        loop {
            ticker.tick().await;
            if self.is_ready() {
                self.announce_restored().await;
            }
        }
    }

    async fn announce_restored(&self) {
        if !self.taken_over() {
            return;
        }
        match self
            .catalog
            .propose(CatalogCommand::ClusterRestored { cluster: self.id })
            .await
        {
            Ok(_) => {
                let name = self.grid.name_of(self.id.get()).unwrap_or("?").to_string();
                self.events.raise(
                    TAKEOVER_MODE_CLEARED,
                    None,
                    format!("Library {name} is back: the takeover modes for it are cleared"),
                );
            }
            Err(e) => tracing::warn!(error = %e, "clearing the takeover modes for this cluster"),
        }
    }
}

impl Cluster {
    /// Autonomic takeover (DESIGN §5; B29-B34): every [`AOTM_EVERY`], for each peer this
    /// cluster has a `[[takeover]]` for and does not reach on the grid network: once the grace
    /// period since the loss has passed, and then every retry period, ask the local agent, which
    /// asks the peer's agent. DOWN sets the configured mode (G0009 / G0010); ALIVE, UNKNOWN or
    /// no answer sets nothing (scenario 6, T8, T9). Until the task is dropped.
    pub(crate) async fn run_aotm(self: Arc<Self>) {
        let settings: Vec<(ClusterId, vtgrid_core::aotm::AotmSetting)> = self
            .grid
            .clusters
            .iter()
            .filter_map(|c| ClusterId::new(c.id).ok())
            .filter_map(|peer| Some((peer, self.grid.aotm_for(self.id, peer)?)))
            .collect();
        if settings.is_empty() {
            return;
        }
        let mut ticker = tokio::time::interval(AOTM_EVERY);
        loop {
            ticker.tick().await;
            let links = self.links.peer_states();
            for (peer, setting) in &settings {
                let link = links.get(peer).copied().unwrap_or_default();
                if link.reachable() {
                    self.aotm_checks.back(*peer);
                    continue;
                }
                if self.takeover_mode(*peer) == setting.mode {
                    continue;
                }
                let since = link.last_answer.unwrap_or(self.started);
                let step = vtgrid_core::aotm::aotm_step(
                    setting,
                    since.elapsed(),
                    self.aotm_checks.asked_ago(*peer),
                );
                if step == vtgrid_core::aotm::AotmStep::Wait {
                    continue;
                }
                self.aotm_checks.asked(*peer);
                let answer = self.ask_agents(*peer).await;
                match vtgrid_core::aotm::aotm_decision(setting, answer) {
                    Some(mode) => self.aotm_take_over(*peer, mode).await,
                    None => tracing::info!(
                        %peer,
                        answer = answer.map_or("no answer", |a| a.name()),
                        "AOTM: the agents do not say the peer is down; no takeover, asking again after the retry period"
                    ),
                }
            }
        }
    }

    /// Ask this site's agent what `peer`'s agent says of its node; `None`: no answer.
    async fn ask_agents(&self, peer: ClusterId) -> Option<vtgrid_core::aotm::NodeState> {
        use vtgrid_proto::internal::agent_service_client::AgentServiceClient;
        let addr = self.grid.heartbeat_of(self.id.get())?;
        let mut client = AgentServiceClient::new(self.transport.channel(addr));
        let call = client.ask_peer(vtgrid_proto::internal::AskPeerRequest {
            cluster: u32::from(peer.get()),
        });
        match tokio::time::timeout(AGENT_ANSWER, call).await {
            Ok(Ok(r)) => {
                self.transport.call_worked(addr);
                Some(r.into_inner().state().into())
            }
            Ok(Err(status)) => {
                if vtgrid_proto::reason_of(&status).is_none() {
                    self.transport.call_failed(addr);
                }
                tracing::warn!(%peer, error = %status.message(), "AOTM: this site's agent refused");
                None
            }
            Err(_) => {
                self.transport.call_failed(addr);
                tracing::warn!(%peer, "AOTM: this site's agent did not answer");
                None
            }
        }
    }

    /// The agents say `peer` is down: set `mode` for it and say so (B30, B32).
    async fn aotm_take_over(&self, peer: ClusterId, mode: TakeoverMode) {
        match self.set_takeover_mode(peer, mode, false).await {
            Ok(()) => {
                let name = |c: ClusterId| self.grid.name_of(c.get()).unwrap_or("?").to_string();
                let (code, what) = match mode {
                    TakeoverMode::Write => (G0009, "Read/Write"),
                    _ => (G0010, "Read-Only"),
                };
                self.events.raise(
                    code,
                    None,
                    format!(
                        "AOTM within library {} has determined that library {} is unavailable. The {what} ownership takeover mode has been enabled.",
                        name(self.id),
                        name(peer)
                    ),
                );
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "AOTM: the agents say the peer is down, but the takeover mode could not be set; retrying after the retry period")
            }
        }
    }
}

fn service_name(state: Option<ServiceState>) -> &'static str {
    match state {
        None => "normal operation",
        Some(ServiceState::Prep) => "service prep",
        Some(ServiceState::Service) => "service mode",
    }
}
