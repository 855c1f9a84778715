//! `nproxyctl rules|exceptions|advisories`: security rules on public packages.

use clap::{Args, Subcommand};
use nproxy_proto::tokens::BearerAuth;
use nproxy_proto::v1 as pb;
use nproxy_proto::v1::advisories_client::AdvisoriesClient;
use nproxy_proto::v1::rules_service_client::RulesServiceClient;
use serde_json::json;
use tonic::transport::Channel;

use crate::output::{print_json, time, Format, Table};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Off,
    Warn,
    Block,
}

impl ModeArg {
    fn pb(self) -> i32 {
        match self {
            ModeArg::Off => pb::RuleMode::Off as i32,
            ModeArg::Warn => pb::RuleMode::Warn as i32,
            ModeArg::Block => pb::RuleMode::Block as i32,
        }
    }
}

fn mode_label(m: i32) -> &'static str {
    match pb::RuleMode::try_from(m).unwrap_or(pb::RuleMode::Unspecified) {
        pb::RuleMode::Warn => "warn",
        pb::RuleMode::Block => "block",
        _ => "off",
    }
}

#[derive(Subcommand)]
pub enum RulesCmd {
    /// Shows an org's rules.
    Get {
        #[arg(long)]
        org: String,
    },
    /// Changes an org's rules: only the flags given change.
    Set(SetArgs),
    /// Which rules fire on which versions of a package, without installing anything.
    Explain {
        /// `<name>` or `<name>@<version>`.
        spec: String,
        #[arg(long)]
        org: String,
        /// The org's registry URL (the data plane).
        #[arg(long, env = "NPROXY_REGISTRY")]
        registry: String,
        /// A token of the org with the `proxy` scope.
        #[arg(long, env = "NPROXY_NPM_TOKEN", hide_env_values = true)]
        npm_token: Option<String>,
    },
}

#[derive(Args)]
pub struct SetArgs {
    #[arg(long)]
    org: String,
    /// Mode of the allow/deny lists.
    #[arg(long, value_enum)]
    lists: Option<ModeArg>,
    /// Allowed packages (`name`, `@scope/*`, optionally `name@range`); repeatable, replaces the list.
    #[arg(long)]
    allow: Vec<String>,
    /// Denied packages, same syntax; repeatable, replaces the list.
    #[arg(long)]
    deny: Vec<String>,
    #[arg(long)]
    allow_list_only: Option<bool>,
    #[arg(long, value_enum)]
    cooldown: Option<ModeArg>,
    #[arg(long)]
    cooldown_hours: Option<u32>,
    #[arg(long, value_enum)]
    first_seen: Option<ModeArg>,
    #[arg(long)]
    first_seen_days: Option<u32>,
    #[arg(long, value_enum)]
    install_scripts: Option<ModeArg>,
    #[arg(long, value_enum)]
    unexpected_dependencies: Option<ModeArg>,
    #[arg(long, value_enum)]
    publisher_change: Option<ModeArg>,
    #[arg(long, value_enum)]
    deprecated: Option<ModeArg>,
    #[arg(long, value_enum)]
    license: Option<ModeArg>,
    /// Allowed SPDX identifiers, comma-separated.
    #[arg(long)]
    licenses: Option<String>,
    #[arg(long, value_enum)]
    vulnerabilities: Option<ModeArg>,
    /// low, moderate, high or critical.
    #[arg(long)]
    min_severity: Option<String>,
}

