//! The catalog state machine: what Raft replicates and the rules it enforces (DESIGN §3).
//!
//! Every cluster applies the same committed commands in the same order to a [`CatalogState`], so
//! every rule here must be deterministic: no clocks, no randomness, ordered maps only. A rule
//! violation is not an error of the state machine but an answer: the command is *rejected*, the
//! state is unchanged, and the proposer gets the [`CatalogRejection`] back.
//!
//! ```text
//!   owner Ci                         Raft                         every cluster
//!   ---------                        ----                         -------------
//!   UpdateVolume{by: Ci, epoch} ---> log entry, committed ---> CatalogState::apply
//!                                                               |- token.admits(Ci, epoch)? else StaleEpoch / NotOwner
//!                                                               '- record updated, Applied::Updated
//! ```
//!
//! The state machine trusts no command: every replica applies whatever the log holds, so a command
//! that is wrong (a forged entry, a bug in a proposer, an entry of an older release) must be
//! refused the same way everywhere, never panic there (it would panic again on every restart).
//! Values reach `apply` already valid, because every domain type deserializes through its
//! validating constructor; what `apply` checks is what depends on the state: who may send what,
//! which clusters belong to the grid (the Raft membership, [`CatalogState::members`]), and
//! counters at their end.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::category::{Category, CategoryDefinition};
use crate::cluster::{ClusterId, Epoch, OwnershipToken};
use crate::construct::{ConstructName, Constructs};
use crate::copy_mode::ManagementClass;
use crate::takeover::ServiceState;
use crate::volser::{Volser, VolserRange};
use crate::volume::{Digest, VersionNumber, VolumeRecord};
use crate::volumes::Volumes;

/// A change to the catalog, proposed through Raft.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum CatalogCommand {
    /// Create volumes owned by the inserting cluster at epoch 1 (B16). All or nothing: one
    /// VOLSER that exists already rejects the whole range. `by` is a data cluster of the grid;
    /// one command inserts at most [`MAX_RANGE_LEN`](crate::volser::MAX_RANGE_LEN) volumes (the
    /// range type allows no more, read back from storage included).
    InsertVolumes {
        by: ClusterId,
        range: VolserRange,
        category: Category,
    },
    /// Move ownership from `from` to `to`. `epoch` is the epoch `from` holds; the new token gets
    /// the next one. Proposed by the surrendering owner (the two-party handshake of DESIGN §3).
    /// `to` must be a data cluster of the grid: a witness or a cluster outside the membership
    /// could never use or hand back the volume.
    Transfer {
        volser: Volser,
        from: ClusterId,
        to: ClusterId,
        epoch: Epoch,
    },
    /// The owner `by`, holding `epoch`, keeps the volume and moves it to the next epoch. A cluster
    /// settles an ownership doubt with it (it proposed a `Transfer` whose outcome it never
    /// learned): if that Transfer committed first, this is refused (the epoch moved on) and the
    /// cluster learns it no longer owns the volume; if not, the Transfer, still carrying the old
    /// epoch, is refused whenever it arrives. A read barrier cannot do this: it orders only what
    /// the leader has already appended, not a Transfer still on its way (DESIGN §3).
    Reclaim {
        volser: Volser,
        by: ClusterId,
        epoch: Epoch,
    },
    /// A change made by the owner holding `epoch`: category, constructs and/or a new version.
    UpdateVolume {
        volser: Volser,
        by: ClusterId,
        epoch: Epoch,
        change: VolumeChange,
    },
    /// Create or replace a category definition.
    DefineCategory(CategoryDefinition),
    /// Create or replace a management class (all its per-cluster vectors at once).
    DefineManagementClass(ManagementClass),
    /// `cluster` holds a verified copy of `version` (DESIGN §4). Not fenced by epoch: any data
    /// cluster of the grid reports its own copies. A report for a version that is no longer
    /// current is refused.
    CopyDone {
        volser: Volser,
        version: VersionNumber,
        cluster: ClusterId,
        /// The copy's BLAKE3 digest: a copy of other bytes under the same version number (an
        /// orphan of a write that never reached the catalog) is refused, never counted. `None`
        /// only so that entries of the release before digests still parse: it is refused
        /// ([`CatalogRejection::CopyWithoutDigest`]), since a copy is counted only by its bytes.
        #[serde(default)]
        digest: Option<Digest>,
    },
    /// Changes nothing. A cluster that commits one and waits until it has applied it knows its
    /// view holds everything committed before: a read barrier for a view that may trail.
    Barrier,
    /// `cluster` lost its data dir and was readmitted as a new member (`vtgrid admin rejoin
    /// --as-new`): it holds none of the copies the catalog counted for it. They stop counting,
    /// so its copy engine sees them owed again and no rule (reads, retention, B6) relies on
    /// them. Committed by the leader during the readmission, before the cluster votes again.
    CopiesLost { cluster: ClusterId },
    /// `to` may take the volumes of `failed` (a write-takeover grant, WOT), or (`granted:
    /// false`) no longer may. Set through `to`'s admin API or by its takeover agent (B19, B27);
    /// committed through Raft, so only the side holding the majority can set it.
    SetWriteTakeover {
        failed: ClusterId,
        to: ClusterId,
        granted: bool,
    },
    /// `to` takes `volser` from an owner it cannot ask (B21, B23). Accepted only while the
    /// catalog holds a write-takeover grant from the owner to `to`, or the owner is in service
    /// mode, and only at the epoch `to` read: a takeover decided on an old view is stale. The
    /// token moves to `to` at the next epoch, so the old owner's late changes are fenced.
    Takeover {
        volser: Volser,
        to: ClusterId,
        epoch: Epoch,
    },
    /// `cluster`'s planned absence begins, moves on to service mode, or ends (B23). Service mode
    /// comes only after prep; leaving it reclaims nothing (T22).
    SetService {
        cluster: ClusterId,
        state: Option<ServiceState>,
    },
    /// `cluster` is back (B22b): every write-takeover grant for it ends. The volumes taken over
    /// from it stay with their takers.
    ClusterRestored { cluster: ClusterId },
}

/// Who may forward a command to the catalog's leader (`Propose` on the grid network): the
/// leader checks it against the sender its transport proved (issue 13, docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// Only this cluster: the command speaks for it (a Transfer from its owner, a CopyDone for
    /// its own copy, an update by the owner).
    Cluster(ClusterId),
    /// Any voter of the grid: an operator's definition or setting arrives at whichever cluster
    /// the operator asked, and a barrier changes nothing.
    AnyVoter,
    /// Never forwarded: the leader proposes it itself (a readmitted voter's lost copies).
    LeaderOnly,
}

impl CatalogCommand {
    /// Who may forward this command ([`Speaker`]).
    pub fn speaker(&self) -> Speaker {
        use CatalogCommand::*;
        match self {
            InsertVolumes { by, .. } | Reclaim { by, .. } | UpdateVolume { by, .. } => {
                Speaker::Cluster(*by)
            }
            Transfer { from, .. } => Speaker::Cluster(*from),
            CopyDone { cluster, .. } | ClusterRestored { cluster } => Speaker::Cluster(*cluster),
            SetWriteTakeover { to, .. } | Takeover { to, .. } => Speaker::Cluster(*to),
            DefineCategory(_) | DefineManagementClass(_) | Barrier | SetService { .. } => {
                Speaker::AnyVoter
            }
            CopiesLost { .. } => Speaker::LeaderOnly,
        }
    }

