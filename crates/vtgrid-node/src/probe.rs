//! What a test may see inside a running cluster: one small, read-mostly API, so the simulation
//! and the tests never reach into a cluster's fields and the parts stay free to change.
//!
//! Production code does not use it; the simulation's invariants (`vtgrid-sim`) and the tests
//! do, to look at the catalog view, Raft's metrics, the mount table, the journal and the volume
//! store of each cluster after every step.

use std::sync::Arc;

use vtgrid_catalog::{CatalogView, CopyQueue, OwnerJournal};
use vtgrid_core::catalog::{Applied, CatalogCommand};
use vtgrid_core::ClusterId;
use vtgrid_tvc::VolumeStore;

use crate::cluster::Cluster;
use crate::config::GridConfig;
use crate::error::NodeError;
use crate::events::EventLog;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::mounts::MountTable;

/// A view into one cluster for tests ([`Cluster::probe`]).
pub struct Probe<'a>(&'a Cluster);

impl Cluster {
    /// The test API of this cluster.
    pub fn probe(&self) -> Probe<'_> {
        Probe(self)
    }
}

impl<'a> Probe<'a> {
    /// The cluster's local catalog view (it may trail the leader).
    pub fn view(&self) -> &'a CatalogView {
        &self.0.catalog.view
    }

    /// Raft's metrics as this voter sees them now.
    pub fn raft_metrics(&self) -> openraft::RaftMetrics<u64, openraft::BasicNode> {
        self.0.catalog.raft.metrics().borrow().clone()
    }

    /// The leader this voter knows of.
    pub fn leader(&self) -> Option<ClusterId> {
        self.0.catalog.leader()
    }

    /// The index of the last entry this cluster's view applied.
    pub fn last_applied(&self) -> Option<u64> {
        self.0.catalog.view.last_applied().map(|l| l.index)
    }

    /// The host jobs on this cluster and the volumes held against mounts.
    pub fn mounts(&self) -> &'a MountTable {
        &self.0.mounts
    }

    /// This cluster's owner journal (its changes on their way to the catalog).
    pub fn journal(&self) -> &'a Journal {
        &self.0.journal
    }

    /// The journal's durable store, for tests that inject an entry as a crash would leave it.
    pub fn journal_store(&self) -> &'a Arc<dyn OwnerJournal> {
        self.0.journal.store()
    }

    /// The volume store.
    pub fn store(&self) -> &'a Arc<dyn VolumeStore> {
        self.0.tvc.store()
    }

    /// The durable queue of copies this cluster owes.
    pub fn copy_queue(&self) -> Arc<dyn CopyQueue> {
        self.0.copies.queue()
    }

    /// The events this cluster raised.
    pub fn events(&self) -> &'a EventLog {
        &self.0.events
    }

    /// Commit a catalog command through this cluster, as its own code would (tests that play a
    /// cluster's part in a race).
    pub async fn propose(&self, command: CatalogCommand) -> Result<Applied, NodeError> {
        self.0.catalog.propose(command).await
    }

    /// Commit a catalog command on this cluster's own Raft, which must be the leader
    /// (`NO_LEADER` otherwise; nothing is forwarded). For tests that stand in for a decision
    /// only the leader makes, such as a fenced takeover's Transfer: no other voter may forward
    /// a Transfer that speaks for another owner (`CatalogCommand::may_be_forwarded_by`).
    pub async fn propose_as_leader(&self, command: CatalogCommand) -> Result<Applied, NodeError> {
        Ok(self.0.catalog.propose_local(command).await?.response?)
    }

    pub fn metrics(&self) -> &'a Metrics {
        &self.0.metrics
    }

    pub fn grid(&self) -> &'a GridConfig {
        &self.0.grid
    }
}
