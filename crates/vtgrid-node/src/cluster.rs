//! One cluster's running state: catalog (Raft), volume store, mounts, metrics.
//!
//! [`Cluster::start`] is the same for a real process and a simulated host: the caller chooses the
//! storage backends (RocksDB and files, or memory) and the [`Connector`] to peers, then serves the
//! routers from [`crate::services`] on whatever listeners it has.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vtgrid_catalog::{open_catalog, KvEngine, KvJournal, Raft};
use vtgrid_core::catalog::CatalogCommand;
use vtgrid_core::retention::{self, Area, Decision, Facts, HeldBytes};
use vtgrid_core::{
    Category, CategoryDefinition, ClusterId, ManagementClass, VersionNumber, Volser,
};
use vtgrid_tvc::{QuarantinedVersion, VolumeStore};

use crate::catalog::CatalogHandle;
use crate::config::{GridConfig, Role};
use crate::events::EventLog;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::mounts::MountTable;
use crate::raft_network::GridNetwork;
use crate::transport::Connector;
use crate::tvc_io::Tvc;

pub struct Cluster {
    pub id: ClusterId,
    /// A data cluster, or a witness that keeps the catalog only.
    pub role: Role,
    pub grid: Arc<GridConfig>,
    pub catalog: CatalogHandle,
    pub tvc: Tvc,
    pub mounts: MountTable,
    pub metrics: Metrics,
    /// This cluster's changes to its own volumes, on their way to the catalog (B15).
    pub journal: Journal,
    /// The copies this cluster owes, pulled by the copy engine (DESIGN §4).
    pub copy_queue: Arc<dyn vtgrid_catalog::CopyQueue>,
    /// Wakes the copy engine (a version it may owe a copy of was committed).
    pub copies_owed: tokio::sync::Notify,
    /// Each peer grid address (one per link) as the link monitor last saw it.
    pub(crate) path_links:
        std::sync::Mutex<std::collections::BTreeMap<String, crate::links::LinkState>>,
    /// Which grid links to peers failed calls lately (B7).
    pub(crate) path_health: crate::paths::PathHealth,
    /// One lock per version being pulled: pulls of the same version wait for each other.
    pub(crate) pull_turns: std::sync::Mutex<PullTurns>,
    /// Volumes a writer is duplexing to this cluster right now (Sync mode).
    pub(crate) sync_sessions: std::sync::Mutex<std::collections::BTreeSet<vtgrid_core::Volser>>,
    /// Each peer's grid link, as the link monitor last saw it.
    pub(crate) links:
        std::sync::Mutex<std::collections::BTreeMap<ClusterId, crate::links::LinkState>>,
    /// When this run of the cluster started (the copy throttle's and election gate's clock).
    pub(crate) started: tokio::time::Instant,
    /// When a leader last reached this voter (the election gate's "a leader is in charge").
    pub(crate) leader_contact: crate::elections::LeaderContact,
    pub events: EventLog,
    /// Dials peers' grid listeners (ownership handshakes, remote reads, forwarded proposals).
    pub connector: Arc<dyn Connector>,
    pub insert_category: Category,
    pub private_category: Category,
    /// The grid file's constructs, defined in the catalog at start when missing or different.
    configured_categories: Vec<CategoryDefinition>,
    configured_classes: Vec<ManagementClass>,
    /// Distinguishes this run's mount ids from an earlier run's, so a host holding a mount id
    /// from before a restart gets `UNKNOWN_MOUNT`, never someone else's job.
    incarnation: u64,
    next_mount: AtomicU64,
    /// Set once the catalog has a leader, configured constructs exist and the TVC is reconciled.
    ready: AtomicBool,
    /// Finished passes of `reconcile_tvc` (start-up and sweeps).
    sweeps: AtomicU64,
    /// True once the process is stopping: long-lived streams (`WatchEvents`) end on it, or a
    /// watcher would hold the graceful shutdown open forever.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Where this voter stands in the Raft group (amnesia, issue 9).
    pub(crate) membership: crate::membership::MembershipState,
    /// The durable record that this voter formed or joined the grid.
    pub(crate) member_record: crate::membership::MemberRecord,
    /// Crash points a simulation may arm (`crate::faults`); empty in production.
    pub faults: crate::faults::FaultPoints,
}

