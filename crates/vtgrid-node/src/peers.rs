//! What a cluster does about its peers: ping every link once a second, record what answered in
//! [`crate::links::Links`], raise `G0013` when a peer stops answering and the grid-state events
//! when the flags change (the table and the pure rule are in [`crate::links`]).
//!
//! Takeover of a dead peer's volumes starts here too (issue 10): the loss of grid contact with a
//! peer is the moment its grace period begins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vtgrid_core::copy::CopyPriority;
use vtgrid_core::ClusterId;
use vtgrid_proto::internal::grid_service_client::GridServiceClient;
use vtgrid_proto::internal::PingRequest;

use crate::cluster::Cluster;
use crate::config::Role;
use crate::events::G0013;
use crate::links::{flag, grid_state_events, LinkState, PeerChange, PING_EVERY, STARTUP_GRACE};
use crate::transport::Attempt;

/// The grid client of one link.
pub(crate) type GridClient = GridServiceClient<tonic::transport::Channel>;

impl Cluster {
    /// One control call to voter `peer` over the first of its links in the order, within
    /// `limit`. A call the link did not carry (no answer, a reset, a status without a reason)
    /// marks the link failed, so the caller's retry takes another link on a fresh connection; an
    /// answer with a reason is the peer's refusal.
    pub(crate) async fn grid_call<T, F, Fut>(
        &self,
        peer: u8,
        limit: Duration,
        call: F,
    ) -> Result<T, tonic::Status>
    where
        F: FnOnce(GridClient) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.transport
            .first_link(self.grid.grid_paths(peer), |addr| async move {
                let client = GridServiceClient::new(self.transport.channel(&addr));
                match tokio::time::timeout(limit, call(client)).await {
                    Ok(Ok(reply)) => Attempt::Done(reply.into_inner()),
                    Ok(Err(status)) if vtgrid_proto::reason_of(&status).is_some() => {
                        Attempt::Refused(status)
                    }
                    Ok(Err(status)) => Attempt::LinkFailed(status),
                    Err(_) => Attempt::LinkFailed(tonic::Status::deadline_exceeded(format!(
                        "no answer from {addr} within {limit:?}"
                    ))),
                }
            })
            .await
            .map_err(|e| {
                e.unwrap_or_else(|| tonic::Status::unavailable("the peer has no grid address"))
            })
    }

    /// Ping every peer until the task is dropped.
    pub async fn monitor_links(self: Arc<Self>) {
        // Every link of every peer: a peer is reachable when any of its links answers (B7).
        let links: Vec<(ClusterId, String)> = self
            .peers()
            .into_iter()
            .flat_map(|peer| {
                self.grid
                    .grid_paths(peer.get())
                    .into_iter()
                    .map(move |addr| (peer, addr))
            })
            .collect();
        let mut ticker = tokio::time::interval(PING_EVERY);
        let mut flags_before: Option<Vec<&'static str>> = None;
        loop {
            ticker.tick().await;
            let pings = links.iter().map(|(peer, addr)| self.ping(*peer, addr));
            let answers = futures::future::join_all(pings).await;
            let mut peer_answered: BTreeMap<ClusterId, bool> = BTreeMap::new();
            for ((peer, addr), answered) in links.iter().zip(answers) {
                self.links.record_path(addr, answered);
                // The call order learns of it too, so jobs avoid a dead link at once.
                if answered {
                    self.transport.call_worked(addr);
                } else {
                    self.transport.call_failed(addr);
                }
                *peer_answered.entry(*peer).or_default() |= answered;
            }
            for (peer, answered) in peer_answered {
                self.record_ping(peer, answered);
            }
            self.raise_grid_state_events(&mut flags_before);
            self.refresh_copy_queue_gauges().await;
        }
    }

    /// Raise the events for the flags that changed since the round before (`before`). The first
    /// comparison waits until every peer has answered once or [`STARTUP_GRACE`] has passed, and
    /// starts from "no flags", so a peer missing from the start is reported then.
    fn raise_grid_state_events(&self, before: &mut Option<Vec<&'static str>>) {
        if before.is_none() {
            let links = self.links.peer_states();
            let all_heard = self
                .peers()
                .iter()
                .all(|p| links.get(p).is_some_and(|l| l.last_answer.is_some()));
            if !all_heard && self.started.elapsed() < STARTUP_GRACE {
                return;
            }
        }
        let now = self.grid_flags();
        let old = before.replace(now.clone()).unwrap_or_default();
        if old == now {
            return;
        }
        let name = |c: ClusterId| self.grid.name_of(c.get()).unwrap_or("?").to_string();
        let unreachable: Vec<String> = self.unreachable_peers().into_iter().map(name).collect();
        for (code, message) in grid_state_events(&name(self.id), &unreachable, &old, &now) {
            self.events.raise(code, None, message);
        }
    }

    /// Bring the per-priority copy-queue gauges up to date (DESIGN §7).
    async fn refresh_copy_queue_gauges(&self) {
        if let Err(e) = self.copy_queue_view(0).await {
            tracing::warn!(error = %e, "reading the copy queue for its gauges");
        }
    }

    /// Every other voter of the grid file.
    fn peers(&self) -> Vec<ClusterId> {
        self.grid
            .voters()
            .keys()
            .filter_map(|id| ClusterId::from_raft_id(*id).ok())
            .filter(|c| *c != self.id)
            .collect()
    }

    /// The peers that do not answer on the grid network now.
    fn unreachable_peers(&self) -> Vec<ClusterId> {
        let links = self.links.peer_states();
        self.peers()
            .into_iter()
            .filter(|c| !links.get(c).is_some_and(LinkState::reachable))
            .collect()
    }

    async fn ping(&self, _peer: ClusterId, addr: &str) -> bool {
        self.ping_within(addr, PING_EVERY).await
    }

    /// Does `peer` answer a ping on any of its grid links now? Asked where a decision may not
    /// rest on the link monitor's last round alone (a write takeover, B25): a cluster that has
    /// just started has no round yet, and a link that answers again is seen a second late.
    pub(crate) async fn answers_now(&self, peer: ClusterId) -> bool {
        let pings = self
            .grid
            .grid_paths(peer.get())
            .into_iter()
            .map(|addr| async move { self.ping_within(&addr, PING_EVERY).await });
        futures::future::join_all(pings)
            .await
            .into_iter()
            .any(|a| a)
    }

    /// One ping of the grid address `addr`: did it answer within `timeout`?
    pub(crate) async fn ping_within(&self, addr: &str, timeout: Duration) -> bool {
        let mut client = GridServiceClient::new(self.transport.channel(addr));
        let call = client.ping(PingRequest {
            from_cluster: u32::from(self.id.get()),
        });
        matches!(tokio::time::timeout(timeout, call).await, Ok(Ok(_)))
    }

    /// A peer that answers, but not on every one of its links (scenario 3, B60).
    fn some_link_down(&self) -> bool {
        let links = self.links.peer_states();
        let paths = self.links.path_states();
        self.peers()
            .into_iter()
            .filter(|p| links.get(p).is_some_and(LinkState::reachable))
            .any(|p| {
                self.grid
                    .grid_paths(p.get())
                    .iter()
                    .any(|a| !paths.get(a).is_some_and(LinkState::reachable))
            })
    }

    /// One WARN when a peer is lost (G0013), a reminder every few minutes while it stays lost,
    /// one INFO when it answers again; the per-call failures in between are not logged
    /// (`telemetry::quiet_network_noise`).
    fn record_ping(&self, peer: ClusterId, answered: bool) {
        let name = |c: ClusterId| self.grid.name_of(c.get()).unwrap_or("?").to_string();
        match self.links.record_peer(peer, answered) {
            PeerChange::Same => {}
            PeerChange::Back { after } => tracing::info!(
                %peer,
                down_secs = after.as_secs(),
                "peer library {} answers on the grid network again",
                name(peer)
            ),
            PeerChange::StillDown { for_ } => tracing::warn!(
                %peer,
                down_secs = for_.as_secs(),
                "peer library {} still does not answer on the grid network",
                name(peer)
            ),
            PeerChange::Lost => self.events.raise(
                G0013,
                None,
                format!(
                    "Library {} has experienced an unexpected outage with its peer library {}. Library {} might be \
                     unavailable or a communication issue might be present.",
                    name(self.id),
                    name(peer),
                    name(peer)
                ),
            ),
        }
    }

    /// The seed's grid states that hold now, seen from here.
    pub fn grid_flags(&self) -> Vec<&'static str> {
        let down = self.unreachable_peers();
        let mut flags = Vec::new();
        // B60: one link of several down degrades the grid links and VTS operations, but copies
        // go on over the others, so COPY_OPERATIONS_DISABLED needs a peer with no link at all.
        if !down.is_empty() || self.some_link_down() {
            flags.push(flag::GRID_LINKS_DEGRADED);
            flags.push(flag::VTS_OPERATIONS_DEGRADED);
        }
        if down
            .iter()
            .any(|c| self.grid.role_of(c.get()) == Some(Role::Data))
        {
            flags.push(flag::COPY_OPERATIONS_DISABLED);
        }
        let clusters: Vec<ClusterId> = self
            .grid
            .clusters
            .iter()
            .filter_map(|c| ClusterId::new(c.id).ok())
            .collect();
        let (run_deferred, sync_deferred) = self.catalog.view.read(|s| {
            let owed = |p| clusters.iter().any(|c| s.volumes.owes(*c, p));
            (
                owed(CopyPriority::ImmediateDeferred),
                owed(CopyPriority::SyncDeferred),
            )
        });
        if run_deferred {
            flags.push(flag::IMMEDIATE_COPY_DEFERRED);
        }
        if sync_deferred {
            flags.push(flag::SYNC_DEFERRED);
        }
        flags
    }
}
