//! The gRPC services a cluster serves, and the two routers that carry them: the host router
//! (host network) and the grid router (grid network, DESIGN §2).

mod admin;
mod grid;
mod host;
mod status;

use std::sync::Arc;

use tonic::service::Routes;
use vtgrid_proto::pb::admin_service_server::AdminServiceServer;
use vtgrid_proto::pb::grid_service_server::GridServiceServer;
use vtgrid_proto::pb::host_service_server::HostServiceServer;
use vtgrid_proto::pb::status_service_server::StatusServiceServer;

use crate::cluster::Cluster;

pub use admin::AdminApi;
pub use grid::GridApi;
pub use host::HostApi;
pub use status::StatusApi;

pub use crate::transport::MAX_MESSAGE_BYTES;

/// HostService, AdminService, StatusService, gRPC health and reflection.
pub async fn host_routes(cluster: Arc<Cluster>) -> Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<HostServiceServer<HostApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vtgrid_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the descriptor set compiled into vtgrid-proto is valid");
    let mut routes = Routes::default();
    routes = routes
        .add_service(
            HostServiceServer::new(HostApi::new(cluster.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServiceServer::new(AdminApi::new(cluster.clone())))
        .add_service(StatusServiceServer::new(StatusApi::new(cluster)))
        .add_service(health_service)
        .add_service(reflection);
    routes
}

/// GridService: Raft and cluster-to-cluster calls.
pub fn grid_routes(cluster: Arc<Cluster>) -> Routes {
    Routes::new(
        GridServiceServer::new(GridApi::new(cluster))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}
