//! Node errors and the one place they become gRPC statuses.
//!
//! [`NodeError`] wraps the layers below (domain parsing, catalog rejections, the volume store) and
//! adds what only the node knows (mounts, streams, Raft availability). [`NodeError::to_status`] is
//! an exhaustive match with no catch-all arm, so a new variant does not compile until it has a
//! gRPC code and a stable reason (STYLE.md, "Map to gRPC at exactly one boundary").

use thiserror::Error;
use tonic::{Code, Status};
use vtgrid_core::catalog::CatalogRejection;
use vtgrid_core::{Category, ClusterId, ConstructName, DomainError, Volser};
use vtgrid_proto::pb::Reason;
use vtgrid_proto::status_with_reason;
use vtgrid_tvc::TvcError;

#[derive(Debug, Error)]
pub enum NodeError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{field}: {problem}")]
    InvalidArgument {
        field: &'static str,
        problem: &'static str,
    },
    #[error("volume {volser} is not in the catalog")]
    UnknownVolume { volser: Volser },
    #[error("volume {volser} is mounted")]
    VolumeInUse { volser: Volser },
    #[error("volume {volser} is not mounted on this cluster")]
    NotMounted { volser: Volser },
    #[error("volume {volser} is being rewind-unloaded; its commit finishes on its own")]
    UnloadInProgress { volser: Volser },
    #[error("no scratch volume in category {category} that {cluster} owns is free")]
    NoScratchAvailable {
        category: Category,
        cluster: ClusterId,
    },
    #[error("management class {name} is not defined on {cluster}")]
    UnknownClass {
        name: ConstructName,
        cluster: ClusterId,
    },
    #[error("category {category} is not defined")]
    UnknownCategory { category: Category },
    #[error("category {category} is not a Fast Ready (scratch) category")]
    NotScratchCategory { category: Category },
    #[error("mount {mount_id} is not a mount of this cluster")]
    UnknownMount { mount_id: String },
    #[error("every virtual drive of this cluster is in use ({max} mounts, [limits] max_mounts)")]
    NoDeviceAvailable { max: usize },
    #[error("mount {mount_id} belongs to a job another token started")]
    NotYourMount { mount_id: String },
    #[error("{what}: {asked} is over the limit of {limit} ([limits] {setting})")]
    LimitExceeded {
        what: &'static str,
        asked: u64,
        limit: u64,
        setting: &'static str,
    },
    #[error("write stream for {volser} ended after {received} bytes without its end message; job aborted")]
    StreamEndedEarly { volser: Volser, received: u64 },
    #[error("write stream for {volser} carried {received} bytes but its end message says {declared}; job aborted")]
    StreamLengthMismatch {
        volser: Volser,
        received: u64,
        declared: u64,
    },
    #[error("write stream for {volser} broke after {received} bytes: {cause}; job aborted")]
    StreamBroken {
        volser: Volser,
        received: u64,
        cause: Box<Status>,
    },
    #[error("a write stream must start with an open message naming the mount")]
    StreamNotOpened,
    /// A message above the size limit (a chunk too big): a client bug, so not TRUNCATED_STREAM,
    /// which tells a client to retry the same job.
    /// `stream` names the write stream: its volume, or that it had not opened yet.
    #[error("{stream}: {cause}; send chunks of at most 1 MiB (the message limit is 64 MiB); job aborted")]
    MessageTooLarge { stream: String, cause: String },
    #[error("write stream for mount {mount_id} opened a second time: a stream carries one open, then chunks, then one end; job aborted")]
    StreamAlreadyOpen { mount_id: String },
    #[error("mount {mount_id} of {volser} cannot take data: its job failed")]
    NotWritable { mount_id: String, volser: Volser },
    #[error("volume {volser} is owned by {owner}, which does not answer")]
    OwnerUnreachable { volser: Volser, owner: ClusterId },
    #[error("no reachable cluster holds version {version} of {volser}")]
    NoValidCopy { volser: Volser, version: u64 },
    #[error("catalog rejected the change: {0}")]
    Rejected(#[from] CatalogRejection),
    #[error("catalog unavailable: {0}")]
    CatalogUnavailable(Box<CatalogFailure>),
    #[error(transparent)]
    Tvc(#[from] TvcError),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("owner journal: {0}")]
    Journal(vtgrid_catalog::CatalogStorageError),
    #[error("{peer} refused: {message}")]
    PeerRefused {
        peer: ClusterId,
        code: Code,
        reason: Reason,
        message: String,
    },
    #[error("no quarantined version {version} of {volser} on this cluster")]
    NotQuarantined { volser: Volser, version: u64 },
    #[error("a witness serves no volumes")]
    Witness,
    /// Amnesia (issue 9): this voter's catalog is empty in a grid that formed; it takes no part
    /// in Raft until `vtgrid admin rejoin --as-new` or its data dir is restored.
    #[error("cluster {cluster} lost its catalog ({membership}): run `vtgrid admin rejoin --as-new` at it, or restore its data dir")]
    RejoinRequired {
        cluster: ClusterId,
        membership: &'static str,
    },
    /// Another cluster was forced standalone without this one (`crate::standalone`).
    #[error("cluster {cluster}'s catalog was superseded: another cluster was forced standalone without it, so it takes no part in the grid and writes nothing; stop it, move its data dir aside, start it empty and run `vtgrid admin rejoin --as-new`")]
    Superseded { cluster: ClusterId },
    #[error("cluster {cluster} has not lost its catalog: there is nothing to rejoin")]
    NotAmnesiac { cluster: ClusterId },
    #[error("reading or writing this voter's membership record: {0}")]
    MembershipRecord(vtgrid_catalog::EngineError),
    /// Read ownership takeover (B20): the volume's owner is gone and this cluster may only read
    /// it; any change is refused.
    #[error("volume {volser} is write-protected here: its owner {owner} is unavailable and {cluster} holds read-only takeover (ROT) for it")]
    WriteProtected {
        volser: Volser,
        owner: ClusterId,
        cluster: ClusterId,
    },
    /// The self-fencing lease ran out (`[lease]`): this cluster has not renewed through the
    /// catalog's leader in time, so the majority may take its volumes; it writes none of them.
    #[error("volume {volser} is write-protected at {cluster}: its self-fencing lease ran out (no renewal through the catalog's majority within {after:?}), so it writes none of its volumes until it renews; reads go on")]
    SelfFenced {
        volser: Volser,
        cluster: ClusterId,
        after: std::time::Duration,
    },
    /// Back after a takeover, this cluster's view still shows a write-takeover grant for it
    /// (B22): a grantee may take any of its volumes at any moment, so it writes none of them
    /// until its return has ended the grant (`ClusterRestored`, within seconds of catching up).
    #[error("volume {volser} is write-protected at {cluster}: the catalog still grants write takeover of {cluster}'s volumes (it was taken for failed while away), so it writes none of them until its return has cleared the grant; retry shortly")]
    TakenOver { volser: Volser, cluster: ClusterId },
    /// The leader refuses to renew `cluster`'s lease: a write takeover for it stands or is being
    /// granted (grid-internal: the asker stays fenced).
    #[error(
        "the lease of {cluster} is not renewed: a write takeover for it stands or is being granted"
    )]
    LeaseRefused { cluster: ClusterId },
    /// A write takeover commits through Raft: a cluster that cannot reach the majority cannot
    /// take write ownership (DESIGN §3).
    #[error("write takeover of {failed}'s volumes needs the catalog's majority, which {cluster} cannot reach: {cause}")]
    TakeoverNeedsMajority {
        failed: ClusterId,
        cluster: ClusterId,
        cause: Box<CatalogFailure>,
    },
    /// B25: write takeover is refused against a peer that answers (no `--force`).
    #[error("{peer} answers on the grid network: write takeover of a live cluster's volumes needs --force (never for a test)")]
    PeerAlive { peer: ClusterId },
    /// Service prep or service mode (B23): this cluster takes no new mounts.
    #[error("cluster {cluster} is in {state}: it takes no new mounts; mount its volumes at another cluster")]
    InService {
        cluster: ClusterId,
        state: &'static str,
    },
    #[error("sync cluster {peer} did not keep up with the job on {volser} ({cause}); the class says on_sync_failure = \"fail\", so the job failed")]
    SyncPeerUnavailable {
        volser: Volser,
        peer: ClusterId,
        cause: String,
    },
}

