//! Logs and traces: `tracing` to stderr always, OpenTelemetry OTLP export when the grid file's
//! `[telemetry] otlp_endpoint` is set.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::TelemetryConfig;

/// Keeps the exporter alive. Call [`TelemetryGuard::shutdown`] before the process exits to
/// flush the spans still buffered.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flush and stop the exporter. The flush blocks until the collector answers, and the export
    /// itself runs on the async runtime, so it must not block a runtime thread: it runs on the
    /// blocking pool while the runtime keeps serving the export.
    pub async fn shutdown(mut self) {
        if let Some(p) = self.provider.take() {
            let flushed = tokio::task::spawn_blocking(move || p.shutdown()).await;
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("telemetry: flushing spans failed: {e}"),
                Err(e) => eprintln!("telemetry: flushing spans failed: {e}"),
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Reached only on an early error exit: flush on a plain thread rather than block the
        // runtime, and do not wait for it.
        if let Some(p) = self.provider.take() {
            std::thread::spawn(move || {
                let _ = p.shutdown();
            });
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter for {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// openraft logs every failed call to a peer that is down, each backoff interval (about two a
/// second): replication at WARN ("error replication to target", and the leader's "update progress
/// error" and "heartbeat error") and at ERROR ("RPCError", field `err`), votes and leadership
/// checks at ERROR (field `target`). A peer that is down is the link
/// monitor's to report, once (`Cluster::record_ping`: one WARN, a reminder every five minutes, one
/// INFO when it is back), so these are dropped. openraft's other errors stay: a storage error in
/// replication (field `error`, no `err` or `target`), a fatal core error.
pub fn network_noise(meta: &tracing::Metadata<'_>) -> bool {
    if !meta.is_event() || !meta.target().starts_with("openraft") {
        return false;
    }
    let level = *meta.level();
    let has = |name: &str| meta.fields().field(name).is_some();
    let replication = matches!(
        meta.target(),
        "openraft::replication" | "openraft::engine::handler::replication_handler"
    );
    (replication && level == tracing::Level::WARN)
        || (level == tracing::Level::ERROR && (has("err") || has("target")))
}

/// Install the global subscriber. `service` names this process in traces (`vtgrid-C0`).
pub fn init(config: &TelemetryConfig, service: &str) -> Result<TelemetryGuard, TelemetryError> {
    // openraft narrates every election at INFO; an operator wants its warnings only.
    let directives = format!("{},openraft=warn", config.log.as_deref().unwrap_or("info"));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let provider = match &config.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|source| TelemetryError::Exporter {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_string())
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service.to_string())));
    // A second init (tests starting several nodes in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::filter::filter_fn(|meta| {
            !network_noise(meta)
        }))
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(TelemetryGuard { provider })
}
