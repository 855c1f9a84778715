//! The API's JSON: request bodies and query strings read field by field (a wrong type is a
//! 400 naming the field; the gRPC validation does the rest), and the protobuf answers
//! written with camelCase names.

use std::collections::HashMap;

use base64::Engine;
use nproxy_proto::v1 as pb;
use serde_json::{json, Map, Value};

use super::ApiError;

/// A request body: a JSON object whose fields are taken one by one; `finish` refuses any
/// field left over.
pub(crate) struct Obj {
    map: Map<String, Value>,
    /// Where this object sits in the body, for error messages (`allow[2].`).
    at: String,
}

fn must(at: &str, key: &str, what: &str) -> ApiError {
    ApiError::bad_request(format!("{at}{key}: must be {what}"))
}

/// No NUL character reaches the services: PostgreSQL text refuses it (no id, name or URL
/// holds one anyway).
fn no_nul(at: &str, key: &str, s: String) -> Result<String, ApiError> {
    if s.contains('\0') {
        return Err(ApiError::bad_request(format!(
            "{at}{key}: must not contain NUL characters"
        )));
    }
    Ok(s)
}

impl Obj {
    /// The body of a call without one.
    pub(crate) fn empty() -> Obj {
        Obj {
            map: Map::new(),
            at: String::new(),
        }
    }

    pub(crate) fn parse(body: &[u8]) -> Result<Obj, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Obj {
                map,
                at: String::new(),
            }),
            Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
            Err(e) => Err(ApiError::bad_request(format!(
                "the body is not valid JSON: {e}"
            ))),
        }
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::String(s)) => no_nul(&self.at, key, s).map(Some),
            Some(_) => Err(must(&self.at, key, "a string")),
        }
    }

    pub(crate) fn boolean(&mut self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(must(&self.at, key, "true or false")),
        }
    }

    pub(crate) fn u32(&mut self, key: &str) -> Result<Option<u32>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| must(&self.at, key, "an integer from 0 to 4294967295")),
        }
    }

    pub(crate) fn i64(&mut self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| must(&self.at, key, "a 64-bit integer")),
        }
    }

    pub(crate) fn strings(&mut self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => no_nul(&self.at, key, s),
                    _ => Err(must(&self.at, key, "an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(must(&self.at, key, "an array of strings")),
        }
    }

    /// An object whose values are all strings.
    pub(crate) fn string_map(
        &mut self,
        key: &str,
    ) -> Result<Option<HashMap<String, String>>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((no_nul(&self.at, key, k)?, no_nul(&self.at, key, s)?)),
                    _ => Err(must(&self.at, key, "an object of strings")),
                })
                .collect::<Result<HashMap<_, _>, _>>()
                .map(Some),
            Some(_) => Err(must(&self.at, key, "an object of strings")),
        }
    }

    /// An array of objects, each read as an `Obj` of its own.
    pub(crate) fn objects(&mut self, key: &str) -> Result<Option<Vec<Obj>>, ApiError> {
        match self.map.remove(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(map) => Ok(Obj {
                        map,
                        at: format!("{}{key}[{i}].", self.at),
                    }),
                    _ => Err(must(&self.at, key, "an array of objects")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(must(&self.at, key, "an array of objects")),
        }
    }

    /// Refuses any field no reader took.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(ApiError::bad_request(format!(
                "{}{k}: unknown field",
                self.at
            ))),
        }
    }
}

/// A query string's parameters (the first of a repeated name counts).
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Query {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Query(map)
    }

    pub(crate) fn string(&self, key: &str) -> Result<String, ApiError> {
        no_nul("", key, self.0.get(key).cloned().unwrap_or_default())
    }

    pub(crate) fn u32(&self, key: &str) -> Result<u32, ApiError> {
        self.0.get(key).map_or(Ok(0), |v| {
            v.parse().map_err(|_| {
                ApiError::bad_request(format!("{key}: must be an integer from 0 to 4294967295"))
            })
        })
    }

    pub(crate) fn i64(&self, key: &str) -> Result<i64, ApiError> {
        self.0.get(key).map_or(Ok(0), |v| {
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("{key}: must be a 64-bit integer")))
        })
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<bool, ApiError> {
        match self.0.get(key).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::bad_request(format!(
                "{key}: must be true or false"
            ))),
        }
    }
}

