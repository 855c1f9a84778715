//! The behaviour every blob store must have, as one suite run against each implementation
//! (the local store in unit tests, S3 against a real S3-compatible server in `tests/`).
//! Panics on the first broken promise, with what was expected.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{get_bytes, spool, BlobStore, Key, PutBody, PutMode, StoreError};

fn key(ns: &str, rest: &str) -> Key {
    Key::parse(&format!("{ns}{rest}")).unwrap_or_else(|| panic!("bad test key {ns}{rest}"))
}

async fn read(store: &dyn BlobStore, k: &Key) -> Option<Bytes> {
    get_bytes(store, k).await.expect("get").map(|(_, b)| b)
}

/// Runs every case under the key prefix `ns` (e.g. `t1/`), which must be unused.
pub async fn run_all<S: BlobStore>(store: &S, ns: &str) {
    missing_keys(store, ns).await;
    overwrite_and_etags(store, ns).await;
    create_only(store, ns).await;
    compare_and_swap(store, ns).await;
    listing(store, ns).await;
    large_object_streams(store, ns).await;
}

/// The cases that need a shared handle to run writers concurrently.
pub async fn run_concurrent(store: Arc<dyn BlobStore>, ns: &str) {
    concurrent_create_only(store.clone(), ns).await;
    concurrent_cas_loses_no_update(store, ns).await;
}

async fn missing_keys(store: &dyn BlobStore, ns: &str) {
    let k = key(ns, "missing/x");
    assert!(store.get(&k).await.expect("get").is_none());
    assert!(store.head(&k).await.expect("head").is_none());
    store
        .delete(&k)
        .await
        .expect("deleting a missing key is fine");
}

async fn overwrite_and_etags(store: &dyn BlobStore, ns: &str) {
    let k = key(ns, "ow/a.json");
    let m1 = store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"one")),
            PutMode::Overwrite,
        )
        .await
        .expect("put");
    assert_eq!(read(store, &k).await.as_deref(), Some(&b"one"[..]));
    let head = store.head(&k).await.expect("head").expect("exists");
    assert_eq!(head.size, 3);
    assert_eq!(head.etag, m1.etag, "put and head agree on the etag");
    let m2 = store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"two!")),
            PutMode::Overwrite,
        )
        .await
        .expect("overwrite");
    assert_ne!(m1.etag, m2.etag, "a write changes the etag");
    let obj = store.get(&k).await.expect("get").expect("exists");
    assert_eq!(
        obj.meta.etag, m2.etag,
        "get reports the etag of what it returns"
    );
    assert_eq!(read(store, &k).await.as_deref(), Some(&b"two!"[..]));
    store.delete(&k).await.expect("delete");
    assert!(store.get(&k).await.expect("get").is_none());
}

async fn create_only(store: &dyn BlobStore, ns: &str) {
    let k = key(ns, "co/pkg-1.0.0.tgz");
    store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"first")),
            PutMode::CreateOnly,
        )
        .await
        .expect("first create");
    let again = store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"second")),
            PutMode::CreateOnly,
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::PreconditionFailed)),
        "second create must fail, got {:?}",
        again.map(|m| m.etag)
    );
    assert_eq!(read(store, &k).await.as_deref(), Some(&b"first"[..]));
}

async fn compare_and_swap(store: &dyn BlobStore, ns: &str) {
    let k = key(ns, "cas/doc.json");
    let missing = store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"x")),
            PutMode::IfMatch("nope".into()),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::PreconditionFailed)),
        "CAS on a missing key"
    );
    let v1 = store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"v1")),
            PutMode::CreateOnly,
        )
        .await
        .expect("create");
    let v2 = store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"v2")),
            PutMode::IfMatch(v1.etag.clone()),
        )
        .await
        .expect("CAS with the current etag");
    let stale = store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"v3")),
            PutMode::IfMatch(v1.etag),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::PreconditionFailed)),
        "CAS with a stale etag"
    );
    assert_eq!(read(store, &k).await.as_deref(), Some(&b"v2"[..]));
    let head = store.head(&k).await.expect("head").expect("exists");
    assert_eq!(head.etag, v2.etag);
}

