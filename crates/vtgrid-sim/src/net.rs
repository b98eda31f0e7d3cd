//! tonic over turmoil's simulated TCP.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};
use vtgrid_node::transport::names::Member;
use vtgrid_node::transport::{Connector, Sender};

/// Dials `HOST:PORT` on the simulated network (turmoil resolves host names), from host `from`.
#[derive(Debug, Clone, Default)]
pub struct SimConnector {
    /// The turmoil host this connector dials from (for the link faults below).
    pub from: String,
}

impl SimConnector {
    pub fn new(from: impl Into<String>) -> Self {
        SimConnector { from: from.into() }
    }
}

impl Connector for SimConnector {
    /// Pooled like a real grid's, except while a [`Stall`] or [`Tap`] is armed on the link:
    /// each waits for its message on a connection of its own, so until it catches one every
    /// call over the link dials afresh.
    fn pools(&self, addr: &str) -> bool {
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        Stall::armed_for(&self.from, host).is_none() && Tap::armed_for(&self.from, host).is_none()
    }

    fn sender(&self, request: &http::Extensions) -> Sender {
        match request.get::<SimPeer>().and_then(|p| p.0.as_deref()) {
            Some(host) => match member_of_host(host) {
                Some(member) => Sender::Member(member),
                None => Sender::Stranger(format!("simulated host {host}")),
            },
            None => Sender::Stranger("a connection with no simulated host".into()),
        }
    }

    fn channel(&self, addr: &str) -> Channel {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|_| Endpoint::from_static("http://invalid-address.invalid:1"));
        let from = self.from.clone();
        endpoint
            .connect_timeout(Duration::from_secs(1))
            .connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
                let from = from.clone();
                async move {
                    let host = uri.host().unwrap_or_default().to_string();
                    let port = uri.port_u16().unwrap_or(80);
                    let link = Link::new(&from, &host, port);
                    if link.is_cut() {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionRefused,
                            format!("grid link {from} <-> {host}:{port} is cut"),
                        ));
                    }
                    DIALS.with(|d| {
                        *d.borrow_mut()
                            .entry((from.clone(), host.clone()))
                            .or_default() += 1
                    });
                    let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
                    let route = format!("{from} -> {host}:{port}");
                    let (read, write) = stream.into_split();
                    Ok::<_, io::Error>(TokioIo::new(LinkStream {
                        stall: Stall::armed_for(&from, &host),
                        tap: Tap::armed_for(&from, &host).map(|t| (t, Vec::new())),
                        peer: (host.clone(), port),
                        link,
                        route,
                        read,
                        write: Some(write),
                    }))
                }
            }))
    }
}

thread_local! {
    /// Connections dialled by the simulation running on this thread, per (from, to) host pair.
    static DIALS: std::cell::RefCell<std::collections::BTreeMap<(String, String), u64>> =
        Default::default();
}

/// How many connections host `from` has dialled to host `to` in the simulation on this thread
/// (pooled control channels, bulk streams and re-dials after a failure alike).
pub fn dials(from: &str, to: &str) -> u64 {
    DIALS.with(|d| {
        d.borrow()
            .get(&(from.to_string(), to.to_string()))
            .copied()
            .unwrap_or(0)
    })
}

/// One grid link between two hosts: the pair (in either order) and the port it reaches, since a
/// cluster with several links listens on one grid port per link (B7, scenario 3). Turmoil
/// partitions whole hosts; cutting one link of several is done here, in the connector, the fault
/// injection point for links.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Link {
    a: String,
    b: String,
    port: u16,
}

thread_local! {
    /// Links cut in the simulation running on this thread (turmoil runs a whole simulation,
    /// hosts and clients, on the test's thread, so tests in parallel never see each other's).
    static CUT: std::cell::RefCell<std::collections::BTreeSet<Link>> = Default::default();
}

impl Link {
    pub fn new(x: &str, y: &str, port: u16) -> Link {
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        Link {
            a: a.to_string(),
            b: b.to_string(),
            port,
        }
    }

    pub fn is_cut(&self) -> bool {
        CUT.with(|c| c.borrow().contains(self))
    }

    /// Cut this link: new connections over it are refused and the ones open fail their next
    /// read or write, as a failed link would make them.
    pub fn cut(&self) {
        CUT.with(|c| c.borrow_mut().insert(self.clone()));
    }

