//! One cluster's running state, as the parts that own it (issue 10, item 0).
//!
//! A `Cluster` is a composition: each field is a part with one job that owns its state and
//! knows nothing of the whole (`tests/module_layers.rs` checks it). The behaviour that needs
//! several parts lives in its own module, one topic each, as `impl Cluster` blocks:
//!
//! | part | state | behaviour (module) |
//! |---|---|---|
//! | `catalog` ([`CatalogHandle`]) | Raft, the local view, leader contact | proposals: [`crate::catalog`]; elections: [`crate::elections`] |
//! | `membership`, `member_record` ([`crate::member`]) | Member / Unformed / Amnesiac | [`crate::membership`] |
//! | `mounts` ([`MountTable`]) | host jobs and their I/O, mount ids | [`crate::jobs`], [`crate::abandon`], [`crate::synced`] |
//! | `duplexes_in` ([`DuplexSessions`]) | Sync duplexes being written into this cluster | [`crate::sync`] |
//! | `journal` ([`Journal`]) | this cluster's changes on their way to the catalog | [`crate::publisher`] |
//! | — | who may write a volume (the gate), the handshake | [`crate::ownership`] |
//! | `copies` ([`OwedCopies`]) | the copies this cluster owes | [`crate::copies`] |
//! | `links` ([`Links`]) | every link to every peer, call order | what happens when a peer stops answering: [`crate::peers`] |
//! | `events` ([`EventLog`]) | events for operators | raised by each behaviour |
//! | `tvc` ([`Tvc`]) | the volume store | when a file may go: [`crate::retention`], [`crate::sweep`] |
//!
//! [`Cluster::start`] (in [`crate::start`]) is the same for a real process and a simulated
//! host: the caller chooses the storage backends (RocksDB and files, or memory) and the
//! [`Connector`] to peers, then serves the routers from `crate::services` on whatever listeners
//! it has. A simulation looks inside through [`Cluster::probe`] (`crate::probe`), never the
//! fields.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vtgrid_core::membership::Membership;
use vtgrid_core::{Category, CategoryDefinition, ClusterId, ManagementClass, Volser};

use crate::catalog::CatalogHandle;
use crate::config::{GridConfig, Role};
use crate::duplex::DuplexSessions;
use crate::events::EventLog;
use crate::journal::Journal;
use crate::links::Links;
use crate::member::{MemberRecord, MembershipState};
use crate::metrics::Metrics;
use crate::modes::{AotmChecks, ReadTakeovers};
use crate::mounts::MountTable;
use crate::owed::OwedCopies;
use crate::transport::Peers;
use crate::tvc_io::Tvc;

pub struct Cluster {
    pub id: ClusterId,
    /// A data cluster, or a witness that keeps the catalog only.
    pub role: Role,
    pub(crate) grid: Arc<GridConfig>,
    pub(crate) catalog: CatalogHandle,
    pub(crate) tvc: Tvc,
    pub(crate) mounts: MountTable,
    /// Volumes a writer is duplexing to this cluster right now (Sync mode).
    pub(crate) duplexes_in: DuplexSessions,
    pub(crate) metrics: Metrics,
    /// This cluster's changes to its own volumes, on their way to the catalog (B15).
    pub(crate) journal: Journal,
    /// The copies this cluster owes, pulled by the copy engine (DESIGN §4).
    pub(crate) copies: OwedCopies,
    /// Every grid link to every peer as the link monitor last saw it (B60).
    pub(crate) links: Links,
    /// When this run of the cluster started (the copy throttle's and election gate's clock).
    pub(crate) started: tokio::time::Instant,
    pub(crate) events: EventLog,
    /// This cluster's connections to its peers' grid and heartbeat listeners: pooled per link,
    /// the order a call tries a peer's links in, and who a request on its own listener came from.
    pub(crate) transport: Arc<Peers>,
    pub(crate) insert_category: Category,
    pub(crate) private_category: Category,
    /// The grid file's constructs, defined in the catalog at start when missing or different.
    pub(crate) configured_categories: Vec<CategoryDefinition>,
    pub(crate) configured_classes: Vec<ManagementClass>,
    /// Set once this cluster's view has caught up with the leader since it started (a barrier
    /// applied here): from then on it knows every takeover of its volumes (T20).
    pub(crate) caught_up: AtomicBool,
    /// Set once the catalog has a leader, configured constructs exist and the TVC is reconciled
    /// (a watch: a rejoin answers the operator only once the cluster serves again).
    pub(crate) ready: tokio::sync::watch::Sender<bool>,
    /// Finished passes of `reconcile_tvc` (start-up and sweeps).
    pub(crate) sweeps: AtomicU64,
    /// True once the process is stopping: long-lived streams (`WatchEvents`) end on it, or a
    /// watcher would hold the graceful shutdown open forever.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    /// Where this voter stands in the Raft group (amnesia, issue 9).
    pub(crate) membership: Arc<MembershipState>,
    /// The durable record that this voter formed or joined the grid.
    pub(crate) member_record: MemberRecord,
    /// The failed clusters this cluster holds read takeover (ROT) for, on its own disk.
    pub(crate) read_takeovers: ReadTakeovers,
    /// When the agents were last asked about each lost peer (AOTM, B30).
    pub(crate) aotm_checks: AotmChecks,
    /// The self-fencing lease (`[lease]`): this cluster's, and its peers' while it leads.
    pub(crate) lease: crate::lease::Lease,
    /// Crash points a simulation may arm (`crate::faults`); empty in production.
    pub(crate) faults: crate::faults::FaultPoints,
}

