//! `AdminService`: what operators call (the MI analogue).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};

use tonic::{Request, Response, Status};
use vtgrid_core::catalog::{Applied, CatalogCommand};
use vtgrid_core::takeover::{ServiceState, TakeoverMode};
use vtgrid_core::{ClusterId, Volser, VolserRange};
use vtgrid_proto::constructs::{category_from_pb, category_to_pb, class_from_pb, class_to_pb};
use vtgrid_proto::pb::{self, admin_service_server::AdminService};
use vtgrid_proto::volume::volume_to_pb;

use crate::cluster::Cluster;
use crate::error::NodeError;

pub struct AdminApi {
    cluster: Arc<Cluster>,
}

impl AdminApi {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        AdminApi { cluster }
    }
}

impl AdminApi {
    /// Before a read of catalog state: a barrier for LINEARIZABLE (the default), nothing for
    /// LOCAL.
    async fn consistent(&self, consistency: i32) -> Result<(), NodeError> {
        match pb::Consistency::try_from(consistency) {
            Ok(pb::Consistency::Local) => Ok(()),
            Ok(pb::Consistency::Linearizable | pb::Consistency::Unspecified) => {
                self.cluster.catalog.linearize().await
            }
            Err(_) => Err(NodeError::InvalidArgument {
                field: "consistency",
                problem: "not a Consistency value (LINEARIZABLE = 1, LOCAL = 2)",
            }),
        }
    }
}

