//! The periodic pass over the volume store: versions newer ones superseded, synced prefixes
//! that became versions, discarded quarantined versions, each removed only when the retention
//! rule ([`crate::retention`]) lets it go.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use vtgrid_core::retention::{Area, HeldBytes};

use crate::cluster::Cluster;

/// How often a cluster removes versions that newer ones superseded.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

impl Cluster {
    /// Every [`SWEEP_EVERY`], remove the versions newer ones superseded. The writer drops its own
    /// old version when the new one is published; this is for the clusters that got theirs as a
    /// copy or a duplex, which would otherwise keep every version until a restart.
    pub async fn sweep_superseded(self: Arc<Self>) {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            self.reconcile_tvc(false).await;
        }
    }

    /// Remove the volume files the retention rule lets go (`vtgrid_core::retention`):
    /// superseded versions once the current one is held here (or no longer owed), and (`caught_up`:
    /// this view is as new as the leader's) files of volumes the catalog does not know. Kept: the
    /// current version, newer ones, the last copy below the current one until that arrives,
    /// versions still in this cluster's journal and quarantined ones. Synced prefixes this
    /// cluster may publish become versions first (`crate::synced`).
    pub(crate) async fn reconcile_tvc(&self, caught_up: bool) {
        if let Err(e) = self.finish_quarantine_moves().await {
            tracing::error!(error = %e, "finishing quarantine moves");
        }
        let facts = match self.retention_facts(caught_up).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "gathering retention facts; keeping every volume file");
                return;
            }
        };
        let mut removed = 0;
        for (volser, version) in facts.held.clone() {
            let decision = facts.decide(self, Area::Cache, volser, version, HeldBytes::Unchecked);
            if decision.may_remove() {
                match self.tvc.run(move |s| s.remove(volser, version)).await {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(%volser, version, error = %e, "removing a superseded version")
                    }
                }
            }
        }
        removed += self.settle_synced_prefixes(&facts).await;
        for q in &facts.quarantine_area {
            if facts.decide_quarantined(self, q).may_remove() {
                let q = *q;
                match self
                    .tvc
                    .run(move |s| s.remove_quarantined(q.volser, q.version, q.digest))
                    .await
                {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(volser = %q.volser, version = q.version, error = %e, "removing a discarded quarantined version")
                    }
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "volume store reconciled with the catalog");
        }
        self.sweeps.fetch_add(1, Ordering::Release);
    }
}
