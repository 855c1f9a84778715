//! The S3 blob store (`aws-sdk-s3`), for AWS and S3-compatible servers. Create-only and
//! compare-and-swap use S3's conditional writes (`If-None-Match: *`, `If-Match: <etag>`).

use std::path::{Path, PathBuf};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;
use futures::StreamExt;

use super::{BlobStore, Key, Object, ObjectMeta, PutBody, PutMode, StoreError};
use crate::config::S3Config;

/// Deadlines for S3 calls when the configuration leaves them at 0 (see `S3Store::new`).
const S3_CONNECT_TIMEOUT_MS: u64 = 3_000;
const S3_FIRST_BYTE_TIMEOUT_MS: u64 = 20_000;

pub struct S3Store {
    client: Client,
    /// The same client without a first-byte deadline, for file uploads.
    upload_client: Client,
    bucket: String,
    prefix: String,
    staging: PathBuf,
}

fn backend<E: std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> StoreError {
    StoreError::Backend(format!(
        "{}",
        aws_smithy_types::error::display::DisplayErrorContext(&e)
    ))
}

fn status_of<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

impl S3Store {
    pub fn new(cfg: &S3Config, staging: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&staging)?;
        let access = cfg
            .access_key_id
            .clone()
            .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
            .unwrap_or_default();
        let secret = cfg
            .secret_access_key
            .clone()
            .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok())
            .unwrap_or_default();
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(Credentials::new(
                access,
                secret,
                None,
                None,
                "nproxy-config",
            ))
            .force_path_style(cfg.path_style)
            .http_client(http)
            // S3-compatible servers often reject the newer checksum trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep.clone());
        }
        // A hung S3 must not hang requests: every call has a connect deadline, and every
        // call but a file upload a deadline for its answer's first byte. (The SDK's "read
        // timeout" runs from the start of the request, so it would cut a large upload that
        // is still sending; uploads get only the connect deadline and the retry policy.)
        let conf = b.build();
        let ms = |v: u64, default: u64| {
            std::time::Duration::from_millis(if v == 0 { default } else { v })
        };
        let connect = ms(cfg.connect_timeout_ms, S3_CONNECT_TIMEOUT_MS);
        let first_byte = ms(cfg.first_byte_timeout_ms, S3_FIRST_BYTE_TIMEOUT_MS);
        let calls = aws_smithy_types::timeout::TimeoutConfig::builder()
            .connect_timeout(connect)
            .read_timeout(first_byte)
            .build();
        let uploads = aws_smithy_types::timeout::TimeoutConfig::builder()
            .connect_timeout(connect)
            .build();
        Ok(Self {
            client: Client::from_conf(conf.to_builder().timeout_config(calls).build()),
            upload_client: Client::from_conf(conf.to_builder().timeout_config(uploads).build()),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            staging,
        })
    }

    fn full(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_string()
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => {
                return Ok(None)
            }
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let meta = ObjectMeta {
            size: out
                .content_length
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0),
            etag: unquote(out.e_tag.as_deref()),
        };
        let body = futures::stream::unfold(out.body, |mut body| async move {
            match body.next().await {
                Some(Ok(b)) => Some((Ok(b), body)),
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), body)),
                None => None,
            }
        })
        .boxed();
        Ok(Some(Object { meta, body }))
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>, StoreError> {
        let res = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await;
        match res {
            Ok(out) => Ok(Some(ObjectMeta {
                size: out
                    .content_length
                    .and_then(|l| u64::try_from(l).ok())
                    .unwrap_or(0),
                etag: unquote(out.e_tag.as_deref()),
            })),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn put(&self, key: &Key, body: PutBody, mode: PutMode) -> Result<ObjectMeta, StoreError> {
        let client = match &body {
            PutBody::Bytes(_) => &self.client,
            PutBody::File(_) => &self.upload_client,
        };
        let (stream, size, _staged) = match body {
            PutBody::Bytes(b) => {
                let len = b.len() as u64;
                (SdkByteStream::from(b), len, None)
            }
            PutBody::File(path) => {
                let len = tokio::fs::metadata(&path).await?.len();
                // Streams from disk and can be re-read if the SDK retries.
                let s = SdkByteStream::from_path(&path)
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                (s, len, Some(path))
            }
        };
        let mut req = client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .body(stream);
        req = match &mode {
            PutMode::Overwrite => req,
            PutMode::CreateOnly => req.if_none_match("*"),
            PutMode::IfMatch(etag) => req.if_match(format!("\"{etag}\"")),
        };
        match req.send().await {
            Ok(out) => Ok(ObjectMeta {
                size,
                etag: unquote(out.e_tag.as_deref()),
            }),
            Err(e) => {
                let code = e.as_service_error().and_then(|se| se.code()).unwrap_or("");
                let status = status_of(&e);
                // 412 is the standard answer; some servers answer a lost race with 409.
                if status == Some(412)
                    || status == Some(409)
                    || code == "PreconditionFailed"
                    || code == "ConditionalRequestConflict"
                {
                    Err(StoreError::PreconditionFailed)
                } else {
                    Err(backend(e))
                }
            }
        }
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Key>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{}", self.prefix, prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(backend)?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                if let Some(k) = k.strip_prefix(&self.prefix).and_then(Key::parse) {
                    out.push(k);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }
}
