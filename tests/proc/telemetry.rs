//! Observability of a real node (DESIGN §7): spans exported over OTLP when the grid file names a
//! collector, and Prometheus text metrics that follow host jobs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio_stream::wrappers::TcpListenerStream;
use vtgrid_tests::support::host::{ok, scratch, write_job, write_volume};
use vtgrid_tests::support::{
    wait_for, wait_until, GridOptions, Payload, ProcessGrid, TestGrid, MIB, SCRATCH_CATEGORY,
    STANDARD_CLASS,
};

/// A collector that remembers `(service.name, span name)` of every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, String)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("collector lock");
        for rs in &request.get_ref().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    spans.push((service.clone(), span.name.clone()));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Sequence: a stub OTLP collector listens on loopback → a node starts with
/// `otlp_endpoint` pointing at it → a host job mounts, writes and rewind-unloads → the node stops
/// (SIGTERM flushes buffered spans) → the collector holds `mount` and `rewind_unload` spans from
/// service `vtgrid-C0`. (Two runtime threads: `stop` blocks one while the collector serves.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_endpoint_in_the_grid_file_exports_host_job_spans() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the collector");
    let addr = listener.local_addr().expect("collector address");
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let mut grid = TestGrid::start_with(GridOptions {
        otlp_endpoint: Some(format!("http://{addr}")),
        ..GridOptions::default()
    })
    .await;
    grid.insert("B00000-B00001", SCRATCH_CATEGORY).await;
    let mut host = grid.host().await;
    write_volume(&mut host, "B00000", Payload::new(5, 4096)).await;
    grid.stop();

    let seen = |name: &'static str| {
        let spans = collector.spans.clone();
        move || {
            let hit = spans
                .lock()
                .expect("collector lock")
                .iter()
                .any(|(s, n)| s == "vtgrid-C0" && n == name);
            async move { hit }
        }
    };
    wait_until(
        "a mount span from vtgrid-C0",
        Duration::from_secs(30),
        seen("mount"),
    )
    .await;
    wait_until(
        "a rewind_unload span from vtgrid-C0",
        Duration::from_secs(30),
        seen("rewind_unload"),
    )
    .await;
    server.abort();
}

/// GET `path` on `addr` over HTTP/1.1 and return the body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics address");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "metrics answered: {response}"
    );
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Sequence: a node starts → `/metrics` shows no unloads → a host job writes 3000 bytes → the
/// scrape shows one unload, 3000 written bytes, two volumes in the catalog, the node as leader.
#[tokio::test]
async fn metrics_endpoint_serves_prometheus_text_that_follows_host_jobs() {
    let grid = TestGrid::start().await;
    let addr = grid.grid_file().metrics;
    let before = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .expect("scrape");
    assert_eq!(
        metric(&before, "vtgrid_unloads_total"),
        Some(0.0),
        "{before}"
    );
    grid.insert("M00000-M00001", SCRATCH_CATEGORY).await;
    let mut host = grid.host().await;
    write_volume(&mut host, "M00001", Payload::new(9, 3000)).await;
    let after = tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .expect("scrape");
    assert_eq!(metric(&after, "vtgrid_unloads_total"), Some(1.0), "{after}");
    assert_eq!(
        metric(&after, "vtgrid_host_written_bytes_total"),
        Some(3000.0),
        "{after}"
    );
    assert_eq!(metric(&after, "vtgrid_volumes"), Some(2.0), "{after}");
    assert_eq!(
        metric(&after, "vtgrid_raft_is_leader"),
        Some(1.0),
        "{after}"
    );
    assert!(after.contains("# HELP vtgrid_mounts "), "{after}");
    for priority in COPY_PRIORITIES {
        assert_eq!(
            metric(&after, &series("vtgrid_copy_queue_depth", priority)),
            Some(0.0),
            "a lone cluster owes no copies: {after}"
        );
    }
}

/// The copy priorities as the queue gauges label them.
const COPY_PRIORITIES: [&str; 4] = [
    "immediate",
    "sync-deferred",
    "immediate-deferred",
    "deferred",
];

/// `name{priority="p"}`.
fn series(name: &str, priority: &str) -> String {
    format!("{name}{{priority=\"{priority}\"}}")
}

