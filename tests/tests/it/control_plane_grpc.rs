//! The control plane's gRPC surface as clients see it, over real TCP: health and
//! reflection without credentials, pagination, and following the audit log live.

use std::time::Duration;

use nproxy_tests::control::ADMIN_TOKEN;
use nproxy_tests::stack::Stack;

fn admin() -> nproxy_proto::tokens::BearerAuth {
    nproxy_proto::tokens::BearerAuth::new(ADMIN_TOKEN).expect("header")
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_health_reflection_pagination_and_follow() {
    use nproxy_proto::v1 as pb;
    let s = Stack::start(&[]).await;
    let channel = tonic::transport::Endpoint::from_shared(s.cp.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");

    // Health and reflection work without credentials (load balancers, grpcurl).
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "nproxy.v1.Orgs".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(channel.clone());
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let resp = stream
        .message()
        .await
        .expect("message")
        .expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "nproxy.v1.Orgs",
        "nproxy.v1.Tokens",
        "nproxy.v1.Keys",
        "nproxy.v1.Audit",
    ] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }

    // Pagination: 5 orgs, pages of 2.
    let mut orgs = pb::orgs_client::OrgsClient::with_interceptor(channel.clone(), admin());
    for i in 0..5 {
        orgs.create_org(pb::CreateOrgRequest {
            slug: format!("org-{i}"),
            display_name: String::new(),
        })
        .await
        .expect("create");
    }
    let mut seen = Vec::new();
    let mut page = String::new();
    loop {
        let r = orgs
            .list_orgs(pb::ListOrgsRequest {
                page_size: 2,
                page_token: page,
            })
            .await
            .expect("list")
            .into_inner();
        assert!(r.orgs.len() <= 2);
        seen.extend(r.orgs.into_iter().map(|o| o.slug));
        if r.next_page_token.is_empty() {
            break;
        }
        page = r.next_page_token;
    }
    assert_eq!(seen, vec!["org-0", "org-1", "org-2", "org-3", "org-4"]);
    let bad = orgs
        .list_orgs(pb::ListOrgsRequest {
            page_size: 2,
            page_token: "not-a-token!".into(),
        })
        .await
        .expect_err("a made-up page token is refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // Follow: a live stream of new events.
    let mut audit = pb::audit_client::AuditClient::with_interceptor(channel.clone(), admin());
    let mut follow = audit
        .follow_events(pb::FollowEventsRequest {
            org: "org-1".into(),
            r#type: String::new(),
        })
        .await
        .expect("follow")
        .into_inner();
    let mut tokens = pb::tokens_client::TokensClient::with_interceptor(channel, admin());
    tokens
        .create_token(pb::CreateTokenRequest {
            org: "org-1".into(),
            name: "followed".into(),
            scopes: vec![pb::TokenScope::Proxy as i32],
            expires_at_ms: None,
        })
        .await
        .expect("token");
    let e = tokio::time::timeout(Duration::from_secs(5), follow.message())
        .await
        .expect("an event within 5 s")
        .expect("stream")
        .expect("event");
    assert_eq!(e.r#type, "token.created");
    assert!(e.details_json.contains("followed"));
}
