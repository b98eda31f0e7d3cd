//! Issue 13 on real processes: tokens and roles on the host port, mutual TLS and the sender
//! checks on the grid network, unguessable mount ids, the mount limit, the audit log.

use std::path::Path;
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};
use vtgrid_proto::internal::grid_service_client::GridServiceClient;
use vtgrid_proto::internal::RaftMessage;
use vtgrid_proto::pb::{self, Reason};
use vtgrid_proto::reason_of;
use vtgrid_tests::support::cli::CliCall;
use vtgrid_tests::support::grid_layout::GridLayout;
use vtgrid_tests::support::host::{
    assert_reason, channel, ok, read_volume, specific, write_volume,
};
use vtgrid_tests::support::payload::Payload;
use vtgrid_tests::support::ProcessGrid;

/// The secrets of the test grid's tokens, and the `[[token]]` entries for them.
const HOST_SECRET: &str = "vtg_host_secret_for_tests";
const OPERATOR_SECRET: &str = "vtg_operator_secret_for_tests";
const SERVICE_SECRET: &str = "vtg_service_secret_for_tests";

fn sha256_hex(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn token_toml() -> String {
    [
        ("backup-host", "host", HOST_SECRET),
        ("ops", "operator", OPERATOR_SECRET),
        ("ssr", "service", SERVICE_SECRET),
    ]
    .iter()
    .map(|(name, role, secret)| {
        format!(
            "\n[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            sha256_hex(secret)
        )
    })
    .collect()
}

/// What each role may call, written out here (not read from the node's table): every public
/// method must be in exactly one list, so a new RPC fails this test until someone decides.
const OPEN_CALLS: &[&str] = &["GetStatus"];
const HOST_CALLS: &[&str] = &[
    "Mount",
    "Write",
    "Read",
    "Sync",
    "RewindUnload",
    "ChangeCategory",
    "ListEvents",
    "GetGridState",
    "WatchEvents",
    "ListCopyQueue",
    "ListVolumes",
    "GetVolume",
    "ListCategories",
    "ListManagementClasses",
    "ListQuarantine",
];
const OPERATOR_CALLS: &[&str] = &[
    "InsertVolumes",
    "DefineCategory",
    "DefineManagementClass",
    "ReadQuarantined",
    "DiscardQuarantined",
    "ForceDemount",
];
const SERVICE_CALLS: &[&str] = &["SetTakeoverMode", "SetServiceState", "Rejoin"];

/// Every method of the public services: (path, level: 0 open, 1 host, 2 operator, 3 service).
fn public_methods() -> Vec<(String, u8)> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(vtgrid_proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let mut out = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for m in &service.method {
                let name = m.name();
                let level = [OPEN_CALLS, HOST_CALLS, OPERATOR_CALLS, SERVICE_CALLS]
                    .iter()
                    .position(|list| list.contains(&name))
                    .unwrap_or_else(|| panic!("{name} is in no role's list of this test"));
                out.push((
                    format!("/{}.{}/{}", file.package(), service.name(), name),
                    level as u8,
                ));
            }
        }
    }
    out
}

