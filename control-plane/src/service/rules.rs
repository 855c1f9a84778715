use nproxy_proto::events;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::advisories_server::Advisories;
use nproxy_proto::v1::rules_service_server::RulesService;
use nproxy_proto::validate::{self, FieldError};
use prost::Message;
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

use super::{Api, Change};
use crate::auth::require_admin;
use crate::error::CpResult;
use crate::store::{new_id, Db};

#[tonic::async_trait]
impl RulesService for Api {
    async fn get_rules(
        &self,
        req: Request<pb::GetRulesRequest>,
    ) -> Result<Response<pb::Rules>, Status> {
        require_admin(&req)?;
        let st = &self.0;
        let org = st.db.org(&req.into_inner().org).await?;
        let rules = Db::rules(st.db.read().await?.conn(), &org.id).await?;
        Ok(Response::new(
            rules
                .and_then(|b| pb::Rules::decode(b.as_slice()).ok())
                .unwrap_or_default(),
        ))
    }

    async fn set_rules(
        &self,
        req: Request<pb::SetRulesRequest>,
    ) -> Result<Response<pb::Rules>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let rules = r
            .rules
            .ok_or_else(|| FieldError::new("rules", "is required"))?;
        validate::rules(&rules)?;
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        st.mutate(&org, &actor, async |conn| {
            Db::set_rules(conn, &org.id, &rules.encode_to_vec()).await?;
            Ok(Change::new((), events::RULES_CHANGED, rules_json(&rules)))
        })
        .await?;
        Ok(Response::new(rules))
    }

    async fn add_exception(
        &self,
        req: Request<pb::AddExceptionRequest>,
    ) -> Result<Response<pb::RuleException>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        validate::package_name("package", &r.package)?;
        if semver::Version::parse(&r.version).is_err() {
            return Err(FieldError::new(
                "version",
                format!("{:?} is not a semver version", r.version),
            )
            .into());
        }
        let reason = validate::display_name("reason", &r.reason)?;
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        let id = new_id();
        let created_at_ms = st
            .mutate(&org, &actor, async |conn| {
                let created =
                    Db::add_exception(conn, &id, &org.id, &r.package, &r.version, &reason).await?;
                Ok(Change::new(
                    created,
                    events::EXCEPTION_ADDED,
                    json!({"id": id, "package": r.package, "version": r.version, "reason": reason}),
                ))
            })
            .await?;
        Ok(Response::new(pb::RuleException {
            id,
            package: r.package,
            version: r.version,
            reason,
            created_at_ms,
        }))
    }

    async fn list_exceptions(
        &self,
        req: Request<pb::ListExceptionsRequest>,
    ) -> Result<Response<pb::ListExceptionsResponse>, Status> {
        require_admin(&req)?;
        let st = &self.0;
        let org = st.db.org(&req.into_inner().org).await?;
        let list = Db::exceptions(st.db.read().await?.conn(), &org.id).await?;
        Ok(Response::new(pb::ListExceptionsResponse {
            exceptions: list
                .into_iter()
                .map(
                    |(id, package, version, reason, created_at_ms)| pb::RuleException {
                        id,
                        package,
                        version,
                        reason,
                        created_at_ms,
                    },
                )
                .collect(),
        }))
    }

    async fn remove_exception(
        &self,
        req: Request<pb::RemoveExceptionRequest>,
    ) -> Result<Response<pb::RemoveExceptionResponse>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        let st = &self.0;
        let org = st.db.org(&r.org).await?;
        st.mutate(&org, &actor, async |conn| {
            let (package, version) = Db::remove_exception(conn, &org.id, &r.id).await?;
            Ok(Change::new(
                (),
                events::EXCEPTION_REMOVED,
                json!({"id": r.id, "package": package, "version": version}),
            ))
        })
        .await?;
        Ok(Response::new(pb::RemoveExceptionResponse {}))
    }
}

fn mode(m: i32) -> &'static str {
    match pb::RuleMode::try_from(m).unwrap_or(pb::RuleMode::Unspecified) {
        pb::RuleMode::Warn => "warn",
        pb::RuleMode::Block => "block",
        _ => "off",
    }
}

