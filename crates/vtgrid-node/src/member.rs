//! Where this voter stands in the catalog's Raft group, and the durable record that it formed or
//! joined the grid (the state of amnesia handling; the protocol is [`crate::membership`]).

use std::sync::Arc;

use vtgrid_catalog::{Cf, EngineError, KvEngine, KvOp};
use vtgrid_core::membership::Membership;

use crate::error::NodeError;

/// The key of the membership record in `Cf::Meta` (Raft's own keys there are `vote`, ...).
const MEMBER_KEY: &[u8] = b"vtgrid-grid-member";
/// The durable "this voter formed or joined the grid" record, over the catalog's engine.
pub(crate) struct MemberRecord {
    read: Arc<dyn Fn() -> Result<bool, EngineError> + Send + Sync>,
    write: Arc<dyn Fn() -> Result<(), EngineError> + Send + Sync>,
    blocking: bool,
}

impl MemberRecord {
    pub(crate) fn new<E: KvEngine>(engine: E) -> MemberRecord {
        let reader = engine.clone();
        MemberRecord {
            blocking: engine.is_blocking(),
            read: Arc::new(move || Ok(reader.get(Cf::Meta, MEMBER_KEY)?.is_some())),
            write: Arc::new(move || {
                let op = KvOp::Put {
                    cf: Cf::Meta,
                    key: MEMBER_KEY.to_vec(),
                    value: b"1".to_vec(),
                };
                engine.write(vec![op], true)
            }),
        }
    }

    pub(crate) async fn recorded(&self) -> Result<bool, NodeError> {
        let read = self.read.clone();
        crate::tvc_io::offload(self.blocking, move || read())
            .await
            .map_err(NodeError::MembershipRecord)
    }

    /// Record membership, fsynced before it returns.
    pub(crate) async fn record(&self) -> Result<(), NodeError> {
        let write = self.write.clone();
        crate::tvc_io::offload(self.blocking, move || write())
            .await
            .map_err(NodeError::MembershipRecord)
    }
}

/// The membership state and the lock its changes take. Shared with the Raft network, which
/// stops sending once the state is [`Membership::Superseded`] and sets it when a peer says so.
pub(crate) struct MembershipState {
    now: tokio::sync::watch::Sender<Membership>,
    /// Held across a change that records membership first, so a `Form` and the start-up
    /// questions never decide at once.
    pub(crate) change: tokio::sync::Mutex<()>,
}

impl MembershipState {
    pub(crate) fn new(initial: Membership) -> MembershipState {
        MembershipState {
            now: tokio::sync::watch::Sender::new(initial),
            change: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn get(&self) -> Membership {
        *self.now.borrow()
    }

    /// Set the state; superseded stays superseded (it ends only with a wiped data dir).
    pub(crate) fn set(&self, m: Membership) {
        self.now.send_if_modified(|now| {
            let changed = *now != m && *now != Membership::Superseded;
            if changed {
                *now = m;
            }
            changed
        });
    }

    /// Move `from` → `to`; false (and nothing changed) when the state is not `from`.
    pub(crate) fn change(&self, from: Membership, to: Membership) -> bool {
        self.now.send_if_modified(|now| {
            if *now != from {
                return false;
            }
            *now = to;
            true
        })
    }

    /// Wait until the state is `m`.
    pub(crate) async fn reached(&self, m: Membership) {
        let mut rx = self.now.subscribe();
        let _ = rx.wait_for(|now| *now == m).await;
    }
}

/// Which Raft RPC a peer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RaftRpc {
    Vote,
    /// AppendEntries or InstallSnapshot.
    Log,
}