/// Call `path` with an empty request (and `token`), as any generic client could. Ok: the call
/// got past the access check (whatever the handler then said of the empty request).
async fn call_empty(channel: Channel, path: &str, token: Option<&str>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(futures::stream::iter([()]));
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::try_from(path.to_string()).expect("a path");
    let call = async {
        let mut stream = grpc.streaming(request, path, codec).await?.into_inner();
        stream.message().await.map(|_| ())
    };
    // A watch that got in streams for as long as it is let: it was allowed.
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// Refused by the access layer (not by the handler's own checks).
fn refused_by_access(result: &Result<(), Status>) -> Option<(Code, Option<Reason>)> {
    match result {
        Err(s)
            if s.code() == Code::Unauthenticated
                || (s.code() == Code::PermissionDenied
                    && reason_of(s) == Some(Reason::RoleRequired)) =>
        {
            Some((s.code(), reason_of(s)))
        }
        _ => None,
    }
}

/// Sequence: one cluster whose grid file lists a host, an operator and a service token → every
/// public RPC is called with no token, a wrong one, and each of the three → no token and a wrong
/// token are UNAUTHENTICATED TOKEN_REQUIRED everywhere but GetStatus (the readiness probe); each role gets past the check exactly
/// for the calls of its level and below, and PERMISSION_DENIED ROLE_REQUIRED for the rest;
/// health stays open → an operator's DefineCategory is in the audit log and the events, a
/// host's refused attempt at it too.
#[tokio::test(flavor = "multi_thread")]
async fn each_token_gets_exactly_what_its_role_allows() {
    let grid = ProcessGrid::start_configured(1, 0, false, |layout| {
        layout.extra_toml.push_str(&token_toml());
    })
    .await;
    let endpoint = grid.endpoint(0);
    let ch = channel(&endpoint).await.expect("connect");
    let methods = public_methods();
    assert!(methods.len() >= 25, "only {} methods", methods.len());
    for (path, level) in &methods {
        for (who, token) in [("no token", None), ("a wrong token", Some("vtg_guess"))] {
            let result = call_empty(ch.clone(), path, token).await;
            if *level == 0 {
                assert_eq!(
                    refused_by_access(&result),
                    None,
                    "{path} with {who}: {result:?}"
                );
                continue;
            }
            let status =
                assert_reason(result, Reason::TokenRequired, &format!("{path} with {who}"));
            assert_eq!(status.code(), Code::Unauthenticated, "{path} with {who}");
        }
        for (role_level, role, secret) in [
            (1u8, "host", HOST_SECRET),
            (2, "operator", OPERATOR_SECRET),
            (3, "service", SERVICE_SECRET),
        ] {
            let result = call_empty(ch.clone(), path, Some(secret)).await;
            let refused = refused_by_access(&result);
            if role_level >= *level {
                assert_eq!(refused, None, "{path} with the {role} token: {result:?}");
            } else {
                assert_eq!(
                    refused,
                    Some((Code::PermissionDenied, Some(Reason::RoleRequired))),
                    "{path} with the {role} token: {result:?}"
                );
            }
        }
    }
    // Health and reflection need no token (load balancers and tools).
    let health = call_empty(ch.clone(), "/grpc.health.v1.Health/Check", None).await;
    assert!(health.is_ok(), "health without a token: {health:?}");

    // An operator's definition goes through and is audited; so is the host's refused try.
    let define = |token: &'static str| {
        CliCall::new(&[
            "--endpoint",
            &endpoint,
            "--token",
            token,
            "category",
            "define",
            "00A0",
            "--name",
            "AUDITED",
        ])
        .run()
    };
    let refused = define(HOST_SECRET).await;
    assert_eq!(
        refused.code(),
        Some(2),
        "a host defines a category: {}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("ROLE_REQUIRED"),
        "{}",
        refused.stderr
    );
    define(OPERATOR_SECRET).await.assert_success();
    let audit = std::fs::read_to_string(grid.voter(0).data_dir.join("audit.log"))
        .expect("the audit log exists");
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect();
    let of = |who: &str, result: &str| {
        records.iter().any(|r| {
            r["who"] == who && r["what"] == "AdminService/DefineCategory" && r["result"] == result
        })
    };
    assert!(of("ops", "OK"), "the operator's define is audited: {audit}");
    assert!(
        of("backup-host", "PermissionDenied ROLE_REQUIRED"),
        "the host's refused define is audited: {audit}"
    );
    let events = CliCall::new(&["--endpoint", &endpoint, "--token", HOST_SECRET, "events"])
        .run()
        .await;
    assert!(
        events.stdout.contains("AUDIT")
            && events
                .stdout
                .contains("ops (operator) called AdminService/DefineCategory: OK"),
        "the audit event: {}",
        events.stdout
    );
}