#[derive(Subcommand)]
pub enum ExceptionsCmd {
    /// Allows one `name@version` despite the rules (malware stays blocked).
    Add {
        #[arg(long)]
        org: String,
        spec: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    List {
        #[arg(long)]
        org: String,
    },
    Remove {
        #[arg(long)]
        org: String,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum AdvisoriesCmd {
    /// Imports OSV advisories from a JSON file or a folder of them.
    Import { path: std::path::PathBuf },
    List {
        #[arg(long)]
        package: Option<String>,
    },
}

fn pattern(s: &str) -> pb::PackagePattern {
    // `@scope/name@range` or `name@range`: the range follows the last `@` after position 0.
    match s.rfind('@').filter(|i| *i > 0) {
        Some(i) => pb::PackagePattern {
            name: s[..i].to_string(),
            range: s[i + 1..].to_string(),
        },
        None => pb::PackagePattern {
            name: s.to_string(),
            range: String::new(),
        },
    }
}

fn rules_json(r: &pb::Rules) -> serde_json::Value {
    let pats = |ps: &[pb::PackagePattern]| {
        ps.iter()
            .map(|p| {
                if p.range.is_empty() {
                    p.name.clone()
                } else {
                    format!("{}@{}", p.name, p.range)
                }
            })
            .collect::<Vec<_>>()
    };
    json!({
        "lists": mode_label(r.lists), "allow": pats(&r.allow), "deny": pats(&r.deny), "allow_list_only": r.allow_list_only,
        "cooldown": mode_label(r.cooldown), "cooldown_hours": r.cooldown_hours,
        "first_seen": mode_label(r.first_seen), "first_seen_days": r.first_seen_days,
        "install_scripts": mode_label(r.install_scripts),
        "unexpected_dependencies": mode_label(r.unexpected_dependencies),
        "publisher_change": mode_label(r.publisher_change),
        "deprecated": mode_label(r.deprecated),
        "license": mode_label(r.license), "licenses": r.licenses,
        "vulnerabilities": mode_label(r.vulnerabilities), "min_severity": r.min_severity,
    })
}

fn print_rules(f: Format, r: &pb::Rules) {
    let v = rules_json(r);
    match f {
        Format::Json => print_json(&v),
        Format::Table => {
            if let Some(o) = v.as_object() {
                for (k, x) in o {
                    println!(
                        "{k:<24} {}",
                        match x {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        }
                    );
                }
            }
        }
    }
}

pub async fn rules(cmd: RulesCmd, ch: Channel, auth: &BearerAuth, f: Format) -> anyhow::Result<()> {
    let mut c = RulesServiceClient::with_interceptor(ch, auth.clone());
    match cmd {
        RulesCmd::Explain {
            spec,
            org,
            registry,
            npm_token,
        } => {
            let (name, version) = match spec.rfind('@').filter(|i| *i > 0) {
                Some(i) => (spec[..i].to_string(), Some(spec[i + 1..].to_string())),
                None => (spec.clone(), None),
            };
            nproxy_common::tls::install_crypto_provider();
            let url = format!(
                "{}/-/nproxy/v1/explain/{}",
                registry.trim_end_matches('/'),
                name.replacen('/', "%2f", 1)
            );
            let mut r = reqwest::Client::new().get(url);
            if let Some(t) = &npm_token {
                r = r.bearer_auth(t);
            }
            let res = r.send().await?;
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            anyhow::ensure!(
                status.is_success(),
                "{}: {}",
                status,
                body["error"].as_str().unwrap_or("")
            );
            let mut findings = body["findings"].as_object().cloned().unwrap_or_default();
            if let Some(v) = &version {
                findings.retain(|k, _| k == v);
            }
            match f {
                Format::Json => print_json(
                    &json!({"org": org, "package": name, "blocked": body["blocked"], "warned": body["warned"], "findings": findings}),
                ),
                Format::Table => {
                    let mut t = Table::new(&["VERSION", "RULE", "MODE", "REASON"]);
                    for (ver, list) in &findings {
                        for x in list.as_array().into_iter().flatten() {
                            t.row(vec![
                                ver.clone(),
                                x["rule"].as_str().unwrap_or("").to_string(),
                                x["mode"].as_str().unwrap_or("").to_string(),
                                x["reason"].as_str().unwrap_or("").to_string(),
                            ]);
                        }
                    }
                    if t.rows.is_empty() {
                        println!("no rule fires on {spec} for org {org}");
                    } else {
                        print!("{}", t.render());
                    }
                }
            }
        }
        RulesCmd::Get { org } => {
            let r = c.get_rules(pb::GetRulesRequest { org }).await?.into_inner();
            print_rules(f, &r);
        }
        RulesCmd::Set(a) => {
            let mut r = c
                .get_rules(pb::GetRulesRequest { org: a.org.clone() })
                .await?
                .into_inner();
            let set = |slot: &mut i32, m: Option<ModeArg>| {
                if let Some(m) = m {
                    *slot = m.pb();
                }
            };
            set(&mut r.lists, a.lists);
            set(&mut r.cooldown, a.cooldown);
            set(&mut r.first_seen, a.first_seen);
            set(&mut r.install_scripts, a.install_scripts);
            set(&mut r.unexpected_dependencies, a.unexpected_dependencies);
            set(&mut r.publisher_change, a.publisher_change);
            set(&mut r.deprecated, a.deprecated);
            set(&mut r.license, a.license);
            set(&mut r.vulnerabilities, a.vulnerabilities);
            if !a.allow.is_empty() {
                r.allow = a.allow.iter().map(|s| pattern(s)).collect();
            }
            if !a.deny.is_empty() {
                r.deny = a.deny.iter().map(|s| pattern(s)).collect();
            }
            if let Some(v) = a.allow_list_only {
                r.allow_list_only = v;
            }
            if let Some(h) = a.cooldown_hours {
                r.cooldown_hours = h;
            }
            if let Some(d) = a.first_seen_days {
                r.first_seen_days = d;
            }
            if let Some(l) = a.licenses {
                r.licenses = l
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            if let Some(s) = a.min_severity {
                r.min_severity = s;
            }
            let r = c
                .set_rules(pb::SetRulesRequest {
                    org: a.org,
                    rules: Some(r),
                })
                .await?
                .into_inner();
            print_rules(f, &r);
        }
    }
    Ok(())
}

pub async fn exceptions(
    cmd: ExceptionsCmd,
    ch: Channel,
    auth: &BearerAuth,
    f: Format,
) -> anyhow::Result<()> {
    let mut c = RulesServiceClient::with_interceptor(ch, auth.clone());
    let show = |list: &[pb::RuleException]| {
        match f {
        Format::Json => print_json(&json!(list
            .iter()
            .map(|e| json!({"id": e.id, "package": e.package, "version": e.version, "reason": e.reason, "created_at_ms": e.created_at_ms}))
            .collect::<Vec<_>>())),
        Format::Table => {
            let mut t = Table::new(&["ID", "PACKAGE", "VERSION", "REASON", "CREATED"]);
            for e in list {
                t.row(vec![e.id.clone(), e.package.clone(), e.version.clone(), e.reason.clone(), time(e.created_at_ms)]);
            }
            print!("{}", t.render());
        }
    }
    };
    match cmd {
        ExceptionsCmd::Add { org, spec, reason } => {
            let at = spec
                .rfind('@')
                .filter(|i| *i > 0)
                .ok_or_else(|| anyhow::anyhow!("{spec:?} must be <name>@<version>"))?;
            let e = c
                .add_exception(pb::AddExceptionRequest {
                    org,
                    package: spec[..at].to_string(),
                    version: spec[at + 1..].to_string(),
                    reason,
                })
                .await?
                .into_inner();
            show(&[e]);
        }
        ExceptionsCmd::List { org } => {
            let list = c
                .list_exceptions(pb::ListExceptionsRequest { org })
                .await?
                .into_inner()
                .exceptions;
            show(&list);
        }
        ExceptionsCmd::Remove { org, id } => {
            c.remove_exception(pb::RemoveExceptionRequest {
                org,
                id: id.clone(),
            })
            .await?;
            match f {
                Format::Json => print_json(&json!({"removed": id})),
                Format::Table => println!("removed exception {id}"),
            }
        }
    }
    Ok(())
}

pub async fn advisories(
    cmd: AdvisoriesCmd,
    ch: Channel,
    auth: &BearerAuth,
    f: Format,
) -> anyhow::Result<()> {
    let mut c = AdvisoriesClient::with_interceptor(ch, auth.clone());
    match cmd {
        AdvisoriesCmd::Import { path } => {
            let mut files = Vec::new();
            if path.is_dir() {
                for e in std::fs::read_dir(&path)? {
                    let p = e?.path();
                    if p.extension().is_some_and(|x| x == "json") {
                        files.push(p);
                    }
                }
                files.sort();
            } else {
                files.push(path.clone());
            }
            let mut docs = Vec::new();
            for p in &files {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                // A file holds one OSV document or an array of them.
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(serde_json::Value::Array(a)) => docs.extend(a.iter().map(|d| d.to_string())),
                    Ok(v) => docs.push(v.to_string()),
                    Err(e) => anyhow::bail!("{}: not JSON: {e}", p.display()),
                }
            }
            let r = c
                .import_advisories(pb::ImportAdvisoriesRequest { osv_json: docs })
                .await?
                .into_inner();
            match f {
                Format::Json => {
                    print_json(&json!({"imported": r.imported, "packages": r.packages}))
                }
                Format::Table => println!(
                    "imported {} advisories about {} packages",
                    r.imported,
                    r.packages.len()
                ),
            }
        }
        AdvisoriesCmd::List { package } => {
            let list = c
                .list_advisories(pb::ListAdvisoriesRequest {
                    package: package.unwrap_or_default(),
                })
                .await?
                .into_inner()
                .advisories;
            match f {
                Format::Json => print_json(&json!(list
                    .iter()
                    .map(|a| json!({"id": a.id, "summary": a.summary, "severity": a.severity, "malware": a.malware, "packages": a.packages}))
                    .collect::<Vec<_>>())),
                Format::Table => {
                    let mut t = Table::new(&["ID", "SEVERITY", "PACKAGES", "SUMMARY"]);
                    for a in &list {
                        t.row(vec![a.id.clone(), if a.malware { "MALWARE".into() } else { a.severity.clone() }, a.packages.join(","), a.summary.clone()]);
                    }
                    print!("{}", t.render());
                }
            }
        }
    }
    Ok(())
}