    /// May voter `sender` forward this command to the leader?
    pub fn may_be_forwarded_by(&self, sender: ClusterId) -> bool {
        match self.speaker() {
            Speaker::Cluster(c) => c == sender,
            Speaker::AnyVoter => true,
            Speaker::LeaderOnly => false,
        }
    }
}

impl CatalogCommand {
    /// The volumes this command changes if accepted (the publisher's journal key). `CopiesLost`
    /// names none: it may take its cluster out of any volume's copies, and changes nothing else.
    pub fn volume_keys(&self) -> Vec<Volser> {
        match self {
            CatalogCommand::InsertVolumes { range, .. } => range.iter().collect(),
            CatalogCommand::Transfer { volser, .. }
            | CatalogCommand::Reclaim { volser, .. }
            | CatalogCommand::UpdateVolume { volser, .. }
            | CatalogCommand::CopyDone { volser, .. }
            | CatalogCommand::Takeover { volser, .. } => vec![*volser],
            CatalogCommand::DefineCategory(_)
            | CatalogCommand::DefineManagementClass(_)
            | CatalogCommand::Barrier
            | CatalogCommand::SetWriteTakeover { .. }
            | CatalogCommand::SetService { .. }
            | CatalogCommand::ClusterRestored { .. } => vec![],
            // Any volume's copies may change: see `CatalogState::copies_lost`.
            CatalogCommand::CopiesLost { .. } => vec![],
        }
    }
}

/// What an owner changes about its volume in one command.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct VolumeChange {
    pub category: Option<Category>,
    pub constructs: Option<Constructs>,
    pub version: Option<NewVersion>,
}

impl VolumeChange {
    /// Make the change to `record`, checks already passed. The one place a change is applied: the
    /// state machine uses it, and so does an owner's journal overlay, which must show exactly
    /// what the catalog will hold once the change is published.
    pub fn apply_to(&self, record: &mut VolumeRecord) {
        if let Some(category) = self.category {
            record.category = category;
        }
        if let Some(constructs) = &self.constructs {
            record.constructs = constructs.clone();
        }
        if let Some(v) = &self.version {
            record.version = v.version;
            record.size = v.size;
            record.digest = v.digest;
            record.consistent_at = std::iter::once(v.written_at)
                .chain(v.held_by.iter().copied())
                .map(|c| (c, v.version))
                .collect();
            record.copy_modes = v.copy_modes.clone();
        }
    }
}

/// A version closed by rewind-unload on `written_at`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct NewVersion {
    pub version: VersionNumber,
    pub size: u64,
    pub digest: Digest,
    pub written_at: ClusterId,
    /// The management class's vector on `written_at` (B36), if the volume has a class.
    #[serde(default)]
    pub copy_modes: Option<crate::copy_mode::CopyModeVector>,
    /// Other clusters that hold the version durably when it is committed, so they are consistent
    /// from the start: the Sync clusters the writer duplexed every byte to while the host wrote
    /// (B42), and the RUN clusters that pulled it before rewind-unload returned (B37).
    #[serde(default)]
    pub held_by: Vec<ClusterId>,
}

/// The result of applying one command.
pub type CatalogResponse = Result<Applied, CatalogRejection>;

/// What an accepted command did.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Applied {
    Inserted {
        count: u64,
    },
    Transferred {
        token: OwnershipToken,
    },
    Updated {
        record: Box<VolumeRecord>,
    },
    Defined,
    /// The copies a cluster no longer holds stopped counting.
    CopiesForgotten {
        count: u64,
    },
    /// A grid setting (a takeover grant, a service state) changed or already was so.
    GridSettingChanged,
    /// The blank entry or membership change openraft itself commits.
    Nothing,
}

/// Why the state machine refused a command. The state is unchanged.
#[derive(Clone, PartialEq, Eq, Debug, Error, Serialize, Deserialize)]
pub enum CatalogRejection {
    #[error("volume {volser} already exists")]
    DuplicateVolser { volser: Volser },
    #[error("volume {volser} is not in the catalog")]
    UnknownVolume { volser: Volser },
    #[error("volume {volser}: epoch {held} is stale, the catalog holds epoch {current}")]
    StaleEpoch {
        volser: Volser,
        held: Epoch,
        current: Epoch,
    },
    #[error("volume {volser} is owned by {owner}, not {sender}")]
    NotOwner {
        volser: Volser,
        sender: ClusterId,
        owner: ClusterId,
    },
    #[error("category {category} is not defined")]
    UnknownCategory { category: Category },
    #[error("management class {name} is not defined")]
    UnknownManagementClass { name: ConstructName },
    #[error("volume {volser}: version {got} does not follow version {current}")]
    VersionNotNext {
        volser: Volser,
        current: VersionNumber,
        got: VersionNumber,
    },
    #[error("the copy of {volser} at version {version} holds other bytes than that version")]
    CopyNotOfThisVersion {
        volser: Volser,
        version: VersionNumber,
    },
    #[error("volume {volser}: version {got} is not the current version {current}")]
    VersionNotCurrent {
        volser: Volser,
        current: VersionNumber,
        got: VersionNumber,
    },
    /// A witness, or a cluster outside the grid's membership, named where only a data cluster of
    /// the grid can stand: a new owner, an inserter, a writer, a holder of a copy.
    #[error("{cluster} is not a data cluster of the grid")]
    NotADataCluster { cluster: ClusterId },
    /// A copy-mode vector holds one letter per data cluster of the grid (DESIGN §4).
    #[error("management class {name}: the vector for {cluster} has {len} copy modes, the grid has {clusters} data clusters")]
    VectorLength {
        name: ConstructName,
        cluster: ClusterId,
        len: usize,
        clusters: usize,
    },
    #[error("the copy of {volser} at version {version} names no digest; a copy is counted only by its bytes")]
    CopyWithoutDigest {
        volser: Volser,
        version: VersionNumber,
    },
    #[error("volume {volser}: epoch {epoch} is the last there is; its ownership cannot move on")]
    EpochExhausted { volser: Volser, epoch: Epoch },
    #[error("volume {volser}: version {version} is the last there is")]
    VersionExhausted {
        volser: Volser,
        version: VersionNumber,
    },
    /// A `Takeover` with no write-takeover grant from the owner to the taker and the owner not
    /// in service mode: a majority is not a direction (DESIGN §3).
    #[error("volume {volser} is owned by {owner}: {to} holds no write takeover for {owner} and {owner} is not in service mode")]
    NoTakeoverGrant {
        volser: Volser,
        owner: ClusterId,
        to: ClusterId,
    },
    #[error("volume {volser} is already owned by {to}")]
    AlreadyOwner { volser: Volser, to: ClusterId },
    #[error("{cluster} cannot take over its own volumes")]
    TakeoverOfItself { cluster: ClusterId },
    #[error("{cluster} enters service mode only from service prep")]
    ServiceNeedsPrep { cluster: ClusterId },
}

