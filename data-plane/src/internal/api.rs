//! The npm API for an org's internal packages: read, publish, unpublish, dist-tags and
//! deprecate, served from the org's own storage and never from or to the upstream.

use base64::Engine;
use bytes::Bytes;
use nproxy_proto::events;
use nproxy_proto::v1::TokenScope;
use pingora::proxy::Session;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::NpmError;
use crate::http::respond::{header, read_body, send_json, send_json_doc, send_stored, Handled};
use crate::internal::outbox::{now_ms, Entry, Event, Expect};
use crate::org::{OrgConfig, TokenGrant};
use nproxy_core::internal::{self, DocError, VersionSignature};
use nproxy_core::names::{PackageName, TarballFile};
use nproxy_core::packument::{self, Form};
use nproxy_core::publish::{self, MAX_PUBLISH_BODY};

/// Who is writing, as the audit log records it.
pub struct Writer<'a> {
    pub grant: &'a TokenGrant,
    /// sha256 hex of the secret: identifies the token without revealing it.
    pub token_hash: String,
}

impl Writer<'_> {
    pub fn new<'a>(grant: &'a TokenGrant, secret: &str) -> Writer<'a> {
        Writer {
            grant,
            token_hash: hex::encode(Sha256::digest(secret.as_bytes())),
        }
    }
}

/// The npm API for internal packages, as a value the server holds (its own dependencies,
/// nothing of the server's).
pub struct InternalApi {
    pub internal: std::sync::Arc<crate::internal::store::InternalStore>,
    pub outbox: Option<std::sync::Arc<crate::internal::outbox::Outbox>>,
    pub cp: Option<crate::internal::cp_client::ControlPlaneClient>,
    pub metrics: crate::metrics::Metrics,
}

impl InternalApi {
    fn control_plane(&self) -> Result<&crate::internal::cp_client::ControlPlaneClient, NpmError> {
        self.cp.as_ref().ok_or_else(|| {
            NpmError::Unavailable(
                "internal packages need the control plane (control_plane_url is not configured)"
                    .into(),
            )
        })
    }

    /// Records audit events durably, then tries to hand them over at once.
    async fn audit(&self, entry: Entry) -> Result<Option<crate::store::Key>, NpmError> {
        let Some(outbox) = &self.outbox else {
            return Ok(None);
        };
        Ok(Some(outbox.put(&entry).await?))
    }

    fn deliver_soon(&self, key: Option<crate::store::Key>) {
        if let (Some(outbox), Some(key)) = (self.outbox.clone(), key) {
            tokio::spawn(async move {
                if let Err(e) = outbox.deliver(&key).await {
                    tracing::warn!(error = %e, "audit hand-off failed; the outbox drainer will retry");
                }
            });
        }
    }

    pub(crate) async fn internal_packument(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
        base: &str,
        write: bool,
    ) -> Handled {
        let Some((_, doc)) = self.internal.read_live(&cfg.org_id, name).await? else {
            return Err(NpmError::NotFound(format!("package {name} not found")).into());
        };
        let form = Form::from_accept(header(session, "accept"));
        let view = internal::client_view(&doc, base, name);
        let body = match form {
            Form::Abbreviated if !write => packument::abbreviate(&view).to_vec(),
            _ => view.to_vec(),
        };
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
        // Internal documents change on publish: always revalidate, never share.
        send_json_doc(session, form, Bytes::from(body), &etag, "private, no-cache").await
    }

    pub(crate) async fn internal_tarball(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
        file: &TarballFile,
    ) -> Handled {
        let not_found = || NpmError::NotFound(format!("{name}@{} not found", file.version()));
        let Some((_, doc)) = self.internal.read_live(&cfg.org_id, name).await? else {
            return Err(not_found().into());
        };
        let blob = internal::blob_of(&doc, &file.version().to_string()).ok_or_else(not_found)?;
        let obj = self
            .internal
            .get_blob(&cfg.org_id, name, &blob)
            .await?
            .ok_or_else(|| {
                NpmError::Internal(format!(
                    "the tarball of {name}@{} is missing from storage",
                    file.version()
                ))
            })?;
        send_stored(session, obj, "internal", &self.metrics).await
    }

