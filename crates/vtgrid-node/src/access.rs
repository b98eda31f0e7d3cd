//! Who may call what on the host port (DESIGN §7, docs/security.md).
//!
//! A host client sends `authorization: Bearer <secret>`; the grid file lists each token as the
//! SHA-256 of its secret with a name and a [`Role`]. [`required_role`] is the one table of which
//! call needs which role, and [`HostAccess`] the one place that applies it: a tower layer in
//! front of every host-port service, so no handler can forget the check. It also writes the
//! audit record of every operator and service call (who, what, when, the result), to the
//! events stream and to `data_dir/audit.log`.
//!
//! A grid file with no `[[token]]` leaves the host port open (the embedded local grid, a lab);
//! the node says so once when it starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};
use tonic::Code;
use vtgrid_proto::pb::Reason;

/// What a token lets its holder do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A host's jobs: mount, write, read, sync, rewind-unload, change category; and every read
    /// of status and catalog (GetStatus, the readiness probe, needs no token at all).
    Host,
    /// Library operations: insert volumes, define categories and classes, quarantine, force
    /// demount.
    Operator,
    /// The service engineer's settings: takeover modes, service mode, readmitting a voter.
    Service,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "host" => Some(Role::Host),
            "operator" => Some(Role::Operator),
            "service" => Some(Role::Service),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Operator => "operator",
            Role::Service => "service",
        }
    }
}

/// What a host-port call needs, by its gRPC path (`/package.Service/Method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Health and reflection: open to anyone, so load balancers and tools can look.
    Nothing,
    Role(Role),
}

/// The one table of who may call what. A method not listed needs `service` (a new RPC is
/// closed until someone decides who may use it).
pub fn required_role(path: &str) -> Needs {
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return Needs::Role(Role::Service);
    };
    use Role::*;
    let role = match (service, method) {
        ("grpc.health.v1.Health", _)
        | ("grpc.reflection.v1.ServerReflection", _)
        | ("grpc.reflection.v1alpha.ServerReflection", _) => return Needs::Nothing,
        // The readiness probe of supervisors (`grid up`) and monitoring, like health: which
        // cluster this is, whether it is ready, who leads. No volume or job in it.
        ("vtgrid.v1.StatusService", "GetStatus") => return Needs::Nothing,
        // A witness serves its grid network and the public services on one port: the grid
        // calls there are the members' own, proved by their certificates (mTLS), not tokens.
        ("vtgrid.internal.v1.GridService", _) => return Needs::Nothing,
        ("vtgrid.v1.HostService", "Mount" | "Write" | "Read" | "Sync" | "RewindUnload")
        | ("vtgrid.v1.HostService", "ChangeCategory") => Host,
        (
            "vtgrid.v1.StatusService",
            "ListEvents" | "GetGridState" | "WatchEvents" | "ListCopyQueue",
        ) => Host,
        (
            "vtgrid.v1.AdminService",
            "ListVolumes"
            | "GetVolume"
            | "ListCategories"
            | "ListManagementClasses"
            | "ListQuarantine",
        ) => Host,
        (
            "vtgrid.v1.AdminService",
            "InsertVolumes"
            | "DefineCategory"
            | "DefineManagementClass"
            | "ReadQuarantined"
            | "DiscardQuarantined"
            | "ForceDemount",
        ) => Operator,
        ("vtgrid.v1.AdminService", "SetTakeoverMode" | "SetServiceState" | "Rejoin") => Service,
        _ => Service,
    };
    Needs::Role(role)
}

/// Who made a call, once its token checked out; in the request's extensions for the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// The tokens of a grid file, by the SHA-256 of their secrets.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: BTreeMap<String, Principal>,
}

impl Tokens {
    /// From validated `[[token]]` entries as (name, role, sha256); the grid file's own checks
    /// (`GridConfig::load`) have refused an unknown role or a malformed hash already.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> Tokens {
        let by_hash = entries
            .into_iter()
            .filter_map(|(name, role, sha256)| {
                let role = Role::parse(role)?;
                Some((
                    sha256.to_ascii_lowercase(),
                    Principal {
                        name: name.to_string(),
                        role,
                    },
                ))
            })
            .collect();
        Tokens { by_hash }
    }

    /// No token configured: the host port is open.
    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The holder of `secret`, if it is one of the grid's tokens.
    pub fn holder(&self, secret: &str) -> Option<&Principal> {
        self.by_hash.get(&sha256_hex(secret))
    }
}

/// SHA-256 of `secret` in lower-case hex: what a grid file stores for a token.
pub fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token secret (256 bits), `vtg_` and 64 hex digits.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("vtg_{hex}")
}

/// What [`decide`] says about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; the caller, when tokens are in use.
    Allow(Option<Principal>),
    /// UNAUTHENTICATED: no token, or not one of the grid's.
    Unauthenticated(&'static str),
    /// PERMISSION_DENIED: the token's role does not allow the call.
    Denied { caller: Principal, needs: Role },
}