async fn listing(store: &dyn BlobStore, ns: &str) {
    for k in ["ls/a/1", "ls/a/2", "ls/ab/3", "ls/b/4"] {
        store
            .put(
                &key(ns, k),
                PutBody::Bytes(Bytes::from_static(b"x")),
                PutMode::Overwrite,
            )
            .await
            .expect("put");
    }
    let got = store.list(&format!("{ns}ls/a/")).await.expect("list");
    let want = vec![key(ns, "ls/a/1"), key(ns, "ls/a/2")];
    assert_eq!(got, want);
    let got = store.list(&format!("{ns}ls/a")).await.expect("list");
    assert_eq!(got.len(), 3, "a key prefix, not only a folder: {got:?}");
    assert!(store
        .list(&format!("{ns}nothing/"))
        .await
        .expect("list")
        .is_empty());
}

/// 64 MiB generated on the fly, spooled to disk, stored, and read back chunk by chunk: no
/// step may hold the object in memory.
async fn large_object_streams(store: &dyn BlobStore, ns: &str) {
    const SIZE: usize = 64 * 1024 * 1024;
    const CHUNK: usize = 256 * 1024;
    let k = key(ns, "big/blob.tgz");
    let mut want = Sha256::new();
    let chunks: Vec<Bytes> = (0..SIZE / CHUNK)
        .map(|i| Bytes::from(vec![(i % 251) as u8; CHUNK]))
        .collect();
    for c in &chunks {
        want.update(c);
    }
    let stream = futures::stream::iter(chunks.into_iter().map(Ok)).boxed();
    let (tmp, len) = spool(store.staging_dir(), stream).await.expect("spool");
    assert_eq!(len, SIZE as u64);
    store
        .put(&k, PutBody::File(tmp), PutMode::CreateOnly)
        .await
        .expect("put large");
    let obj = store.get(&k).await.expect("get").expect("exists");
    assert_eq!(obj.meta.size, SIZE as u64);
    let mut got = Sha256::new();
    let mut total = 0usize;
    let mut largest = 0usize;
    let mut body = obj.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        largest = largest.max(chunk.len());
        total += chunk.len();
        got.update(&chunk);
    }
    assert_eq!(total, SIZE);
    assert_eq!(got.finalize(), want.finalize());
    assert!(
        largest <= 4 * 1024 * 1024,
        "get must stream: a {largest}-byte chunk came back at once"
    );
    store.delete(&k).await.expect("delete");
}

async fn concurrent_create_only(store: Arc<dyn BlobStore>, ns: &str) {
    let k = key(ns, "race/pkg-1.0.0.tgz");
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let k = k.clone();
            tokio::spawn(async move {
                store
                    .put(
                        &k,
                        PutBody::Bytes(Bytes::from(format!("writer {i}"))),
                        PutMode::CreateOnly,
                    )
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => winners += 1,
            Err(StoreError::PreconditionFailed) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners, 1, "exactly one concurrent create-only put wins");
}

/// Writers increment a counter with read / compare-and-swap / retry: the end value proves
/// that no successful swap overwrote another.
async fn concurrent_cas_loses_no_update(store: Arc<dyn BlobStore>, ns: &str) {
    const WRITERS: usize = 8;
    const INCREMENTS: usize = 5;
    let k = key(ns, "race/counter.json");
    store
        .put(
            &k,
            PutBody::Bytes(Bytes::from_static(b"0")),
            PutMode::Overwrite,
        )
        .await
        .expect("init");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            let k = k.clone();
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    loop {
                        let (meta, bytes) = get_bytes(store.as_ref(), &k)
                            .await
                            .expect("get")
                            .expect("exists");
                        let n: usize = std::str::from_utf8(&bytes)
                            .expect("utf8")
                            .parse()
                            .expect("number");
                        let next = Bytes::from((n + 1).to_string());
                        match store
                            .put(&k, PutBody::Bytes(next), PutMode::IfMatch(meta.etag))
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::PreconditionFailed) => tokio::task::yield_now().await,
                            Err(e) => panic!("unexpected error: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let end = read(store.as_ref(), &k).await.expect("exists");
    assert_eq!(
        std::str::from_utf8(&end).expect("utf8"),
        (WRITERS * INCREMENTS).to_string(),
        "a compare-and-swap lost an update"
    );
}
