//! The cluster's handle on the replicated catalog: read the local view, propose commands.
//!
//! Reads come from this cluster's state machine (a `CatalogView`), which may trail the leader by
//! the entries still in flight. Writes go through Raft: on the leader directly, on a follower by
//! forwarding the command to the leader's `GridService.Propose`; the follower then waits until its
//! own view has applied the entry, so a host that just wrote through this cluster reads its write.
//!
//! ```text
//!   follower Ci                              leader Cj
//!   propose(cmd) --client_write--> ForwardToLeader(Cj)
//!                --GridService.Propose(cmd)-->  client_write(cmd) -> committed at index n
//!                <------------ (response, n) --
//!   wait until Ci applied n, return response
//! ```

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use tokio::time::{timeout, Instant};
use vtgrid_catalog::{CatalogView, Raft};
use vtgrid_core::catalog::{Applied, CatalogCommand};
use vtgrid_core::{CatalogResponse, ClusterId};
use vtgrid_proto::internal::grid_service_client::GridServiceClient;
use vtgrid_proto::internal::RaftMessage;

use crate::error::{CatalogFailure, NodeError};
use crate::transport::Peers;

/// How long a catalog command may take to commit before the caller hears `CATALOG_UNAVAILABLE`.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the leader returns to a forwarded proposal.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProposeReply {
    pub response: CatalogResponse,
    pub log_index: u64,
}

#[derive(Clone)]
pub struct CatalogHandle {
    pub raft: Raft,
    pub view: CatalogView,
    transport: Arc<Peers>,
    /// When a leader last reached this voter (the election gate's "a leader is in charge").
    leader_contact: Arc<LeaderContact>,
}

/// When this voter last took an AppendEntries from a leader it follows.
#[derive(Debug, Default)]
struct LeaderContact(std::sync::Mutex<Option<Instant>>);

impl LeaderContact {
    /// A leader's AppendEntries was accepted (or only conflicted on the log): it is in charge.
    fn heard(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn within(&self, window: Duration) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < window)
    }
}

impl CatalogHandle {
    pub fn new(raft: Raft, view: CatalogView, transport: Arc<Peers>) -> Self {
        CatalogHandle {
            raft,
            view,
            transport,
            leader_contact: Arc::default(),
        }
    }

    /// A leader's AppendEntries was accepted (or only conflicted on the log): it is in charge.
    pub fn leader_heard(&self) {
        self.leader_contact.heard();
    }

    /// Whether a leader reached this voter within `window`.
    pub fn leader_heard_within(&self, window: Duration) -> bool {
        self.leader_contact.within(window)
    }

    /// Commit a command and return what the state machine answered. A rejection is an error.
    pub async fn propose(&self, command: CatalogCommand) -> Result<Applied, NodeError> {
        Ok(self.propose_indexed(command).await?.0)
    }

    /// [`CatalogHandle::propose`], also returning the log index the command committed at.
    pub async fn propose_indexed(
        &self,
        command: CatalogCommand,
    ) -> Result<(Applied, u64), NodeError> {
        let (response, index) =
            match timeout(PROPOSE_TIMEOUT, self.propose_here_or_forward(command)).await {
                Ok(r) => r?,
                Err(_) => return Err(NodeError::catalog(CatalogFailure::Timeout(PROPOSE_TIMEOUT))),
            };
        Ok((response?, index))
    }

    /// Wait until this cluster's catalog view has applied `index` (read-your-writes).
    pub async fn wait_applied(&self, index: u64) -> Result<(), NodeError> {
        self.raft
            .wait(Some(PROPOSE_TIMEOUT))
            .applied_index_at_least(Some(index), "catalog entry applied locally")
            .await
            .map(|_| ())
            .map_err(|_| NodeError::catalog(CatalogFailure::Timeout(PROPOSE_TIMEOUT)))
    }