/// The replicated catalog. Ordered maps keep every iteration deterministic.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct CatalogState {
    /// Every volume record, with its indexes; changed only through [`Volumes::insert`] and
    /// [`Volumes::edit`], which keep them in step.
    pub volumes: Volumes,
    pub categories: BTreeMap<Category, CategoryDefinition>,
    pub management_classes: BTreeMap<ConstructName, ManagementClass>,
    /// The grid's voters (data clusters and witnesses) as the last Raft membership entry applied
    /// names them; the storage layer records them with [`CatalogState::set_members`] so that the
    /// rules here can tell a cluster of the grid from any number. Empty until a membership is
    /// applied (a state built in a test, a snapshot of an older release before it is read back):
    /// then any data cluster id is taken as a member, see [`CatalogState::is_data_member`].
    #[serde(default)]
    pub members: BTreeSet<ClusterId>,
    /// Write-takeover grants: (failed cluster, the cluster that may take its volumes) (B19, B21).
    #[serde(default)]
    pub write_takeovers: BTreeSet<(ClusterId, ClusterId)>,
    /// Clusters in service prep or service mode (B23).
    #[serde(default)]
    pub service: BTreeMap<ClusterId, ServiceState>,
    /// Set once one survivor was forced standalone ([`crate::standalone`]).
    #[serde(default)]
    pub forced_standalone: Option<crate::standalone::ForcedStandalone>,
}

impl CatalogState {
    /// Apply one committed command. Accepted commands change the state; rejected ones do not.
    pub fn apply(&mut self, command: &CatalogCommand) -> CatalogResponse {
        match command {
            CatalogCommand::InsertVolumes {
                by,
                range,
                category,
            } => self.insert(*by, range, *category),
            CatalogCommand::Transfer {
                volser,
                from,
                to,
                epoch,
            } => self.transfer(*volser, *from, *to, *epoch),
            CatalogCommand::Reclaim { volser, by, epoch } => self.reclaim(*volser, *by, *epoch),
            CatalogCommand::UpdateVolume {
                volser,
                by,
                epoch,
                change,
            } => self.update(*volser, *by, *epoch, change),
            CatalogCommand::DefineCategory(def) => {
                self.categories.insert(def.category, def.clone());
                Ok(Applied::Defined)
            }
            CatalogCommand::DefineManagementClass(mc) => self.define_class(mc),
            CatalogCommand::CopyDone {
                volser,
                version,
                cluster,
                digest,
            } => self.copy_done(*volser, *version, *cluster, *digest),
            CatalogCommand::Barrier => Ok(Applied::Nothing),
            CatalogCommand::CopiesLost { cluster } => self.copies_lost(*cluster),
            CatalogCommand::SetWriteTakeover {
                failed,
                to,
                granted,
            } => self.set_write_takeover(*failed, *to, *granted),
            CatalogCommand::Takeover { volser, to, epoch } => self.takeover(*volser, *to, *epoch),
            CatalogCommand::SetService { cluster, state } => self.set_service(*cluster, *state),
            CatalogCommand::ClusterRestored { cluster } => self.restored(*cluster),
        }
    }

    /// May `to` take the volumes of `owner` without asking it (a grant, or service mode)?
    pub fn may_take_over(&self, owner: ClusterId, to: ClusterId) -> bool {
        owner != to
            && (self.write_takeovers.contains(&(owner, to))
                || self.service.get(&owner) == Some(&ServiceState::Service))
    }

    /// The service state of `cluster`, if it is in prep or service.
    pub fn service_state(&self, cluster: ClusterId) -> Option<ServiceState> {
        self.service.get(&cluster).copied()
    }

    pub fn is_fast_ready(&self, category: Category) -> bool {
        self.categories.get(&category).is_some_and(|d| d.fast_ready)
    }

