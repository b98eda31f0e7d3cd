//! openraft's network over `GridService` (the grid listener, DESIGN §2).
//!
//! Raft messages travel as JSON of openraft's own request and response types inside a
//! `RaftMessage`. A remote Raft error comes back inside the JSON as `Err(..)`, so the sender can
//! tell "the peer answered no" (a `RemoteError`) from "the peer did not answer" (`Unreachable`),
//! which openraft treats differently (back off vs. retry).

use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;
use vtgrid_catalog::TypeConfig;
use vtgrid_proto::internal::grid_service_client::GridServiceClient;
use vtgrid_proto::internal::RaftMessage;

use crate::member::MembershipState;
use crate::transport::Peers;
use vtgrid_core::membership::Membership;

/// Makes one [`GridLink`] per Raft peer.
#[derive(Clone)]
pub struct GridNetwork {
    transport: Arc<Peers>,
    /// Every grid address of each voter, one per link (B7); the primary first.
    paths: Arc<std::collections::BTreeMap<u64, Vec<String>>>,
    /// This voter's membership: a superseded voter sends nothing (`crate::standalone`).
    membership: Arc<MembershipState>,
}

impl GridNetwork {
    pub(crate) fn new(
        transport: Arc<Peers>,
        paths: std::collections::BTreeMap<u64, Vec<String>>,
        membership: Arc<MembershipState>,
    ) -> Self {
        GridNetwork {
            transport,
            paths: Arc::new(paths),
            membership,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for GridNetwork {
    type Network = GridLink;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> GridLink {
        let paths = self
            .paths
            .get(&target)
            .filter(|p| !p.is_empty())
            .cloned()
            .unwrap_or_else(|| vec![node.addr.clone()]);
        let mut link = GridLink {
            target,
            addr: self.transport.order(paths.clone())[0].clone(),
            paths,
            client: None,
            transport: self.transport.clone(),
            membership: self.membership.clone(),
        };
        link.reconnect();
        link
    }
}

/// The Raft connection to one peer.
pub struct GridLink {
    target: u64,
    /// The address in use, one of `paths`.
    addr: String,
    paths: Vec<String>,
    /// None when the peer's address does not parse; every RPC then reports it unreachable.
    client: Option<GridServiceClient<Channel>>,
    transport: Arc<Peers>,
    membership: Arc<MembershipState>,
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("peer address {0:?} is not HOST:PORT")]
    BadAddress(String),
    #[error("grid RPC failed: {0}")]
    Status(#[from] tonic::Status),
    #[error("malformed Raft message: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "this voter's catalog was superseded by a force-standalone elsewhere: it sends nothing"
    )]
    Superseded,
}

type Rpc =
    fn(
        &mut GridServiceClient<Channel>,
        tonic::Request<RaftMessage>,
    ) -> futures::future::BoxFuture<'_, Result<tonic::Response<RaftMessage>, tonic::Status>>;

impl GridLink {
    /// The link's pooled channel. After a failed call the transport has dropped the old
    /// connection (a partition can leave an HTTP/2 connection that never recovers after the
    /// network heals), so this one dials afresh.
    fn reconnect(&mut self) {
        self.client = crate::config::is_host_port(&self.addr).then(|| {
            GridServiceClient::new(self.transport.channel(&self.addr))
                .max_decoding_message_size(crate::transport::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(crate::transport::MAX_MESSAGE_BYTES)
        });
    }

    /// Send one request and decode the peer's `Result<Resp, RaftError<E>>`.
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if self.membership.get() == Membership::Superseded {
            return Err(RPCError::Unreachable(Unreachable::new(
                &LinkError::Superseded,
            )));
        }
        let client = match self.client.as_mut() {
            Some(c) => c,
            None => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &LinkError::BadAddress(self.addr.clone()),
                )))
            }
        };
        let json = serde_json::to_vec(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&LinkError::Json(e))))?;
        let mut request = tonic::Request::new(RaftMessage { json: json.into() });
        request.set_timeout(option.hard_ttl());
        let reply = match rpc(client, request).await {
            Ok(r) => {
                self.transport.call_worked(&self.addr);
                r.into_inner()
            }
            Err(status) => {
                if vtgrid_proto::reason_of(&status) == Some(vtgrid_proto::pb::Reason::Superseded) {
                    // A survivor forced standalone without us refused the old group's message.
                    tracing::error!(
                        peer = self.target,
                        message = status.message(),
                        "this voter's catalog was superseded: it stops taking part in the grid"
                    );
                    self.membership.set(Membership::Superseded);
                }
                // A call the link did not carry sends the next one over the next link (B7),
                // on a fresh connection; a refusal leaves the link as it is.
                if vtgrid_proto::reason_of(&status).is_none() {
                    self.transport.call_failed(&self.addr);
                    self.addr = self.transport.order(self.paths.clone())[0].clone();
                    self.reconnect();
                }
                let e = LinkError::Status(status);
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
        };
        let decoded: Result<Resp, RaftError<u64, E>> = serde_json::from_slice(&reply.json)
            .map_err(|e| RPCError::Network(NetworkError::new(&LinkError::Json(e))))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for GridLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(|c, r| Box::pin(c.append_entries(r)), &rpc, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(|c, r| Box::pin(c.install_snapshot(r)), &rpc, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(|c, r| Box::pin(c.vote(r)), &rpc, &option).await
    }
}