    async fn propose_here_or_forward(
        &self,
        command: CatalogCommand,
    ) -> Result<(CatalogResponse, u64), NodeError> {
        match self.raft.client_write(command.clone()).await {
            Ok(resp) => Ok((resp.data, resp.log_id.index)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match f.leader_node {
                Some(node) => self.forward(&node.addr, command).await,
                None => Err(NodeError::catalog(CatalogFailure::NoLeader)),
            },
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                Err(NodeError::catalog(CatalogFailure::MembershipChange(e)))
            }
            Err(RaftError::Fatal(f)) => Err(NodeError::catalog(CatalogFailure::Fatal(f))),
        }
    }

    async fn forward(
        &self,
        leader_addr: &str,
        command: CatalogCommand,
    ) -> Result<(CatalogResponse, u64), NodeError> {
        let unreachable = |status| NodeError::leader_unreachable(leader_addr, status);
        let mut client = GridServiceClient::new(self.transport.channel(leader_addr));
        let json = serde_json::to_vec(&command)
            .map_err(|e| NodeError::catalog(CatalogFailure::BadReply(e)))?;
        // The proposer's deadline ([`PROPOSE_TIMEOUT`], around this) may drop this call: then the
        // leader did not answer on this link in time, and its pooled connection is dropped.
        let unanswered = Unanswered {
            transport: &self.transport,
            addr: leader_addr,
            answered: false,
        };
        let reply = match client.propose(RaftMessage { json: json.into() }).await {
            Ok(reply) => {
                unanswered.answered(true);
                reply.into_inner()
            }
            Err(status) => {
                unanswered.answered(vtgrid_proto::reason_of(&status).is_some());
                return Err(unreachable(status));
            }
        };
        let reply: ProposeReply = serde_json::from_slice(&reply.json)
            .map_err(|e| NodeError::catalog(CatalogFailure::BadReply(e)))?;
        // Read-your-writes on this cluster: wait for the local state machine to catch up.
        self.wait_applied(reply.log_index).await?;
        Ok((reply.response, reply.log_index))
    }

    /// Commit on this node only (the leader side of a forwarded proposal).
    pub async fn propose_local(&self, command: CatalogCommand) -> Result<ProposeReply, NodeError> {
        match timeout(PROPOSE_TIMEOUT, self.raft.client_write(command)).await {
            Err(_) => Err(NodeError::catalog(CatalogFailure::Timeout(PROPOSE_TIMEOUT))),
            Ok(Ok(resp)) => Ok(ProposeReply {
                response: resp.data,
                log_index: resp.log_id.index,
            }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(NodeError::catalog(CatalogFailure::NoLeader))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                Err(NodeError::catalog(CatalogFailure::MembershipChange(e)))
            }
            Ok(Err(RaftError::Fatal(f))) => Err(NodeError::catalog(CatalogFailure::Fatal(f))),
        }
    }

    /// Make the next read of this cluster's view linearizable: commit a barrier through the
    /// leader (forwarded from a follower) and wait until this view has applied it, so the view
    /// holds every change committed before the call. `CATALOG_UNAVAILABLE` without a majority.
    ///
    /// A barrier rather than openraft's read index: `ensure_linearizable` answers on the leader
    /// only, and its quorum check waits a heartbeat interval (see `fencing.rs`).
    pub async fn linearize(&self) -> Result<(), NodeError> {
        self.propose(CatalogCommand::Barrier).await.map(|_| ())
    }

    /// The current leader, as this cluster sees it.
    pub fn leader(&self) -> Option<ClusterId> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .and_then(|id| ClusterId::from_raft_id(id).ok())
    }
}

/// A forwarded proposal on its way: dropped before an answer (the proposer's deadline passed),
/// or answered without a reason string, the link counts as failed ([`Peers::call_failed`]).
struct Unanswered<'a> {
    transport: &'a Peers,
    addr: &'a str,
    answered: bool,
}

impl Unanswered<'_> {
    /// The leader answered; `by_the_peer`: with an answer of its own (a reply or a reason), so
    /// the link is good.
    fn answered(mut self, by_the_peer: bool) {
        self.answered = true;
        if by_the_peer {
            self.transport.call_worked(self.addr);
        } else {
            self.transport.call_failed(self.addr);
        }
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.transport.call_failed(self.addr);
        }
    }
}