/// A cluster's side of the retention rule (`vtgrid_core::retention`), gathered once so one pass
/// over many files reads the store and the journal once.
pub(crate) struct RetentionFacts {
    /// Committed versions in the cache.
    pub held: BTreeSet<(Volser, VersionNumber)>,
    /// Versions still in this cluster's owner journal.
    pub in_journal: BTreeSet<(Volser, VersionNumber)>,
    /// Versions this cluster's quarantine records whose file has not moved into the store's
    /// quarantine area yet (a crash came between the record and the move): their cache file stays.
    pub quarantined_unmoved: BTreeSet<(Volser, VersionNumber)>,
    /// The quarantine's records, by identity.
    pub quarantine_records: BTreeSet<(Volser, VersionNumber, [u8; 32])>,
    /// What the store's quarantine area holds.
    pub quarantine_area: Vec<QuarantinedVersion>,
    pub view_caught_up: bool,
}

impl RetentionFacts {
    /// The rule's decision on `cluster`'s file of (`volser`, `version`) in `area`.
    pub(crate) fn decide(
        &self,
        cluster: &Cluster,
        area: Area,
        volser: Volser,
        version: VersionNumber,
        bytes: HeldBytes,
    ) -> Decision {
        let record = cluster
            .catalog
            .view
            .read(|s| s.volumes.get(&volser).cloned());
        let current = record.as_ref().map_or(0, |r| r.version);
        let newest_held_below_current = self
            .held
            .range((volser, 0)..(volser, current))
            .next_back()
            .map(|(_, v)| *v);
        let facts = Facts {
            cluster: cluster.id,
            record: record.as_ref(),
            view_caught_up: self.view_caught_up,
            in_journal: self.in_journal.contains(&(volser, version)),
            quarantined: self.quarantined_unmoved.contains(&(volser, version)),
            copy_done_pending: cluster.journal.copy_done_pending(volser, current),
            newest_held_below_current,
        };
        let decision = retention::decide(area, version, bytes, &facts);
        tracing::debug!(%volser, version, ?area, ?decision, "retention");
        decision
    }

    /// The rule's decision on a file in the store's quarantine area: it stays while the
    /// quarantine records it, by number and digest.
    pub(crate) fn decide_quarantined(&self, cluster: &Cluster, q: &QuarantinedVersion) -> Decision {
        let facts = Facts {
            cluster: cluster.id,
            record: None,
            view_caught_up: self.view_caught_up,
            in_journal: false,
            quarantined: self
                .quarantine_records
                .contains(&(q.volser, q.version, q.digest.0)),
            copy_done_pending: false,
            newest_held_below_current: None,
        };
        retention::decide(
            Area::Quarantine,
            q.version,
            HeldBytes::Digest(q.digest),
            &facts,
        )
    }
}

/// How often a cluster removes versions that newer ones superseded.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Per version being pulled, the lock pulls of it queue on (see `Cluster::pull_from`).
pub(crate) type PullTurns =
    std::collections::BTreeMap<(vtgrid_core::Volser, u64), Arc<tokio::sync::Mutex<()>>>;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("voter {0} is neither a cluster nor a witness of the grid file")]
    UnknownCluster(u8),
    #[error("catalog storage: {0}")]
    Catalog(#[from] vtgrid_catalog::CatalogStorageError),
    #[error("Raft configuration: {0}")]
    RaftConfig(#[from] openraft::ConfigError),
    #[error("Raft stopped: {0}")]
    RaftFatal(#[from] openraft::error::Fatal<u64>),
    #[error("grid file: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("membership record: {0}")]
    MembershipRecord(crate::error::NodeError),
}

/// Raft timing for a grid on a LAN or loopback. Elections take well under a second.
pub fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "vtgrid".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        install_snapshot_timeout: 2_000,
        // Turned on by `Cluster::guard_elections` once a quorum of voters is in reach, so a
        // voter alone never climbs terms (there is no pre-vote in openraft 0.9).
        enable_elect: false,
        ..openraft::Config::default()
    }
}

impl Cluster {
    /// Open the catalog on `engine`, start Raft, and spawn the settle task. `incarnation` must
    /// differ between runs of the same cluster (a random number or a boot counter).
    pub async fn start<E: KvEngine>(
        grid: Arc<GridConfig>,
        id: ClusterId,
        engine: E,
        volumes: Arc<dyn VolumeStore>,
        connector: Arc<dyn Connector>,
        incarnation: u64,
    ) -> Result<Arc<Cluster>, StartError> {
        Self::start_with_faults(
            grid,
            id,
            engine,
            volumes,
            connector,
            incarnation,
            crate::faults::FaultPoints::none(),
        )
        .await
    }