/// The access rule for one call: the grid's tokens, the call's path, its `authorization` value.
pub fn decide(tokens: &Tokens, path: &str, authorization: Option<&str>) -> Decision {
    let needs = required_role(path);
    if tokens.is_open() {
        return Decision::Allow(None);
    }
    let caller = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .and_then(|secret| tokens.holder(secret));
    match (needs, caller) {
        (Needs::Nothing, caller) => Decision::Allow(caller.cloned()),
        (Needs::Role(_), None) if authorization.is_none() => {
            Decision::Unauthenticated("this grid needs a token: send `authorization: Bearer <secret>` (the CLI's --token or VTGRID_TOKEN)")
        }
        (Needs::Role(_), None) => Decision::Unauthenticated("the token is not one of this grid's"),
        (Needs::Role(needs), Some(caller)) if caller.role < needs => Decision::Denied {
            caller: caller.clone(),
            needs,
        },
        (Needs::Role(_), Some(caller)) => Decision::Allow(Some(caller.clone())),
    }
}

/// The durable audit log: one JSON line per operator or service call, fsynced before the next.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl AuditLog {
    /// `data_dir/audit.log`, opened for append (created when missing).
    pub fn open(data_dir: &Path) -> std::io::Result<AuditLog> {
        let path = data_dir.join("audit.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(AuditLog {
            path,
            file: Mutex::new(Some(file)),
        })
    }

    /// A log that keeps nothing (a witness, the simulation).
    pub fn none() -> AuditLog {
        AuditLog {
            path: PathBuf::new(),
            file: Mutex::new(None),
        }
    }

    /// Append one record and fsync it. A failure is logged, never a reason to refuse the call.
    pub fn append(&self, record: &AuditRecord) {
        use std::io::Write;
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let Some(file) = guard.as_mut() else { return };
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        if let Err(e) = file.write_all(&line).and_then(|_| file.sync_data()) {
            tracing::error!(path = %self.path.display(), error = %e, "audit log: record not written");
        }
    }
}

/// One audited call.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// Unix time in milliseconds.
    pub time_ms: u64,
    /// The token's name, or `-` on a grid without tokens.
    pub who: String,
    pub role: String,
    /// The gRPC method, `AdminService/DefineCategory`.
    pub what: String,
    /// `OK`, or the gRPC code and reason it was refused with.
    pub result: String,
}

/// The tower layer in front of the host router: [`decide`], then the call, then the audit.
#[derive(Clone)]
pub struct HostAccess {
    tokens: Arc<Tokens>,
    audit: Arc<dyn Fn(AuditRecord) + Send + Sync>,
}

impl HostAccess {
    /// `audit` gets the record of every operator and service call once its result is known.
    pub fn new(tokens: Tokens, audit: Arc<dyn Fn(AuditRecord) + Send + Sync>) -> HostAccess {
        HostAccess {
            tokens: Arc::new(tokens),
            audit,
        }
    }
}

