//! The read takeovers (ROT) this cluster holds: local to it, kept on its own disk, no quorum
//! needed (DESIGN §3; B19, B20, B22a). Write takeovers (WOT) are grants in the catalog and live
//! there. The behaviour around both is [`crate::takeover`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use vtgrid_catalog::{Cf, EngineError, KvEngine, KvOp};
use vtgrid_core::ClusterId;

use crate::error::NodeError;

/// The key of the read-takeover set in `Cf::Meta`, beside the membership record.
const READ_TAKEOVERS_KEY: &[u8] = b"vtgrid-read-takeovers";

type Write = dyn Fn(Vec<u8>) -> Result<(), EngineError> + Send + Sync;

/// The failed clusters this cluster holds read takeover for, durable (B22a: a restart keeps it).
pub struct ReadTakeovers {
    now: Mutex<BTreeSet<ClusterId>>,
    /// Changes are written one at a time, in order.
    change: tokio::sync::Mutex<()>,
    write: Arc<Write>,
    blocking: bool,
}

impl ReadTakeovers {
    /// Read the set from `engine` (at start). A record that does not parse is an error: a
    /// takeover setting is never guessed.
    pub fn open<E: KvEngine>(engine: E) -> Result<ReadTakeovers, NodeError> {
        let now = match engine
            .get(Cf::Meta, READ_TAKEOVERS_KEY)
            .map_err(NodeError::MembershipRecord)?
        {
            None => BTreeSet::new(),
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|_| NodeError::InvalidArgument {
                    field: "read takeovers",
                    problem: "the stored record does not parse",
                })?
            }
        };
        Ok(ReadTakeovers {
            now: Mutex::new(now),
            change: tokio::sync::Mutex::new(()),
            blocking: engine.is_blocking(),
            write: Arc::new(move |value| {
                let op = KvOp::Put {
                    cf: Cf::Meta,
                    key: READ_TAKEOVERS_KEY.to_vec(),
                    value,
                };
                engine.write(vec![op], true)
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<ClusterId>> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Does this cluster hold read takeover for `failed`?
    pub fn holds(&self, failed: ClusterId) -> bool {
        self.lock().contains(&failed)
    }

    /// Every failed cluster this cluster holds read takeover for.
    pub fn all(&self) -> BTreeSet<ClusterId> {
        self.lock().clone()
    }

    /// Hold (or stop holding) read takeover for `failed`, fsynced before it returns.
    pub async fn set(&self, failed: ClusterId, on: bool) -> Result<(), NodeError> {
        let _one_at_a_time = self.change.lock().await;
        let mut next = self.all();
        if on {
            next.insert(failed);
        } else {
            next.remove(&failed);
        }
        let bytes = serde_json::to_vec(&next).map_err(|_| NodeError::InvalidArgument {
            field: "read takeovers",
            problem: "could not be encoded",
        })?;
        let write = self.write.clone();
        crate::tvc_io::offload(self.blocking, move || write(bytes))
            .await
            .map_err(NodeError::MembershipRecord)?;
        *self.lock() = next;
        Ok(())
    }
}

/// When this cluster last asked the agents about each peer it lost (AOTM's retry period).
#[derive(Default)]
pub struct AotmChecks(Mutex<std::collections::BTreeMap<ClusterId, tokio::time::Instant>>);

impl AotmChecks {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<ClusterId, tokio::time::Instant>>
    {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long ago the agents were asked about `peer`, if they were since it was lost.
    pub fn asked_ago(&self, peer: ClusterId) -> Option<std::time::Duration> {
        self.lock().get(&peer).map(|t| t.elapsed())
    }

    pub fn asked(&self, peer: ClusterId) {
        self.lock().insert(peer, tokio::time::Instant::now());
    }

    /// `peer` answers again: its next loss starts a new grace period.
    pub fn back(&self, peer: ClusterId) {
        self.lock().remove(&peer);
    }
}