/// A gRPC validation message (`internal_scopes: …`, `rules.cooldown_hours: …`) with the
/// field named as this API spells it (`internalScopes: …`, `cooldownHours: …`: the rules are
/// the body itself here).
pub(crate) fn field_names_as_sent(message: &str) -> String {
    let Some((field, rest)) = message.split_once(": ") else {
        return message.to_string();
    };
    if field.is_empty()
        || !field
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    {
        return message.to_string();
    }
    let field = field.strip_prefix("rules.").unwrap_or(field);
    let mut out = String::with_capacity(message.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    format!("{out}: {rest}")
}

pub(crate) fn org(o: &pb::Org) -> Value {
    json!({"id": o.id, "slug": o.slug, "displayName": o.display_name, "createdAtMs": o.created_at_ms})
}

pub(crate) fn settings(s: &pb::OrgSettings) -> Value {
    json!({"orgId": s.org_id, "internalScopes": s.internal_scopes, "publicReads": s.public_reads})
}

/// Sets `key` only when the optional protobuf field is set.
fn put_opt(v: &mut Value, key: &str, value: Option<i64>) {
    if let (Some(n), Value::Object(m)) = (value, v) {
        m.insert(key.into(), n.into());
    }
}

pub(crate) fn token(t: &pb::Token) -> Value {
    let scopes: Vec<&str> = t
        .scopes
        .iter()
        .map(|s| pb::TokenScope::try_from(*s).map_or("unspecified", |s| s.label()))
        .collect();
    let mut v = json!({
        "id": t.id, "orgId": t.org_id, "name": t.name, "scopes": scopes,
        "createdAtMs": t.created_at_ms, "secretPrefix": t.secret_prefix, "packages": t.packages,
    });
    put_opt(&mut v, "expiresAtMs", t.expires_at_ms);
    put_opt(&mut v, "lastUsedAtMs", t.last_used_at_ms);
    put_opt(&mut v, "revokedAtMs", t.revoked_at_ms);
    v
}

pub(crate) fn key(k: &pb::SigningKey) -> Value {
    let status = match pb::KeyStatus::try_from(k.status) {
        Ok(pb::KeyStatus::Retired) => "retired",
        _ => "active",
    };
    let mut v = json!({
        "keyId": k.key_id, "orgId": k.org_id, "algorithm": k.algorithm,
        "publicKey": base64::engine::general_purpose::STANDARD.encode(&k.public_key),
        "status": status, "createdAtMs": k.created_at_ms,
    });
    put_opt(&mut v, "retiredAtMs", k.retired_at_ms);
    v
}

pub(crate) fn exception(e: &pb::RuleException) -> Value {
    json!({"id": e.id, "package": e.package, "version": e.version, "reason": e.reason, "createdAtMs": e.created_at_ms})
}

pub(crate) fn event(e: &pb::AuditEvent) -> Value {
    // Details are always a JSON object (checked when recorded); anything else is shown as
    // the text it is.
    let details = match serde_json::from_str::<Value>(&e.details_json) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"text": e.details_json}),
    };
    json!({
        "id": e.id, "orgId": e.org_id, "seq": e.seq, "timeMs": e.time_ms, "type": e.r#type,
        "actor": e.actor, "details": details, "hash": e.hash, "prevHash": e.prev_hash,
    })
}

pub(crate) fn publisher(p: &pb::TrustedPublisher) -> Value {
    let claims: Map<String, Value> = p
        .claims
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": p.id, "orgId": p.org_id, "issuer": p.issuer, "package": p.package,
        "claims": claims, "createdAtMs": p.created_at_ms,
    })
}

/// An upstream route; its credential is write-only (only whether one is set shows).
pub(crate) fn upstream_route(r: &pb::UpstreamRoute) -> Value {
    json!({
        "id": r.id, "orgId": r.org_id, "pattern": r.pattern, "url": r.url,
        "hasCredential": r.has_credential, "createdAtMs": r.created_at_ms, "version": r.version,
    })
}

fn mode_name(m: i32) -> &'static str {
    match pb::RuleMode::try_from(m) {
        Ok(pb::RuleMode::Warn) => "warn",
        Ok(pb::RuleMode::Block) => "block",
        _ => "off",
    }
}

/// The rule modes, by their JSON name.
const MODES: [&str; 9] = [
    "lists",
    "cooldown",
    "firstSeen",
    "installScripts",
    "unexpectedDependencies",
    "publisherChange",
    "deprecated",
    "license",
    "vulnerabilities",
];

fn modes_mut(r: &mut pb::Rules) -> [&mut i32; 9] {
    [
        &mut r.lists,
        &mut r.cooldown,
        &mut r.first_seen,
        &mut r.install_scripts,
        &mut r.unexpected_dependencies,
        &mut r.publisher_change,
        &mut r.deprecated,
        &mut r.license,
        &mut r.vulnerabilities,
    ]
}

