//! The standard gRPC services on the host listener: health checking per service and reflection
//! in both protocol versions (DESIGN §7, issue 12 item 2).

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::{v1, v1alpha};
use vtgrid_tests::support::host::channel;
use vtgrid_tests::support::TestGrid;

/// What the host port serves, and so exactly what reflection lists (no GridService).
const SERVED: [&str; 6] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "vtgrid.v1.AdminService",
    "vtgrid.v1.HostService",
    "vtgrid.v1.StatusService",
];

/// Sequence: a node starts → health answers SERVING for the server ("") and for each public
/// service by name, NOT_FOUND for GridService and for a name it does not serve.
#[tokio::test]
async fn health_answers_for_the_server_and_each_public_service() {
    let grid = TestGrid::start().await;
    let ch = channel(&grid.endpoint()).await.expect("connect");
    let mut health = HealthClient::new(ch);
    for service in [
        "",
        "vtgrid.v1.HostService",
        "vtgrid.v1.AdminService",
        "vtgrid.v1.StatusService",
    ] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health check of {service:?}: {s:?}"))
            .into_inner();
        assert_eq!(reply.status, ServingStatus::Serving as i32, "{service:?}");
    }
    for service in ["vtgrid.v1.GridService", "vtgrid.v1.NoSuchService"] {
        let refused = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect_err(service);
        assert_eq!(refused.code(), tonic::Code::NotFound, "{service}");
    }
}

/// Sequence: a node starts → reflection v1 lists exactly the served services → reflection v1alpha
/// (the stock Python client's) lists the same → v1alpha describes HostService's file.
#[tokio::test]
async fn reflection_v1_and_v1alpha_list_exactly_the_public_services() {
    let grid = TestGrid::start().await;
    let ch = channel(&grid.endpoint()).await.expect("connect");

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let reply = v1::server_reflection_client::ServerReflectionClient::new(ch.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner()
        .message()
        .await
        .expect("reflection v1 reply")
        .expect("one reply");
    let mut listed: Vec<String> = match reply.message_response {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("v1: expected a service list, got {other:?}"),
    };
    listed.sort();
    assert_eq!(listed, SERVED, "reflection v1");

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(ch);
    let ask = |m| v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    use v1alpha::server_reflection_request::MessageRequest as Ask;
    use v1alpha::server_reflection_response::MessageResponse as Answer;
    let mut replies = alpha
        .server_reflection_info(futures::stream::iter([
            ask(Ask::ListServices(String::new())),
            ask(Ask::FileContainingSymbol("vtgrid.v1.HostService".into())),
        ]))
        .await
        .expect("reflection v1alpha")
        .into_inner();
    let mut listed: Vec<String> = match replies.message().await.expect("v1alpha reply") {
        Some(v1alpha::ServerReflectionResponse {
            message_response: Some(Answer::ListServicesResponse(list)),
            ..
        }) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("v1alpha: expected a service list, got {other:?}"),
    };
    listed.sort();
    assert_eq!(listed, SERVED, "reflection v1alpha");
    match replies.message().await.expect("v1alpha reply") {
        Some(v1alpha::ServerReflectionResponse {
            message_response: Some(Answer::FileDescriptorResponse(files)),
            ..
        }) => assert!(!files.file_descriptor_proto.is_empty()),
        other => panic!("v1alpha: expected HostService's file, got {other:?}"),
    }
}
