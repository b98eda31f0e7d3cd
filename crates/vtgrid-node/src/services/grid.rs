//! `GridService`: the cluster-to-cluster side (grid network only). Raft RPCs are handed to
//! openraft; `Propose` commits a follower's catalog command on this (leader) cluster.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};
use vtgrid_core::catalog::CatalogCommand;
use vtgrid_proto::pb::{grid_service_server::GridService, RaftMessage};

use crate::cluster::Cluster;

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
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(request.get_ref())?;
        encode(&self.cluster.catalog.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(request.get_ref())?;
        encode(&self.cluster.catalog.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(request.get_ref())?;
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
}
