//! Several control planes on one PostgreSQL database (issue 12): any replica takes any
//! call, one org's audit chain stays one unbroken chain when both append at once, clients
//! given both endpoints fail over when one stops, and a stopping replica drains (gRPC
//! health NOT_SERVING first, then exit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nproxy_proto::v1 as pb;
use nproxy_tests::control::{ctl, ControlPlane, Redis, ADMIN_TOKEN};

fn admin() -> nproxy_proto::tokens::BearerAuth {
    nproxy_proto::tokens::BearerAuth::new(ADMIN_TOKEN).expect("header")
}

async fn channel(endpoint: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

async fn two_replicas(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Redis, ControlPlane, ControlPlane) {
    let redis = Redis::start(&dir.join("redis")).await;
    let db = nproxy_test_postgres::database_url();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("NPROXY_DATABASE", &db));
    let a = ControlPlane::start(&dir.join("cp-a"), &redis.url(), &env).await;
    let b = ControlPlane::start(&dir.join("cp-b"), &redis.url(), &env).await;
    (redis, a, b)
}

/// The acceptance test: 200 concurrent mutations of one org, half through each replica,
/// end with a chain that verifies (checked through both).
#[tokio::test(flavor = "multi_thread")]
async fn two_control_planes_take_200_concurrent_mutations_and_keep_one_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_redis, a, b) = two_replicas(dir.path(), &[]).await;
    let chans = [channel(&a.endpoint()).await, channel(&b.endpoint()).await];
    let mut orgs = pb::orgs_client::OrgsClient::with_interceptor(chans[0].clone(), admin());
    orgs.create_org(pb::CreateOrgRequest {
        slug: "acme".into(),
        display_name: String::new(),
    })
    .await
    .expect("create org");

    let before = pb::audit_client::AuditClient::with_interceptor(chans[1].clone(), admin())
        .verify_chain(pb::VerifyChainRequest { org: "acme".into() })
        .await
        .expect("verify")
        .into_inner()
        .events_checked;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let ch = chans[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut tokens = pb::tokens_client::TokensClient::with_interceptor(ch, admin());
            let t = tokens
                .create_token(pb::CreateTokenRequest {
                    org: "acme".into(),
                    name: format!("t{i}"),
                    scopes: vec![pb::TokenScope::Proxy as i32],
                    expires_at_ms: None,
                })
                .await?
                .into_inner();
            // Every other token is revoked again: two mutations, possibly on both replicas.
            if i % 4 == 0 {
                tokens
                    .revoke_token(pb::RevokeTokenRequest {
                        org: "acme".into(),
                        token_id: t.token.map(|t| t.id).unwrap_or_default(),
                    })
                    .await?;
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("mutation");
    }
    let took = started.elapsed();
    // 200 tokens created and 50 revoked, after what creating the org recorded.
    for (name, ch) in [("a", &chans[0]), ("b", &chans[1])] {
        let mut audit = pb::audit_client::AuditClient::with_interceptor(ch.clone(), admin());
        let v = audit
            .verify_chain(pb::VerifyChainRequest { org: "acme".into() })
            .await
            .expect("verify")
            .into_inner();
        assert!(v.ok, "replica {name}: {:?}", v.problems);
        assert_eq!(v.events_checked, before + 250, "replica {name}");
    }
    println!("250 mutations across two replicas took {took:?}");
}

/// nproxyctl given both endpoints uses the first that answers; a data plane's client
/// (the `Endpoints` failover) and nproxyctl keep working while one replica is down; a
/// replica stopped with SIGTERM reports NOT_SERVING before it closes its listener.
#[tokio::test(flavor = "multi_thread")]
async fn clients_fail_over_and_a_stopping_replica_drains_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_redis, a, mut b) = two_replicas(dir.path(), &[("NPROXY_DRAIN_SECS", "2")]).await;
    let both = format!("{},{}", b.endpoint(), a.endpoint());
    let created = ctl(&both, &["org", "create", "acme"]);
    assert!(created.ok, "{}", created.stderr);

    // SIGTERM b: health turns NOT_SERVING while the port still answers, then it exits.
    let ch = channel(&b.endpoint()).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    b.terminate();
    let t0 = Instant::now();
    let mut saw_not_serving = None;
    while t0.elapsed() < Duration::from_secs(2) {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if let Ok(r) = r {
            if r.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
            {
                saw_not_serving = Some(t0.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_not_serving.is_some(),
        "health must say NOT_SERVING while draining"
    );
    let status = b.wait_exit(Duration::from_secs(15)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "a drained control plane exits cleanly: {status:?}"
    );

    // b is gone, listed first: nproxyctl moves on to a.
    let listed = ctl(&both, &["-o", "json", "org", "list"]);
    assert!(listed.ok && listed.stdout.contains("acme"), "{listed:?}");

    // The failover client spreads calls over both and skips the dead one.
    let eps = Arc::new(
        nproxy_proto::endpoints::Endpoints::lazy(
            &[b.endpoint(), a.endpoint()],
            Duration::from_millis(500),
            Duration::from_secs(5),
        )
        .expect("endpoints"),
    );
    for _ in 0..4 {
        let org = eps
            .call(|ch| async move {
                pb::orgs_client::OrgsClient::with_interceptor(ch, admin())
                    .get_org(pb::GetOrgRequest { org: "acme".into() })
                    .await
            })
            .await
            .expect("a live replica answers");
        assert_eq!(org.into_inner().slug, "acme");
    }
}