    /// Record the grid's voters, from a Raft membership entry as it is applied (or a snapshot as
    /// it is read back). Every replica applies the same entries, so every replica holds the same
    /// set.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = ClusterId>) {
        self.members = members.into_iter().collect();
    }

    /// May `cluster` own, insert, write or hold a volume? Only a data cluster (never a witness,
    /// DESIGN §2) and, once a membership has been applied, only one of the grid's voters. With no
    /// membership recorded any data cluster id passes: a node's log always starts with its
    /// membership, so only hand-built states and older snapshots lack one, and refusing all
    /// there would refuse every command of a grid whose snapshot predates the field.
    pub fn is_data_member(&self, cluster: ClusterId) -> bool {
        cluster.is_data_cluster() && (self.members.is_empty() || self.members.contains(&cluster))
    }

    fn require_data_member(&self, cluster: ClusterId) -> Result<(), CatalogRejection> {
        if self.is_data_member(cluster) {
            Ok(())
        } else {
            Err(CatalogRejection::NotADataCluster { cluster })
        }
    }

    fn insert(
        &mut self,
        by: ClusterId,
        range: &VolserRange,
        category: Category,
    ) -> CatalogResponse {
        self.require_data_member(by)?;
        self.require_category(category)?;
        if let Some(existing) = range.iter().find(|v| self.volumes.contains_key(v)) {
            return Err(CatalogRejection::DuplicateVolser { volser: existing });
        }
        for volser in range.iter() {
            let record = VolumeRecord {
                volser,
                token: OwnershipToken {
                    owner: by,
                    epoch: Epoch::FIRST,
                },
                category,
                constructs: Constructs::default(),
                version: 0,
                size: 0,
                digest: Digest::EMPTY,
                consistent_at: BTreeMap::from([(by, 0)]),
                copy_modes: None,
                taken_from: None,
            };
            self.volumes.insert(record);
        }
        Ok(Applied::Inserted { count: range.len() })
    }

    fn transfer(
        &mut self,
        volser: Volser,
        from: ClusterId,
        to: ClusterId,
        epoch: Epoch,
    ) -> CatalogResponse {
        self.require_data_member(to)?;
        self.fenced(volser, from, epoch)?;
        let token = OwnershipToken {
            owner: to,
            epoch: next_epoch(volser, epoch)?,
        };
        self.volumes.edit(&volser, |r| r.token = token);
        Ok(Applied::Transferred { token })
    }

    fn reclaim(&mut self, volser: Volser, by: ClusterId, epoch: Epoch) -> CatalogResponse {
        self.fenced(volser, by, epoch)?;
        let token = OwnershipToken {
            owner: by,
            epoch: next_epoch(volser, epoch)?,
        };
        self.volumes.edit(&volser, |r| r.token = token);
        Ok(Applied::Transferred { token })
    }

    fn update(
        &mut self,
        volser: Volser,
        by: ClusterId,
        epoch: Epoch,
        change: &VolumeChange,
    ) -> CatalogResponse {
        // Check everything before changing anything, so a rejection leaves no trace.
        self.require_data_member(by)?;
        if let Some(v) = &change.version {
            for holder in std::iter::once(v.written_at).chain(v.held_by.iter().copied()) {
                self.require_data_member(holder)?;
            }
        }
        if let Some(category) = change.category {
            self.require_category(category)?;
        }
        if let Some(mc) = change
            .constructs
            .as_ref()
            .and_then(|c| c.management_class.as_ref())
        {
            if !self.management_classes.contains_key(mc) {
                return Err(CatalogRejection::UnknownManagementClass { name: mc.clone() });
            }
        }
        let record = self.fenced(volser, by, epoch)?;
        if let Some(v) = &change.version {
            let next = record
                .version
                .checked_add(1)
                .ok_or(CatalogRejection::VersionExhausted {
                    volser,
                    version: record.version,
                })?;
            if v.version != next {
                return Err(CatalogRejection::VersionNotNext {
                    volser,
                    current: record.version,
                    got: v.version,
                });
            }
        }
        let record = self
            .volumes
            .edit(&volser, |r| {
                change.apply_to(r);
                r.clone()
            })
            .ok_or(CatalogRejection::UnknownVolume { volser })?;
        Ok(Applied::Updated {
            record: Box::new(record),
        })
    }

    fn copy_done(
        &mut self,
        volser: Volser,
        version: VersionNumber,
        cluster: ClusterId,
        digest: Option<Digest>,
    ) -> CatalogResponse {
        self.require_data_member(cluster)?;
        let record = self
            .volumes
            .get(&volser)
            .ok_or(CatalogRejection::UnknownVolume { volser })?;
        let Some(digest) = digest else {
            return Err(CatalogRejection::CopyWithoutDigest { volser, version });
        };
        if digest != record.digest && record.version == version {
            return Err(CatalogRejection::CopyNotOfThisVersion { volser, version });
        }
        if record.version != version {
            return Err(CatalogRejection::VersionNotCurrent {
                volser,
                current: record.version,
                got: version,
            });
        }
        let record = self
            .volumes
            .edit(&volser, |r| {
                r.consistent_at.insert(cluster, version);
                r.clone()
            })
            .ok_or(CatalogRejection::UnknownVolume { volser })?;
        Ok(Applied::Updated {
            record: Box::new(record),
        })
    }

    /// `cluster` holds none of its copies any more (its data dir was lost): take it out of every
    /// volume's consistent clusters. Its ownership tokens stay; a version it owns whose only copy
    /// was there now has no valid copy (B6), which is the truth.
    ///
    /// Accepted for a data cluster outside the membership too: the readmission commits it right
    /// after removing the voter from the group.
    fn copies_lost(&mut self, cluster: ClusterId) -> CatalogResponse {
        if !cluster.is_data_cluster() {
            return Err(CatalogRejection::NotADataCluster { cluster });
        }
        let mut count = 0;
        self.volumes.edit_all(|record| {
            if record.consistent_at.remove(&cluster).is_some() {
                count += 1;
            }
        });
        Ok(Applied::CopiesForgotten { count })
    }

    fn set_write_takeover(
        &mut self,
        failed: ClusterId,
        to: ClusterId,
        granted: bool,
    ) -> CatalogResponse {
        if failed == to {
            return Err(CatalogRejection::TakeoverOfItself { cluster: to });
        }
        self.require_data_member(failed)?;
        self.require_data_member(to)?;
        if granted {
            self.write_takeovers.insert((failed, to));
        } else {
            self.write_takeovers.remove(&(failed, to));
        }
        Ok(Applied::GridSettingChanged)
    }

    fn takeover(&mut self, volser: Volser, to: ClusterId, epoch: Epoch) -> CatalogResponse {
        self.require_data_member(to)?;
        let record = self
            .volumes
            .get(&volser)
            .ok_or(CatalogRejection::UnknownVolume { volser })?;
        if record.token.epoch != epoch {
            return Err(CatalogRejection::StaleEpoch {
                volser,
                held: epoch,
                current: record.token.epoch,
            });
        }
        let owner = record.token.owner;
        if owner == to {
            return Err(CatalogRejection::AlreadyOwner { volser, to });
        }
        if !self.may_take_over(owner, to) {
            return Err(CatalogRejection::NoTakeoverGrant { volser, owner, to });
        }
        let token = OwnershipToken {
            owner: to,
            epoch: next_epoch(volser, epoch)?,
        };
        self.volumes.edit(&volser, |record| {
            record.taken_from = Some(record.token);
            record.token = token;
        });
        Ok(Applied::Transferred { token })
    }

    fn set_service(&mut self, cluster: ClusterId, state: Option<ServiceState>) -> CatalogResponse {
        self.require_data_member(cluster)?;
        match state {
            None => {
                self.service.remove(&cluster);
            }
            Some(ServiceState::Prep) => {
                self.service.insert(cluster, ServiceState::Prep);
            }
            Some(ServiceState::Service) => {
                if !self.service.contains_key(&cluster) {
                    return Err(CatalogRejection::ServiceNeedsPrep { cluster });
                }
                self.service.insert(cluster, ServiceState::Service);
            }
        }
        Ok(Applied::GridSettingChanged)
    }

    fn restored(&mut self, cluster: ClusterId) -> CatalogResponse {
        self.require_data_member(cluster)?;
        self.write_takeovers
            .retain(|(failed, _)| *failed != cluster);
        Ok(Applied::GridSettingChanged)
    }

    /// A class may be defined for any data cluster id, one that has not joined the grid yet
    /// included (an operator prepares the grid file first), but never for a witness, which
    /// mounts nothing.
    fn define_class(&mut self, mc: &ManagementClass) -> CatalogResponse {
        if let Some(&cluster) = mc.vectors.keys().find(|c| !self.is_data_member(**c)) {
            return Err(CatalogRejection::NotADataCluster { cluster });
        }
        // With a membership applied, each vector has one mode per data cluster of the grid.
        let clusters = self.members.iter().filter(|c| c.is_data_cluster()).count();
        if clusters > 0 {
            if let Some((&cluster, v)) =
                mc.vectors.iter().find(|(_, v)| v.modes().len() != clusters)
            {
                return Err(CatalogRejection::VectorLength {
                    name: mc.name.clone(),
                    cluster,
                    len: v.modes().len(),
                    clusters,
                });
            }
        }
        self.management_classes.insert(mc.name.clone(), mc.clone());
        Ok(Applied::Defined)
    }

    /// The record, if `sender` holding `held` is its current owner (epoch fencing).
    fn fenced(
        &self,
        volser: Volser,
        sender: ClusterId,
        held: Epoch,
    ) -> Result<&VolumeRecord, CatalogRejection> {
        let record = self
            .volumes
            .get(&volser)
            .ok_or(CatalogRejection::UnknownVolume { volser })?;
        if record.token.epoch != held {
            return Err(CatalogRejection::StaleEpoch {
                volser,
                held,
                current: record.token.epoch,
            });
        }
        if record.token.owner != sender {
            return Err(CatalogRejection::NotOwner {
                volser,
                sender,
                owner: record.token.owner,
            });
        }
        Ok(record)
    }

    fn require_category(&self, category: Category) -> Result<(), CatalogRejection> {
        if self.categories.contains_key(&category) {
            Ok(())
        } else {
            Err(CatalogRejection::UnknownCategory { category })
        }
    }
}

