//! Acceptance 7: the S3 store passes the same conformance suite as the local store (which
//! runs in the data plane's unit tests), against a real S3-compatible server (SeaweedFS).

use std::sync::Arc;

use nproxy_data_plane::config::S3Config;
use nproxy_data_plane::store::{conformance, BlobStore, S3Store};
use nproxy_tests::clients::{Client, Project};
use nproxy_tests::procs::{SeaweedFs, Storage};

use crate::support::{blocking, Env};

async fn s3_store(weed: &SeaweedFs, bucket: &str, staging: &std::path::Path) -> S3Store {
    weed.bucket(bucket).await;
    let cfg = S3Config {
        endpoint: Some(weed.endpoint.clone()),
        bucket: bucket.to_string(),
        region: "us-east-1".into(),
        prefix: "nproxy/".into(),
        path_style: true,
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..S3Config::default()
    };
    S3Store::new(&cfg, staging.to_path_buf()).expect("s3 store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_store_conformance() {
    let weed = SeaweedFs::start().await;
    let staging = tempfile::tempdir().expect("tempdir");
    let store = s3_store(&weed, "conformance", staging.path()).await;
    conformance::run_all(&store, "t1/").await;
    let shared: Arc<dyn BlobStore> = Arc::new(store);
    conformance::run_concurrent(shared, "t2/").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn npm_installs_through_a_data_plane_on_s3() {
    let weed = SeaweedFs::start().await;
    weed.bucket("registry").await;
    let env = Env::builder()
        .storage(Storage::S3 {
            endpoint: weed.endpoint.clone(),
            bucket: "registry".into(),
        })
        .start()
        .await;
    let project = Project::new(
        &env.dir.path().join("p"),
        &env.dp.url(),
        &[("fx-a", "^2.0.0")],
    );
    let (project, run) = blocking(move || {
        let r = project.install(Client::Npm);
        (project, r)
    })
    .await;
    assert!(run.ok, "{}", run.output);
    assert_eq!(project.installed_version("@fx/b").as_deref(), Some("1.0.1"));

    // The bytes really are in the bucket.
    let staging = tempfile::tempdir().expect("tempdir");
    let reader = s3_store(&weed, "registry", staging.path()).await;
    let mut reader_keys = Vec::new();
    for k in [
        "public/tarballs/fx-a/",
        "public/tarballs/@fx/b/",
        "public/packuments/",
    ] {
        let cfg_prefix = "";
        let _ = cfg_prefix;
        reader_keys.extend(reader.list(k).await.expect("list"));
    }
    // The data plane writes without a prefix; the reader above adds `nproxy/`, so list raw.
    let raw = S3Store::new(
        &S3Config {
            endpoint: Some(weed.endpoint.clone()),
            bucket: "registry".into(),
            region: "us-east-1".into(),
            prefix: String::new(),
            path_style: true,
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            ..S3Config::default()
        },
        staging.path().to_path_buf(),
    )
    .expect("store");
    let keys = raw.list("public/").await.expect("list");
    let names: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    assert!(
        names.contains(&"public/tarballs/fx-a/fx-a-2.0.0.tgz"),
        "{names:?}"
    );
    assert!(
        names.contains(&"public/tarballs/@fx/b/b-1.0.1.tgz"),
        "{names:?}"
    );
    assert!(names.contains(&"public/packuments/@fx/b.json"), "{names:?}");
    assert!(
        reader_keys.is_empty(),
        "prefixed store sees nothing: {reader_keys:?}"
    );
}
