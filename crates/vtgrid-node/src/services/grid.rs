//! `GridService`: the cluster-to-cluster side (grid network only). Raft RPCs are handed to
//! openraft; `Propose` commits a follower's catalog command on this (leader) cluster.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::pin::Pin;
use tonic::{Request, Response, Status};
use vtgrid_core::catalog::CatalogCommand;

use futures::{Stream, StreamExt};
use vtgrid_core::{ClusterId, Volser};
use vtgrid_proto::internal;
use vtgrid_proto::internal::{grid_service_server::GridService, RaftMessage};
use vtgrid_proto::pb::{self};

use crate::error::NodeError;

use crate::cluster::Cluster;
use crate::member::RaftRpc;

pub struct GridApi {
    cluster: Arc<Cluster>,
}

impl GridApi {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        GridApi { cluster }
    }
}

fn decode<T: DeserializeOwned>(m: &RaftMessage) -> Result<T, Status> {
    serde_json::from_slice(&m.json)
        .map_err(|e| Status::invalid_argument(format!("malformed grid message: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    let json = serde_json::to_vec(v)
        .map_err(|e| Status::internal(format!("encoding grid message: {e}")))?;
    Ok(Response::new(RaftMessage { json: json.into() }))
}

#[tonic::async_trait]
impl GridService for GridApi {
    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn surrender(
        &self,
        request: Request<internal::SurrenderRequest>,
    ) -> Result<Response<internal::SurrenderResponse>, Status> {
        let req = request.into_inner();
        let volser: Volser = req.volser.parse().map_err(NodeError::from)?;
        let to = u8::try_from(req.to)
            .ok()
            .and_then(|n| ClusterId::new(n).ok())
            .ok_or(NodeError::InvalidArgument {
                field: "to",
                problem: "not a cluster id",
            })?;
        let (token, log_index) = self.cluster.surrender(volser, to).await?;
        Ok(Response::new(internal::SurrenderResponse {
            owner: u32::from(token.owner.get()),
            epoch: token.epoch.0,
            log_index,
        }))
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn pull_copy(
        &self,
        request: Request<internal::PullCopyRequest>,
    ) -> Result<Response<internal::PullCopyResponse>, Status> {
        let req = request.into_inner();
        let volser: Volser = req.volser.parse().map_err(NodeError::from)?;
        let digest =
            crate::copies::digest_from_hex(&req.digest).ok_or(NodeError::InvalidArgument {
                field: "digest",
                problem: "not 64 hex digits",
            })?;
        let source = u8::try_from(req.source)
            .ok()
            .and_then(|n| ClusterId::new(n).ok())
            .ok_or(NodeError::InvalidArgument {
                field: "source",
                problem: "not a cluster id",
            })?;
        // The pull runs on its own task: a writer that stops waiting (its RUN override is met,
        // B52, or it timed out) does not cancel a copy already under way.
        let cluster = self.cluster.clone();
        let version = req.version;
        let pull =
            tokio::spawn(async move { cluster.fetch_copy(source, volser, version, digest).await });
        match pull.await {
            Ok(result) => result?,
            Err(e) => return Err(Status::internal(format!("RUN copy task failed: {e}"))),
        }
        Ok(Response::new(internal::PullCopyResponse {}))
    }

    async fn ping(
        &self,
        _request: Request<internal::PingRequest>,
    ) -> Result<Response<internal::PingResponse>, Status> {
        Ok(Response::new(internal::PingResponse {
            cluster: u32::from(self.cluster.id.get()),
        }))
    }

    type ReadVersionStream = Pin<Box<dyn Stream<Item = Result<pb::ReadChunk, Status>> + Send>>;
    type SyncWriteStream =
        tokio_stream::wrappers::ReceiverStream<Result<internal::SyncWriteAck, Status>>;

    async fn sync_write(
        &self,
        request: Request<tonic::Streaming<internal::SyncWriteMessage>>,
    ) -> Result<Response<Self::SyncWriteStream>, Status> {
        // Answer at once (the response headers open the writer's ack stream); the duplex runs in
        // its own task and answers each sync point and the commit on that stream.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let cluster = self.cluster.clone();
        tokio::spawn(crate::sync::serve_duplex(cluster, request.into_inner(), tx));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn read_version(
        &self,
        request: Request<internal::ReadVersionRequest>,
    ) -> Result<Response<Self::ReadVersionStream>, Status> {
        let req = request.into_inner();
        let volser: Volser = req.volser.parse().map_err(NodeError::from)?;
        let bytes = self.cluster.stream_local(volser, req.version).await?;
        let out = bytes.map(|c| c.map(|data| pb::ReadChunk { data }).map_err(Status::from));
        Ok(Response::new(Box::pin(out)))
    }

    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::AppendEntriesRequest<vtgrid_catalog::TypeConfig> =
            decode(request.get_ref())?;
        self.cluster
            .admit_raft(RaftRpc::Log, rpc.vote.leader_id().voted_for())?;
        let reply = self.cluster.catalog.raft.append_entries(rpc).await;
        // A leader this voter follows reached it (a stale one gets HigherVote): the election
        // gate counts a quorum in reach without asking the peers.
        if matches!(&reply, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_)))
        {
            self.cluster.catalog.leader_heard();
        }
        encode(&reply)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        // Amnesia: a voter that lost its catalog must not vote (it may have voted in this term).
        let rpc: openraft::raft::VoteRequest<u64> = decode(request.get_ref())?;
        self.cluster
            .admit_raft(RaftRpc::Vote, rpc.vote.leader_id().voted_for())?;
        encode(&self.cluster.catalog.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::InstallSnapshotRequest<vtgrid_catalog::TypeConfig> =
            decode(request.get_ref())?;
        self.cluster
            .admit_raft(RaftRpc::Log, rpc.vote.leader_id().voted_for())?;
        encode(&self.cluster.catalog.raft.install_snapshot(rpc).await)
    }

    async fn propose(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let command: CatalogCommand = decode(request.get_ref())?;
        let reply = self.cluster.catalog.propose_local(command).await?;
        encode(&reply)
    }

    async fn catalog_membership(
        &self,
        _request: Request<internal::CatalogMembershipRequest>,
    ) -> Result<Response<internal::CatalogMembershipResponse>, Status> {
        Ok(Response::new(self.cluster.catalog_membership().await?))
    }

    async fn form(
        &self,
        _request: Request<internal::FormRequest>,
    ) -> Result<Response<internal::FormResponse>, Status> {
        Ok(Response::new(self.cluster.answer_form().await?))
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn renew_lease(
        &self,
        request: Request<internal::RenewLeaseRequest>,
    ) -> Result<Response<internal::RenewLeaseResponse>, Status> {
        let from = ClusterId::new(request.into_inner().from_cluster as u8).map_err(|_| {
            NodeError::InvalidArgument {
                field: "from",
                problem: "not a cluster id",
            }
        })?;
        self.cluster.answer_renewal(from).await?;
        Ok(Response::new(internal::RenewLeaseResponse {}))
    }

    async fn readmit(
        &self,
        request: Request<internal::ReadmitRequest>,
    ) -> Result<Response<internal::ReadmitResponse>, Status> {
        let req = request.into_inner();
        if !(1..=2).contains(&req.step) {
            return Err(NodeError::InvalidArgument {
                field: "step",
                problem: "1 (remove) or 2 (admit)",
            }
            .into());
        }
        self.cluster
            .clone()
            .readmit(u64::from(req.cluster), req.step)
            .await?;
        Ok(Response::new(internal::ReadmitResponse {}))
    }
}