pub(crate) fn rules(r: &pb::Rules) -> Value {
    let pats = |ps: &[pb::PackagePattern]| -> Vec<Value> {
        ps.iter()
            .map(|p| json!({"name": p.name, "range": p.range}))
            .collect()
    };
    let mut v = json!({
        "allow": pats(&r.allow), "deny": pats(&r.deny), "allowListOnly": r.allow_list_only,
        "cooldownHours": r.cooldown_hours, "firstSeenDays": r.first_seen_days,
        "licenses": r.licenses, "minSeverity": r.min_severity,
    });
    let modes = [
        r.lists,
        r.cooldown,
        r.first_seen,
        r.install_scripts,
        r.unexpected_dependencies,
        r.publisher_change,
        r.deprecated,
        r.license,
        r.vulnerabilities,
    ];
    if let Value::Object(m) = &mut v {
        for (name, mode) in MODES.iter().zip(modes) {
            m.insert((*name).into(), mode_name(mode).into());
        }
    }
    v
}

/// A whole rule set (`PUT …/rules` replaces it): an absent field is off or empty.
pub(crate) fn rules_from(mut o: Obj) -> Result<pb::Rules, ApiError> {
    let mut r = pb::Rules::default();
    for (name, mode) in MODES.iter().zip(modes_mut(&mut r)) {
        *mode = match o.string(name)?.as_deref() {
            None | Some("off") => pb::RuleMode::Off,
            Some("warn") => pb::RuleMode::Warn,
            Some("block") => pb::RuleMode::Block,
            Some(_) => return Err(must("", name, "off, warn or block")),
        } as i32;
    }
    for (key, list) in [("allow", &mut r.allow), ("deny", &mut r.deny)] {
        for mut p in o.objects(key)?.unwrap_or_default() {
            let name = p
                .string("name")?
                .ok_or_else(|| ApiError::bad_request(format!("{}name: is required", p.at)))?;
            let range = p.string("range")?.unwrap_or_default();
            p.finish()?;
            list.push(pb::PackagePattern { name, range });
        }
    }
    r.allow_list_only = o.boolean("allowListOnly")?.unwrap_or(false);
    r.cooldown_hours = o.u32("cooldownHours")?.unwrap_or(0);
    r.first_seen_days = o.u32("firstSeenDays")?.unwrap_or(0);
    r.licenses = o.strings("licenses")?.unwrap_or_default();
    r.min_severity = o.string("minSeverity")?.unwrap_or_default();
    o.finish()?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_name_fields_as_sent() {
        assert_eq!(
            field_names_as_sent("internal_scopes: \"acme\" must start with '@'"),
            "internalScopes: \"acme\" must start with '@'"
        );
        assert_eq!(
            field_names_as_sent("rules.cooldown_hours: at most a year"),
            "cooldownHours: at most a year"
        );
        assert_eq!(field_names_as_sent("slug: x"), "slug: x");
        assert_eq!(field_names_as_sent("Not a field: x"), "Not a field: x");
    }

    #[test]
    fn bodies_are_read_field_by_field() {
        let mut o = Obj::parse(br#"{"publicReads": "yes", "x": 1}"#).expect("an object");
        let e = o.boolean("publicReads").expect_err("a string");
        assert!(e.message.starts_with("publicReads:"), "{}", e.message);
        assert!(o.finish().expect_err("x is left").message.starts_with("x:"));
        assert!(Obj::parse(b"[1]").is_err());
        let mut o = Obj::parse(br#"{"issuer": "https://x/\u0000"}"#).expect("an object");
        let e = o.string("issuer").expect_err("a NUL");
        assert_eq!(e.message, "issuer: must not contain NUL characters");
        let q = Query::parse(Some("type=a%00b&pageSize=x"));
        assert!(q.string("type").is_err() && q.u32("pageSize").is_err());
        assert!(Obj::parse(b"{").is_err());
        let e = rules_from(Obj::parse(br#"{"deny": [{"name": "a", "rang": ""}]}"#).expect("obj"))
            .expect_err("a typo");
        assert_eq!(e.message, "deny[0].rang: unknown field");
    }

    #[test]
    fn rules_round_trip_through_json() {
        let body = br#"{"cooldown": "block", "cooldownHours": 72, "deny": [{"name": "@x/*"}],
            "installScripts": "warn", "licenses": ["MIT"], "allowListOnly": true}"#;
        let r = rules_from(Obj::parse(body).expect("obj")).expect("rules");
        assert_eq!(r.cooldown, pb::RuleMode::Block as i32);
        assert_eq!(r.lists, pb::RuleMode::Off as i32);
        let v = rules(&r);
        assert_eq!(v["cooldown"], "block");
        assert_eq!(v["installScripts"], "warn");
        assert_eq!(v["deny"][0]["name"], "@x/*");
        assert_eq!(v["cooldownHours"], 72);
        assert_eq!(
            rules_from(Obj::parse(&serde_json::to_vec(&v).expect("json")).expect("obj"))
                .expect("again"),
            r
        );
    }
}