/// Scrape `addr` on a blocking thread.
async fn scrape(addr: std::net::SocketAddr) -> String {
    tokio::task::spawn_blocking(move || http_get(addr, "/metrics"))
        .await
        .expect("scrape")
}

/// The copy-queue gauges per priority (DESIGN §7) follow a deferred backlog on their own, with no
/// `ListCopyQueue` call: queued copies show up with their bytes and age, and drain to zero while
/// the copied-bytes counter adds up to what was copied.
///
/// Sequence: two clusters, STANDARD = RUN at C0 and Deferred to C1, a copy throttle of 1 MiB/s
/// one copy at a time → three 2 MiB volumes written at C0 → C1's scrape shows
/// `copy_queue_depth{priority="deferred"}` ≥ 1 with bytes a whole number of volumes and a sane
/// age, and the other priorities at 0 → C1's scrape shows the deferred queue at 0 depth and 0
/// bytes, `copies_total` 3 and `copied_bytes_total` 6 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn copy_queue_gauges_per_priority_follow_a_deferred_backlog_until_it_drains() {
    const VOLUMES: u64 = 3;
    const SIZE: u64 = 2 * MIB;
    let grid = ProcessGrid::start_configured(2, 0, false, |layout| {
        layout.management_classes = Some(format!(
            "[[management_class]]\nname = \"{STANDARD_CLASS}\"\ncopy_modes = {{ C0 = \"RD\", C1 = \"NR\" }}\n"
        ));
        layout.extra_toml = format!("\n[copy]\nbytes_per_sec = {MIB}\nconcurrency = 1\n");
    })
    .await;
    let metrics = grid.voter(1).metrics.expect("C1 serves metrics");
    grid.insert(0, "Q00000-Q00009", SCRATCH_CATEGORY).await;
    let mut host = grid.host(0).await;
    for seed in 0..VOLUMES {
        let done = ok(
            write_job(
                &mut host,
                scratch(SCRATCH_CATEGORY, STANDARD_CLASS),
                Payload::new(seed, SIZE),
            )
            .await,
            "write a deferred-copy volume at C0",
        );
        assert!(done.written, "{done:?}");
    }

    let deferred = |name: &str| series(name, "deferred");
    let backlog = wait_for(
        "C1's metrics to show a deferred copy waiting",
        Duration::from_secs(30),
        || async {
            let text = scrape(metrics).await;
            let depth = metric(&text, &deferred("vtgrid_copy_queue_depth"))?;
            (depth >= 1.0).then_some(text)
        },
    )
    .await;
    let depth = metric(&backlog, &deferred("vtgrid_copy_queue_depth")).expect("depth");
    let bytes = metric(&backlog, &deferred("vtgrid_copy_queue_bytes")).expect("bytes");
    let age = metric(&backlog, &deferred("vtgrid_copy_queue_oldest_age_seconds")).expect("age");
    assert!(depth <= VOLUMES as f64, "{backlog}");
    assert!(
        bytes >= SIZE as f64 && bytes <= (VOLUMES * SIZE) as f64 && bytes % SIZE as f64 == 0.0,
        "queued bytes are whole volumes: {backlog}"
    );
    assert!(
        (0.0..60.0).contains(&age),
        "oldest age in seconds: {backlog}"
    );
    for priority in ["immediate", "sync-deferred", "immediate-deferred"] {
        assert_eq!(
            metric(&backlog, &series("vtgrid_copy_queue_depth", priority)),
            Some(0.0),
            "only deferred copies are owed: {backlog}"
        );
    }

    let drained = wait_for(
        "C1's deferred queue to drain in its metrics",
        Duration::from_secs(60),
        || async {
            let text = scrape(metrics).await;
            let copied = metric(&text, "vtgrid_copied_bytes_total")?;
            let depth = metric(&text, &deferred("vtgrid_copy_queue_depth"))?;
            (copied == (VOLUMES * SIZE) as f64 && depth == 0.0).then_some(text)
        },
    )
    .await;
    assert_eq!(
        metric(&drained, &deferred("vtgrid_copy_queue_bytes")),
        Some(0.0),
        "{drained}"
    );
    assert_eq!(
        metric(&drained, "vtgrid_copies_total"),
        Some(VOLUMES as f64),
        "{drained}"
    );
}