    /// `PUT /<name>`: a publish (with attachments) or a whole-document update (deprecate).
    /// `rev`: the revision the client read (`None`: it named none, or sent `undefined`).
    pub(crate) async fn internal_put(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
        rev: Option<&str>,
        writer: &Writer<'_>,
    ) -> Handled {
        let raw = read_body(session, MAX_PUBLISH_BODY).await?;
        let encoding = header(session, "content-encoding").map(str::to_string);
        let json = publish::decode_body(&raw, encoding.as_deref())
            .map_err(|e| NpmError::BadRequest(e.0))?;
        // A whole-document PUT holds at most the versions a package may have, counted while
        // parsing; a publish holds one (checked again in `publish::validate`).
        let sent =
            nproxy_core::doc_bounds::parse_document(&json, nproxy_core::doc_bounds::MAX_VERSIONS)
                .map(Value::Object)
                .map_err(|e| {
                    NpmError::BadRequest(format!("the body is not a package document: {e}"))
                })?;
        let has_attachments = sent
            .get("_attachments")
            .and_then(Value::as_object)
            .is_some_and(|a| !a.is_empty());
        if has_attachments {
            if rev.is_some() {
                return Err(NpmError::BadRequest(
                    "a publish is a PUT to the package, not to a revision".into(),
                )
                .into());
            }
            return self.publish(session, cfg, name, &json, writer).await;
        }
        self.update_document(session, cfg, name, &sent, rev, writer)
            .await
    }

    async fn publish(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
        json: &[u8],
        writer: &Writer<'_>,
    ) -> Handled {
        // nproxy creates this package: npm's rules for new names apply, not the old ones.
        name.check_new()
            .map_err(|e| NpmError::BadRequest(format!("invalid package name: {e}")))?;
        let p = publish::validate(name, json).map_err(|e| NpmError::BadRequest(e.0))?;
        let version = p.version.to_string();
        // Cheap early answer for the common mistake; the CAS below is the real guard.
        if let Some((_, doc)) = self.internal.read_live(&cfg.org_id, name).await? {
            if doc["versions"].get(&version).is_some() {
                return Err(NpmError::Conflict(format!(
                    "{name}@{version} already exists; versions are immutable, publish a new one"
                ))
                .into());
            }
        }
        // Sign first: without the control plane, nothing is stored.
        let message = internal::signed_message(name, &version, &p.integrity);
        let signed = self
            .control_plane()?
            .sign(&cfg.org_id, message.into_bytes())
            .await
            .map_err(NpmError::from)?;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let key_id = signed.key_id.clone();
        let sig = VersionSignature {
            key_id: signed.key_id,
            signature_b64: b64.encode(signed.signature),
            npm_key_id: signed.npm_key_id,
            npm_signature_b64: b64.encode(signed.npm_signature),
        };
        self.internal
            .put_blob(&cfg.org_id, name, &p.sha512_hex, p.tarball.clone())
            .await?;
        if let Some(prov) = &p.provenance {
            self.internal
                .put_attestations(&cfg.org_id, name, &p.sha512_hex, prov.bundle.clone())
                .await?;
        }
        let t = now_ms();
        let entry = Entry::new(
            &cfg.org_id,
            name,
            Expect::Present {
                version: version.clone(),
                integrity: p.integrity.clone(),
            },
            vec![
                Event {
                    kind: events::PACKAGE_PUBLISHED.into(),
                    details: json!({"name": name.as_str(), "version": version, "integrity": p.integrity, "token_hash": writer.token_hash, "token": writer.grant.name}),
                    time_ms: t,
                },
                Event {
                    kind: events::PACKAGE_SIGNED.into(),
                    details: json!({"name": name.as_str(), "version": version, "key_id": key_id, "npm_key_id": sig.npm_key_id}),
                    time_ms: t,
                },
            ],
        );
        let publish_id = entry.id.clone();
        let outbox_key = self.audit(entry).await?;
        let now = internal::iso_from_ms(t);
        let publisher = writer.grant.name.clone();
        let doc = self
            .internal
            .update_with_tombstone(&cfg.org_id, name, |cur| {
                internal::add_version(cur, name, &p, &sig, &publisher, &now, &publish_id)
            })
            .await?;
        self.deliver_soon(outbox_key);
        tracing::info!(org = %cfg.slug, package = %name, %version, "published");
        send_json(
            session,
            201,
            &json!({"ok": true, "id": name.as_str(), "rev": internal::rev(&doc)}),
        )
        .await
    }

