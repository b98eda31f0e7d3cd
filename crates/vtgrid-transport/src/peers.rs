//! A member's connections to its peers: one pooled channel per peer link, the order a call tries
//! a peer's links in, and the one loop that tries them (DESIGN §7; B7, scenario 3).
//!
//! A cluster may list several grid addresses, one per physical link. Control calls (Raft
//! messages, forwarded proposals, Surrender, pings, lease renewals, agent questions) share one
//! HTTP/2 connection per link, opened on first use and kept: a transfer costs no connection set-up
//! and, on a grid with TLS, no handshake. Bulk streams (a remote read, a copy's data, a Sync
//! duplex) get a connection of their own ([`Peers::stream_channel`]), so a gigabyte in flight
//! never sits in one TCP send buffer ahead of a Raft heartbeat.
//!
//! A link that fails a call goes to the back of the order for [`SHUNNED_FOR`] and its pooled
//! connection is dropped: a connection that crossed a partition may never carry a byte again
//! even after the network heals (HTTP/2 has no way to tell a slow peer from a lost one but the
//! keepalive), so the next call dials afresh.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;

use crate::Connector;

/// How long a link that failed a call stays at the back of the order.
pub const SHUNNED_FOR: Duration = Duration::from_secs(10);

/// How one call over one link ended, as the caller judges it.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// It worked: the link is good.
    Done(T),
    /// The peer answered and refused (a reason string): final, no other link is tried, and the
    /// link itself is good.
    Refused(E),
    /// The link did not carry the call (no connection, reset, timeout): the next link is tried.
    LinkFailed(E),
    /// The caller gives up without blaming the link (its deadline passed before the call).
    GiveUp(E),
}

/// Every connection of one member to its peers. Cheap to share (`Arc`); one per member process.
pub struct Peers {
    connector: Arc<dyn Connector>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The pooled control channel of each link (grid or heartbeat address).
    channels: BTreeMap<String, Channel>,
    /// When each link last failed a call from this member.
    failed: BTreeMap<String, Instant>,
}

impl Peers {
    pub fn new(connector: Arc<dyn Connector>) -> Peers {
        Peers {
            connector,
            inner: Mutex::default(),
        }
    }

