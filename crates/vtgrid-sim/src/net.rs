//! tonic over turmoil's simulated TCP.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};
use vtgrid_node::transport::Connector;

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
                    let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
                    let route = format!("{from} -> {host}:{port}");
                    Ok::<_, io::Error>(TokioIo::new(LinkStream {
                        link,
                        route,
                        stream,
                    }))
                }
            }))
    }
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

    /// Forget every cut link (a new simulation on this thread).
    pub fn repair_all() {
        CUT.with(|c| c.borrow_mut().clear());
    }
}

/// A connection that fails once its link is cut.
struct LinkStream {
    link: Link,
    /// "from -> host:port", for the trace.
    route: String,
    stream: turmoil::net::TcpStream,
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

impl AsyncRead for LinkStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LinkStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            crate::trace::bytes(&self.route, &buf[..*n]);
        }
        written
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A simulated TCP stream a tonic server can serve.
pub struct SimStream(pub turmoil::net::TcpStream);

impl Connected for SimStream {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
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