/// The epoch an ownership change moves `volser` to, if `epoch` is not the last there is.
fn next_epoch(volser: Volser, epoch: Epoch) -> Result<Epoch, CatalogRejection> {
    epoch
        .checked_next()
        .ok_or(CatalogRejection::EpochExhausted { volser, epoch })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn v(s: &str) -> Volser {
        s.parse().unwrap()
    }

    #[test]
    fn a_transfer_is_forwarded_only_by_the_owner_it_names() {
        let t = CatalogCommand::Transfer {
            volser: v("A00001"),
            from: c(0),
            to: c(1),
            epoch: Epoch(3),
        };
        assert!(t.may_be_forwarded_by(c(0)));
        assert!(
            !t.may_be_forwarded_by(c(1)),
            "the taker cannot move it to itself"
        );
        let copy = CatalogCommand::CopyDone {
            volser: v("A00001"),
            version: 1,
            cluster: c(2),
            digest: None,
        };
        assert!(copy.may_be_forwarded_by(c(2)));
        assert!(
            !copy.may_be_forwarded_by(c(0)),
            "a copy is reported by its holder only"
        );
        assert!(CatalogCommand::Barrier.may_be_forwarded_by(c(9)));
        let lost = CatalogCommand::CopiesLost { cluster: c(1) };
        assert!(!lost.may_be_forwarded_by(c(1)) && !lost.may_be_forwarded_by(c(0)));
    }

    fn grid() -> CatalogState {
        let mut s = CatalogState::default();
        let def = CategoryDefinition {
            category: Category(1),
            name: "SCRATCH".into(),
            fast_ready: true,
        };
        s.apply(&CatalogCommand::DefineCategory(def)).unwrap();
        let def = CategoryDefinition {
            category: Category(0xF),
            name: "PRIVATE".into(),
            fast_ready: false,
        };
        s.apply(&CatalogCommand::DefineCategory(def)).unwrap();
        s.apply(&CatalogCommand::InsertVolumes {
            by: c(0),
            range: "A00000-A00009".parse().unwrap(),
            category: Category(1),
        })
        .unwrap();
        s
    }

    fn new_version(n: u64, at: ClusterId) -> VolumeChange {
        VolumeChange {
            version: Some(NewVersion {
                version: n,
                size: 10,
                digest: Digest([n as u8; 32]),
                written_at: at,
                copy_modes: Some("RD".parse().unwrap()),
                held_by: Vec::new(),
            }),
            ..VolumeChange::default()
        }
    }

    #[test]
    fn b16_insert_gives_ownership_to_the_inserting_cluster_at_epoch_one() {
        let s = grid();
        let r = &s.volumes[&v("A00003")];
        assert_eq!(
            r.token,
            OwnershipToken {
                owner: c(0),
                epoch: Epoch::FIRST
            }
        );
        assert_eq!(r.version, 0);
        assert_eq!(s.volumes.len(), 10);
    }

    #[test]
    fn insert_is_all_or_nothing_on_duplicates() {
        let mut s = grid();
        let before = s.clone();
        let got = s.apply(&CatalogCommand::InsertVolumes {
            by: c(1),
            range: "A00008-A00020".parse().unwrap(),
            category: Category(1),
        });
        assert_eq!(
            got,
            Err(CatalogRejection::DuplicateVolser {
                volser: v("A00008")
            })
        );
        assert_eq!(s, before);
    }

    #[test]
    fn insert_needs_a_defined_category() {
        let mut s = grid();
        let got = s.apply(&CatalogCommand::InsertVolumes {
            by: c(0),
            range: "B00000".parse().unwrap(),
            category: Category(7),
        });
        assert_eq!(
            got,
            Err(CatalogRejection::UnknownCategory {
                category: Category(7)
            })
        );
    }

    /// Sequence A (issue 9): an owner in doubt about a Transfer it proposed settles the doubt.
    /// With a barrier (which changes nothing) a Transfer still on its way commits afterwards, and
    /// the volume has a second owner; with Reclaim the late Transfer is stale.
    #[test]
    fn a_reclaim_fences_a_late_transfer_a_barrier_does_not() {
        let vol = v("A00001");
        let transfer = CatalogCommand::Transfer {
            volser: vol,
            from: c(0),
            to: c(1),
            epoch: Epoch(1),
        };
        let mut barrier_settled = grid();
        barrier_settled.apply(&CatalogCommand::Barrier).unwrap();
        assert!(
            barrier_settled.apply(&transfer).is_ok(),
            "the hole the Reclaim closes: after a barrier the late Transfer still commits"
        );

        let mut s = grid();
        let reclaimed = s.apply(&CatalogCommand::Reclaim {
            volser: vol,
            by: c(0),
            epoch: Epoch(1),
        });
        let kept = OwnershipToken {
            owner: c(0),
            epoch: Epoch(2),
        };
        assert_eq!(reclaimed, Ok(Applied::Transferred { token: kept }));
        let before = s.clone();
        assert!(matches!(
            s.apply(&transfer),
            Err(CatalogRejection::StaleEpoch { .. })
        ));
        assert_eq!(s, before, "the late Transfer changed nothing");
        assert_eq!(s.volumes[&vol].token, kept);
    }

    /// The Transfer got there first: the Reclaim is refused and the owner is the Transfer's target.
    #[test]
    fn a_reclaim_after_the_transfer_committed_is_refused() {
        let vol = v("A00001");
        let mut s = grid();
        s.apply(&CatalogCommand::Transfer {
            volser: vol,
            from: c(0),
            to: c(1),
            epoch: Epoch(1),
        })
        .unwrap();
        let late = s.apply(&CatalogCommand::Reclaim {
            volser: vol,
            by: c(0),
            epoch: Epoch(1),
        });
        assert!(matches!(late, Err(CatalogRejection::StaleEpoch { .. })));
        assert_eq!(s.volumes[&vol].token.owner, c(1));
    }

    #[test]
    fn transfer_bumps_the_epoch_and_fences_the_old_owner() {
        let mut s = grid();
        let vol = v("A00001");
        let got = s.apply(&CatalogCommand::Transfer {
            volser: vol,
            from: c(0),
            to: c(1),
            epoch: Epoch(1),
        });
        assert_eq!(
            got,
            Ok(Applied::Transferred {
                token: OwnershipToken {
                    owner: c(1),
                    epoch: Epoch(2)
                }
            })
        );
        // The old owner's late update, with the epoch it held, is rejected.
        let late = s.apply(&CatalogCommand::UpdateVolume {
            volser: vol,
            by: c(0),
            epoch: Epoch(1),
            change: new_version(1, c(0)),
        });
        assert_eq!(
            late,
            Err(CatalogRejection::StaleEpoch {
                volser: vol,
                held: Epoch(1),
                current: Epoch(2)
            })
        );
        // A replayed transfer is rejected too.
        let again = s.apply(&CatalogCommand::Transfer {
            volser: vol,
            from: c(0),
            to: c(2),
            epoch: Epoch(1),
        });
        assert!(matches!(again, Err(CatalogRejection::StaleEpoch { .. })));
        assert_eq!(s.volumes[&vol].token.owner, c(1));
    }

    #[test]
    fn only_the_owner_updates() {
        let mut s = grid();
        let vol = v("A00002");
        let got = s.apply(&CatalogCommand::UpdateVolume {
            volser: vol,
            by: c(1),
            epoch: Epoch(1),
            change: new_version(1, c(1)),
        });
        assert_eq!(
            got,
            Err(CatalogRejection::NotOwner {
                volser: vol,
                sender: c(1),
                owner: c(0)
            })
        );
    }

    #[test]
    fn versions_follow_one_another_and_reset_consistency() {
        let mut s = grid();
        let vol = v("A00004");
        s.apply(&CatalogCommand::UpdateVolume {
            volser: vol,
            by: c(0),
            epoch: Epoch(1),
            change: new_version(1, c(0)),
        })
        .unwrap();
        let skip = s.apply(&CatalogCommand::UpdateVolume {
            volser: vol,
            by: c(0),
            epoch: Epoch(1),
            change: new_version(3, c(0)),
        });
        assert_eq!(
            skip,
            Err(CatalogRejection::VersionNotNext {
                volser: vol,
                current: 1,
                got: 3
            })
        );
        let r = &s.volumes[&vol];
        assert_eq!((r.version, r.size), (1, 10));
        assert_eq!(r.consistent_clusters().collect::<Vec<_>>(), vec![c(0)]);
    }

    #[test]
    fn copies_lost_takes_the_cluster_out_of_every_copy_and_nothing_else() {
        let mut s = grid();
        for volser in ["A00000", "A00001", "A00002"] {
            s.apply(&CatalogCommand::UpdateVolume {
                volser: v(volser),
                by: c(0),
                epoch: Epoch::FIRST,
                change: new_version(1, c(0)),
            })
            .unwrap();
        }
        for volser in ["A00000", "A00002"] {
            s.apply(&CatalogCommand::CopyDone {
                volser: v(volser),
                version: 1,
                cluster: c(1),
                digest: Some(Digest([1; 32])),
            })
            .unwrap();
        }
        let before = s.clone();
        assert_eq!(
            s.apply(&CatalogCommand::CopiesLost { cluster: c(1) }),
            Ok(Applied::CopiesForgotten { count: 2 })
        );
        for (volser, old) in &before.volumes {
            let mut expected = old.clone();
            expected.consistent_at.remove(&c(1));
            assert_eq!(s.volumes[volser], expected, "{volser}: only C1's copy went");
        }
        assert_eq!(
            s.apply(&CatalogCommand::CopiesLost { cluster: c(8) }),
            Err(CatalogRejection::NotADataCluster { cluster: c(8) })
        );
    }

    #[test]
    fn copy_done_marks_the_current_version_only() {
        let mut s = grid();
        let vol = v("A00006");
        s.apply(&CatalogCommand::UpdateVolume {
            volser: vol,
            by: c(0),
            epoch: Epoch(1),
            change: new_version(1, c(0)),
        })
        .unwrap();
        s.apply(&CatalogCommand::CopyDone {
            volser: vol,
            version: 1,
            cluster: c(1),
            digest: Some(Digest([1; 32])),
        })
        .unwrap();
        assert_eq!(
            s.volumes[&vol].consistent_clusters().collect::<Vec<_>>(),
            vec![c(0), c(1)]
        );
        let other_bytes = s.apply(&CatalogCommand::CopyDone {
            volser: vol,
            version: 1,
            cluster: c(2),
            digest: Some(Digest([9; 32])),
        });
        assert_eq!(
            other_bytes,
            Err(CatalogRejection::CopyNotOfThisVersion {
                volser: vol,
                version: 1
            }),
            "a copy of other bytes under version 1 is not counted"
        );
        let stale = s.apply(&CatalogCommand::CopyDone {
            volser: vol,
            version: 0,
            cluster: c(2),
            digest: Some(Digest::EMPTY),
        });
        assert_eq!(
            stale,
            Err(CatalogRejection::VersionNotCurrent {
                volser: vol,
                current: 1,
                got: 0
            })
        );
        s.apply(&CatalogCommand::UpdateVolume {
            volser: vol,
            by: c(0),
            epoch: Epoch(1),
            change: new_version(2, c(0)),
        })
        .unwrap();
        assert_eq!(
            s.volumes[&vol].consistent_clusters().collect::<Vec<_>>(),
            vec![c(0)],
            "a new version resets copies"
        );
        assert_eq!(
            s.volumes[&vol]
                .copy_modes
                .as_ref()
                .map(|v| v.to_string())
                .as_deref(),
            Some("RD")
        );
    }

    #[test]
    fn rejected_update_changes_nothing() {
        let mut s = grid();
        let before = s.clone();
        let change = VolumeChange {
            category: Some(Category(0xF)),
            constructs: Some(Constructs {
                management_class: Some("NOPE".parse().unwrap()),
                ..Constructs::default()
            }),
            version: None,
        };
        let got = s.apply(&CatalogCommand::UpdateVolume {
            volser: v("A00005"),
            by: c(0),
            epoch: Epoch(1),
            change,
        });
        assert!(matches!(
            got,
            Err(CatalogRejection::UnknownManagementClass { .. })
        ));
        assert_eq!(s, before);
    }
    fn takeover_of(vol: Volser, to: u8, epoch: u64) -> CatalogCommand {
        CatalogCommand::Takeover {
            volser: vol,
            to: c(to),
            epoch: Epoch(epoch),
        }
    }

    fn grant(failed: u8, to: u8, granted: bool) -> CatalogCommand {
        CatalogCommand::SetWriteTakeover {
            failed: c(failed),
            to: c(to),
            granted,
        }
    }

    /// B14/B21 and DESIGN §3 "a majority is not a direction": without a grant no takeover; with
    /// one the token moves at the next epoch and the old owner's late update is stale.
    #[test]
    fn b21_a_takeover_needs_a_grant_and_fences_the_old_owner() {
        let vol = v("A00002");
        let mut s = grid();
        let before = s.clone();
        assert_eq!(
            s.apply(&takeover_of(vol, 1, 1)),
            Err(CatalogRejection::NoTakeoverGrant {
                volser: vol,
                owner: c(0),
                to: c(1)
            })
        );
        assert_eq!(s, before, "a refused takeover changes nothing");
        s.apply(&grant(0, 2, true)).unwrap();
        assert!(
            matches!(
                s.apply(&takeover_of(vol, 1, 1)),
                Err(CatalogRejection::NoTakeoverGrant { .. })
            ),
            "a grant to C2 is not one to C1 (B19: per pair)"
        );
        s.apply(&grant(0, 1, true)).unwrap();
        assert!(
            matches!(
                s.apply(&takeover_of(vol, 1, 7)),
                Err(CatalogRejection::StaleEpoch { .. })
            ),
            "a takeover on another epoch than the volume's is stale"
        );
        let taken = OwnershipToken {
            owner: c(1),
            epoch: Epoch(2),
        };
        assert_eq!(
            s.apply(&takeover_of(vol, 1, 1)),
            Ok(Applied::Transferred { token: taken })
        );
        let late = CatalogCommand::UpdateVolume {
            volser: vol,
            by: c(0),
            epoch: Epoch(1),
            change: new_version(1, c(0)),
        };
        assert!(matches!(
            s.apply(&late),
            Err(CatalogRejection::StaleEpoch { .. })
        ));
        assert_eq!(s.volumes[&vol].token, taken);
        assert_eq!(
            s.apply(&takeover_of(vol, 1, 2)),
            Err(CatalogRejection::AlreadyOwner {
                volser: vol,
                to: c(1)
            })
        );
    }

    /// B22b: a grant ends when its cluster is restored, and takeovers with it; volumes already
    /// taken stay taken.
    #[test]
    fn b22_a_restored_cluster_ends_its_grants_but_keeps_nothing_back() {
        let mut s = grid();
        s.apply(&grant(0, 1, true)).unwrap();
        s.apply(&takeover_of(v("A00001"), 1, 1)).unwrap();
        s.apply(&CatalogCommand::ClusterRestored { cluster: c(0) })
            .unwrap();
        assert!(s.write_takeovers.is_empty());
        assert!(matches!(
            s.apply(&takeover_of(v("A00002"), 1, 1)),
            Err(CatalogRejection::NoTakeoverGrant { .. })
        ));
        assert_eq!(s.volumes[&v("A00001")].token.owner, c(1));
        assert!(s.apply(&grant(1, 1, true)).is_err(), "no grant to itself");
        assert!(s.apply(&grant(0, 9, true)).is_err(), "never to a witness");
    }

    /// B23/T22: service mode only after prep; in service mode any cluster takes the volumes,
    /// and leaving it reclaims nothing.
    #[test]
    fn b23_service_mode_comes_after_prep_and_opens_the_volumes_to_all() {
        let mut s = grid();
        let set = |state| CatalogCommand::SetService {
            cluster: c(0),
            state,
        };
        assert_eq!(
            s.apply(&set(Some(ServiceState::Service))),
            Err(CatalogRejection::ServiceNeedsPrep { cluster: c(0) })
        );
        s.apply(&set(Some(ServiceState::Prep))).unwrap();
        assert!(
            matches!(
                s.apply(&takeover_of(v("A00001"), 1, 1)),
                Err(CatalogRejection::NoTakeoverGrant { .. })
            ),
            "in prep the volumes still move by handshake only"
        );
        s.apply(&set(Some(ServiceState::Service))).unwrap();
        s.apply(&takeover_of(v("A00001"), 1, 1)).unwrap();
        s.apply(&takeover_of(v("A00002"), 2, 1)).unwrap();
        s.apply(&set(None)).unwrap();
        assert_eq!(s.volumes[&v("A00001")].token.owner, c(1));
        assert_eq!(s.volumes[&v("A00002")].token.owner, c(2));
        assert!(matches!(
            s.apply(&takeover_of(v("A00003"), 1, 1)),
            Err(CatalogRejection::NoTakeoverGrant { .. })
        ));
    }

    #[test]
    fn takeover_settings_survive_a_snapshot_round_trip() {
        let mut s = grid();
        s.apply(&grant(0, 1, true)).unwrap();
        s.apply(&CatalogCommand::SetService {
            cluster: c(2),
            state: Some(ServiceState::Prep),
        })
        .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: CatalogState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let old = json.replace(",\"write_takeovers\":[[0,1]]", "");
        let older: CatalogState = serde_json::from_str(&old).unwrap();
        assert!(
            older.write_takeovers.is_empty(),
            "an older snapshot reads back"
        );
    }
}

