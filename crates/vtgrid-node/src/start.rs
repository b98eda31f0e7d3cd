//! Starting a cluster: open the catalog, start Raft, assemble the parts and spawn the tasks
//! that run beside the services (joining the grid, the link monitor, the election gate, the
//! publisher, the copy engine, the sweeps), then settle: a leader known, the grid file's
//! constructs defined, the volume store reconciled with the catalog.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vtgrid_catalog::{open_catalog, KvEngine, KvJournal, Raft};
use vtgrid_core::catalog::CatalogCommand;
use vtgrid_core::ClusterId;
use vtgrid_tvc::VolumeStore;

use crate::catalog::CatalogHandle;
use crate::cluster::Cluster;
use crate::config::{GridConfig, Role};
use crate::events::EventLog;
use crate::journal::Journal;
use crate::member::{MemberRecord, MembershipState};
use crate::metrics::Metrics;
use crate::modes::ReadTakeovers;
use crate::mounts::MountTable;
use crate::owed::OwedCopies;
use crate::raft_network::GridNetwork;
use crate::transport::{Connector, Peers};
use crate::tvc_io::Tvc;

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
    /// Open the catalog on `engine`, start Raft, and spawn the settle task. `mount_id_key` is
    /// this run's secret for mount ids: random in a real process (`MountTable::new`).
    pub async fn start<E: KvEngine>(
        grid: Arc<GridConfig>,
        id: ClusterId,
        engine: E,
        volumes: Arc<dyn VolumeStore>,
        connector: Arc<dyn Connector>,
        mount_id_key: [u8; 32],
    ) -> Result<Arc<Cluster>, StartError> {
        Self::start_with_faults(
            grid,
            id,
            engine,
            volumes,
            connector,
            mount_id_key,
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
        mount_id_key: [u8; 32],
        faults: crate::faults::FaultPoints,
    ) -> Result<Arc<Cluster>, StartError> {
        let role = grid
            .role_of(id.get())
            .ok_or(StartError::UnknownCluster(id.get()))?;
        let engine_for_journal = engine.clone();
        let member_record = MemberRecord::new(engine.clone());
        let read_takeovers =
            ReadTakeovers::open(engine.clone()).map_err(StartError::MembershipRecord)?;
        let (log, sm, view) = open_catalog(engine)?;
        let config = Arc::new(raft_config().validate()?);
        // Decided from the disk once Raft is up (`starting_membership`); the network shares it.
        let membership_state = Arc::new(MembershipState::new(
            vtgrid_core::membership::Membership::Unformed,
        ));
        let transport = Arc::new(Peers::new(connector));
        let raft = Raft::new(
            id.raft_id(),
            config,
            GridNetwork::new(
                transport.clone(),
                grid.voters()
                    .keys()
                    .map(|id| (*id, grid.grid_paths(*id as u8)))
                    .collect(),
                membership_state.clone(),
            ),
            log,
            sm,
        )
        .await?;
        membership_state.set(Self::starting_membership(&raft, &member_record).await?);
        let cluster = Arc::new(Cluster {
            id,
            role,
            insert_category: grid.insert_category()?,
            private_category: grid.private_category()?,
            configured_categories: grid.category_definitions()?,
            configured_classes: grid.management_classes()?,
            grid: grid.clone(),
            catalog: CatalogHandle::new(raft, view, transport.clone()),
            journal: Journal::open(Arc::new(KvJournal::open(engine_for_journal.clone())?))?,
            copies: OwedCopies::new(Arc::new(vtgrid_catalog::KvCopyQueue::open(
                engine_for_journal,
            )?)),
            links: Default::default(),
            duplexes_in: Default::default(),
            started: tokio::time::Instant::now(),
            events: EventLog::default(),
            transport,
            tvc: Tvc::new(volumes),
            mounts: MountTable::new(id, mount_id_key, grid.limits.max_mounts),
            metrics: Metrics::default(),
            caught_up: AtomicBool::new(false),
            lease: crate::lease::Lease::new(
                grid.lease(),
                crate::lease::LeaseClock::new(faults.clock_rate()),
            ),
            ready: tokio::sync::watch::Sender::new(false),
            sweeps: AtomicU64::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
            membership: membership_state,
            member_record,
            read_takeovers,
            aotm_checks: Default::default(),
            faults,
        });
        tokio::spawn(cluster.clone().join_grid());
        tokio::spawn(cluster.clone().watch_standalone());
        tokio::spawn(cluster.clone().settle());
        tokio::spawn(cluster.clone().monitor_links());
        tokio::spawn(cluster.clone().guard_elections());
        tokio::spawn(cluster.clone().run_lease());
        if role == Role::Data {
            tokio::spawn(cluster.clone().publish_journal());
            tokio::spawn(cluster.clone().run_copy_engine());
            tokio::spawn(cluster.clone().sweep_superseded());
            tokio::spawn(cluster.clone().settle_doubts());
            tokio::spawn(cluster.clone().run_service_prep());
            tokio::spawn(cluster.clone().run_restored_check());
            tokio::spawn(cluster.clone().run_aotm());
        }
        Ok(cluster)
    }

    /// Where this voter stands when it starts, from its own disk alone: with a log, or with the
    /// membership record, it is a member (a restart); empty and unrecorded, it must ask its peers
    /// first (`join_grid`, amnesia: see [`crate::membership`]).
    async fn starting_membership(
        raft: &Raft,
        record: &MemberRecord,
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
            // Learn the epochs before serving anything (T20: volumes may have been taken over
            // while this cluster was away, and its view still names it the owner): a barrier
            // through the leader, applied here, so the view is at least as new as the leader's
            // commit index. Only then may a file of a volume the catalog does not know be judged
            // an orphan, too. Host mounts wait for it (`Cluster::require_caught_up`).
            loop {
                match self.catalog.propose(CatalogCommand::Barrier).await {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "catching up with the catalog before serving; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            self.caught_up.store(true, Ordering::Release);
            self.reconcile_tvc(true).await;
            self.await_first_lease().await;
        }
        self.ready.send_replace(true);
        tracing::info!(cluster = %self.id, "ready");
    }

    /// Categories and management classes from the grid file that the catalog lacks or holds
    /// differently are (re)defined. Definitions made later through the admin API are kept.
    async fn define_configured_constructs(&self) -> Result<(), crate::error::NodeError> {
        let differing: Vec<CatalogCommand> = self.catalog.view.read(|s| {
            let categories = self
                .configured_categories
                .iter()
                .filter(|def| s.categories.get(&def.category) != Some(*def))
                .cloned()
                .map(CatalogCommand::DefineCategory);
            let classes = self
                .configured_classes
                .iter()
                .filter(|mc| s.management_classes.get(&mc.name) != Some(*mc))
                .cloned()
                .map(CatalogCommand::DefineManagementClass);
            categories.chain(classes).collect()
        });
        for command in differing {
            self.catalog.propose(command).await?;
        }
        Ok(())
    }
}