    /// Deprecate / un-deprecate / one-version unpublish: npm sends the whole document back.
    async fn update_document(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
        sent: &Value,
        rev: Option<&str>,
        writer: &Writer<'_>,
    ) -> Handled {
        let Some((_, current)) = self.internal.read_live(&cfg.org_id, name).await? else {
            return Err(NpmError::NotFound(format!("package {name} not found")).into());
        };
        // Judge first (nothing is written for a refused document), then write by CAS.
        let (judged, deprecated, removed) =
            internal::apply_client_document(&current, sent, &internal::iso_now())
                .map_err(NpmError::from)?;
        let deprecations: Vec<(String, Option<String>)> = deprecated
            .iter()
            .map(|v| {
                let msg = judged["versions"][v]
                    .get("deprecated")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (v.clone(), msg)
            })
            .collect();
        let deprecate_key = if deprecations.is_empty() {
            None
        } else {
            self.audit(Entry::new(
                &cfg.org_id,
                name,
                Expect::Deprecated {
                    versions: deprecations.clone(),
                },
                deprecations
                    .iter()
                    .map(|(v, msg)| Event {
                        kind: events::PACKAGE_DEPRECATED.into(),
                        details: json!({"name": name.as_str(), "version": v, "message": msg, "token_hash": writer.token_hash, "token": writer.grant.name}),
                        time_ms: now_ms(),
                    })
                    .collect(),
            ))
            .await?
        };
        let outbox_key = if removed.is_empty() {
            None
        } else {
            self.audit(Entry::new(
                &cfg.org_id,
                name,
                Expect::Absent { versions: removed.clone() },
                removed
                    .iter()
                    .map(|v| Event {
                        kind: events::PACKAGE_UNPUBLISHED.into(),
                        details: json!({"name": name.as_str(), "version": v, "token_hash": writer.token_hash, "token": writer.grant.name}),
                        time_ms: now_ms(),
                    })
                    .collect(),
            ))
            .await?
        };
        let now = internal::iso_now();
        let doc = self
            .internal
            .update(&cfg.org_id, name, |cur| {
                let cur =
                    cur.ok_or_else(|| DocError::NotFound(format!("package {name} not found")))?;
                if let Some(r) = rev {
                    if internal::rev(cur) != r {
                        return Err(DocError::Conflict(
                            "the package changed meanwhile; fetch it again and retry".into(),
                        ));
                    }
                }
                internal::apply_client_document(cur, sent, &now).map(|(d, _, _)| d)
            })
            .await?;
        self.deliver_soon(outbox_key);
        self.deliver_soon(deprecate_key);
        send_json(
            session,
            200,
            &json!({"ok": true, "id": name.as_str(), "rev": internal::rev(&doc)}),
        )
        .await
    }

    /// `DELETE /<name>/-rev/<rev>`: unpublish the whole package.
    pub(crate) async fn internal_delete_package(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
        rev: Option<&str>,
        writer: &Writer<'_>,
    ) -> Handled {
        let Some((etag, doc)) = self.internal.read_live(&cfg.org_id, name).await? else {
            return Err(NpmError::NotFound(format!("package {name} not found")).into());
        };
        if rev.is_some_and(|r| internal::rev(&doc) != r) {
            return Err(NpmError::Conflict(
                "the package changed meanwhile; fetch it again and retry".into(),
            )
            .into());
        }
        let key = self
            .audit(Entry::new(
                &cfg.org_id,
                name,
                Expect::PackageGone,
                vec![Event {
                    kind: events::PACKAGE_UNPUBLISHED.into(),
                    details: json!({"name": name.as_str(), "version": "*", "token_hash": writer.token_hash, "token": writer.grant.name}),
                    time_ms: now_ms(),
                }],
            ))
            .await?;
        self.internal
            .delete_package(&cfg.org_id, name, &etag, &internal::iso_now())
            .await?;
        self.deliver_soon(key);
        send_json(session, 200, &json!({"ok": true, "id": name.as_str()})).await
    }

