//! The one forwarded answer nproxy edits: web login's `doneUrl`, pointed back at nproxy.

/// Points the `doneUrl` of a web login (or web OTP) answer at nproxy instead of the
/// upstream, so npm polls through nproxy (older npm polls the URL as given, which needs
/// direct egress and misses the token it keeps for nproxy). Only a `doneUrl` on the
/// upstream's own base with the path `/-/v1/done` is rewritten; `None`: nothing to change.
pub fn rewrite_done_url(body: &[u8], upstream_base: &str, public_base: &str) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let done = v.get("doneUrl")?.as_str()?;
    let rest = done.strip_prefix(upstream_base)?;
    let query = rest.strip_prefix("/-/v1/done")?;
    if !(query.is_empty() || query.starts_with('?')) {
        return None;
    }
    v["doneUrl"] = serde_json::Value::String(format!("{public_base}/-/v1/done{query}"));
    serde_json::to_vec(&v).ok()
}
