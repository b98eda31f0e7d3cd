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
//!
//! After each round of pings the monitor compares the flags with the previous round's and raises
//! an event for each state that begins or ends ([`grid_state_events`]; codes in
//! [`crate::events`]):
//!
//! ```text
//!   flag set                      begins                         ends
//!   GRID_LINKS_DEGRADED           GRID_LINKS_DEGRADED  ┐         GRID_LINKS_RESTORED
//!   VTS_OPERATIONS_DEGRADED       CBR3786E             ├ CALL_HOME (once)  VTS_OPERATIONS_RESTORED
//!   COPY_OPERATIONS_DISABLED      CBR3785E                       COPY_OPERATIONS_RESTORED
//!   IMMEDIATE_COPY_DEFERRED       (per volume, by the writer: IMMEDIATE_COPY_DEFERRED)
//! ```
//!
//! The same round refreshes the copy-queue gauges, so `/metrics` follows the queue without anyone
//! asking for it.

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
use crate::events::{
    CALL_HOME, CBR3785E, CBR3786E, COPY_OPERATIONS_RESTORED, G0013, GRID_LINKS_RESTORED,
    VTS_OPERATIONS_RESTORED,
};

/// The names `GetGridState` reports the seed's grid states by (B59).
pub mod flag {
    pub const GRID_LINKS_DEGRADED: &str = "GRID_LINKS_DEGRADED";
    pub const VTS_OPERATIONS_DEGRADED: &str = "VTS_OPERATIONS_DEGRADED";
    pub const COPY_OPERATIONS_DISABLED: &str = "COPY_OPERATIONS_DISABLED";
    pub const IMMEDIATE_COPY_DEFERRED: &str = "IMMEDIATE_COPY_DEFERRED";
    pub const SYNC_DEFERRED: &str = "SYNC_DEFERRED";
}

/// How often each peer is pinged, and how long an answer may take.
const PING_EVERY: Duration = Duration::from_secs(1);
/// A peer is unreachable after this many missed pings in a row.
const MISSES: u32 = 2;
/// How long a starting cluster waits for peers it has not heard from yet before its grid-state
/// events count them as an outage: clusters of a grid start seconds apart, and a grid that is
/// starting is not degraded. (`GetGridState` shows the flags as they are all along.)
const STARTUP_GRACE: Duration = Duration::from_secs(10);

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
                self.record_path(addr, answered);
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
            let links = self.link_states();
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
        let links = self.link_states();
        self.peers()
            .into_iter()
            .filter(|c| !links.get(c).is_some_and(LinkState::reachable))
            .collect()
    }

    async fn ping(&self, _peer: ClusterId, addr: &str) -> bool {
        self.ping_within(addr, PING_EVERY).await
    }

    /// One ping of the grid address `addr`: did it answer within `timeout`?
    pub(crate) async fn ping_within(&self, addr: &str, timeout: Duration) -> bool {
        let mut client = GridServiceClient::new(self.connector.channel(addr));
        let call = client.ping(PingRequest {
            from: u32::from(self.id.get()),
        });
        matches!(tokio::time::timeout(timeout, call).await, Ok(Ok(_)))
    }

    /// One link's ping. The call paths learn of it too, so jobs avoid a dead link at once.
    fn record_path(&self, addr: &str, answered: bool) {
        {
            let mut paths = self.path_links.lock().unwrap_or_else(|p| p.into_inner());
            let link = paths.entry(addr.to_string()).or_default();
            if answered {
                link.last_answer = Some(Instant::now());
                link.misses = 0;
            } else {
                link.misses = link.misses.saturating_add(1);
            }
        }
        if answered {
            self.path_health.worked(addr);
        } else {
            self.path_health.failed(addr);
        }
    }

    /// Each grid address of each peer (one per link) as last seen.
    pub fn path_states(&self) -> BTreeMap<String, LinkState> {
        self.path_links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A peer that answers, but not on every one of its links (scenario 3, B60).
    fn some_link_down(&self) -> bool {
        let links = self.link_states();
        let paths = self.path_states();
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
            flags.push(flag::IMMEDIATE_COPY_DEFERRED);
        }
        if sync_deferred {
            flags.push(flag::SYNC_DEFERRED);
        }
        flags
    }
}