/// Sequence: a job mounted with the host token → its id carries 128 bits (32 hex digits after
/// the cluster) → another token (the operator's) cannot write, read, sync or unload it
/// (NOT_YOUR_MOUNT) → the holder unloads it.
#[tokio::test(flavor = "multi_thread")]
async fn a_mount_id_is_unguessable_and_bound_to_its_token() {
    let grid = ProcessGrid::start_configured(1, 0, false, |layout| {
        layout.extra_toml.push_str(&token_toml());
    })
    .await;
    let with = |token: &str, ch: Channel| {
        let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        pb::host_service_client::HostServiceClient::with_interceptor(
            ch,
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", value.clone());
                Ok(r)
            },
        )
    };
    let ch = channel(&grid.endpoint(0)).await.expect("connect");
    let mut admin = pb::admin_service_client::AdminServiceClient::with_interceptor(
        ch.clone(),
        |mut r: tonic::Request<()>| {
            r.metadata_mut().insert(
                "authorization",
                format!("Bearer {OPERATOR_SECRET}").parse().unwrap(),
            );
            Ok(r)
        },
    );
    ok(
        admin
            .insert_volumes(pb::InsertVolumesRequest {
                range: "A00000-A00009".into(),
                category: String::new(),
            })
            .await,
        "insert",
    );
    let mut host = with(HOST_SECRET, ch.clone());
    let mut other = with(OPERATOR_SECRET, ch.clone());
    let mounted = ok(host.mount(specific("A00001")).await, "mount").into_inner();
    let (cluster, bits) = mounted.mount_id.rsplit_once('-').expect("CLUSTER-BITS");
    assert_eq!(cluster, "C0", "{}", mounted.mount_id);
    assert!(
        bits.len() == 32 && bits.bytes().all(|b| b.is_ascii_hexdigit()),
        "128 random bits: {}",
        mounted.mount_id
    );
    let id = mounted.mount_id.clone();
    assert_reason(
        other
            .sync(pb::SyncRequest {
                mount_id: id.clone(),
            })
            .await,
        Reason::NotYourMount,
        "another token syncs the job",
    );
    assert_reason(
        other
            .read(pb::ReadRequest {
                mount_id: id.clone(),
            })
            .await
            .map(|_| ()),
        Reason::NotYourMount,
        "another token reads the job",
    );
    assert_reason(
        other
            .rewind_unload(pb::RewindUnloadRequest {
                mount_id: id.clone(),
            })
            .await,
        Reason::NotYourMount,
        "another token unloads the job",
    );
    ok(
        host.rewind_unload(pb::RewindUnloadRequest { mount_id: id })
            .await,
        "the holder unloads it",
    );
}

/// Sequence: a cluster with `[limits] max_mounts = 2` → two jobs mount → a third is refused
/// NO_DEVICE_AVAILABLE (RESOURCE_EXHAUSTED) → one unloads → the third mounts; an insert over
/// `max_insert_per_call` is LIMIT_EXCEEDED and inserts nothing.
#[tokio::test(flavor = "multi_thread")]
async fn mounts_stop_at_the_virtual_drives_and_inserts_at_their_limit() {
    let grid = ProcessGrid::start_configured(1, 0, false, |layout| {
        layout
            .extra_toml
            .push_str("\n[limits]\nmax_mounts = 2\nmax_insert_per_call = 100\n");
    })
    .await;
    grid.insert(0, "A00000-A00009", "").await;
    let mut host = grid.host(0).await;
    let a = ok(host.mount(specific("A00000")).await, "mount 1").into_inner();
    let _b = ok(host.mount(specific("A00001")).await, "mount 2").into_inner();
    let refused = assert_reason(
        host.mount(specific("A00002")).await,
        Reason::NoDeviceAvailable,
        "a third mount",
    );
    assert_eq!(refused.code(), Code::ResourceExhausted);
    ok(
        host.rewind_unload(pb::RewindUnloadRequest {
            mount_id: a.mount_id,
        })
        .await,
        "unload 1",
    );
    ok(
        host.mount(specific("A00002")).await,
        "the third mount, once a drive is free",
    );

    let mut admin = grid.admin(0).await;
    assert_reason(
        admin
            .insert_volumes(pb::InsertVolumesRequest {
                range: "B00000-B00100".into(),
                category: String::new(),
            })
            .await,
        Reason::LimitExceeded,
        "an insert of 101 volumes",
    );
    let listed = grid.list_volumes(0).await;
    assert!(
        listed.iter().all(|v| !v.volser.starts_with('B')),
        "nothing of the refused insert was inserted"
    );
}

/// Make the grid's certificates for `layout` (its grid file with `[tls] dir = <dir>`).
fn make_certs(layout: &mut GridLayout, dir: &Path) {
    let file = dir.with_extension("toml");
    layout
        .extra_toml
        .push_str(&format!("\n[tls]\ndir = {:?}\n", dir.display().to_string()));
    std::fs::write(&file, layout.to_toml()).expect("write the grid file for certs");
    CliCall::new(&["certs", "init", "--config", &file.display().to_string()])
        .run_blocking()
        .assert_success();
}