    pub fn repair(&self) {
        CUT.with(|c| c.borrow_mut().remove(self));
    }

    /// Forget every cut link and armed stall (a new simulation on this thread).
    pub fn repair_all() {
        CUT.with(|c| c.borrow_mut().clear());
        DIALS.with(|d| d.borrow_mut().clear());
        Stall::disarm_all();
        Tap::disarm_all();
    }
}

thread_local! {
    /// Stalls armed in the simulation running on this thread (see [`Stall`]).
    static STALLS: std::cell::RefCell<Vec<Stall>> = Default::default();
}

/// How long a stalled connection's late bytes keep the connection open once delivered, so the
/// receiver handles them as a live request rather than one whose connection closed at once.
const STALL_HOLD_OPEN: Duration = Duration::from_secs(15);

/// One message stalled in the network on its own connection (sequence A of issue 9; spec T18):
/// the first write, on a connection from host `from` to host `to`, whose bytes contain `needle`
/// (say a catalog command's JSON, which a Propose carries verbatim) is held back from the peer;
/// the sender sees it sent. Everything the sender writes on that connection afterwards is lost,
/// as if the connection broke right behind the message. On [`Stall::release`] the held bytes
/// arrive, late, while every connection opened meanwhile went through normally.
///
/// Turmoil's hold/release works per host pair, so it cannot delay one message while a later one
/// between the same hosts (a barrier, a fencing command) overtakes it; this can.
#[derive(Clone)]
pub struct Stall {
    inner: Arc<StallInner>,
}

struct StallInner {
    from: String,
    to: String,
    needle: Vec<u8>,
    fired: AtomicBool,
    /// Set by [`Stall::disarm`]: no message is caught any more.
    disarmed: AtomicBool,
    delivered: AtomicBool,
    released: tokio::sync::watch::Sender<bool>,
}

impl Stall {
    /// Arm a one-shot stall for connections from `from` to `to` (turmoil host names).
    pub fn arm(from: &str, to: &str, needle: &[u8]) -> Stall {
        let stall = Stall {
            inner: Arc::new(StallInner {
                from: from.to_string(),
                to: to.to_string(),
                needle: needle.to_vec(),
                fired: AtomicBool::new(false),
                disarmed: AtomicBool::new(false),
                delivered: AtomicBool::new(false),
                released: tokio::sync::watch::channel(false).0,
            }),
        };
        STALLS.with(|s| s.borrow_mut().push(stall.clone()));
        stall
    }

    /// Forget every armed stall (a new simulation on this thread).
    pub fn disarm_all() {
        STALLS.with(|s| s.borrow_mut().clear());
    }

