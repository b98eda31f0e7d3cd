//! The gRPC services a cluster serves, and the two routers that carry them: the host router
//! (host network) and the grid router (grid network, DESIGN §2).

mod admin;
mod grid;
mod host;
mod status;

use std::sync::Arc;

use tonic::service::Routes;
use vtgrid_proto::internal::grid_service_server::GridServiceServer;
use vtgrid_proto::pb::admin_service_server::AdminServiceServer;
use vtgrid_proto::pb::host_service_server::HostServiceServer;
use vtgrid_proto::pb::status_service_server::StatusServiceServer;

use crate::cluster::Cluster;

pub use admin::AdminApi;
pub use grid::GridApi;
pub use host::HostApi;
pub use status::StatusApi;

pub use crate::transport::MAX_MESSAGE_BYTES;

/// The services a client of the host port may use, by their full names: what health answers for
/// and what reflection lists (GridService is the grid network's, never listed here).
pub fn public_services() -> [&'static str; 3] {
    use tonic::server::NamedService;
    [
        HostServiceServer::<HostApi>::NAME,
        AdminServiceServer::<AdminApi>::NAME,
        StatusServiceServer::<StatusApi>::NAME,
    ]
}

/// Reflection lists the public services, health and reflection itself (both versions: grpcurl
/// and current clients speak v1, the stock Python client and older tools v1alpha).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(vtgrid_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    for name in public_services().into_iter().chain([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]) {
        builder = builder.with_service_name(name);
    }
    builder
}

/// HostService, AdminService, StatusService, gRPC health (overall and per service) and
/// reflection v1 and v1alpha.
pub async fn host_routes(cluster: Arc<Cluster>) -> Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in public_services() {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let invalid = "the descriptor sets compiled into vtgrid-proto and tonic are valid";
    let mut routes = Routes::default();
    routes = routes
        .add_service(
            HostServiceServer::new(HostApi::new(cluster.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServiceServer::new(AdminApi::new(cluster.clone())))
        .add_service(StatusServiceServer::new(StatusApi::new(cluster)))
        .add_service(health_service)
        .add_service(reflection().build_v1().expect(invalid))
        .add_service(reflection().build_v1alpha().expect(invalid));
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