#[cfg(test)]
mod untrusted_tests {
    //! Commands the state machine must refuse however they reached the log (issue 9, "the state
    //! machine trusts its commands"). Each one used to be accepted or to panic.

    use super::*;

    fn c(n: u8) -> ClusterId {
        ClusterId::new(n).unwrap()
    }

    fn v(s: &str) -> Volser {
        s.parse().unwrap()
    }

    /// A grid of C0, C1 and the witness C8, with A00000..A00004 owned by C0.
    fn grid() -> CatalogState {
        let mut s = CatalogState::default();
        s.set_members([c(0), c(1), c(8)]);
        s.apply(&CatalogCommand::DefineCategory(CategoryDefinition {
            category: Category(1),
            name: "SCRATCH".into(),
            fast_ready: true,
        }))
        .unwrap();
        s.apply(&CatalogCommand::InsertVolumes {
            by: c(0),
            range: "A00000-A00004".parse().unwrap(),
            category: Category(1),
        })
        .unwrap();
        s
    }

    /// Apply `command`, expect `rejection`, and check that the state did not change.
    fn refused(s: &mut CatalogState, command: CatalogCommand, rejection: CatalogRejection) {
        let before = s.clone();
        assert_eq!(s.apply(&command), Err(rejection), "{command:?}");
        assert_eq!(*s, before, "a refused {command:?} changed the state");
    }

