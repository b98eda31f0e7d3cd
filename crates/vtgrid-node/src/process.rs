//! `vtgrid node`: one cluster as a real process on RocksDB, volume files and TCP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use vtgrid_catalog::RocksEngine;
use vtgrid_core::ClusterId;
use vtgrid_tvc::FileVolumeStore;

use crate::cluster::{Cluster, StartError};
use crate::config::{ConfigError, GridConfig};
use crate::services::{grid_routes, host_routes};
use crate::telemetry;
use crate::transport::TcpConnector;

#[derive(Debug, thiserror::Error)]
pub enum NodeProcessError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cluster C{0} is not in the grid file")]
    UnknownCluster(u8),
    #[error("creating data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the catalog store in {path}: {source}")]
    Catalog {
        path: PathBuf,
        source: vtgrid_catalog::EngineError,
    },
    #[error("opening the volume store in {path}: {source}")]
    Tvc {
        path: PathBuf,
        source: vtgrid_tvc::TvcError,
    },
    #[error("listening on {addr} ({network} network): {source}")]
    Bind {
        addr: String,
        network: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("serving the {network} network: {source}")]
    Serve {
        network: &'static str,
        source: tonic::transport::Error,
    },
}

/// Run cluster `id` of the grid in `config_path` until SIGINT or SIGTERM.
pub async fn run_node(config_path: &Path, id: u8) -> Result<(), NodeProcessError> {
    let grid = Arc::new(GridConfig::load(config_path)?);
    let me = grid
        .cluster(id)
        .ok_or(NodeProcessError::UnknownCluster(id))?
        .clone();
    let telemetry = telemetry::init(&grid.telemetry, &format!("vtgrid-{}", me.name))?;

    let data_dir = me.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| NodeProcessError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let catalog_dir = data_dir.join("catalog");
    let engine = RocksEngine::open(&catalog_dir).map_err(|source| NodeProcessError::Catalog {
        path: catalog_dir,
        source,
    })?;
    let tvc_dir = data_dir.join("tvc");
    let volumes = FileVolumeStore::open(&tvc_dir, me.cache_quota_bytes).map_err(|source| {
        NodeProcessError::Tvc {
            path: tvc_dir,
            source,
        }
    })?;

    let bind = |addr: String, network: &'static str| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| NodeProcessError::Bind {
                addr,
                network,
                source,
            })
    };
    let host_listener = bind(me.host.clone(), "host").await?;
    let grid_listener = bind(me.grid.clone(), "grid").await?;

    let incarnation = rand::random::<u64>();
    let cluster_id = ClusterId::new(id).map_err(|_| NodeProcessError::UnknownCluster(id))?;
    let cluster = Cluster::start(
        grid.clone(),
        cluster_id,
        engine,
        Arc::new(volumes),
        Arc::new(TcpConnector),
        incarnation,
    )
    .await?;

    if let Some(metrics_addr) = me.metrics.clone() {
        let c = cluster.clone();
        let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(move || c.refresh_gauges());
        let metrics = cluster.metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve_metrics(&metrics_addr, metrics, refresh).await {
                tracing::error!(addr = %metrics_addr, error = %e, "metrics listener");
            }
        });
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let host = Server::builder()
        .tcp_nodelay(true)
        .add_routes(host_routes(cluster.clone()).await)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(host_listener),
            stopped(stop_rx.clone()),
        );
    let grid_server = Server::builder()
        .tcp_nodelay(true)
        .add_routes(grid_routes(cluster.clone()))
        .serve_with_incoming_shutdown(TcpListenerStream::new(grid_listener), stopped(stop_rx));
    tracing::info!(cluster = %cluster_id, host = %me.host, grid = %me.grid, "serving");

    let host_task = tokio::spawn(host);
    let grid_task = tokio::spawn(grid_server);
    wait_for_signal().await;
    tracing::info!("stopping: no new requests; finishing the ones in flight");
    let _ = stop_tx.send(true);
    let host_result = host_task.await;
    let grid_result = grid_task.await;
    cluster.shutdown().await;
    for (network, result) in [("host", host_result), ("grid", grid_result)] {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(NodeProcessError::Serve { network, source }),
            Err(join) => tracing::error!(network, error = %join, "server task"),
        }
    }
    tracing::info!("stopped");
    telemetry.shutdown().await;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
