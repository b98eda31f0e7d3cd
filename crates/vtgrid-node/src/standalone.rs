//! Force-standalone at the node (DESIGN §3): the offline command, the survivor's refusal of the
//! lost majority's old Raft group, and what a member of that old group does when it is refused.
//!
//! ```text
//!   vtgrid admin force-standalone --config F --id 0      (node C0 stopped)
//!        vtgrid_catalog::standalone rewrites C0's store: a grid of C0 alone that owns everything
//!   C0 starts: elects itself, event FORCED_STANDALONE; the lost clusters rejoin only as new
//!        members (stop, move the data dir aside, start empty, `vtgrid admin rejoin --as-new`)
//!
//!   a lost cluster comes back with its old data dir and sends C0 a Raft message
//!        C0: the sender is not in its membership ──> refused, reason SUPERSEDED
//!        the sender ──> Membership::Superseded, for good: sends no Raft message, votes for and
//!                       takes no log, writes none of its volumes (the gate counts it fenced);
//!                       event REJOIN_REQUIRED says what to do
//! ```
//!
//! What this cannot do: two lost clusters that come back together while neither can reach the
//! survivor still form their old majority between themselves. No rule can tell them apart from
//! a grid whose third cluster is merely cut off; the runbook therefore has the operator keep the
//! lost clusters down (or wipe them) before forcing, and the first message either sends the
//! survivor ends that old group's writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vtgrid_catalog::standalone::{StandaloneError, StandaloneReport};
use vtgrid_catalog::RocksEngine;
use vtgrid_core::membership::Membership;
use vtgrid_core::ClusterId;

use crate::cluster::Cluster;
use crate::config::{ConfigError, GridConfig};
use crate::error::NodeError;
use crate::events::{FORCED_STANDALONE, REJOIN_REQUIRED};

/// Why `vtgrid admin force-standalone` changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ForceStandaloneError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "C{0} is not a data cluster of the grid file: only a data cluster can own the volumes"
    )]
    NotADataCluster(u8),
    #[error(
        "no catalog at {0}: run the command on the survivor's own machine, with its grid file"
    )]
    NoStore(PathBuf),
    #[error("opening the catalog store in {path} ({source}): is the node still running? Stop it first; the command works offline only")]
    Open {
        path: PathBuf,
        source: vtgrid_catalog::EngineError,
    },
    #[error(transparent)]
    Refused(#[from] StandaloneError),
}

/// Rewrite the stopped data cluster `id`'s catalog (from the grid file at `config`) as a grid
/// of that cluster alone.
pub fn force_standalone(config: &Path, id: u8) -> Result<StandaloneReport, ForceStandaloneError> {
    let grid = GridConfig::load(config)?;
    let me = crate::process::data_cluster(&grid, id)
        .map_err(|_| ForceStandaloneError::NotADataCluster(id))?
        .clone();
    let survivor = ClusterId::new(id).map_err(|_| ForceStandaloneError::NotADataCluster(id))?;
    let path = me.data_dir.join("catalog");
    if !path.is_dir() {
        return Err(ForceStandaloneError::NoStore(path));
    }
    let engine = RocksEngine::open(&path).map_err(|source| ForceStandaloneError::Open {
        path: path.clone(),
        source,
    })?;
    Ok(vtgrid_catalog::standalone::force_standalone(
        &engine, survivor, me.grid,
    )?)
}

impl Cluster {
    /// A survivor that was forced standalone takes Raft messages only from its own group's
    /// members: anyone else is a member of the lost majority's old group, and is told so.
    pub(crate) fn admit_after_standalone(&self, sender: Option<u64>) -> Result<(), NodeError> {
        let Some(sender) = sender else {
            return Ok(());
        };
        if !self.catalog.view.read(|s| s.forced_standalone.is_some()) {
            return Ok(());
        }
        let in_group = {
            let metrics = self.catalog.raft.metrics();
            let m = metrics.borrow();
            let found = m
                .membership_config
                .membership()
                .nodes()
                .any(|(id, _)| *id == sender);
            found
        };
        if in_group {
            return Ok(());
        }
        tracing::warn!(cluster = %self.id, sender,
            "refused a Raft message from the lost majority's old group (forced standalone)");
        Err(NodeError::Superseded {
            cluster: ClusterId::from_raft_id(sender).unwrap_or(self.id),
        })
    }

    /// Say, once per start, that this cluster is a forced-standalone survivor; and when this
    /// cluster learns that its own catalog was superseded, say what the operator must do.
    pub(crate) async fn watch_standalone(self: Arc<Self>) {
        let record = self.catalog.view.read(|s| s.forced_standalone.clone());
        if let Some(record) = record.filter(|r| r.survivor == self.id) {
            let lost: Vec<String> = record.lost.iter().map(|c| c.to_string()).collect();
            self.events.raise(
                FORCED_STANDALONE,
                None,
                format!(
                    "{} was forced standalone at catalog entry {}: it owns every volume ({} taken \
                     over); lost: {}. They rejoin only as new members (`vtgrid admin rejoin \
                     --as-new` on an empty data dir)",
                    self.id,
                    record.at_index,
                    record.volumes_taken,
                    lost.join(", ")
                ),
            );
        }
        self.membership.reached(Membership::Superseded).await;
        let message = format!(
            "{}'s catalog was superseded: another cluster was forced standalone without it. It \
             takes no part in the grid and writes nothing. Stop it, move its data dir aside, \
             start it empty and run `vtgrid admin rejoin --as-new` at it",
            self.id
        );
        tracing::error!(cluster = %self.id, "{message}");
        self.events.raise(REJOIN_REQUIRED, None, message);
    }
}