    /// [`Cluster::start`] with crash points a simulation arms (`crate::faults`).
    pub async fn start_with_faults<E: KvEngine>(
        grid: Arc<GridConfig>,
        id: ClusterId,
        engine: E,
        volumes: Arc<dyn VolumeStore>,
        connector: Arc<dyn Connector>,
        incarnation: u64,
        faults: crate::faults::FaultPoints,
    ) -> Result<Arc<Cluster>, StartError> {
        let role = grid
            .role_of(id.get())
            .ok_or(StartError::UnknownCluster(id.get()))?;
        let engine_for_journal = engine.clone();
        let member_record = crate::membership::MemberRecord::new(engine.clone());
        let (log, sm, view) = open_catalog(engine)?;
        let config = Arc::new(raft_config().validate()?);
        let raft = Raft::new(
            id.raft_id(),
            config,
            GridNetwork::new(
                connector.clone(),
                grid.voters()
                    .keys()
                    .map(|id| (*id, grid.grid_paths(*id as u8)))
                    .collect(),
            ),
            log,
            sm,
        )
        .await?;
        let membership = Self::starting_membership(&raft, &member_record).await?;
        let cluster = Arc::new(Cluster {
            id,
            role,
            insert_category: grid.insert_category()?,
            private_category: grid.private_category()?,
            configured_categories: grid.category_definitions()?,
            configured_classes: grid.management_classes()?,
            grid: grid.clone(),
            catalog: CatalogHandle::new(raft, view, connector.clone()),
            journal: Journal::open(Arc::new(KvJournal::open(engine_for_journal.clone())?))?,
            copy_queue: Arc::new(vtgrid_catalog::KvCopyQueue::open(engine_for_journal)?),
            copies_owed: tokio::sync::Notify::new(),
            links: Default::default(),
            sync_sessions: Default::default(),
            pull_turns: Default::default(),
            path_health: Default::default(),
            path_links: Default::default(),
            started: tokio::time::Instant::now(),
            leader_contact: Default::default(),
            events: EventLog::default(),
            connector,
            tvc: Tvc::new(volumes),
            mounts: MountTable::default(),
            metrics: Metrics::default(),
            incarnation,
            next_mount: AtomicU64::new(1),
            ready: AtomicBool::new(false),
            sweeps: AtomicU64::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
            membership: crate::membership::MembershipState::new(membership),
            member_record,
            faults,
        });
        tokio::spawn(cluster.clone().join_grid());
        tokio::spawn(cluster.clone().settle());
        tokio::spawn(cluster.clone().monitor_links());
        tokio::spawn(cluster.clone().guard_elections());
        if role == Role::Data {
            tokio::spawn(cluster.clone().publish_journal());
            tokio::spawn(cluster.clone().run_copy_engine());
            tokio::spawn(cluster.clone().sweep_superseded());
            tokio::spawn(cluster.clone().settle_doubts());
        }
        Ok(cluster)
    }

    /// Where this voter stands when it starts, from its own disk alone: with a log, or with the
    /// membership record, it is a member (a restart); empty and unrecorded, it must ask its peers
    /// first (`join_grid`, amnesia: see [`crate::membership`]).
    async fn starting_membership(
        raft: &Raft,
        record: &crate::membership::MemberRecord,
    ) -> Result<vtgrid_core::membership::Membership, StartError> {
        use vtgrid_core::membership::Membership;
        let has_log = raft.is_initialized().await?;
        let recorded = record
            .recorded()
            .await
            .map_err(StartError::MembershipRecord)?;
        if has_log && !recorded {
            // A grid formed before the record existed: record it now.
            record
                .record()
                .await
                .map_err(StartError::MembershipRecord)?;
        }
        Ok(if has_log || recorded {
            Membership::Member
        } else {
            Membership::Unformed
        })
    }

    /// Wait for a leader, define the grid file's constructs (leader only), reconcile the TVC.
    async fn settle(self: Arc<Self>) {
        loop {
            let leader = self
                .catalog
                .raft
                .wait(Some(Duration::from_secs(5)))
                .metrics(|m| m.current_leader.is_some(), "catalog leader known")
                .await;
            if leader.is_err() {
                tracing::warn!(cluster = %self.id, "no catalog leader yet");
                continue;
            }
            match self.define_configured_constructs().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "defining configured constructs; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        if self.role == Role::Data {
            // Only with a view at least as new as the leader's commit index may we judge a file
            // of a volume the catalog does not know to be an orphan.
            let caught_up = self.catalog.raft.ensure_linearizable().await.is_ok();
            self.reconcile_tvc(caught_up).await;
        }
        self.ready.store(true, Ordering::Release);
        tracing::info!(cluster = %self.id, "ready");
    }

