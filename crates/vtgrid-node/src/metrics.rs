//! Prometheus text metrics over HTTP (`GET /metrics` on the cluster's `metrics` address).
//!
//! The copy queue (DESIGN §7) is three gauges per copy priority, each series labelled
//! `priority="immediate" | "sync-deferred" | "immediate-deferred" | "deferred"`, refreshed by the
//! link monitor every round (and by every `ListCopyQueue`), so a scrape follows the queue:
//!
//! ```text
//! vtgrid_copy_queue_depth{priority="deferred"} 3               copies waiting
//! vtgrid_copy_queue_bytes{priority="deferred"} 50331648        their bytes
//! vtgrid_copy_queue_oldest_age_seconds{priority="deferred"} 4.2  how long the oldest has waited
//! vtgrid_copies_total 7 / vtgrid_copied_bytes_total 117440512  copies this run made, and bytes
//! ```
//!
//! Every priority has its series from the first refresh on, zero when none waits, so a dashboard
//! never confuses "nothing queued" with "no data".

use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The counters a cluster keeps; cheap to clone (each metric is an `Arc` inside).
#[derive(Clone, Default)]
pub struct Metrics {
    pub mounts: Counter,
    pub unloads: Counter,
    pub bytes_written: Counter,
    pub bytes_read: Counter,
    pub checksum_errors: Counter,
    pub ownership_transfers_in: Counter,
    /// Copies this cluster made (RUN and queued), verified and journalled.
    pub copies: Counter,
    pub bytes_copied: Counter,
    pub copy_queue_depth: Family<CopyQueueLabels, Gauge>,
    pub copy_queue_bytes: Family<CopyQueueLabels, Gauge>,
    pub copy_queue_oldest_age_seconds: Family<CopyQueueLabels, Gauge<f64, AtomicU64>>,
    pub ownership_transfers_out: Counter,
    pub mounts_active: Gauge,
    pub volumes: Gauge,
    pub volumes_owned: Gauge,
    pub cache_used_bytes: Gauge,
    pub raft_is_leader: Gauge,
    pub raft_term: Gauge,
    pub raft_last_applied: Gauge,
}

/// The label of a copy-queue series: the priority's name as `vtgrid copies` shows it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CopyQueueLabels {
    pub priority: &'static str,
}

impl Metrics {
    /// Set the gauges of one priority's queue: how many copies wait, their bytes, and the oldest
    /// one's wait.
    pub fn set_copy_queue(
        &self,
        priority: &'static str,
        count: u64,
        bytes: u64,
        oldest_age_ms: u64,
    ) {
        let labels = CopyQueueLabels { priority };
        self.copy_queue_depth
            .get_or_create(&labels)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        self.copy_queue_bytes
            .get_or_create(&labels)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.copy_queue_oldest_age_seconds
            .get_or_create(&labels)
            .set(oldest_age_ms as f64 / 1e3);
    }

    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("vtgrid");
        r.register("mounts", "Host mounts served", self.mounts.clone());
        r.register(
            "unloads",
            "Rewind-unloads that committed a version",
            self.unloads.clone(),
        );
        r.register(
            "host_written_bytes",
            "Bytes written by hosts",
            self.bytes_written.clone(),
        );
        r.register(
            "host_read_bytes",
            "Bytes read by hosts",
            self.bytes_read.clone(),
        );
        r.register(
            "checksum_errors",
            "Reads that found a corrupt chunk or digest",
            self.checksum_errors.clone(),
        );
        r.register(
            "mounts_active",
            "Volumes mounted now",
            self.mounts_active.clone(),
        );
        r.register(
            "copies",
            "Copies this cluster made, verified and journalled (RUN and queued)",
            self.copies.clone(),
        );
        r.register(
            "copied_bytes",
            "Bytes of the copies this cluster made",
            self.bytes_copied.clone(),
        );
        r.register(
            "copy_queue_depth",
            "Copies this cluster owes and has queued, per priority",
            self.copy_queue_depth.clone(),
        );
        r.register(
            "copy_queue_bytes",
            "Bytes of the queued copies, per priority",
            self.copy_queue_bytes.clone(),
        );
        r.register(
            "copy_queue_oldest_age_seconds",
            "How long the oldest queued copy has waited, per priority",
            self.copy_queue_oldest_age_seconds.clone(),
        );
        r.register("volumes", "Volumes in the catalog", self.volumes.clone());
        r.register(
            "volumes_owned",
            "Volumes this cluster owns",
            self.volumes_owned.clone(),
        );
        r.register(
            "cache_used_bytes",
            "Bytes of volume data in the cache",
            self.cache_used_bytes.clone(),
        );
        r.register(
            "raft_is_leader",
            "1 when this cluster leads the catalog",
            self.raft_is_leader.clone(),
        );
        r.register("raft_term", "Current Raft term", self.raft_term.clone());
        r.register(
            "raft_last_applied",
            "Last catalog log index applied",
            self.raft_last_applied.clone(),
        );
        r
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        encode(&mut out, &self.registry()).expect("encoding metrics into a String");
        out
    }
}

/// Serve `GET /metrics` until the task is dropped. `refresh` updates gauges before each scrape.
pub async fn serve_metrics(
    addr: &str,
    metrics: Metrics,
    refresh: Arc<dyn Fn() + Send + Sync>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr, "metrics listening");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept");
                continue;
            }
        };
        let metrics = metrics.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let body = if req.uri().path() == "/metrics" {
                    refresh();
                    Some(metrics.render())
                } else {
                    None
                };
                async move {
                    let response = match body {
                        Some(text) => Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(Bytes::from(text))),
                        None => Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::new())),
                    };
                    Ok::<_, Infallible>(response.expect("static response parts are valid"))
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_queue_series_carry_the_priority_label() {
        let m = Metrics::default();
        m.set_copy_queue("deferred", 3, 3 << 20, 4200);
        m.set_copy_queue("immediate", 0, 0, 0);
        let text = m.render();
        for line in [
            "vtgrid_copy_queue_depth{priority=\"deferred\"} 3",
            "vtgrid_copy_queue_bytes{priority=\"deferred\"} 3145728",
            "vtgrid_copy_queue_oldest_age_seconds{priority=\"deferred\"} 4.2",
            "vtgrid_copy_queue_depth{priority=\"immediate\"} 0",
            "vtgrid_copied_bytes_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}