/// A grid-network client presenting `stem`'s certificate from `dir` (trusting that dir's CA),
/// dialling the member named `server_name`.
async fn grid_client(
    addr: std::net::SocketAddr,
    dir: &Path,
    stem: &str,
    server_name: &str,
) -> Result<GridServiceClient<Channel>, tonic::transport::Error> {
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(
            read(&format!("{stem}.pem")),
            read(&format!("{stem}.key")),
        ))
        .domain_name(server_name);
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("an address")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await?;
    Ok(GridServiceClient::new(channel))
}

fn raft_message(json: serde_json::Value) -> RaftMessage {
    RaftMessage {
        json: serde_json::to_vec(&json).expect("json").into(),
    }
}

/// Sequence: two clusters with mutual TLS from `vtgrid certs init` → a version written at C0
/// reads back at C1 (ownership moved and bytes copied over TLS) → at C0's grid port: a client
/// with another grid's certificate cannot even connect, nor can plain TCP; C1's certificate
/// proposing a Transfer that speaks for C0 is SENDER_REFUSED, and so is a Vote naming C0 as
/// its candidate; the agent's certificate sending AppendEntries (not a voter) is SENDER_REFUSED.
/// C1's certificate asking its own Ping works.
#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_keeps_strangers_out_and_senders_honest() {
    let root = tempfile::tempdir().expect("temp dir");
    let certs = root.path().join("certs");
    let certs_for_closure = certs.clone();
    let grid = ProcessGrid::start_configured(2, 0, false, move |layout| {
        make_certs(layout, &certs_for_closure);
    })
    .await;
    grid.wait_for_leader(&[0, 1], Duration::from_secs(60)).await;
    grid.insert(0, "A00000-A00009", "").await;
    let payload = Payload::mib(2, 1, 3);
    write_volume(&mut grid.host(0).await, "A00001", payload).await;
    let data = read_volume(&mut grid.host(1).await, "A00001").await;
    assert!(
        data == payload.to_vec(),
        "A00001 reads back at C1 over the TLS grid network"
    );

    let c0_grid = grid.voter(0).grid;
    let c0_name = "m0.proc-grid.vtgrid";

    // Another grid: its own CA and names.
    let other = root.path().join("other");
    let mut other_layout = grid.layout().clone();
    other_layout.name = "other-grid".into();
    other_layout.extra_toml.clear();
    make_certs(&mut other_layout, &other);
    let stranger = match grid_client(c0_grid, &other, "m1", c0_name).await {
        Err(e) => Err(Status::unavailable(e.to_string())),
        Ok(mut c) => c
            .ping(vtgrid_proto::internal::PingRequest { from_cluster: 1 })
            .await
            .map(|_| ()),
    };
    assert!(
        stranger.is_err(),
        "another grid's certificate must not reach C0: {stranger:?}"
    );
    let plain = async {
        let ch = Endpoint::from_shared(format!("http://{c0_grid}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        GridServiceClient::new(ch)
            .ping(vtgrid_proto::internal::PingRequest { from_cluster: 1 })
            .await
            .map(|_| ())
    };
    let plain = tokio::time::timeout(Duration::from_secs(10), plain).await;
    assert!(
        !matches!(plain, Ok(Ok(()))),
        "plain TCP must not reach a TLS grid port: {plain:?}"
    );

    let mut c1 = grid_client(c0_grid, &certs, "m1", c0_name)
        .await
        .expect("C1's certificate connects");
    ok(
        c1.ping(vtgrid_proto::internal::PingRequest { from_cluster: 1 })
            .await,
        "C1 pings C0",
    );
    let transfer = serde_json::to_value(vtgrid_core::CatalogCommand::Transfer {
        volser: "A00002".parse().unwrap(),
        from: vtgrid_core::ClusterId::new(0).unwrap(),
        to: vtgrid_core::ClusterId::new(1).unwrap(),
        epoch: vtgrid_core::Epoch(1),
    })
    .unwrap();
    let refused = assert_reason(
        c1.propose(raft_message(transfer)).await,
        Reason::SenderRefused,
        "C1 proposes a Transfer from C0",
    );
    assert_eq!(refused.code(), Code::PermissionDenied);
    let vote = serde_json::json!({
        "vote": {"leader_id": {"term": 99, "node_id": 0}, "committed": false},
        "last_log_id": null
    });
    assert_reason(
        c1.vote(raft_message(vote)).await,
        Reason::SenderRefused,
        "C1 asks for votes as C0",
    );
    let mut agent = grid_client(c0_grid, &certs, "a1", c0_name)
        .await
        .expect("the agent's certificate is the grid's");
    assert_reason(
        agent
            .append_entries(raft_message(serde_json::json!({})))
            .await,
        Reason::SenderRefused,
        "an agent sends AppendEntries",
    );
    let volume = grid.list_volumes(0).await;
    let a2 = volume
        .iter()
        .find(|v| v.volser == "A00002")
        .expect("A00002");
    assert_eq!(a2.owner, 0, "the refused Transfer moved nothing");
}

/// Sequence: a one-cluster grid file on loopback with `[tls] dir = "certs"`, `host = true` and
/// no certificates yet → `vtgrid grid up FILE` makes the CA and the member's certificates
/// (saying so) and comes up → `vtgrid status` over https with `--ca certs/ca.pem` answers; the
/// same over plain http does not; an insert through the CLI with the CA works → the same file
/// with the cluster's host address off loopback and no certificates: `grid up` refuses and
/// names `vtgrid certs init`, making nothing.
#[tokio::test(flavor = "multi_thread")]
async fn grid_up_makes_a_loopback_grids_certificates_and_serves_the_host_port_over_tls() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut layout = GridLayout::on_free_ports(root.path(), 1, 0);
    layout
        .extra_toml
        .push_str("\n[tls]\ndir = \"certs\"\nhost = true\n");
    let file = root.path().join("grid.toml");
    std::fs::write(&file, layout.to_toml()).expect("write the grid file");
    let log_path = root.path().join("grid-up.log");
    let log = std::fs::File::create(&log_path).expect("create the log");
    let mut child = tokio::process::Command::new(vtgrid_tests::support::cli::vtgrid_bin())
        .arg("grid")
        .arg("up")
        .arg(&file)
        .current_dir(root.path())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn grid up");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("is up:") {
            break;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("grid up exited with {status}:\n{text}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "grid up did not come up within 60 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = std::fs::read_to_string(&log_path).expect("read the log");
    assert!(
        text.contains("made a CA"),
        "grid up says it made the certificates:\n{text}"
    );
    for f in ["ca.pem", "ca.key", "m0.pem", "m0.key", "a0.pem", "a0.key"] {
        assert!(
            root.path().join("certs").join(f).exists(),
            "certs/{f} was made"
        );
    }

    let host = layout.voters[0].host.expect("a data cluster");
    let ca = root.path().join("certs/ca.pem").display().to_string();
    let https = format!("https://{host}");
    let status = CliCall::new(&["--endpoint", &https, "--ca", &ca, "status"])
        .run()
        .await;
    status.assert_success();
    let insert = CliCall::new(&[
        "--endpoint",
        &https,
        "--ca",
        &ca,
        "volume",
        "insert",
        "T00000-T00004",
    ])
    .run()
    .await;
    insert.assert_success();
    let plain = CliCall::new(&["--endpoint", &format!("http://{host}"), "status"])
        .timeout(Duration::from_secs(30))
        .run()
        .await;
    assert!(
        plain.code() != Some(0),
        "plain http must not reach a TLS host port"
    );
    child.kill().await.expect("stop grid up");

    // Off loopback, certificates are made on purpose: grid up refuses to invent a CA.
    let other = tempfile::tempdir().expect("temp dir");
    let mut far = GridLayout::on_free_ports(other.path(), 1, 0);
    let far_certs = other.path().join("certs");
    far.extra_toml.push_str(&format!(
        "\n[tls]\ndir = {:?}\n",
        far_certs.display().to_string()
    ));
    let far_file = other.path().join("grid.toml");
    let toml = far.to_toml().replace(
        &far.voters[0].host.expect("host").to_string(),
        "192.0.2.10:7400",
    );
    std::fs::write(&far_file, toml).expect("write the far grid file");
    let refused = CliCall::new(&["grid", "up", &far_file.display().to_string()])
        .timeout(Duration::from_secs(30))
        .run()
        .await;
    assert!(
        refused.code() != Some(0),
        "grid up of a far grid without certificates fails"
    );
    assert!(
        refused.stderr.contains("certs init"),
        "the refusal names `vtgrid certs init`: {}",
        refused.stderr
    );
    assert!(
        !far_certs.join("ca.pem").exists(),
        "grid up made no CA off loopback"
    );
}