    /// The connector underneath (who a request on this member's listener came from).
    pub fn connector(&self) -> &Arc<dyn Connector> {
        &self.connector
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pooled control channel to `addr`, opened lazily on first use and shared by every
    /// control call over that link until a call over it fails (a fresh channel per call for a
    /// link the connector does not pool now, [`Connector::pools`]).
    pub fn channel(&self, addr: &str) -> Channel {
        if !self.connector.pools(addr) {
            return self.connector.channel(addr);
        }
        let mut inner = self.lock();
        if let Some(channel) = inner.channels.get(addr) {
            return channel.clone();
        }
        let channel = self.connector.channel(addr);
        inner.channels.insert(addr.to_string(), channel.clone());
        channel
    }

    /// A channel of its own to `addr`, for one bulk stream: its connection closes when the
    /// stream's last clone is dropped.
    pub fn stream_channel(&self, addr: &str) -> Channel {
        self.connector.channel(addr)
    }

    /// A call over `addr` worked: the link is back in its place.
    pub fn call_worked(&self, addr: &str) {
        self.lock().failed.remove(addr);
    }

    /// A call over `addr` failed on the link: it goes to the back of the order for
    /// [`SHUNNED_FOR`], and its pooled connection is dropped so the next call dials afresh.
    pub fn call_failed(&self, addr: &str) {
        self.failed_at(addr, Instant::now());
    }

    fn failed_at(&self, addr: &str, at: Instant) {
        let mut inner = self.lock();
        inner.failed.insert(addr.to_string(), at);
        inner.channels.remove(addr);
    }

    /// `paths` reordered: those not failed in the last [`SHUNNED_FOR`] first, in their given
    /// order (the primary first), then the others, longest-ago failure first.
    pub fn order(&self, paths: Vec<String>) -> Vec<String> {
        self.order_at(paths, Instant::now())
    }

    fn order_at(&self, paths: Vec<String>, now: Instant) -> Vec<String> {
        let inner = self.lock();
        let recent = |p: &String| {
            inner
                .failed
                .get(p)
                .filter(|at| now.duration_since(**at) < SHUNNED_FOR)
                .copied()
        };
        let (mut bad, good): (Vec<String>, Vec<String>) =
            paths.into_iter().partition(|p| recent(p).is_some());
        bad.sort_by_key(|p| recent(p));
        good.into_iter().chain(bad).collect()
    }

    /// Try `call` over each of `paths` in [`Peers::order`] until one is done or refused; the
    /// order learns from every attempt. `Err(None)`: no path to try; `Err(Some(e))`: the last
    /// attempt's error. A call already under way on a link that fails still fails on it (its
    /// bytes were on that link, B7); only the next link gets a fresh try.
    pub async fn each_link<T, E, F, Fut>(
        &self,
        paths: Vec<String>,
        mut call: F,
    ) -> Result<T, Option<E>>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Attempt<T, E>>,
    {
        let mut last = None;
        for addr in self.order(paths) {
            match call(addr.clone()).await {
                Attempt::Done(t) => {
                    self.call_worked(&addr);
                    return Ok(t);
                }
                Attempt::Refused(e) => {
                    self.call_worked(&addr);
                    return Err(Some(e));
                }
                Attempt::GiveUp(e) => return Err(Some(e)),
                Attempt::LinkFailed(e) => {
                    self.call_failed(&addr);
                    last = Some(e);
                }
            }
        }
        Err(last)
    }

    /// Try `call` over the first of `paths` in [`Peers::order`] only (a call whose caller retries
    /// as a whole, so a failed link costs one attempt and the retry takes another link).
    pub async fn first_link<T, E, F, Fut>(
        &self,
        paths: Vec<String>,
        call: F,
    ) -> Result<T, Option<E>>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Attempt<T, E>>,
    {
        let mut call = Some(call);
        let first: Vec<String> = self.order(paths).into_iter().take(1).collect();
        self.each_link(first, move |addr| {
            let call = call.take().expect("one path, one call");
            call(addr)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TcpConnector;

    fn peers() -> Peers {
        Peers::new(Arc::new(TcpConnector))
    }

    fn paths() -> Vec<String> {
        vec!["a:1".to_string(), "b:1".to_string(), "c:1".to_string()]
    }

    #[tokio::test]
    async fn b7_a_failed_link_goes_last_until_it_has_rested() {
        let h = peers();
        let t0 = Instant::now();
        assert_eq!(
            h.order_at(paths(), t0),
            paths(),
            "primary first when all are well"
        );
        h.failed_at("a:1", t0);
        let t1 = t0 + Duration::from_secs(1);
        h.failed_at("b:1", t1);
        assert_eq!(h.order_at(paths(), t1), ["c:1", "a:1", "b:1"]);
        h.call_worked("a:1");
        assert_eq!(h.order_at(paths(), t1), ["a:1", "c:1", "b:1"]);
        assert_eq!(
            h.order_at(paths(), t1 + SHUNNED_FOR),
            paths(),
            "forgiven after a rest"
        );
    }

    #[tokio::test]
    async fn a_link_keeps_one_channel_until_a_call_over_it_fails() {
        let h = peers();
        h.channel("127.0.0.1:1");
        h.channel("127.0.0.1:1");
        h.channel("127.0.0.1:2");
        assert_eq!(h.lock().channels.len(), 2, "one pooled channel per link");
        h.stream_channel("127.0.0.1:3");
        assert_eq!(
            h.lock().channels.len(),
            2,
            "a bulk stream's channel is not pooled"
        );
        h.call_failed("127.0.0.1:1");
        assert!(
            !h.lock().channels.contains_key("127.0.0.1:1"),
            "a failed link's connection is dropped"
        );
        assert!(h.lock().channels.contains_key("127.0.0.1:2"));
    }

    #[tokio::test]
    async fn b7_each_link_moves_on_after_a_link_failure_and_stops_at_a_refusal() {
        let h = peers();
        let mut tried = Vec::new();
        let out: Result<(), Option<&str>> = h
            .each_link(paths(), |addr| {
                tried.push(addr.clone());
                async move {
                    match addr.as_str() {
                        "a:1" => Attempt::LinkFailed("reset"),
                        _ => Attempt::Refused("VOLUME_IN_USE"),
                    }
                }
            })
            .await;
        assert_eq!(out, Err(Some("VOLUME_IN_USE")));
        assert_eq!(tried, ["a:1", "b:1"], "a refusal is final");
        assert_eq!(
            h.order(paths()),
            ["b:1", "c:1", "a:1"],
            "the failed link went last"
        );

        let out: Result<&str, Option<&str>> = h
            .first_link(paths(), |addr| async move {
                Attempt::Done(if addr == "b:1" { "b" } else { "?" })
            })
            .await;
        assert_eq!(out, Ok("b"), "the first link in the order, and only it");
        let none: Result<(), Option<()>> = h
            .each_link(Vec::new(), |_| async { Attempt::Done(()) })
            .await;
        assert_eq!(none, Err(None));
    }
}
