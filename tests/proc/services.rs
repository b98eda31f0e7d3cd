//! The standard gRPC services on the host listener: health checking and reflection (DESIGN §7).

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use vtgrid_tests::support::host::channel;
use vtgrid_tests::support::TestGrid;

/// Sequence: a node starts → the health service reports `vtgrid.v1.HostService` SERVING → the
/// reflection service lists the host, admin and status services.
#[tokio::test]
async fn health_reports_serving_and_reflection_lists_the_services() {
    let grid = TestGrid::start().await;
    let ch = channel(&grid.endpoint()).await.expect("connect");

    let health = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: "vtgrid.v1.HostService".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(ch)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies
        .message()
        .await
        .expect("reflection reply")
        .expect("one reply");
    let services: Vec<String> = match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("expected a service list, got {other:?}"),
    };
    for want in [
        "vtgrid.v1.HostService",
        "vtgrid.v1.AdminService",
        "vtgrid.v1.StatusService",
    ] {
        assert!(
            services.iter().any(|s| s == want),
            "{want} missing from {services:?}"
        );
    }
}
