//! Mutual TLS between grid members (rustls through tonic).
//!
//! Each member loads the grid's CA certificate and its own certificate and key from the grid's
//! TLS directory ([`crate::certs`] writes them). As a client it dials `https://ADDR` and checks
//! that the server there holds a certificate of the grid's CA naming the member the grid file
//! puts at that address ([`crate::names`]); as a server it asks every client for a certificate of
//! the same CA, and [`GridTls::identify`] turns the one it got into a [`Sender`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};
use thiserror::Error;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};

use crate::connector::{Connector, Sender, CONNECT_TIMEOUT, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
use crate::names::{file_stem, member_name, Member};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("reading {path}: {source} (make the grid's certificates with `vtgrid certs init --config FILE`)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM certificate")]
    NotPem { path: PathBuf },
    #[error("{path} names {found:?}, but this is {expected:?} of this grid: the file belongs to another member or another grid")]
    WrongName {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

/// The TLS material and names of one member of a grid.
#[derive(Clone)]
pub struct GridTls {
    ca: Certificate,
    identity: Identity,
    /// The certificate name the grid file puts at each grid or heartbeat address.
    server_names: BTreeMap<String, String>,
    /// Every member of the grid by its certificate name, to identify a client.
    members: Vec<(String, Member)>,
}

impl std::fmt::Debug for GridTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridTls")
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The DER of the first certificate in a PEM text.
fn first_der(pem: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|_| TlsError::NotPem {
            path: path.to_path_buf(),
        })
}

impl GridTls {
    /// Load member `me`'s certificate and key and the grid's CA from `dir`; `addresses` are the
    /// grid file's grid and heartbeat addresses with the member serving each one.
    pub fn load(
        dir: &Path,
        grid_name: &str,
        me: Member,
        addresses: impl IntoIterator<Item = (String, Member)>,
    ) -> Result<GridTls, TlsError> {
        let ca = read(&dir.join(crate::certs::CA_CERT))?;
        let cert_path = dir.join(format!("{}.pem", file_stem(me)));
        let cert = read(&cert_path)?;
        let key = read(&dir.join(format!("{}.key", file_stem(me))))?;
        let addresses: Vec<(String, Member)> = addresses.into_iter().collect();
        let mut members: Vec<(String, Member)> = addresses
            .iter()
            .map(|(_, m)| (member_name(grid_name, *m), *m))
            .collect();
        members.sort();
        members.dedup();
        let tls = GridTls {
            ca: Certificate::from_pem(&ca),
            identity: Identity::from_pem(&cert, &key),
            server_names: addresses
                .into_iter()
                .map(|(addr, m)| (addr, member_name(grid_name, m)))
                .collect(),
            members,
        };
        // A member started with another member's files (or another grid's) fails here, not at
        // its peers' handshakes.
        let expected = member_name(grid_name, me);
        let der = first_der(&cert, &cert_path)?;
        match tls.identify_der(&der) {
            Sender::Member(m) if m == me => Ok(tls),
            other => Err(TlsError::WrongName {
                path: cert_path,
                expected,
                found: match other {
                    Sender::Member(m) => format!("{m:?}"),
                    Sender::Stranger(s) => s,
                    Sender::Unverified => "nothing".into(),
                },
            }),
        }
    }

    /// A grid or heartbeat listener: TLS with a client certificate of the grid's CA required.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// The host listener when `[tls] host = true`: the member's certificate, no client
    /// certificate asked (hosts authenticate with tokens).
    pub fn host_server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone())
    }

    /// Which member of the grid a client certificate (already checked against the grid's CA by
    /// rustls) names. A certificate valid for no member's name, or for more than one, is a
    /// stranger's.
    pub fn identify_der(&self, der: &[u8]) -> Sender {
        let cert_der = CertificateDer::from(der);
        let Ok(cert) = webpki::EndEntityCert::try_from(&cert_der) else {
            return Sender::Stranger("a certificate that does not parse".into());
        };
        let named: Vec<Member> = self
            .members
            .iter()
            .filter(|(name, _)| {
                ServerName::try_from(name.as_str())
                    .is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok())
            })
            .map(|(_, m)| *m)
            .collect();
        match named.as_slice() {
            [one] => Sender::Member(*one),
            [] => Sender::Stranger("a certificate naming no member of this grid".into()),
            _ => Sender::Stranger("a certificate naming several members".into()),
        }
    }

    /// The sender of a request that arrived over one of this member's TLS listeners.
    pub fn identify(&self, request: &http::Extensions) -> Sender {
        let certs = request
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs());
        match certs.as_deref().and_then(|c| c.first()) {
            Some(cert) => self.identify_der(cert.as_ref()),
            None => Sender::Stranger("no client certificate".into()),
        }
    }

    /// The CA certificate, for a client of the host listener.
    pub fn ca(&self) -> Certificate {
        self.ca.clone()
    }
}

/// Mutual TLS over TCP: every channel presents this member's certificate and checks the server's.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    tls: Arc<GridTls>,
}

impl TlsConnector {
    pub fn new(tls: GridTls) -> TlsConnector {
        TlsConnector { tls: Arc::new(tls) }
    }
}

impl Connector for TlsConnector {
    fn channel(&self, addr: &str) -> Channel {
        // An address the grid file does not name has no expected name; the handshake then
        // fails on a name no certificate carries.
        let name = self
            .tls
            .server_names
            .get(addr)
            .cloned()
            .unwrap_or_else(|| "unknown-member.invalid".to_string());
        let tls = ClientTlsConfig::new()
            .ca_certificate(self.tls.ca.clone())
            .identity(self.tls.identity.clone())
            .domain_name(name);
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .unwrap_or_else(|_| Endpoint::from_static("https://invalid-address.invalid:1"));
        let endpoint = match endpoint.tls_config(tls) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(%addr, error = %e, "TLS client configuration");
                Endpoint::from_static("https://invalid-address.invalid:1")
            }
        };
        endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy()
    }

    fn sender(&self, request: &http::Extensions) -> Sender {
        self.tls.identify(request)
    }
}
