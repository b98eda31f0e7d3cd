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

/// Dials `HOST:PORT` on the simulated network (turmoil resolves host names).
#[derive(Debug, Clone, Copy, Default)]
pub struct SimConnector;

impl Connector for SimConnector {
    fn channel(&self, addr: &str) -> Channel {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|_| Endpoint::from_static("http://invalid-address.invalid:1"));
        endpoint
            .connect_timeout(Duration::from_secs(1))
            .connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
                let host = uri.host().unwrap_or_default().to_string();
                let port = uri.port_u16().unwrap_or(80);
                let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }))
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
        Pin::new(&mut self.0).poll_write(cx, buf)
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