impl Cluster {
    /// How many sweeps of the volume store have finished in this run (tests wait on it).
    pub fn sweeps(&self) -> u64 {
        self.sweeps.load(Ordering::Acquire)
    }

    /// The volumes a writer is duplexing into this cluster now (Sync mode), sorted.
    pub fn sync_sessions_open(&self) -> Vec<Volser> {
        self.duplexes_in.open()
    }

    /// Ready to serve: settled, and a member of the grid (not a voter that lost its catalog).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow() && self.membership() == Membership::Member
    }

    /// Wait until this cluster has settled since it started (the `ready` flag), at most `limit`.
    pub(crate) async fn settled_within(&self, limit: Duration) -> bool {
        let mut ready = self.ready.subscribe();
        tokio::time::timeout(limit, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Has this cluster's view caught up with the leader since it started (the gate's
    /// `Standing::caught_up`)?
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Host mounts and category changes wait until this cluster is ready: its view caught up
    /// with the leader once since it started, so it knows every takeover of its volumes (T20).
    pub(crate) fn require_caught_up(&self) -> Result<(), crate::error::NodeError> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(crate::error::NodeError::catalog(
                crate::error::CatalogFailure::NotCaughtUp,
            ))
        }
    }

    /// Where this voter stands in the catalog's Raft group.
    pub fn membership(&self) -> Membership {
        self.membership.get()
    }

    /// Does this cluster write nothing of its own volumes: its self-fencing lease ran out
    /// (`crate::lease`), or its catalog was superseded by a force-standalone elsewhere? Mounts
    /// and reads go on (`vtgrid_core::gate`).
    pub(crate) fn fenced(&self) -> bool {
        self.lease.fenced() || self.membership() == Membership::Superseded
    }

    /// Bring the gauges up to date (before a metrics scrape or a status answer).
    pub fn refresh_gauges(&self) {
        let m = self.catalog.raft.metrics().borrow().clone();
        self.metrics
            .raft_is_leader
            .set(i64::from(m.current_leader == Some(self.id.raft_id())));
        self.metrics.raft_term.set(m.current_term as i64);
        self.metrics
            .raft_last_applied
            .set(m.last_applied.map_or(0, |l| l.index) as i64);
        let (total, owned) = self
            .catalog
            .view
            .read(|s| (s.volumes.len() as u64, s.volumes.owned_by(self.id)));
        self.metrics.volumes.set(total as i64);
        self.metrics.volumes_owned.set(owned as i64);
        self.metrics.mounts_active.set(self.mounts.count() as i64);
        self.metrics
            .cache_used_bytes
            .set(self.tvc.store().usage().used_bytes as i64);
    }

    /// Stop Raft; the caller stops serving first.
    pub async fn shutdown(&self) {
        if let Err(e) = self.catalog.raft.shutdown().await {
            tracing::warn!(error = %e, "Raft shutdown");
        }
    }
}