/// The events a change of this cluster's grid flags from `old` to `new` raises (B59, B62): one
/// for each state that ends, then one for each state that begins, and Call Home once when Grid
/// Links Degraded or VTS Operations Degraded begins (the seed invokes it in every scenario that
/// sets either; scenario 8 sets VTS Operations Degraded alone). IMMEDIATE_COPY_DEFERRED raises
/// nothing here: the writer raises it per volume when it defers a RUN copy. `library` names this
/// cluster and `unreachable` the peers that do not answer, for the messages; the messages keep
/// the seed's wording.
pub fn grid_state_events(
    library: &str,
    unreachable: &[String],
    old: &[&str],
    new: &[&str],
) -> Vec<(&'static str, String)> {
    let began = |f: &str| !old.contains(&f) && new.contains(&f);
    let ended = |f: &str| old.contains(&f) && !new.contains(&f);
    let mut out = Vec::new();
    if ended(flag::COPY_OPERATIONS_DISABLED) {
        out.push((
            COPY_OPERATIONS_RESTORED,
            format!("Copy operations enabled in library {library}"),
        ));
    }
    if ended(flag::VTS_OPERATIONS_DEGRADED) {
        out.push((
            VTS_OPERATIONS_RESTORED,
            format!("VTS operations restored in library {library}"),
        ));
    }
    if ended(flag::GRID_LINKS_DEGRADED) {
        out.push((
            GRID_LINKS_RESTORED,
            format!(
                "The grid leaves the Grid Links Degraded state: library {library} reaches every \
                 peer on the grid network"
            ),
        ));
    }
    let peers = if unreachable.is_empty() {
        "a peer".to_string()
    } else {
        unreachable.join(", ")
    };
    let mut entered = Vec::new();
    if began(flag::GRID_LINKS_DEGRADED) {
        entered.push("Grid Links Degraded");
        out.push((
            crate::events::GRID_LINKS_DEGRADED,
            format!(
                "The grid enters the Grid Links Degraded state: library {library} has no answer \
                 on the grid network from {peers}"
            ),
        ));
    }
    if began(flag::VTS_OPERATIONS_DEGRADED) {
        entered.push("VTS Operations Degraded");
        out.push((
            CBR3786E,
            format!("VTS operations degraded in library {library}"),
        ));
    }
    if began(flag::COPY_OPERATIONS_DISABLED) {
        out.push((
            CBR3785E,
            format!("Copy operations disabled in library {library}"),
        ));
    }
    if !entered.is_empty() {
        out.push((
            CALL_HOME,
            format!(
                "Call Home support is invoked: library {library} entered the {} state",
                entered.join(" and the ")
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::flag::*;
    use super::*;
    use crate::events;

    fn codes(events: &[(&'static str, String)]) -> Vec<&'static str> {
        events.iter().map(|(c, _)| *c).collect()
    }

    const SCENARIO_2: &[&str] = &[
        GRID_LINKS_DEGRADED,
        VTS_OPERATIONS_DEGRADED,
        COPY_OPERATIONS_DISABLED,
    ];

    #[test]
    fn b64_links_lost_raise_the_three_states_and_call_home_once() {
        let out = grid_state_events("C0", &["C1".into()], &[], SCENARIO_2);
        assert_eq!(
            codes(&out),
            [
                events::GRID_LINKS_DEGRADED,
                events::CBR3786E,
                events::CBR3785E,
                events::CALL_HOME
            ]
        );
        assert_eq!(out[1].1, "VTS operations degraded in library C0");
        assert_eq!(out[2].1, "Copy operations disabled in library C0");
        assert!(out[0].1.contains("Grid Links Degraded") && out[0].1.contains("from C1"));
        assert!(out[3].1.starts_with("Call Home support is invoked"));
    }

    #[test]
    fn b62_repair_clears_each_state_without_call_home() {
        let out = grid_state_events("C0", &[], SCENARIO_2, &[]);
        assert_eq!(
            codes(&out),
            [
                events::COPY_OPERATIONS_RESTORED,
                events::VTS_OPERATIONS_RESTORED,
                events::GRID_LINKS_RESTORED
            ]
        );
    }

    #[test]
    fn b60_b65_links_degraded_without_copies_stopped_raise_no_cbr3785e() {
        let out = grid_state_events(
            "C0",
            &["W8".into()],
            &[],
            &[GRID_LINKS_DEGRADED, VTS_OPERATIONS_DEGRADED],
        );
        assert_eq!(
            codes(&out),
            [
                events::GRID_LINKS_DEGRADED,
                events::CBR3786E,
                events::CALL_HOME
            ]
        );
    }

    #[test]
    fn b70_vts_degraded_alone_still_calls_home() {
        let out = grid_state_events("C0", &[], &[], &[VTS_OPERATIONS_DEGRADED]);
        assert_eq!(codes(&out), [events::CBR3786E, events::CALL_HOME]);
    }

    #[test]
    fn unchanged_or_run_deferred_only_flags_raise_nothing() {
        assert!(grid_state_events("C0", &[], SCENARIO_2, SCENARIO_2).is_empty());
        assert!(grid_state_events("C0", &[], &[], &[IMMEDIATE_COPY_DEFERRED]).is_empty());
        assert!(grid_state_events("C0", &[], &[IMMEDIATE_COPY_DEFERRED], &[]).is_empty());
    }

    #[test]
    fn a_data_peer_back_while_a_witness_is_still_out_clears_only_copy_operations() {
        let out = grid_state_events(
            "C0",
            &["W8".into()],
            SCENARIO_2,
            &[GRID_LINKS_DEGRADED, VTS_OPERATIONS_DEGRADED],
        );
        assert_eq!(codes(&out), [events::COPY_OPERATIONS_RESTORED]);
    }

    #[test]
    fn a_state_already_set_does_not_call_home_again() {
        let out = grid_state_events(
            "C0",
            &["C1".into(), "C2".into()],
            &[GRID_LINKS_DEGRADED, VTS_OPERATIONS_DEGRADED],
            SCENARIO_2,
        );
        assert_eq!(codes(&out), [events::CBR3785E]);
    }
}