    /// `DELETE /<name>/-/<file>/-rev/<rev>`: the bytes of a version already removed.
    pub(crate) async fn internal_delete_tarball(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
        file: &TarballFile,
    ) -> Handled {
        let version = file.version().to_string();
        let mut blob = None;
        let current = self.internal.read_live(&cfg.org_id, name).await?;
        if current
            .as_ref()
            .is_some_and(|(_, d)| d["versions"].get(&version).is_some())
        {
            return Err(NpmError::Conflict(format!(
                "{name}@{version} is still published; unpublish the version first"
            ))
            .into());
        }
        if current.is_some() {
            self.internal
                .update(&cfg.org_id, name, |cur| {
                    let cur =
                        cur.ok_or_else(|| DocError::NotFound(format!("package {name} not found")))?;
                    let (d, b) = internal::take_orphan(cur, &version);
                    blob = b;
                    Ok(d)
                })
                .await?;
        }
        if let Some(b) = blob {
            self.internal.delete_blob(&cfg.org_id, name, &b).await?;
        }
        send_json(session, 200, &json!({"ok": true})).await
    }

    pub(crate) async fn internal_dist_tags(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
    ) -> Handled {
        let Some((_, doc)) = self.internal.read_live(&cfg.org_id, name).await? else {
            return Err(NpmError::NotFound(format!("package {name} not found")).into());
        };
        let tags = doc.get("dist-tags").cloned().unwrap_or_else(|| json!({}));
        send_json(session, 200, &tags).await
    }

    pub(crate) async fn internal_dist_tag_change(
        &self,
        session: &mut Session,
        cfg: &OrgConfig,
        name: &PackageName,
        tag: &str,
        writer: &Writer<'_>,
    ) -> Handled {
        let method = session.req_header().method.clone();
        let version = if method == http::Method::PUT {
            let body = read_body(session, 64 * 1024).await?;
            let v: Value = serde_json::from_slice(&body).map_err(|_| {
                NpmError::BadRequest("the body must be a JSON string such as \"1.2.3\"".into())
            })?;
            Some(
                v.as_str()
                    .ok_or_else(|| {
                        NpmError::BadRequest(
                            "the body must be a JSON string such as \"1.2.3\"".into(),
                        )
                    })?
                    .to_string(),
            )
        } else {
            None
        };
        // The outbox entry first (the invariant: an event is durable before its change);
        // it is delivered only once the tag really points where it says.
        let key = self
            .audit(Entry::new(
                &cfg.org_id,
                name,
                Expect::DistTag {
                    tag: tag.to_string(),
                    version: version.clone(),
                },
                vec![Event {
                    kind: events::PACKAGE_DIST_TAG_CHANGED.into(),
                    details: json!({"name": name.as_str(), "tag": tag, "version": version, "token_hash": writer.token_hash, "token": writer.grant.name}),
                    time_ms: now_ms(),
                }],
            ))
            .await?;
        let doc = self
            .internal
            .update(&cfg.org_id, name, |cur| {
                let cur =
                    cur.ok_or_else(|| DocError::NotFound(format!("package {name} not found")))?;
                match &version {
                    Some(v) => internal::set_dist_tag(cur, tag, v),
                    None => internal::remove_dist_tag(cur, tag),
                }
            })
            .await?;
        self.deliver_soon(key);
        let tags = doc.get("dist-tags").cloned().unwrap_or_else(|| json!({}));
        // yarn 1 reports "Couldn't add tag" unless the answer says `ok`.
        send_json(
            session,
            200,
            &json!({"ok": true, "id": name.as_str(), "dist-tags": tags}),
        )
        .await
    }
}

/// The scope an internal-package request needs.
pub fn needed_scope(method: &http::Method) -> TokenScope {
    if matches!(*method, http::Method::GET | http::Method::HEAD) {
        TokenScope::Proxy
    } else {
        TokenScope::Publish
    }
}
