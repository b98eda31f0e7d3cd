//! What the copy engine needs from the cluster it runs in.

use std::collections::BTreeSet;
use std::future::Future;

use vtgrid_core::copy::CopyPriority;
use vtgrid_core::{ClusterId, Digest, VersionNumber, Volser};

/// A copy the catalog says this cluster owes: the volume's current version, by priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwedCopy {
    pub priority: CopyPriority,
    pub volser: Volser,
    pub version: VersionNumber,
    pub size: u64,
    pub digest: Digest,
}

/// The cluster side of the copy engine: its catalog view, its volume store and the way it pulls
/// bytes from a peer. Implemented by the node's `Cluster`.
pub trait CopySite: Send + Sync + 'static {
    type Error: std::fmt::Display + Send + 'static;

    /// Every copy the catalog says this cluster owes now (`vtgrid_core::copy::copy_duty`).
    fn owed(&self) -> Vec<OwedCopy>;

    /// If `version` of `volser` is still owed here (it is the catalog's current version and the
    /// duty stands), the clusters that hold it and may serve as the source (B45); `None` if not.
    fn sources(&self, volser: Volser, version: VersionNumber) -> Option<Vec<ClusterId>>;

    /// Being pulled right now (a RUN request), or made with its `CopyDone` on the way to the
    /// catalog: nothing to queue or pull.
    fn in_hand(&self, volser: Volser, version: VersionNumber) -> bool;

    /// Every version the volume store holds.
    fn held(
        &self,
    ) -> impl Future<Output = Result<BTreeSet<(Volser, VersionNumber)>, Self::Error>> + Send;

    /// Does the volume store hold this version? (One version, without listing the store.)
    fn holds(&self, volser: Volser, version: VersionNumber) -> impl Future<Output = bool> + Send;

    /// The store holds an owed copy that the catalog does not count yet (a crash cut off its
    /// `CopyDone`): record it if its digest is the catalog's, remove it if not.
    fn adopt(&self, copy: OwedCopy) -> impl Future<Output = ()> + Send;

    /// Copy `version` of `volser` from `source`, verified, and journal its `CopyDone`.
    fn pull(
        &self,
        source: ClusterId,
        volser: Volser,
        version: VersionNumber,
        digest: Digest,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Resolves when a version this cluster may owe a copy of was committed (or soon after).
    fn owed_changed(&self) -> impl Future<Output = ()> + Send;
}