    /// Has a message been caught?
    pub fn fired(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// Did the held bytes reach the peer after the release?
    pub fn delivered(&self) -> bool {
        self.inner.delivered.load(Ordering::SeqCst)
    }

    /// Let the held message go on to its peer.
    pub fn release(&self) {
        self.inner.released.send_replace(true);
    }

    /// Catch nothing from now on; true when a message was caught before. (A random schedule
    /// ends a stall that caught nothing in its window this way, so it cannot strike later.)
    pub fn disarm(&self) -> bool {
        self.inner.disarmed.store(true, Ordering::SeqCst);
        self.fired()
    }

    fn armed_for(from: &str, to: &str) -> Option<Stall> {
        STALLS.with(|s| {
            s.borrow()
                .iter()
                .find(|st| {
                    st.inner.from == from
                        && st.inner.to == to
                        && !st.fired()
                        && !st.inner.disarmed.load(Ordering::SeqCst)
                })
                .cloned()
        })
    }

    /// Does this write start the stall? Claims the stall if so (one connection only).
    fn catches(&self, buf: &[u8]) -> bool {
        let needle = &self.inner.needle;
        !needle.is_empty()
            && !self.inner.disarmed.load(Ordering::SeqCst)
            && buf.windows(needle.len()).any(|w| w == needle.as_slice())
            && self
                .inner
                .fired
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Hold `held` until the release, then write it to the peer and keep the connection open
    /// a while. Runs as a task of the sending host: if that host crashes, the bytes are lost.
    fn deliver_later(&self, mut write: turmoil::net::tcp::OwnedWriteHalf, held: Vec<u8>) {
        let stall = self.clone();
        let mut released = self.inner.released.subscribe();
        tokio::spawn(async move {
            if released.wait_for(|r| *r).await.is_err() {
                return;
            }
            if write.write_all(&held).await.is_ok() && write.flush().await.is_ok() {
                stall.inner.delivered.store(true, Ordering::SeqCst);
            }
            tokio::time::sleep(STALL_HOLD_OPEN).await;
            drop(write);
        });
    }
}

/// A message delivered twice (issue 9, "duplicated"): the first connection from host `from` to
/// host `to` whose bytes come to contain `needle` goes through as usual, and its bytes up to and
/// including that message are kept; [`Tap::duplicate`] sends them again, later, on a new
/// connection from `from`, so the receiver handles the same request a second time (a retry
/// whose first try had in fact arrived, or a message the network duplicated and delayed).
#[derive(Clone)]
pub struct Tap {
    inner: Arc<TapInner>,
}

struct TapInner {
    from: String,
    to: String,
    needle: Vec<u8>,
    caught: AtomicBool,
    /// Set by [`Tap::disarm`]: no connection is recorded any more.
    disarmed: AtomicBool,
    delivered: AtomicBool,
    go: tokio::sync::watch::Sender<bool>,
}

thread_local! {
    /// Taps armed in the simulation running on this thread.
    static TAPS: std::cell::RefCell<Vec<Tap>> = Default::default();
}

impl Tap {
    /// Arm a one-shot tap on the connections from `from` to `to` (turmoil host names).
    pub fn arm(from: &str, to: &str, needle: &[u8]) -> Tap {
        let tap = Tap {
            inner: Arc::new(TapInner {
                from: from.to_string(),
                to: to.to_string(),
                needle: needle.to_vec(),
                caught: AtomicBool::new(false),
                disarmed: AtomicBool::new(false),
                delivered: AtomicBool::new(false),
                go: tokio::sync::watch::channel(false).0,
            }),
        };
        TAPS.with(|t| t.borrow_mut().push(tap.clone()));
        tap
    }

    /// Forget every armed tap (a new simulation on this thread).
    pub fn disarm_all() {
        TAPS.with(|t| t.borrow_mut().clear());
    }

    /// Has a connection carried the message?
    pub fn caught(&self) -> bool {
        self.inner.caught.load(Ordering::SeqCst)
    }

    /// Did the duplicate reach the peer?
    pub fn delivered(&self) -> bool {
        self.inner.delivered.load(Ordering::SeqCst)
    }

    /// Send the kept bytes again, on a new connection.
    pub fn duplicate(&self) {
        self.inner.go.send_replace(true);
    }

    /// Record nothing from now on; true when a message was caught before.
    pub fn disarm(&self) -> bool {
        self.inner.disarmed.store(true, Ordering::SeqCst);
        self.caught()
    }

    fn armed_for(from: &str, to: &str) -> Option<Tap> {
        TAPS.with(|t| {
            t.borrow()
                .iter()
                .find(|tap| {
                    tap.inner.from == from
                        && tap.inner.to == to
                        && !tap.caught()
                        && !tap.inner.disarmed.load(Ordering::SeqCst)
                })
                .cloned()
        })
    }

    fn catches(&self, recorded: &[u8]) -> bool {
        let needle = &self.inner.needle;
        !needle.is_empty()
            && !self.inner.disarmed.load(Ordering::SeqCst)
            && recorded
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
            && self
                .inner
                .caught
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Wait for [`Tap::duplicate`], then dial `peer` and send `bytes`. A task of the sending
    /// host: it dies with it.
    fn duplicate_later(&self, peer: (String, u16), bytes: Vec<u8>) {
        let tap = self.clone();
        let mut go = self.inner.go.subscribe();
        tokio::spawn(async move {
            if go.wait_for(|g| *g).await.is_err() {
                return;
            }
            let Ok(stream) = turmoil::net::TcpStream::connect((peer.0.as_str(), peer.1)).await
            else {
                return;
            };
            // The read side stays open too: closing it early could reset the connection.
            let (read, mut write) = stream.into_split();
            if write.write_all(&bytes).await.is_ok() && write.flush().await.is_ok() {
                tap.inner.delivered.store(true, Ordering::SeqCst);
            }
            tokio::time::sleep(STALL_HOLD_OPEN).await;
            drop((read, write));
        });
    }
}

/// A connection that fails once its link is cut, and may stall (see [`Stall`]).
struct LinkStream {
    link: Link,
    /// "from -> host:port", for the trace.
    route: String,
    read: turmoil::net::tcp::OwnedReadHalf,
    /// `None` once a stall took the write side away: later writes are lost.
    write: Option<turmoil::net::tcp::OwnedWriteHalf>,
    stall: Option<Stall>,
    /// A tap still recording this connection's bytes, and what it recorded so far.
    tap: Option<(Tap, Vec<u8>)>,
    /// The host and port dialled (a tap's duplicate dials them again).
    peer: (String, u16),
}

impl LinkStream {
    fn check(&self) -> io::Result<()> {
        if self.link.is_cut() {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "grid link cut",
            ))
        } else {
            Ok(())
        }
    }
}

impl LinkStream {
    /// Feed a tap: once the bytes it waits for went out, it has the connection up to there.
    fn record(&mut self, sent: &[u8]) {
        let Some((tap, recorded)) = self.tap.as_mut() else {
            return;
        };
        recorded.extend_from_slice(sent);
        if tap.catches(recorded) {
            let (tap, recorded) = self.tap.take().expect("the tap is there");
            crate::trace::note(|| format!("tapped {} bytes on {}", recorded.len(), self.route));
            tap.duplicate_later(self.peer.clone(), recorded);
        }
    }
}

impl AsyncRead for LinkStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for LinkStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        if let Some(stall) = self.stall.clone() {
            if self.write.is_some() && stall.catches(buf) {
                crate::trace::note(|| format!("stalled {} bytes on {}", buf.len(), self.route));
                if let Some(write) = self.write.take() {
                    stall.deliver_later(write, buf.to_vec());
                }
                return Poll::Ready(Ok(buf.len()));
            }
        }
        let Some(write) = self.write.as_mut() else {
            // Behind a stalled message: lost, though the sender cannot tell.
            return Poll::Ready(Ok(buf.len()));
        };
        let written = Pin::new(write).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            let n = *n;
            crate::trace::bytes(&self.route, &buf[..n]);
            self.record(&buf[..n]);
        }
        written
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        match self.write.as_mut() {
            Some(write) => Pin::new(write).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.write.as_mut() {
            Some(write) => Pin::new(write).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// A simulated TCP stream a tonic server can serve.
pub struct SimStream(pub turmoil::net::TcpStream);

/// The turmoil host on the other end of an accepted connection. The simulated network's own
/// addressing is what proves a sender in a simulation, as a certificate does on a real grid.
#[derive(Debug, Clone)]
pub struct SimPeer(pub Option<String>);

impl Connected for SimStream {
    type ConnectInfo = SimPeer;
    fn connect_info(&self) -> SimPeer {
        SimPeer(
            self.0
                .peer_addr()
                .ok()
                .and_then(|a| turmoil::reverse_lookup(a.ip())),
        )
    }
}

/// The grid member a simulation host is (`c0`, `w8`, `a1`), if any.
pub fn member_of_host(host: &str) -> Option<Member> {
    let (kind, id) = host.split_at_checked(1)?;
    let id: u8 = id.parse().ok()?;
    match kind {
        "c" | "w" => Some(Member::Voter(id)),
        "a" => Some(Member::Agent(id)),
        _ => None,
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            if crate::trace::recording() {
                let name = |a: io::Result<std::net::SocketAddr>| {
                    a.map(|a| {
                        let host = turmoil::reverse_lookup(a.ip()).unwrap_or_default();
                        format!("{host}:{}", a.port())
                    })
                    .unwrap_or_default()
                };
                let (from, to) = (name(self.0.local_addr()), name(self.0.peer_addr()));
                crate::trace::bytes(&format!("{from} -> {to}"), &buf[..*n]);
            }
        }
        written
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Accepted connections of a simulated listener, as tonic's `serve_with_incoming` wants them.
pub fn incoming(listener: turmoil::net::TcpListener) -> impl Stream<Item = io::Result<SimStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| SimStream(stream));
        Some((accepted, listener))
    })
}
