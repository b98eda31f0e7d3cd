//! The applied catalog, shared between openraft's state machine and the node that answers
//! queries from it.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use vtgrid_core::CatalogState;

use crate::types::{LogId, StoredMembership};

/// The catalog as applied up to `last_applied`. It is also what a snapshot holds (as JSON), so
/// a snapshot restores the two log pointers openraft asks for together with the state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedCatalog {
    /// The last log entry reflected in `state`; `None` before the first one.
    pub last_applied: Option<LogId>,
    /// The last membership entry applied; openraft reads it back at startup.
    pub last_membership: StoredMembership,
    /// The replicated catalog (DESIGN §3).
    pub state: CatalogState,
}

/// A cheap, cloneable read handle on the applied catalog.
///
/// openraft owns the [`StateMachineStore`](crate::StateMachineStore) and is its only writer;
/// the node keeps a `CatalogView` to answer queries without a round trip through Raft. It is a
/// `std::sync::RwLock`, not tokio's, because no one holds it across an `.await`: readers copy
/// out what they need inside [`CatalogView::read`], and `apply` changes memory only.
#[derive(Clone, Default)]
pub struct CatalogView(Arc<RwLock<AppliedCatalog>>);

impl std::fmt::Debug for CatalogView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let applied = self.read_guard();
        f.debug_struct("CatalogView")
            .field("last_applied", &applied.last_applied)
            .field("volumes", &applied.state.volumes.len())
            .finish()
    }
}

impl CatalogView {
    pub(crate) fn new(applied: AppliedCatalog) -> Self {
        Self(Arc::new(RwLock::new(applied)))
    }

    /// Run `f` on the current catalog. Keep `f` short: `apply` waits while it runs.
    pub fn read<T>(&self, f: impl FnOnce(&CatalogState) -> T) -> T {
        f(&self.read_guard().state)
    }

    /// The last log entry the catalog reflects: a reader compares it with a commit index to
    /// know whether what it sees is fresh enough.
    pub fn last_applied(&self) -> Option<LogId> {
        self.read_guard().last_applied
    }

    /// The membership of the group as last applied.
    pub fn last_membership(&self) -> StoredMembership {
        self.read_guard().last_membership.clone()
    }

    /// A copy of everything, consistent at one log id (what a snapshot or an export bundle
    /// holds).
    pub fn applied(&self) -> AppliedCatalog {
        self.read_guard().clone()
    }

    /// `CatalogState::apply` refuses rather than panics and checks before it changes, so a lock
    /// poisoned by some other bug still holds a consistent catalog; openraft stops the node anyway.
    pub(crate) fn read_guard(&self) -> RwLockReadGuard<'_, AppliedCatalog> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_guard(&self) -> RwLockWriteGuard<'_, AppliedCatalog> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}