/// Default and largest page of `ListVolumes`.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_quarantine(
        &self,
        _request: Request<pb::ListQuarantineRequest>,
    ) -> Result<Response<pb::ListQuarantineResponse>, Status> {
        let versions = self
            .cluster
            .quarantine()
            .await?
            .into_iter()
            .map(|q| pb::QuarantinedVersion {
                volser: q.volser.to_string(),
                version: q.version,
                size: q.size,
                digest: q.digest.to_hex(),
                epoch: q.epoch.0,
                reason: q.rejection.to_string(),
            })
            .collect();
        Ok(Response::new(pb::ListQuarantineResponse { versions }))
    }

    type ReadQuarantinedStream = Pin<Box<dyn Stream<Item = Result<pb::ReadChunk, Status>> + Send>>;

    async fn read_quarantined(
        &self,
        request: Request<pb::ReadQuarantinedRequest>,
    ) -> Result<Response<Self::ReadQuarantinedStream>, Status> {
        let req = request.into_inner();
        let volser: Volser = req.volser.parse().map_err(NodeError::from)?;
        let bytes = self.cluster.read_quarantined(volser, req.version).await?;
        let out = bytes.map(|c| c.map(|data| pb::ReadChunk { data }).map_err(Status::from));
        Ok(Response::new(Box::pin(out)))
    }

    async fn discard_quarantined(
        &self,
        request: Request<pb::DiscardQuarantinedRequest>,
    ) -> Result<Response<pb::DiscardQuarantinedResponse>, Status> {
        let req = request.into_inner();
        let volser: Volser = req.volser.parse().map_err(NodeError::from)?;
        self.cluster
            .discard_quarantined(volser, req.version)
            .await?;
        Ok(Response::new(pb::DiscardQuarantinedResponse {}))
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn force_demount(
        &self,
        request: Request<pb::ForceDemountRequest>,
    ) -> Result<Response<pb::ForceDemountResponse>, Status> {
        let volser: Volser = request
            .into_inner()
            .volser
            .parse()
            .map_err(NodeError::from)?;
        let mount_id = self.cluster.force_demount(volser)?;
        Ok(Response::new(pb::ForceDemountResponse { mount_id }))
    }

    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn insert_volumes(
        &self,
        request: Request<pb::InsertVolumesRequest>,
    ) -> Result<Response<pb::InsertVolumesResponse>, Status> {
        // A witness serves AdminService only so an operator can rejoin it; it owns no volumes.
        if self.cluster.role == crate::config::Role::Witness {
            return Err(NodeError::Witness.into());
        }
        let req = request.into_inner();
        let range: VolserRange = req.range.parse().map_err(NodeError::from)?;
        let limit = self.cluster.grid.limits.max_insert_per_call;
        if range.len() > limit {
            return Err(NodeError::LimitExceeded {
                what: "volumes in one insert",
                asked: range.len(),
                limit,
                setting: "max_insert_per_call",
            }
            .into());
        }
        let category = if req.category.is_empty() {
            self.cluster.insert_category
        } else {
            req.category.parse().map_err(NodeError::from)?
        };
        // B16: insert commits through Raft, and the inserting cluster owns the volumes.
        let cmd = CatalogCommand::InsertVolumes {
            by: self.cluster.id,
            range,
            category,
        };
        let count = match self.cluster.catalog.propose(cmd).await? {
            Applied::Inserted { count } => count,
            _ => range.len(),
        };
        tracing::info!(%range, %category, count, "inserted");
        Ok(Response::new(pb::InsertVolumesResponse {
            count,
            owner: u32::from(self.cluster.id.get()),
        }))
    }

    async fn define_category(
        &self,
        request: Request<pb::DefineCategoryRequest>,
    ) -> Result<Response<pb::DefineCategoryResponse>, Status> {
        let def = request
            .into_inner()
            .definition
            .ok_or(NodeError::InvalidArgument {
                field: "definition",
                problem: "missing",
            })?;
        let def = category_from_pb(&def).map_err(NodeError::from)?;
        self.cluster
            .catalog
            .propose(CatalogCommand::DefineCategory(def))
            .await?;
        Ok(Response::new(pb::DefineCategoryResponse {}))
    }

    async fn define_management_class(
        &self,
        request: Request<pb::DefineManagementClassRequest>,
    ) -> Result<Response<pb::DefineManagementClassResponse>, Status> {
        let mc = request
            .into_inner()
            .management_class
            .ok_or(NodeError::InvalidArgument {
                field: "management_class",
                problem: "missing",
            })?;
        let mc = class_from_pb(&mc).map_err(NodeError::from)?;
        if mc.vectors.is_empty() {
            return Err(NodeError::InvalidArgument {
                field: "management_class.copy_modes",
                problem: "define at least one cluster",
            }
            .into());
        }
        self.cluster
            .catalog
            .propose(CatalogCommand::DefineManagementClass(mc))
            .await?;
        Ok(Response::new(pb::DefineManagementClassResponse {}))
    }

    async fn list_volumes(
        &self,
        request: Request<pb::ListVolumesRequest>,
    ) -> Result<Response<pb::ListVolumesResponse>, Status> {
        let req = request.into_inner();
        let category = if req.category.is_empty() {
            None
        } else {
            Some(req.category.parse().map_err(NodeError::from)?)
        };
        let prefix = req.volser_prefix.to_ascii_uppercase();
        if !Volser::is_prefix(&prefix) {
            return Err(NodeError::InvalidArgument {
                field: "volser_prefix",
                problem: "at most 6 characters of A-Z and 0-9",
            }
            .into());
        }
        if let Some(owner) = req.owner {
            cluster_arg(owner, "owner")?;
        }
        if req.page_size as usize > MAX_PAGE {
            return Err(NodeError::InvalidArgument {
                field: "page_size",
                problem: "at most 1000",
            }
            .into());
        }
        let after: Option<Volser> = if req.page_token.is_empty() {
            None
        } else {
            Some(req.page_token.parse().map_err(NodeError::from)?)
        };
        let page = match req.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n,
        };
        self.consistent(req.consistency).await?;
        // The records out of the view first, then the mount table: never the table from inside
        // a view read (the lock order in `mounts.rs`).
        let (records, more) = self.cluster.catalog.view.read(|s| {
            let start = match after {
                Some(v) => std::ops::Bound::Excluded(v),
                None => std::ops::Bound::Unbounded,
            };
            let mut hits = s
                .volumes
                .range((start, std::ops::Bound::Unbounded))
                .map(|(_, r)| r)
                .filter(|r| category.is_none_or(|c| r.category == c))
                .filter(|r| {
                    req.owner
                        .is_none_or(|o| u32::from(r.token.owner.get()) == o)
                })
                .filter(|r| r.volser.as_str().starts_with(&prefix));
            let records: Vec<_> = hits.by_ref().take(page).cloned().collect();
            let more = hits.next().is_some();
            (records, more)
        });
        let mounts = &self.cluster.mounts;
        let volumes: Vec<pb::Volume> = records
            .iter()
            .map(|r| volume_to_pb(r, mounts.is_mounted(&r.volser)))
            .collect();
        let next_page_token = if more {
            volumes.last().map(|v| v.volser.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListVolumesResponse {
            volumes,
            next_page_token,
        }))
    }

    async fn get_volume(
        &self,
        request: Request<pb::GetVolumeRequest>,
    ) -> Result<Response<pb::Volume>, Status> {
        let req = request.into_inner();
        let volser: Volser = req.volser.parse().map_err(NodeError::from)?;
        self.consistent(req.consistency).await?;
        let record = self.cluster.effective_fresh(&volser).await?;
        Ok(Response::new(volume_to_pb(
            &record,
            self.cluster.mounts.is_mounted(&volser),
        )))
    }

    async fn list_categories(
        &self,
        request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        self.consistent(request.into_inner().consistency).await?;
        let categories = self
            .cluster
            .catalog
            .view
            .read(|s| s.categories.values().map(category_to_pb).collect());
        Ok(Response::new(pb::ListCategoriesResponse { categories }))
    }

    async fn list_management_classes(
        &self,
        request: Request<pb::ListManagementClassesRequest>,
    ) -> Result<Response<pb::ListManagementClassesResponse>, Status> {
        self.consistent(request.into_inner().consistency).await?;
        let classes = self
            .cluster
            .catalog
            .view
            .read(|s| s.management_classes.values().map(class_to_pb).collect());
        Ok(Response::new(pb::ListManagementClassesResponse { classes }))
    }

    /// Amnesia (issue 9): join the grid again as a new member (see `crate::membership`).
    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn rejoin(
        &self,
        request: Request<pb::RejoinRequest>,
    ) -> Result<Response<pb::RejoinResponse>, Status> {
        if !request.into_inner().as_new {
            return Err(NodeError::InvalidArgument {
                field: "as_new",
                problem: "the one rejoin there is joins as a new member; or restore the data dir",
            }
            .into());
        }
        self.cluster.clone().rejoin_as_new().await?;
        Ok(Response::new(pb::RejoinResponse {}))
    }

    /// The takeover mode this cluster holds for a failed cluster (B19-B21, B25).
    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn set_takeover_mode(
        &self,
        request: Request<pb::SetTakeoverModeRequest>,
    ) -> Result<Response<pb::SetTakeoverModeResponse>, Status> {
        let r = request.into_inner();
        let failed = cluster_arg(r.for_cluster, "for_cluster")?;
        let mode = match pb::TakeoverMode::try_from(r.mode) {
            Ok(pb::TakeoverMode::None) => TakeoverMode::None,
            Ok(pb::TakeoverMode::Rot) => TakeoverMode::ReadOnly,
            Ok(pb::TakeoverMode::Wot) => TakeoverMode::Write,
            Err(_) => {
                return Err(NodeError::InvalidArgument {
                    field: "mode",
                    problem: "must be NONE, ROT or WOT",
                }
                .into())
            }
        };
        tracing::warn!(%failed, mode = mode.name(), force = r.force, "takeover mode set by an operator");
        self.cluster
            .set_takeover_mode(failed, mode, r.force)
            .await?;
        Ok(Response::new(pb::SetTakeoverModeResponse {}))
    }

    /// Service prep, service mode, or their end (B23).
    #[tracing::instrument(skip_all, fields(cluster = %self.cluster.id))]
    async fn set_service_state(
        &self,
        request: Request<pb::SetServiceStateRequest>,
    ) -> Result<Response<pb::SetServiceStateResponse>, Status> {
        let r = request.into_inner();
        let cluster = cluster_arg(r.cluster, "cluster")?;
        let state = match pb::ServiceStep::try_from(r.step) {
            Ok(pb::ServiceStep::Prep) => Some(ServiceState::Prep),
            Ok(pb::ServiceStep::Enter) => Some(ServiceState::Service),
            Ok(pb::ServiceStep::Exit) => None,
            Ok(pb::ServiceStep::Unspecified) | Err(_) => {
                return Err(NodeError::InvalidArgument {
                    field: "step",
                    problem: "must be PREP, ENTER or EXIT",
                }
                .into())
            }
        };
        self.cluster.set_service(cluster, state).await?;
        Ok(Response::new(pb::SetServiceStateResponse {}))
    }
}

/// A cluster id from a request field.
fn cluster_arg(id: u32, field: &'static str) -> Result<ClusterId, NodeError> {
    u8::try_from(id)
        .ok()
        .and_then(|id| ClusterId::new(id).ok())
        .ok_or(NodeError::InvalidArgument {
            field,
            problem: "is not a cluster id (0..15)",
        })
}