    fn version(n: u64, at: ClusterId, held_by: Vec<ClusterId>) -> VolumeChange {
        VolumeChange {
            version: Some(NewVersion {
                version: n,
                size: 1,
                digest: Digest([7; 32]),
                written_at: at,
                copy_modes: None,
                held_by,
            }),
            ..VolumeChange::default()
        }
    }

    /// The review's example (issue 9): a range whose `prefix_len` says 7 of 6 characters. It used
    /// to deserialize and then panic inside `apply` on every replica, and again on every restart.
    #[test]
    fn an_insert_with_prefix_len_7_does_not_deserialize() {
        let json = r#"{"InsertVolumes":{"by":0,"range":{"first":"A00000","last":"A00009","prefix_len":7},"category":"0001"}}"#;
        let got = serde_json::from_str::<CatalogCommand>(json);
        let err = got
            .expect_err("a range with prefix_len 7 is not a range")
            .to_string();
        assert!(
            err.contains("prefix_len 7"),
            "the error names the problem: {err}"
        );
    }

    /// Valid values keep the format the journal, the Raft log and snapshots already hold.
    #[test]
    fn an_insert_keeps_its_stored_format() {
        let json = r#"{"InsertVolumes":{"by":3,"range":{"first":"A00000","last":"A00009","prefix_len":1},"category":"0001"}}"#;
        let command: CatalogCommand = serde_json::from_str(json).unwrap();
        assert_eq!(
            command,
            CatalogCommand::InsertVolumes {
                by: c(3),
                range: "A00000-A00009".parse().unwrap(),
                category: Category(1),
            }
        );
        assert_eq!(serde_json::to_string(&command).unwrap(), json);
    }

    #[test]
    fn an_insert_of_more_than_the_cap_does_not_deserialize() {
        let json = r#"{"InsertVolumes":{"by":0,"range":{"first":"000000","last":"100000","prefix_len":0},"category":"0001"}}"#;
        let err = serde_json::from_str::<CatalogCommand>(json)
            .expect_err("100001 volumes in one command")
            .to_string();
        assert!(err.contains("at most 100000"), "{err}");
        let json = r#"{"InsertVolumes":{"by":0,"range":{"first":"000000","last":"099999","prefix_len":0},"category":"0001"}}"#;
        assert!(serde_json::from_str::<CatalogCommand>(json).is_ok());
    }