    /// Categories and management classes from the grid file that the catalog lacks or holds
    /// differently are (re)defined. Definitions made later through the admin API are kept.
    async fn define_configured_constructs(&self) -> Result<(), crate::error::NodeError> {
        for def in self.configured_categories.iter().cloned() {
            let same = self
                .catalog
                .view
                .read(|s| s.categories.get(&def.category) == Some(&def));
            if !same {
                self.catalog
                    .propose(CatalogCommand::DefineCategory(def))
                    .await?;
            }
        }
        for mc in self.configured_classes.iter().cloned() {
            let same = self
                .catalog
                .view
                .read(|s| s.management_classes.get(&mc.name) == Some(&mc));
            if !same {
                self.catalog
                    .propose(CatalogCommand::DefineManagementClass(mc))
                    .await?;
            }
        }
        Ok(())
    }

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
    async fn reconcile_tvc(&self, caught_up: bool) {
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

    /// What the retention rule needs to know besides the catalog, read once per pass: the
    /// versions held, those in the journal and those quarantined.
    pub(crate) async fn retention_facts(
        &self,
        view_caught_up: bool,
    ) -> Result<RetentionFacts, crate::error::NodeError> {
        let held = self.tvc.run(|s| s.versions()).await?;
        let quarantine_area = self.tvc.run(|s| s.quarantined()).await?;
        let records = self.quarantine().await?;
        let moved = |r: &vtgrid_catalog::QuarantineRecord| {
            quarantine_area
                .iter()
                .any(|q| (q.volser, q.version, q.digest) == (r.volser, r.version, r.digest))
        };
        Ok(RetentionFacts {
            held: held.into_iter().collect(),
            in_journal: self.journal.pending_versions().into_iter().collect(),
            quarantined_unmoved: records
                .iter()
                .filter(|r| !moved(r))
                .map(|r| (r.volser, r.version))
                .collect(),
            quarantine_records: records
                .iter()
                .map(|r| (r.volser, r.version, r.digest.0))
                .collect(),
            quarantine_area,
            view_caught_up,
        })
    }

    /// Move the file of a version the quarantine records into the store's quarantine area
    /// (DESIGN §3). The publisher writes the quarantine record first, atomically with dropping
    /// the journal entry, and then moves the file; a crash in between leaves the file in the
    /// cache, where the retention rule keeps it, until this runs again (at start, every sweep,
    /// and before a quarantined version is read). A cache file whose bytes are not the recorded
    /// digest is left where it is (it is not the quarantined version).
    pub(crate) async fn move_into_quarantine(
        &self,
        volser: Volser,
        version: VersionNumber,
        digest: vtgrid_core::Digest,
    ) -> Result<(), crate::error::NodeError> {
        self.tvc
            .run(move |s| s.quarantine(volser, version, digest))
            .await?;
        tracing::info!(%volser, version, "moved into the quarantine area");
        Ok(())
    }

    /// [`Cluster::move_into_quarantine`] for every quarantine record whose file has not moved.
    pub(crate) async fn finish_quarantine_moves(&self) -> Result<(), crate::error::NodeError> {
        let facts = self.retention_facts(false).await?;
        for r in self.quarantine().await? {
            if facts.quarantined_unmoved.contains(&(r.volser, r.version)) {
                if let Err(e) = self
                    .move_into_quarantine(r.volser, r.version, r.digest)
                    .await
                {
                    tracing::error!(volser = %r.volser, version = r.version, error = %e, "a quarantined version could not be moved into the quarantine area");
                }
            }
        }
        Ok(())
    }

    /// How many sweeps of the volume store have finished in this run (tests wait on it).
    pub fn sweeps(&self) -> u64 {
        self.sweeps.load(Ordering::Acquire)
    }

    /// The volumes a writer is duplexing into this cluster now (Sync mode), sorted.
    pub fn sync_sessions_open(&self) -> Vec<vtgrid_core::Volser> {
        self.sync_sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Ready to serve: settled, and a member of the grid (not a voter that lost its catalog).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && self.membership() == vtgrid_core::membership::Membership::Member
    }

    pub(crate) fn next_mount_id(&self) -> String {
        let n = self.next_mount.fetch_add(1, Ordering::Relaxed);
        format!("{}-{:x}-{n}", self.id, self.incarnation)
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
        let (total, owned) = self.catalog.view.read(|s| {
            (
                s.volumes.len(),
                s.volumes
                    .values()
                    .filter(|r| r.token.owner == self.id)
                    .count(),
            )
        });
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