/// Why a catalog command could not be committed.
#[derive(Debug, Error)]
pub enum CatalogFailure {
    #[error("no Raft leader is known")]
    NoLeader,
    #[error("not committed within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the leader at {addr} could not be reached: {status}")]
    LeaderUnreachable { addr: String, status: Box<Status> },
    #[error("Raft stopped: {0}")]
    Fatal(#[from] openraft::error::Fatal<u64>),
    #[error("a membership change is in progress: {0}")]
    MembershipChange(#[from] openraft::error::ChangeMembershipError<u64>),
    #[error("malformed reply from the leader: {0}")]
    BadReply(serde_json::Error),
    #[error("this cluster has not caught up with the catalog since it started (it needs the leader to answer once)")]
    NotCaughtUp,
}

impl NodeError {
    /// The catalog could not commit: `CATALOG_UNAVAILABLE`.
    pub fn catalog(failure: impl Into<CatalogFailure>) -> NodeError {
        NodeError::CatalogUnavailable(Box::new(failure.into()))
    }

    /// A call to the voter (or leader) at `addr` did not get through: `CATALOG_UNAVAILABLE`.
    pub fn leader_unreachable(addr: impl Into<String>, status: Status) -> NodeError {
        NodeError::catalog(CatalogFailure::LeaderUnreachable {
            addr: addr.into(),
            status: Box::new(status),
        })
    }

    /// The gRPC status for this error, with its stable reason.
    pub fn to_status(&self) -> Status {
        use Code::*;
        let (code, reason) = match self {
            NodeError::Domain(d) => match d {
                DomainError::InvalidVolser { .. } | DomainError::InvalidVolserRange { .. } => {
                    (InvalidArgument, Reason::InvalidVolser)
                }
                DomainError::InvalidCategory { .. }
                | DomainError::InvalidConstructName { .. }
                | DomainError::InvalidCopyMode { .. }
                | DomainError::InvalidCopyModeVector { .. }
                | DomainError::InvalidSyncFailure { .. }
                | DomainError::InvalidClusterId { .. } => {
                    (InvalidArgument, Reason::InvalidArgument)
                }
            },
            NodeError::InvalidArgument { field, problem } => {
                return vtgrid_proto::reason::status_with_bad_field(
                    InvalidArgument,
                    Reason::InvalidArgument,
                    self.to_string(),
                    field,
                    problem,
                );
            }
            NodeError::StreamNotOpened => (InvalidArgument, Reason::InvalidArgument),
            NodeError::MessageTooLarge { .. } => (InvalidArgument, Reason::MessageTooLarge),
            NodeError::StreamAlreadyOpen { .. } => (InvalidArgument, Reason::StreamAlreadyOpen),
            NodeError::UnknownVolume { .. } => (NotFound, Reason::UnknownVolume),
            NodeError::VolumeInUse { .. } | NodeError::UnloadInProgress { .. } => {
                (FailedPrecondition, Reason::VolumeInUse)
            }
            NodeError::NotMounted { .. } => (FailedPrecondition, Reason::NotMounted),
            NodeError::NoScratchAvailable { .. } => (ResourceExhausted, Reason::NoScratchAvailable),
            NodeError::UnknownClass { .. } => (NotFound, Reason::UnknownClass),
            NodeError::UnknownCategory { .. } | NodeError::NotScratchCategory { .. } => {
                (NotFound, Reason::UnknownCategory)
            }
            NodeError::UnknownMount { .. } => (NotFound, Reason::UnknownMount),
            NodeError::NoDeviceAvailable { .. } => (ResourceExhausted, Reason::NoDeviceAvailable),
            NodeError::NotYourMount { .. } => (PermissionDenied, Reason::NotYourMount),
            NodeError::LimitExceeded { .. } => (ResourceExhausted, Reason::LimitExceeded),
            NodeError::StreamEndedEarly { .. }
            | NodeError::StreamLengthMismatch { .. }
            | NodeError::StreamBroken { .. } => (Aborted, Reason::TruncatedStream),
            NodeError::NotWritable { .. } => (FailedPrecondition, Reason::NotWritable),
            NodeError::OwnerUnreachable { .. } => (Unavailable, Reason::OwnerUnreachable),
            NodeError::NoValidCopy { .. } => (Unavailable, Reason::NoValidCopy),
            NodeError::Rejected(r) => match r {
                CatalogRejection::DuplicateVolser { .. } => {
                    (AlreadyExists, Reason::DuplicateVolser)
                }
                CatalogRejection::UnknownVolume { .. } => (NotFound, Reason::UnknownVolume),
                CatalogRejection::StaleEpoch { .. }
                | CatalogRejection::VersionNotNext { .. }
                | CatalogRejection::VersionNotCurrent { .. } => (Aborted, Reason::StaleEpoch),
                CatalogRejection::NotOwner { .. } => (FailedPrecondition, Reason::NotOwner),
                CatalogRejection::CopyNotOfThisVersion { .. } => {
                    (DataLoss, Reason::ChecksumMismatch)
                }
                CatalogRejection::UnknownCategory { .. } => (NotFound, Reason::UnknownCategory),
                CatalogRejection::UnknownManagementClass { .. } => (NotFound, Reason::UnknownClass),
                CatalogRejection::NotADataCluster { .. } => {
                    (InvalidArgument, Reason::UnknownCluster)
                }
                CatalogRejection::CopyWithoutDigest { .. }
                | CatalogRejection::VectorLength { .. } => {
                    (InvalidArgument, Reason::InvalidArgument)
                }
                CatalogRejection::EpochExhausted { .. }
                | CatalogRejection::VersionExhausted { .. } => (Internal, Reason::Internal),
                // The owner cannot be asked and no takeover allows going around it (B14).
                CatalogRejection::NoTakeoverGrant { .. } => (Unavailable, Reason::OwnerUnreachable),
                CatalogRejection::AlreadyOwner { .. } => (Aborted, Reason::StaleEpoch),
                CatalogRejection::TakeoverOfItself { .. } => {
                    (InvalidArgument, Reason::InvalidArgument)
                }
                CatalogRejection::ServiceNeedsPrep { .. } => {
                    (FailedPrecondition, Reason::ServiceMode)
                }
            },
            NodeError::CatalogUnavailable(_) => (Unavailable, Reason::CatalogUnavailable),
            NodeError::Tvc(t) => tvc_code(t),
            NodeError::ShuttingDown => (Unavailable, Reason::ShuttingDown),
            NodeError::Journal(_) => (Internal, Reason::Internal),
            NodeError::PeerRefused { code, reason, .. } => (*code, *reason),
            NodeError::NotQuarantined { .. } => (NotFound, Reason::UnknownVolume),
            NodeError::Witness => (FailedPrecondition, Reason::InvalidArgument),
            NodeError::RejoinRequired { .. } => (FailedPrecondition, Reason::RejoinRequired),
            NodeError::NotAmnesiac { .. } => (FailedPrecondition, Reason::InvalidArgument),
            NodeError::Superseded { .. } => (FailedPrecondition, Reason::Superseded),
            NodeError::MembershipRecord(_) => (Internal, Reason::Internal),
            NodeError::SyncPeerUnavailable { .. } => (Unavailable, Reason::SyncPeerUnavailable),
            NodeError::WriteProtected { .. }
            | NodeError::SelfFenced { .. }
            | NodeError::TakenOver { .. }
            | NodeError::LeaseRefused { .. } => (FailedPrecondition, Reason::WriteProtected),
            NodeError::TakeoverNeedsMajority { .. } => (Unavailable, Reason::TakeoverNeedsMajority),
            NodeError::InService { .. } => (Unavailable, Reason::ServiceMode),
            NodeError::PeerAlive { .. } => (FailedPrecondition, Reason::PeerAlive),
        };
        status_with_reason(code, reason, self.to_string())
    }
}

fn tvc_code(e: &TvcError) -> (Code, Reason) {
    match e {
        TvcError::ChunkCorrupt { .. }
        | TvcError::DigestMismatch { .. }
        | TvcError::Truncated { .. }
        | TvcError::HeaderMismatch { .. } => (Code::DataLoss, Reason::ChecksumMismatch),
        TvcError::StorageFull { .. } => (Code::ResourceExhausted, Reason::StorageFull),
        TvcError::NotFound { .. } => (Code::Unavailable, Reason::NoValidCopy),
        TvcError::Io { .. } | TvcError::Crashed { .. } | TvcError::Broken { .. } => {
            (Code::Internal, Reason::Internal)
        }
    }
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        if matches!(e, NodeError::Tvc(ref t) if t.is_corruption())
            || matches!(e, NodeError::Tvc(TvcError::Io { .. }))
        {
            tracing::error!(error = %e, "volume store");
        }
        e.to_status()
    }
}
