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
///
/// # Lock order
///
/// std's `RwLock` makes a new reader wait behind a writer that is waiting, so a reader that
/// blocks on another lock while it holds the view can hang the node: it waits for that lock, the
/// lock's holder waits to read the view behind `apply`, and `apply` waits for the first reader.
/// The rule is therefore: **the view is the last lock taken.** Inside [`CatalogView::read`] take
/// no other lock and read the view no second time; copy out what you need and look at the rest
/// (the mount table, the owner journal) after `read` returns. A lock held while reading the view
/// is fine (the node's `MountTable` reads the view while it picks a volume to mount). Debug builds
/// check it: [`CatalogView::reading_on_this_thread`] is what other locks assert against, and a
/// nested `read` panics.
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

    /// Run `f` on the current catalog. Keep `f` short: `apply` waits while it runs. `f` takes no
    /// other lock and does not read the view again (see the lock order above).
    pub fn read<T>(&self, f: impl FnOnce(&CatalogState) -> T) -> T {
        let _reading = reading::Reading::enter();
        f(&self.read_guard().state)
    }

    /// Is this thread inside [`CatalogView::read`] now? Always false in release builds. A lock that
    /// must never be taken while the view is held (the view is the last lock taken) asserts that
    /// this is false before it locks.
    pub fn reading_on_this_thread() -> bool {
        reading::on_this_thread()
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

/// Debug builds count, per thread, the [`CatalogView::read`] calls under way, so the lock order
/// can be checked where it could be broken; release builds compile it away.
mod reading {
    #[cfg(debug_assertions)]
    thread_local! {
        static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    /// One `read` under way on this thread; ends on drop (a panicking reader included).
    pub(super) struct Reading(());

    impl Reading {
        pub(super) fn enter() -> Reading {
            #[cfg(debug_assertions)]
            DEPTH.with(|d| {
                assert_eq!(
                    d.get(),
                    0,
                    "lock order: CatalogView::read inside CatalogView::read (a waiting writer \
                     blocks the inner read forever)"
                );
                d.set(1);
            });
            Reading(())
        }
    }

    impl Drop for Reading {
        fn drop(&mut self) {
            #[cfg(debug_assertions)]
            DEPTH.with(|d| d.set(0));
        }
    }

    pub(super) fn on_this_thread() -> bool {
        #[cfg(debug_assertions)]
        return DEPTH.with(|d| d.get() > 0);
        #[cfg(not(debug_assertions))]
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(debug_assertions)]
    fn a_read_is_seen_by_lock_order_checks_only_while_it_runs() {
        let view = CatalogView::default();
        assert!(!CatalogView::reading_on_this_thread());
        assert!(view.read(|_| CatalogView::reading_on_this_thread()));
        assert!(!CatalogView::reading_on_this_thread());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order")]
    fn a_read_inside_a_read_panics_in_debug_builds() {
        let view = CatalogView::default();
        view.read(|_| view.read(|_| ()));
    }

    #[test]
    #[cfg(debug_assertions)]
    fn a_panicking_reader_leaves_the_thread_not_reading() {
        let view = CatalogView::default();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            view.read(|_| panic!("reader failed"))
        }));
        assert!(caught.is_err());
        assert!(!CatalogView::reading_on_this_thread());
    }
}
