//! `HostService`: what tape hosts call. Translates the wire to [`crate::jobs`] and back.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use vtgrid_proto::pb::{self, host_service_server::HostService, mount_request, write_request};
use vtgrid_proto::volume::{constructs_from_pb, volume_to_pb};

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::jobs::{MountOptions, MountTarget, StreamFault, WriteItem};

pub struct HostApi {
    cluster: Arc<Cluster>,
}

impl HostApi {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        HostApi { cluster }
    }
}

fn parse_opt_category(s: &str) -> Result<Option<vtgrid_core::Category>, NodeError> {
    if s.is_empty() {
        Ok(None)
    } else {
        Ok(Some(s.parse()?))
    }
}

/// The token holder making a call, when the grid uses tokens (`crate::access`).
fn caller<T>(request: &Request<T>) -> Option<String> {
    request
        .extensions()
        .get::<crate::access::Principal>()
        .map(|p| p.name.clone())
}

/// A job is used only by the token holder that mounted it (issue 13: mount ids are bound to
/// the caller's identity when it has one).
fn check_holder(mount: &crate::mounts::Mount, caller: &Option<String>) -> Result<(), NodeError> {
    match (mount.holder.get(), caller) {
        (Some(holder), Some(caller)) if holder != caller => {
            tracing::warn!(mount = %mount.id, %holder, %caller, "refused: another token's mount");
            Err(NodeError::NotYourMount {
                mount_id: mount.id.clone(),
            })
        }
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl HostService for HostApi {
    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn mount(
        &self,
        request: Request<pb::MountRequest>,
    ) -> Result<Response<pb::MountResponse>, Status> {
        let holder = caller(&request);
        let req = request.into_inner();
        let target = match req.target {
            Some(mount_request::Target::Volser(v)) => {
                MountTarget::Specific(v.parse().map_err(NodeError::from)?)
            }
            Some(mount_request::Target::ScratchCategory(c)) => {
                MountTarget::Scratch(c.parse().map_err(NodeError::from)?)
            }
            None => {
                return Err(NodeError::InvalidArgument {
                    field: "target",
                    problem: "name a volser or a scratch category",
                }
                .into())
            }
        };
        if req.append && matches!(target, MountTarget::Scratch(_)) {
            return Err(NodeError::InvalidArgument {
                field: "append",
                problem: "only a specific mount appends (a scratch volume starts blank)",
            }
            .into());
        }
        let constructs = match &req.constructs {
            Some(c) => constructs_from_pb(c).map_err(NodeError::from)?,
            None => Default::default(),
        };
        let opts = MountOptions {
            target,
            append: req.append,
            constructs,
            private_category: parse_opt_category(&req.private_category)?,
        };
        let mount = self.cluster.mount(opts).await?;
        if let Some(holder) = holder {
            let _ = mount.holder.set(holder);
        }
        Ok(Response::new(pb::MountResponse {
            mount_id: mount.id.clone(),
            volser: mount.volser.to_string(),
            version: mount.base_version,
            blank: mount.blank,
            size: mount.base_size,
        }))
    }

    async fn write(
        &self,
        request: Request<Streaming<pb::WriteRequest>>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let who = caller(&request);
        let mut stream = request.into_inner();
        let mount_id = match stream.next().await {
            Some(Ok(pb::WriteRequest {
                msg: Some(write_request::Msg::Open(open)),
            })) => open.mount_id,
            Some(Err(status)) if status.code() == tonic::Code::OutOfRange => {
                return Err(Status::from(NodeError::MessageTooLarge {
                    stream: "a write stream before its open".into(),
                    cause: status.message().to_string(),
                }))
            }
            Some(Err(status)) => return Err(status),
            _ => return Err(NodeError::StreamNotOpened.into()),
        };
        let mount = self.cluster.mounts.get(&mount_id)?;
        check_holder(&mount, &who)?;
        let items = stream.map(|item| match item {
            Ok(pb::WriteRequest {
                msg: Some(write_request::Msg::Chunk(data)),
            }) => Ok(WriteItem::Chunk(data)),
            Ok(pb::WriteRequest {
                msg: Some(write_request::Msg::End(end)),
            }) => Ok(WriteItem::End {
                total_bytes: end.total_bytes,
            }),
            Ok(pb::WriteRequest {
                msg: Some(write_request::Msg::Open(open)),
            }) => Err(StreamFault::Reopened {
                mount_id: open.mount_id,
            }),
            Ok(pb::WriteRequest { msg: None }) => Err(StreamFault::Empty),
            Err(status) => Err(StreamFault::from_status(status)),
        });
        let (bytes, volume_bytes) = self.cluster.write(mount, Box::pin(items)).await?;
        Ok(Response::new(pb::WriteResponse {
            bytes,
            volume_bytes,
        }))
    }

    type ReadStream = Pin<Box<dyn Stream<Item = Result<pb::ReadChunk, Status>> + Send>>;

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let who = caller(&request);
        let mount = self.cluster.mounts.get(&request.into_inner().mount_id)?;
        check_holder(&mount, &who)?;
        let chunks = self.cluster.read(&mount).await?;
        let out = chunks.map(|c| c.map(|data| pb::ReadChunk { data }).map_err(Status::from));
        Ok(Response::new(Box::pin(out)))
    }

    async fn sync(
        &self,
        request: Request<pb::SyncRequest>,
    ) -> Result<Response<pb::SyncResponse>, Status> {
        let who = caller(&request);
        let mount = self.cluster.mounts.get(&request.into_inner().mount_id)?;
        check_holder(&mount, &who)?;
        let durable_bytes = self.cluster.sync(&mount).await?;
        Ok(Response::new(pb::SyncResponse { durable_bytes }))
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn rewind_unload(
        &self,
        request: Request<pb::RewindUnloadRequest>,
    ) -> Result<Response<pb::RewindUnloadResponse>, Status> {
        let who = caller(&request);
        let mount_id = request.into_inner().mount_id;
        if let Ok(mount) = self.cluster.mounts.get(&mount_id) {
            check_holder(&mount, &who)?;
        }
        let outcome = self.cluster.rewind_unload(&mount_id).await;
        let done = outcome.as_ref().as_ref().map_err(NodeError::to_status)?;
        let r = &done.record;
        Ok(Response::new(pb::RewindUnloadResponse {
            volser: r.volser.to_string(),
            version: r.version,
            size: r.size,
            digest: r.digest.to_hex(),
            written: done.written,
            category: r.category.to_string(),
            immediate_copy_deferred: done.immediate_copy_deferred,
            sync_deferred: done.sync_deferred,
            copies: done.copies.iter().map(|c| u32::from(c.get())).collect(),
        }))
    }

    async fn change_category(
        &self,
        request: Request<pb::ChangeCategoryRequest>,
    ) -> Result<Response<pb::ChangeCategoryResponse>, Status> {
        let req = request.into_inner();
        let volser = req.volser.parse().map_err(NodeError::from)?;
        let category = req.category.parse().map_err(NodeError::from)?;
        let record = self.cluster.change_category(volser, category).await?;
        Ok(Response::new(pb::ChangeCategoryResponse {
            volume: Some(volume_to_pb(&record, false)),
        }))
    }
}
