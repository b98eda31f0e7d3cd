//! The grid links as this cluster sees them, and the grid states the seed names (DESIGN §7;
//! failover scenarios 2-8).
//!
//! A link monitor pings every peer over the grid network once a second. A peer that stops
//! answering raises `G0013` ("Library X has experienced an unexpected outage with its peer library
//! Y"); `GetGridState` reports each link and the flags:
//!
//! | flag | when (seen from this cluster) |
//! |---|---|
//! | `GRID_LINKS_DEGRADED` | a peer does not answer on the grid network |
//! | `VTS_OPERATIONS_DEGRADED` (CBR3786E) | the same: some operations need that peer |
//! | `COPY_OPERATIONS_DISABLED` (CBR3785E) | a data cluster does not answer: copies to and from it stop |
//! | `IMMEDIATE_COPY_DEFERRED` | the catalog holds a version a RUN cluster does not have yet |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vtgrid_core::copy::{copy_duty, CopyPriority};
use vtgrid_core::ClusterId;
use vtgrid_proto::pb::grid_service_client::GridServiceClient;
use vtgrid_proto::pb::PingRequest;

use crate::cluster::Cluster;
use crate::config::Role;
use crate::events::G0013;

/// How often each peer is pinged, and how long an answer may take.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A peer is unreachable after this many missed pings in a row.
const MISSES: u32 = 2;

/// What this cluster knows of one link.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkState {
    pub last_answer: Option<Instant>,
    pub misses: u32,
}

impl LinkState {
    pub fn reachable(&self) -> bool {
        self.last_answer.is_some() && self.misses < MISSES
    }
}

impl Cluster {
    /// Ping every peer until the task is dropped.
    pub async fn monitor_links(self: Arc<Self>) {
        let peers: Vec<(ClusterId, String)> = self
            .grid
            .voters()
            .into_iter()
            .filter(|(id, _)| *id != self.id.raft_id())
            .filter_map(|(id, addr)| ClusterId::from_raft_id(id).ok().map(|c| (c, addr)))
            .collect();
        let mut ticker = tokio::time::interval(PING_EVERY);
        loop {
            ticker.tick().await;
            let pings = peers.iter().map(|(peer, addr)| self.ping(*peer, addr));
            let answers = futures::future::join_all(pings).await;
            for ((peer, _), answered) in peers.iter().zip(answers) {
                self.record_ping(*peer, answered);
            }
        }
    }

    async fn ping(&self, _peer: ClusterId, addr: &str) -> bool {
        let mut client = GridServiceClient::new(self.connector.channel(addr));
        let call = client.ping(PingRequest {
            from: u32::from(self.id.get()),
        });
        matches!(tokio::time::timeout(PING_EVERY, call).await, Ok(Ok(_)))
    }

    fn record_ping(&self, peer: ClusterId, answered: bool) {
        let lost = {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            let link = links.entry(peer).or_default();
            let was = link.reachable();
            if answered {
                link.last_answer = Some(Instant::now());
                link.misses = 0;
            } else {
                link.misses = link.misses.saturating_add(1);
            }
            was && !link.reachable()
        };
        if lost {
            let name = |c: ClusterId| self.grid.name_of(c.get()).unwrap_or("?").to_string();
            self.events.raise(
                G0013,
                None,
                format!(
                    "Library {} has experienced an unexpected outage with its peer library {}. Library {} might be \
                     unavailable or a communication issue might be present.",
                    name(self.id),
                    name(peer),
                    name(peer)
                ),
            );
        }
    }

    /// Each peer's link as last seen.
    pub fn link_states(&self) -> BTreeMap<ClusterId, LinkState> {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The seed's grid states that hold now, seen from here.
    pub fn grid_flags(&self) -> Vec<&'static str> {
        let links = self.link_states();
        let down: Vec<ClusterId> = self
            .grid
            .voters()
            .keys()
            .filter_map(|id| ClusterId::from_raft_id(*id).ok())
            .filter(|c| *c != self.id && !links.get(c).is_some_and(LinkState::reachable))
            .collect();
        let mut flags = Vec::new();
        if !down.is_empty() {
            flags.push("GRID_LINKS_DEGRADED");
            flags.push("VTS_OPERATIONS_DEGRADED");
        }
        if down
            .iter()
            .any(|c| self.grid.role_of(c.get()) == Some(Role::Data))
        {
            flags.push("COPY_OPERATIONS_DISABLED");
        }
        let clusters: Vec<ClusterId> = self
            .grid
            .clusters
            .iter()
            .filter_map(|c| ClusterId::new(c.id).ok())
            .collect();
        let (run_deferred, sync_deferred) = self.catalog.view.read(|s| {
            let owed = |p| {
                s.volumes
                    .values()
                    .any(|r| clusters.iter().any(|c| copy_duty(r, *c) == Some(p)))
            };
            (
                owed(CopyPriority::ImmediateDeferred),
                owed(CopyPriority::SyncDeferred),
            )
        });
        if run_deferred {
            flags.push("IMMEDIATE_COPY_DEFERRED");
        }
        if sync_deferred {
            flags.push("SYNC_DEFERRED");
        }
        flags
    }
}