impl<S> tower::Layer<S> for HostAccess {
    type Service = Authorized<S>;
    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized {
            inner,
            access: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authorized<S> {
    inner: S,
    access: HostAccess,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The result an audit record gives a response: grpc-status in the headers is a refusal (a
/// trailers-only response); none is a call that went ahead.
fn result_of<B>(response: &http::Response<B>) -> String {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from);
    match code {
        None | Some(Code::Ok) => "OK".to_string(),
        Some(code) => {
            let reason = response
                .headers()
                .get(vtgrid_proto::reason::REASON_METADATA)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            format!("{code:?} {reason}")
        }
    }
}

impl<S, B> tower::Service<http::Request<B>> for Authorized<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let decision = decide(&self.access.tokens, &path, authorization);
        let what = path
            .trim_start_matches('/')
            .trim_start_matches("vtgrid.v1.");
        let audited = matches!(required_role(&path), Needs::Role(r) if r >= Role::Operator);
        let record = |who: &str, role: &str, result: String| AuditRecord {
            time_ms: now_ms(),
            who: who.to_string(),
            role: role.to_string(),
            what: what.to_string(),
            result,
        };
        let refused = |status: tonic::Status| -> Self::Future {
            Box::pin(async move { Ok(status.into_http()) })
        };
        let caller = match decision {
            Decision::Allow(caller) => caller,
            Decision::Unauthenticated(why) => {
                tracing::warn!(call = %what, why, "refused: no valid token");
                if audited {
                    (self.access.audit)(record("-", "-", "Unauthenticated TOKEN_REQUIRED".into()));
                }
                return refused(vtgrid_proto::status_with_reason(
                    Code::Unauthenticated,
                    Reason::TokenRequired,
                    format!("{what}: {why}"),
                ));
            }
            Decision::Denied { caller, needs } => {
                tracing::warn!(call = %what, who = %caller.name, role = caller.role.as_str(), needs = needs.as_str(), "refused: role");
                if audited {
                    (self.access.audit)(record(
                        &caller.name,
                        caller.role.as_str(),
                        "PermissionDenied ROLE_REQUIRED".into(),
                    ));
                }
                return refused(vtgrid_proto::status_with_reason(
                    Code::PermissionDenied,
                    Reason::RoleRequired,
                    format!(
                        "{what} needs the {} role; token {:?} has {}",
                        needs.as_str(),
                        caller.name,
                        caller.role.as_str()
                    ),
                ));
            }
        };
        let (who, role) = match &caller {
            Some(p) => (p.name.clone(), p.role.as_str().to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        if let Some(p) = caller {
            request.extensions_mut().insert(p);
        }
        // `poll_ready` readied `self.inner`; the clone left behind takes the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !audited {
            return Box::pin(inner.call(request));
        }
        // The call runs in its own task, so its audit record is written even when the client
        // cancels and this future is dropped.
        let audit = self.access.audit.clone();
        let what = what.to_string();
        let task = tokio::spawn(async move {
            let response = inner.call(request).await;
            if let Ok(r) = &response {
                audit(AuditRecord {
                    time_ms: now_ms(),
                    who,
                    role,
                    what,
                    result: result_of(r),
                });
            }
            response
        });
        Box::pin(async move {
            match task.await {
                Ok(response) => response,
                Err(e) => Ok(tonic::Status::internal(format!("call task failed: {e}")).into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let hashes = [
            ("backup", "host", sha256_hex("h-secret")),
            ("ops", "operator", sha256_hex("o-secret")),
            ("ibm-ssr", "service", sha256_hex("s-secret")),
        ];
        Tokens::new(hashes.iter().map(|(n, r, h)| (*n, *r, h.as_str())))
    }

    #[test]
    fn a_grid_without_tokens_allows_every_call() {
        let open = Tokens::default();
        assert_eq!(
            decide(&open, "/vtgrid.v1.AdminService/SetTakeoverMode", None),
            Decision::Allow(None)
        );
    }

    #[test]
    fn each_role_gets_what_it_needs_and_no_more() {
        let t = tokens();
        let host = Some("Bearer h-secret");
        let op = Some("Bearer o-secret");
        let svc = Some("Bearer s-secret");
        let allowed = |path: &str, auth| matches!(decide(&t, path, auth), Decision::Allow(_));
        assert!(allowed("/vtgrid.v1.HostService/Mount", host));
        assert!(allowed("/vtgrid.v1.StatusService/GetStatus", None));
        assert!(allowed("/vtgrid.v1.StatusService/ListEvents", host));
        assert!(!allowed("/vtgrid.v1.StatusService/ListEvents", None));
        assert!(!allowed("/vtgrid.v1.AdminService/DefineCategory", host));
        assert!(allowed("/vtgrid.v1.AdminService/DefineCategory", op));
        assert!(allowed("/vtgrid.v1.HostService/Write", op));
        assert!(!allowed("/vtgrid.v1.AdminService/SetTakeoverMode", op));
        assert!(allowed("/vtgrid.v1.AdminService/SetTakeoverMode", svc));
        assert!(allowed("/grpc.health.v1.Health/Check", None));
    }

    #[test]
    fn a_missing_or_unknown_token_is_unauthenticated() {
        let t = tokens();
        let path = "/vtgrid.v1.HostService/Mount";
        assert!(matches!(
            decide(&t, path, None),
            Decision::Unauthenticated(_)
        ));
        assert!(matches!(
            decide(&t, path, Some("Bearer guess")),
            Decision::Unauthenticated(_)
        ));
        assert!(matches!(
            decide(&t, path, Some("h-secret")),
            Decision::Unauthenticated(_)
        ));
    }

    #[test]
    fn a_method_nobody_listed_needs_service() {
        assert_eq!(
            required_role("/vtgrid.v1.AdminService/SomethingNew"),
            Needs::Role(Role::Service)
        );
        assert_eq!(required_role("garbage"), Needs::Role(Role::Service));
    }

    #[test]
    fn every_public_method_is_in_the_table() {
        // Each method of the public services is named in `required_role` (not left to the
        // catch-all), checked against the compiled descriptor set.
        use prost::Message;
        let set =
            prost_types::FileDescriptorSet::decode(vtgrid_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut seen = 0;
        for file in &set.file {
            for service in &file.service {
                let full = format!("{}.{}", file.package(), service.name());
                for m in &service.method {
                    let path = format!("/{full}/{}", m.name());
                    let needs = required_role(&path);
                    let listed = match needs {
                        Needs::Role(Role::Service) => {
                            ["SetTakeoverMode", "SetServiceState", "Rejoin"].contains(&m.name())
                        }
                        Needs::Nothing => m.name() == "GetStatus",
                        _ => true,
                    };
                    assert!(listed, "{path} is not in access::required_role");
                    seen += 1;
                }
            }
        }
        assert!(seen >= 25, "only {seen} methods");
    }
}
