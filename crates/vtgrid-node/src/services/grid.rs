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

    /// The voter that sent `request`, as the transport proved it; None on a plain transport
    /// (loopback or `insecure`), where the request's own fields are all there is. A caller the
    /// transport could not tie to a voter of this grid (an agent's certificate, or a stranger's)
    /// is refused here, before anything is decoded.
    fn sender<T>(
        &self,
        request: &Request<T>,
        call: &'static str,
    ) -> Result<Option<ClusterId>, Status> {
        use crate::transport::names::Member;
        use crate::transport::Sender;
        let refused = |who: String| {
            tracing::warn!(call, sender = %who, "grid call refused: not a voter of this grid");
            sender_refused(format!("{call}: {who} is not a voter of this grid"))
        };
        match self
            .cluster
            .transport
            .connector()
            .sender(request.extensions())
        {
            Sender::Unverified => Ok(None),
            Sender::Member(Member::Voter(id)) => match ClusterId::new(id) {
                Ok(c) if self.cluster.grid.role_of(id).is_some() => Ok(Some(c)),
                _ => Err(refused(format!("voter {id}"))),
            },
            Sender::Member(Member::Agent(id)) => Err(refused(format!("the agent of C{id}"))),
            Sender::Stranger(why) => Err(refused(why)),
        }
    }

    /// `sender` (when proved) must be `claimed`, the member the request speaks for.
    fn require_is(
        &self,
        sender: Option<ClusterId>,
        claimed: Option<u64>,
        call: &'static str,
        field: &'static str,
    ) -> Result<(), Status> {
        let Some(sender) = sender else { return Ok(()) };
        if claimed == Some(u64::from(sender.get())) {
            return Ok(());
        }
        tracing::warn!(call, %sender, ?claimed, field, "grid call refused: sender is not the member the request names");
        Err(sender_refused(format!(
            "{call}: sent by {sender}, but its {field} names {}",
            claimed.map_or("no voter".to_string(), |c| format!("voter {c}"))
        )))
    }

    /// `sender` (when proved) must be a data cluster: volume data goes only between them.
    fn require_data_cluster(
        &self,
        sender: Option<ClusterId>,
        call: &'static str,
    ) -> Result<(), Status> {
        match sender {
            Some(s) if !s.is_data_cluster() => {
                tracing::warn!(call, sender = %s, "grid call refused: not a data cluster");
                Err(sender_refused(format!(
                    "{call}: {s} is a witness; volume data goes between data clusters only"
                )))
            }
            _ => Ok(()),
        }
    }
}

fn sender_refused(message: String) -> Status {
    vtgrid_proto::status_with_reason(
        tonic::Code::PermissionDenied,
        vtgrid_proto::pb::Reason::SenderRefused,
        message,
    )
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
        let sender = self.sender(&request, "Surrender")?;
        self.require_is(
            sender,
            Some(u64::from(request.get_ref().to)),
            "Surrender",
            "to",
        )?;
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
        let sender = self.sender(&request, "PullCopy")?;
        self.require_data_cluster(sender, "PullCopy")?;
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
        request: Request<internal::PingRequest>,
    ) -> Result<Response<internal::PingResponse>, Status> {
        self.sender(&request, "Ping")?;
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
        let sender = self.sender(&request, "SyncWrite")?;
        self.require_data_cluster(sender, "SyncWrite")?;
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
        let sender = self.sender(&request, "ReadVersion")?;
        self.require_data_cluster(sender, "ReadVersion")?;
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
        let sender = self.sender(&request, "AppendEntries")?;
        let rpc: openraft::raft::AppendEntriesRequest<vtgrid_catalog::TypeConfig> =
            decode(request.get_ref())?;
        // Only the leader the message names may send it.
        self.require_is(
            sender,
            rpc.vote.leader_id().voted_for(),
            "AppendEntries",
            "vote",
        )?;
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
        let sender = self.sender(&request, "Vote")?;
        let rpc: openraft::raft::VoteRequest<u64> = decode(request.get_ref())?;
        // Only the candidate itself asks for its votes.
        self.require_is(sender, rpc.vote.leader_id().voted_for(), "Vote", "vote")?;
        self.cluster
            .admit_raft(RaftRpc::Vote, rpc.vote.leader_id().voted_for())?;
        encode(&self.cluster.catalog.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let sender = self.sender(&request, "InstallSnapshot")?;
        let rpc: openraft::raft::InstallSnapshotRequest<vtgrid_catalog::TypeConfig> =
            decode(request.get_ref())?;
        self.require_is(
            sender,
            rpc.vote.leader_id().voted_for(),
            "InstallSnapshot",
            "vote",
        )?;
        self.cluster
            .admit_raft(RaftRpc::Log, rpc.vote.leader_id().voted_for())?;
        encode(&self.cluster.catalog.raft.install_snapshot(rpc).await)
    }

    async fn propose(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let sender = self.sender(&request, "Propose")?;
        let command: CatalogCommand = decode(request.get_ref())?;
        if let Some(sender) = sender {
            if !command.may_be_forwarded_by(sender) {
                tracing::warn!(%sender, speaker = ?command.speaker(), "Propose refused: the command does not speak for its sender");
                return Err(sender_refused(format!(
                    "Propose: {sender} may not forward a command that speaks for {:?}",
                    command.speaker()
                )));
            }
        }
        let reply = self.cluster.catalog.propose_local(command).await?;
        encode(&reply)
    }

    async fn catalog_membership(
        &self,
        request: Request<internal::CatalogMembershipRequest>,
    ) -> Result<Response<internal::CatalogMembershipResponse>, Status> {
        self.sender(&request, "CatalogMembership")?;
        Ok(Response::new(self.cluster.catalog_membership().await?))
    }

    async fn form(
        &self,
        request: Request<internal::FormRequest>,
    ) -> Result<Response<internal::FormResponse>, Status> {
        self.sender(&request, "Form")?;
        Ok(Response::new(self.cluster.answer_form().await?))
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn renew_lease(
        &self,
        request: Request<internal::RenewLeaseRequest>,
    ) -> Result<Response<internal::RenewLeaseResponse>, Status> {
        let sender = self.sender(&request, "RenewLease")?;
        self.require_is(
            sender,
            Some(u64::from(request.get_ref().from_cluster)),
            "RenewLease",
            "from_cluster",
        )?;
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
        self.sender(&request, "Readmit")?;
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