    #[test]
    fn a_cluster_id_past_the_voters_does_not_deserialize() {
        let json = r#"{"Reclaim":{"volser":"A00001","by":200,"epoch":1}}"#;
        let err = serde_json::from_str::<CatalogCommand>(json)
            .expect_err("there is no C200")
            .to_string();
        assert!(err.contains("invalid cluster id 200"), "{err}");
    }

    #[test]
    fn a_transfer_to_a_witness_or_a_stranger_is_refused() {
        let mut s = grid();
        for to in [c(8), c(2), c(12)] {
            refused(
                &mut s,
                CatalogCommand::Transfer {
                    volser: v("A00001"),
                    from: c(0),
                    to,
                    epoch: Epoch(1),
                },
                CatalogRejection::NotADataCluster { cluster: to },
            );
        }
        let to_member = s.apply(&CatalogCommand::Transfer {
            volser: v("A00001"),
            from: c(0),
            to: c(1),
            epoch: Epoch(1),
        });
        assert!(to_member.is_ok(), "{to_member:?}");
    }

    #[test]
    fn only_a_data_member_inserts_writes_or_reports_a_copy() {
        let mut s = grid();
        refused(
            &mut s,
            CatalogCommand::InsertVolumes {
                by: c(8),
                range: "B00000".parse().unwrap(),
                category: Category(1),
            },
            CatalogRejection::NotADataCluster { cluster: c(8) },
        );
        refused(
            &mut s,
            CatalogCommand::UpdateVolume {
                volser: v("A00001"),
                by: c(0),
                epoch: Epoch(1),
                change: version(1, c(2), vec![]),
            },
            CatalogRejection::NotADataCluster { cluster: c(2) },
        );
        refused(
            &mut s,
            CatalogCommand::UpdateVolume {
                volser: v("A00001"),
                by: c(0),
                epoch: Epoch(1),
                change: version(1, c(0), vec![c(1), c(9)]),
            },
            CatalogRejection::NotADataCluster { cluster: c(9) },
        );
        s.apply(&CatalogCommand::UpdateVolume {
            volser: v("A00001"),
            by: c(0),
            epoch: Epoch(1),
            change: version(1, c(0), vec![c(1)]),
        })
        .unwrap();
        refused(
            &mut s,
            CatalogCommand::CopyDone {
                volser: v("A00001"),
                version: 1,
                cluster: c(8),
                digest: Some(Digest([7; 32])),
            },
            CatalogRejection::NotADataCluster { cluster: c(8) },
        );
    }

    /// With no membership applied yet, any data cluster id is a member, a witness id never.
    #[test]
    fn with_no_membership_any_data_cluster_id_is_a_member() {
        let mut s = grid();
        s.set_members([]);
        assert!(s.is_data_member(c(7)));
        assert!(!s.is_data_member(c(8)));
        refused(
            &mut s,
            CatalogCommand::Transfer {
                volser: v("A00001"),
                from: c(0),
                to: c(15),
                epoch: Epoch(1),
            },
            CatalogRejection::NotADataCluster { cluster: c(15) },
        );
        assert!(s
            .apply(&CatalogCommand::Transfer {
                volser: v("A00001"),
                from: c(0),
                to: c(7),
                epoch: Epoch(1),
            })
            .is_ok());
    }

    #[test]
    fn a_copy_done_without_digest_is_refused() {
        let mut s = grid();
        refused(
            &mut s,
            CatalogCommand::CopyDone {
                volser: v("A00002"),
                version: 0,
                cluster: c(1),
                digest: None,
            },
            CatalogRejection::CopyWithoutDigest {
                volser: v("A00002"),
                version: 0,
            },
        );
        // An entry of the release before digests still parses, to be refused.
        let old: CatalogCommand =
            serde_json::from_str(r#"{"CopyDone":{"volser":"A00002","version":0,"cluster":1}}"#)
                .unwrap();
        assert!(matches!(
            s.apply(&old),
            Err(CatalogRejection::CopyWithoutDigest { .. })
        ));
    }

    #[test]
    fn an_epoch_at_its_end_is_refused_not_wrapped() {
        let mut s = grid();
        let vol = v("A00003");
        s.volumes.edit(&vol, |r| r.token.epoch = Epoch(u64::MAX));
        let exhausted = CatalogRejection::EpochExhausted {
            volser: vol,
            epoch: Epoch(u64::MAX),
        };
        refused(
            &mut s,
            CatalogCommand::Transfer {
                volser: vol,
                from: c(0),
                to: c(1),
                epoch: Epoch(u64::MAX),
            },
            exhausted.clone(),
        );
        refused(
            &mut s,
            CatalogCommand::Reclaim {
                volser: vol,
                by: c(0),
                epoch: Epoch(u64::MAX),
            },
            exhausted,
        );
    }

    #[test]
    fn a_version_at_its_end_is_refused_not_wrapped() {
        let mut s = grid();
        let vol = v("A00004");
        s.volumes.edit(&vol, |r| r.version = u64::MAX);
        refused(
            &mut s,
            CatalogCommand::UpdateVolume {
                volser: vol,
                by: c(0),
                epoch: Epoch(1),
                change: version(0, c(0), vec![]),
            },
            CatalogRejection::VersionExhausted {
                volser: vol,
                version: u64::MAX,
            },
        );
    }

    #[test]
    fn a_class_defined_for_a_witness_is_refused() {
        let mut s = grid();
        let class = ManagementClass {
            name: "MCW".parse().unwrap(),
            vectors: BTreeMap::from([(c(0), "RR".parse().unwrap()), (c(8), "RR".parse().unwrap())]),
            on_sync_failure: Default::default(),
        };
        refused(
            &mut s,
            CatalogCommand::DefineManagementClass(class),
            CatalogRejection::NotADataCluster { cluster: c(8) },
        );
    }

    /// Issue 12, validation: a class naming a cluster the grid does not have, or with a vector
    /// that is not one mode per data cluster, is refused; a class that fits the grid is defined.
    #[test]
    fn a_class_for_a_cluster_outside_the_grid_or_of_the_wrong_length_is_refused() {
        let mut s = grid();
        let class = |vectors: &[(u8, &str)]| ManagementClass {
            name: "MCX".parse().unwrap(),
            vectors: vectors
                .iter()
                .map(|(n, v)| (c(*n), v.parse().unwrap()))
                .collect(),
            on_sync_failure: Default::default(),
        };
        refused(
            &mut s,
            CatalogCommand::DefineManagementClass(class(&[(0, "RR"), (2, "RR")])),
            CatalogRejection::NotADataCluster { cluster: c(2) },
        );
        refused(
            &mut s,
            CatalogCommand::DefineManagementClass(class(&[(0, "RR"), (1, "RRD")])),
            CatalogRejection::VectorLength {
                name: "MCX".parse().unwrap(),
                cluster: c(1),
                len: 3,
                clusters: 2,
            },
        );
        assert_eq!(
            s.apply(&CatalogCommand::DefineManagementClass(class(&[
                (0, "RD"),
                (1, "DR")
            ]))),
            Ok(Applied::Defined)
        );
    }
}