pub(crate) fn rules_json(r: &pb::Rules) -> Value {
    let pats = |ps: &[pb::PackagePattern]| {
        ps.iter()
            .map(|p| json!({"name": p.name, "range": p.range}))
            .collect::<Vec<_>>()
    };
    json!({
        "lists": mode(r.lists), "allow": pats(&r.allow), "deny": pats(&r.deny), "allow_list_only": r.allow_list_only,
        "cooldown": mode(r.cooldown), "cooldown_hours": r.cooldown_hours,
        "first_seen": mode(r.first_seen), "first_seen_days": r.first_seen_days,
        "install_scripts": mode(r.install_scripts), "unexpected_dependencies": mode(r.unexpected_dependencies),
        "publisher_change": mode(r.publisher_change), "deprecated": mode(r.deprecated),
        "license": mode(r.license), "licenses": r.licenses,
        "vulnerabilities": mode(r.vulnerabilities), "min_severity": r.min_severity,
    })
}

/// The npm package names an OSV document is about, and its summary and severity.
fn osv_facts(v: &Value) -> Option<(String, String, String, Vec<String>)> {
    let id = v.get("id")?.as_str()?.to_string();
    if id.is_empty() || id.len() > 200 {
        return None;
    }
    let summary = v
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let severity = v
        .get("database_specific")
        .and_then(|d| d.get("severity"))
        .and_then(Value::as_str)
        .unwrap_or(if id.starts_with("MAL-") {
            "malware"
        } else {
            ""
        })
        .to_ascii_lowercase();
    let packages = v
        .get("affected")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    let p = x.get("package")?;
                    (p.get("ecosystem")?.as_str()?.eq_ignore_ascii_case("npm"))
                        .then(|| p.get("name")?.as_str().map(str::to_string))
                        .flatten()
                })
                .filter(|n| validate::package_name("affected.package.name", n).is_ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Some((id, summary, severity, packages))
}

impl super::State {
    /// Rewrites the published advisories of one package from the database.
    pub(crate) async fn publish_advisories(&self, package: &str) -> CpResult<()> {
        let docs: Vec<Value> = self
            .db
            .advisories(Some(package))
            .await?
            .into_iter()
            .filter_map(|(_, json, _, _, _)| serde_json::from_str(&json).ok())
            .collect();
        let body = (!docs.is_empty()).then(|| serde_json::to_vec(&docs).unwrap_or_default());
        if let Err(e) = self.sink.publish_advisories(package, body).await {
            tracing::warn!(package, error = %e, "cannot publish advisories; the reconcile loop will retry");
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Advisories for Api {
    async fn import_advisories(
        &self,
        req: Request<pb::ImportAdvisoriesRequest>,
    ) -> Result<Response<pb::ImportAdvisoriesResponse>, Status> {
        let actor = require_admin(&req)?.actor();
        let r = req.into_inner();
        if r.osv_json.len() > 100_000 {
            return Err(FieldError::new("osv_json", "at most 100000 advisories per call").into());
        }
        let mut parsed = Vec::new();
        for (i, doc) in r.osv_json.iter().enumerate() {
            let v: Value = serde_json::from_str(doc).map_err(|e| {
                FieldError::new("osv_json", format!("document {i} is not JSON: {e}"))
            })?;
            let facts = osv_facts(&v).ok_or_else(|| {
                FieldError::new(
                    "osv_json",
                    format!("document {i} is not an OSV advisory (no id)"),
                )
            })?;
            parsed.push((facts, doc.clone()));
        }
        let st = &self.0;
        let mut packages = std::collections::BTreeSet::new();
        let mut w = st.db.write().await?;
        let mut imported = 0;
        for ((id, summary, severity, pkgs), json) in &parsed {
            if pkgs.is_empty() {
                continue;
            }
            Db::upsert_advisory(w.conn(), id, json, summary, severity, pkgs).await?;
            packages.extend(pkgs.iter().cloned());
            imported += 1;
        }
        w.commit().await?;
        tracing::info!(imported, packages = packages.len(), %actor, "advisories imported");
        for p in &packages {
            st.publish_advisories(p).await?;
        }
        Ok(Response::new(pb::ImportAdvisoriesResponse {
            imported,
            packages: packages.into_iter().collect(),
        }))
    }

    async fn list_advisories(
        &self,
        req: Request<pb::ListAdvisoriesRequest>,
    ) -> Result<Response<pb::ListAdvisoriesResponse>, Status> {
        require_admin(&req)?;
        let r = req.into_inner();
        let pkg = (!r.package.is_empty()).then_some(r.package.as_str());
        let list = self.0.db.advisories(pkg).await?;
        Ok(Response::new(pb::ListAdvisoriesResponse {
            advisories: list
                .into_iter()
                .map(|(id, _, summary, severity, packages)| pb::AdvisorySummary {
                    malware: id.starts_with("MAL-"),
                    id,
                    summary,
                    severity,
                    packages,
                })
                .collect(),
        }))
    }
}
