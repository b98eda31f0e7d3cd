//! The grid links as this cluster sees them, and the grid states the seed names (DESIGN §7;
//! failover scenarios 2-8).
//!
//! The link monitor ([`crate::peers`]) pings every peer over the grid network once a second and
//! records the answers here, in [`Links`]. A peer that stops
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
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use vtgrid_core::ClusterId;

use crate::events::{
    CALL_HOME, CBR3785E, CBR3786E, COPY_OPERATIONS_RESTORED, GRID_LINKS_RESTORED,
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
pub(crate) const PING_EVERY: Duration = Duration::from_secs(1);
/// A peer is unreachable after this many missed pings in a row.
const MISSES: u32 = 2;
/// How long a starting cluster waits for peers it has not heard from yet before its grid-state
/// events count them as an outage: clusters of a grid start seconds apart, and a grid that is
/// starting is not degraded. (`GetGridState` shows the flags as they are all along.)
pub(crate) const STARTUP_GRACE: Duration = Duration::from_secs(10);

/// What this cluster knows of one link.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkState {
    pub last_answer: Option<Instant>,
    pub misses: u32,
    /// Since when the peer has been lost, and when the log last said it still was (a peer's
    /// round only; not kept per address).
    down: Option<(Instant, Instant)>,
}

/// How often the log reminds an operator that a peer is still lost (one WARN when it goes, one
/// INFO when it is back, and this in between).
pub const STILL_DOWN_REMINDER: Duration = Duration::from_secs(300);

/// What one round of pings changed about a peer, for the log and the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerChange {
    /// Reachable before, not now.
    Lost,
    /// Lost for this long, and answers again.
    Back { after: Duration },
    /// Still lost, for this long, and the reminder is due.
    StillDown { for_: Duration },
    /// Nothing worth a line.
    Same,
}

impl LinkState {
    pub fn reachable(&self) -> bool {
        self.last_answer.is_some() && self.misses < MISSES
    }
}

/// Every grid link to every peer, as the link monitor's pings last saw it (per peer and per
/// address). The order calls try a peer's links in, and the connections themselves, are the
/// transport's ([`crate::transport::Peers`]); the monitor tells it of every ping as well (B7,
/// scenario 3; B60).
#[derive(Default)]
pub struct Links {
    inner: Mutex<LinksInner>,
}

#[derive(Default)]
struct LinksInner {
    /// Each peer, reachable when any of its links answers.
    peers: BTreeMap<ClusterId, LinkState>,
    /// Each grid address of each peer (one per link).
    paths: BTreeMap<String, LinkState>,
}

impl LinkState {
    fn answered(&mut self, answered: bool) {
        if answered {
            self.last_answer = Some(Instant::now());
            self.misses = 0;
        } else {
            self.misses = self.misses.saturating_add(1);
        }
    }
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, LinksInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One link's ping.
    pub fn record_path(&self, addr: &str, answered: bool) {
        self.lock()
            .paths
            .entry(addr.to_string())
            .or_default()
            .answered(answered);
    }

    /// One peer's round of pings (any link answered), and what it changed.
    pub fn record_peer(&self, peer: ClusterId, answered: bool) -> PeerChange {
        self.record_peer_at(peer, answered, Instant::now())
    }

    fn record_peer_at(&self, peer: ClusterId, answered: bool, now: Instant) -> PeerChange {
        let mut inner = self.lock();
        let link = inner.peers.entry(peer).or_default();
        let was = link.reachable();
        link.answered(answered);
        match (was, link.reachable(), link.down) {
            (true, false, _) => {
                link.down = Some((now, now));
                PeerChange::Lost
            }
            (_, true, Some((since, _))) => {
                link.down = None;
                PeerChange::Back { after: now - since }
            }
            (false, false, Some((since, reminded))) if now - reminded >= STILL_DOWN_REMINDER => {
                link.down = Some((since, now));
                PeerChange::StillDown { for_: now - since }
            }
            _ => PeerChange::Same,
        }
    }

    /// Each peer's link as last seen.
    pub fn peer_states(&self) -> BTreeMap<ClusterId, LinkState> {
        self.lock().peers.clone()
    }

    /// Each grid address of each peer (one per link) as last seen.
    pub fn path_states(&self) -> BTreeMap<String, LinkState> {
        self.lock().paths.clone()
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

    /// Issue 12, quiet logs: a lost peer is one Lost, a reminder every five minutes, one Back;
    /// every other round says nothing.
    #[test]
    fn a_lost_peer_is_one_loss_a_rare_reminder_and_one_return() {
        let links = Links::default();
        let peer = ClusterId::new(1).unwrap();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(links.record_peer_at(peer, true, at(0)), PeerChange::Same);
        let mut changes = Vec::new();
        for s in 1..=700 {
            changes.push(links.record_peer_at(peer, false, at(s)));
        }
        changes.push(links.record_peer_at(peer, true, at(701)));
        let said: Vec<_> = changes
            .into_iter()
            .filter(|c| *c != PeerChange::Same)
            .collect();
        assert_eq!(
            said,
            [
                PeerChange::Lost,
                PeerChange::StillDown {
                    for_: Duration::from_secs(300)
                },
                PeerChange::StillDown {
                    for_: Duration::from_secs(600)
                },
                PeerChange::Back {
                    after: Duration::from_secs(699)
                },
            ]
        );
    }

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
