//! Which org a request is for, and the public base URL its answers must point back to.
//! Pure: takes the few request facts it needs, returns a decision.

use std::net::IpAddr;

use crate::config::{url_base, OrgMode, Settings};
use crate::error::NpmError;
use nproxy_core::names::OrgSlug;
use nproxy_core::route::split_org_prefix;

/// The request facts tenancy depends on.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts<'a> {
    pub host: Option<&'a str>,
    pub forwarded_host: Option<&'a str>,
    pub forwarded_proto: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    /// Raw (still percent-encoded) path, without the query.
    pub path: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub org: OrgSlug,
    /// Public URL of this org's registry, no trailing slash: the prefix of every
    /// `dist.tarball` served to this client.
    pub base_url: String,
    /// The path relative to the org's registry root.
    pub path: String,
}

/// Host names go into URLs we serve (every `dist.tarball`), so a Host must be exactly
/// `name[:port]`, `ipv4[:port]` or `[ipv6][:port]`: DNS labels of letters, digits and inner
/// hyphens, no empty label, a port of digits.
fn valid_host(h: &str) -> bool {
    if h.is_empty() || h.len() > 255 {
        return false;
    }
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match h.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(h), None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    });
    let host_ok = host.is_none_or(|host| {
        let host = host.strip_suffix('.').unwrap_or(host);
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    });
    port_ok && host_ok
}

/// The host (and port) the client addressed: `X-Forwarded-Host` from a trusted proxy, else
/// `Host`. Lowercase, not yet validated.
fn addressed_host(settings: &Settings, facts: &RequestFacts<'_>) -> String {
    let trusted = facts
        .client_ip
        .is_some_and(|ip| settings.trusted_proxies.iter().any(|c| c.contains(ip)));
    match (trusted, facts.forwarded_host) {
        // A proxy chain appends; the first entry is what the client used.
        (true, Some(fh)) => fh.split(',').next().unwrap_or("").trim(),
        _ => facts.host.unwrap_or(""),
    }
    .to_ascii_lowercase()
}

/// The registry's host name as the client knows it, without the port: what npm puts in a
/// trusted-publishing audience (`npm:<host name>`). The configured public URL's host where
/// it names the registry (all modes but host mode), else the host the client addressed.
pub fn public_host_name(settings: &Settings, facts: &RequestFacts<'_>) -> Result<String, NpmError> {
    if let (Some(u), false) = (&settings.public_url, settings.org_mode == OrgMode::Host) {
        if let Some(h) = u.host_str() {
            return Ok(h.to_ascii_lowercase());
        }
    }
    let host = addressed_host(settings, facts);
    if !valid_host(&host) {
        return Err(NpmError::BadRequest(
            "missing or invalid Host header".into(),
        ));
    }
    let name = strip_port(&host).to_string();
    // In host mode only the registry's own names are audiences: a Host naming another
    // registry must not make an id token minted for that one acceptable here.
    if settings.org_mode == OrgMode::Host {
        let base = settings.base_domain.as_deref().unwrap_or("");
        let ours = name == base || name.strip_suffix(base).is_some_and(|l| l.ends_with('.'));
        if base.is_empty() || !ours {
            return Err(NpmError::BadRequest(format!(
                "{name} is not a host this registry serves"
            )));
        }
    }
    Ok(name)
}

pub fn resolve(settings: &Settings, facts: &RequestFacts<'_>) -> Result<Tenant, NpmError> {
    let trusted = facts
        .client_ip
        .is_some_and(|ip| settings.trusted_proxies.iter().any(|c| c.contains(ip)));
    let host = addressed_host(settings, facts);
    let proto = match (trusted, facts.forwarded_proto) {
        (true, Some(p)) => p
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
        _ => "http".to_string(),
    };
    if !matches!(proto.as_str(), "http" | "https") {
        return Err(NpmError::BadRequest(
            "X-Forwarded-Proto must be http or https".into(),
        ));
    }
    let derived_base = || -> Result<String, NpmError> {
        if !valid_host(&host) {
            return Err(NpmError::BadRequest(
                "missing or invalid Host header".into(),
            ));
        }
        Ok(format!("{proto}://{host}"))
    };
    let configured_or_derived = || -> Result<String, NpmError> {
        match &settings.public_url {
            Some(u) => Ok(url_base(u)),
            None => derived_base(),
        }
    };
    let default_org = || {
        settings
            .default_org
            .clone()
            .ok_or_else(|| NpmError::NotFound("no org is served at this address".into()))
    };

    match settings.org_mode {
        OrgMode::Single => Ok(Tenant {
            org: default_org()?,
            base_url: configured_or_derived()?,
            path: facts.path.to_string(),
        }),
        OrgMode::Path => {
            let Some((org, rest)) = split_org_prefix(facts.path) else {
                // Service endpoints such as /-/ping work without an org.
                return Ok(Tenant {
                    org: default_org()?,
                    base_url: configured_or_derived()?,
                    path: facts.path.to_string(),
                });
            };
            let org = org.map_err(|bad| {
                NpmError::NotFound(format!("{bad:?} is not an org (paths are /{{org}}/…)"))
            })?;
            Ok(Tenant {
                base_url: format!("{}/{}", configured_or_derived()?, org),
                org,
                path: rest.to_string(),
            })
        }
        OrgMode::Host => {
            let base_domain = settings.base_domain.as_deref().unwrap_or("");
            let bare_host = strip_port(&host);
            let org_label = bare_host
                .strip_suffix(base_domain)
                .and_then(|h| h.strip_suffix('.'))
                .filter(|label| !label.is_empty() && !label.contains('.'));
            match org_label {
                Some(label) => {
                    let org =
                        OrgSlug::parse(label).map_err(|e| NpmError::NotFound(e.to_string()))?;
                    // The org's own host, with the configured scheme and path prefix if any.
                    let base = match &settings.public_url {
                        Some(u) => {
                            let path = u.path().trim_end_matches('/');
                            format!("{}://{}{}", u.scheme(), host, path)
                        }
                        None => derived_base()?,
                    };
                    Ok(Tenant {
                        org,
                        base_url: base,
                        path: facts.path.to_string(),
                    })
                }
                None => Ok(Tenant {
                    org: default_org()?,
                    base_url: configured_or_derived()?,
                    path: facts.path.to_string(),
                }),
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked_syntactically() {
        for ok in [
            "registry.example",
            "localhost:4873",
            "127.0.0.1:80",
            "[::1]:4873",
            "[::1]",
            "a-b.c.example.",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "a]b[c:::",
            "..",
            "[",
            "a..b",
            "-a.example",
            "a.example:",
            "a.example:99999",
            "a b",
            "a/b",
            "[::1",
            "[zz]:1",
            "a:1:2",
            "ex_ample.com",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }
    use crate::config::Config;

    fn settings(f: impl FnOnce(&mut Config)) -> Settings {
        let mut c = Config {
            upstream: "http://up.test".into(),
            ..Config::default()
        };
        f(&mut c);
        c.validate().unwrap()
    }

    fn facts<'a>(host: &'a str, path: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            host: Some(host),
            path,
            client_ip: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn single_org_uses_host() {
        let s = settings(|_| {});
        let t = resolve(&s, &facts("127.0.0.1:4873", "/lodash")).unwrap();
        assert_eq!(t.org.as_str(), "default");
        assert_eq!(t.base_url, "http://127.0.0.1:4873");
        assert_eq!(t.path, "/lodash");
    }

    #[test]
    fn configured_public_url_wins_and_keeps_its_prefix() {
        let s = settings(|c| c.public_url = Some("https://npm.corp.test/registry/".into()));
        let t = resolve(&s, &facts("evil.test", "/lodash")).unwrap();
        assert_eq!(t.base_url, "https://npm.corp.test/registry");
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let s = settings(|c| c.trusted_proxies = vec!["10.0.0.0/8".into()]);
        let mut f = facts("internal:8080", "/x");
        f.forwarded_host = Some("npm.corp.test");
        f.forwarded_proto = Some("https");
        let t = resolve(&s, &f).unwrap();
        assert_eq!(t.base_url, "http://internal:8080", "untrusted client");
        f.client_ip = Some("10.1.1.1".parse().unwrap());
        let t = resolve(&s, &f).unwrap();
        assert_eq!(t.base_url, "https://npm.corp.test");
    }

    /// A trusted-publishing audience names this registry: the configured URL's host, or in
    /// host mode a host under `base_domain`, never any host a client claims.
    #[test]
    fn audiences_name_only_this_registry() {
        let s = settings(|c| c.public_url = Some("https://npm.corp.test/registry/".into()));
        assert_eq!(
            public_host_name(&s, &facts("other.registry.test", "/x")).unwrap(),
            "npm.corp.test"
        );
        let s = settings(|c| {
            c.org_mode = OrgMode::Host;
            c.base_domain = Some("npm.corp.test".into());
        });
        assert_eq!(
            public_host_name(&s, &facts("acme.npm.corp.test:8443", "/x")).unwrap(),
            "acme.npm.corp.test"
        );
        assert_eq!(
            public_host_name(&s, &facts("npm.corp.test", "/x")).unwrap(),
            "npm.corp.test"
        );
        for other in [
            "other.registry.test",
            "evilnpm.corp.test",
            "npm.corp.test.evil",
        ] {
            assert!(
                public_host_name(&s, &facts(other, "/x")).is_err(),
                "{other}"
            );
        }
    }

    #[test]
    fn hostile_host_is_rejected() {
        let s = settings(|_| {});
        assert!(resolve(&s, &facts("a\"b", "/x")).is_err());
        assert!(resolve(&s, &facts("", "/x")).is_err());
        assert!(resolve(&s, &facts("a/b", "/x")).is_err());
    }

    #[test]
    fn host_mode() {
        let s = settings(|c| {
            c.org_mode = OrgMode::Host;
            c.base_domain = Some("npm.corp.test".into());
        });
        let t = resolve(&s, &facts("acme.npm.corp.test:8080", "/x")).unwrap();
        assert_eq!(t.org.as_str(), "acme");
        assert_eq!(t.base_url, "http://acme.npm.corp.test:8080");
        let t = resolve(&s, &facts("npm.corp.test", "/x")).unwrap();
        assert_eq!(t.org.as_str(), "default");
        let t = resolve(&s, &facts("a.b.npm.corp.test", "/x")).unwrap();
        assert_eq!(t.org.as_str(), "default", "nested labels are not orgs");
    }

    #[test]
    fn path_mode() {
        let s = settings(|c| c.org_mode = OrgMode::Path);
        let t = resolve(&s, &facts("127.0.0.1:1", "/acme/@x%2fy")).unwrap();
        assert_eq!(t.org.as_str(), "acme");
        assert_eq!(t.base_url, "http://127.0.0.1:1/acme");
        assert_eq!(t.path, "/@x%2fy");
        let t = resolve(&s, &facts("127.0.0.1:1", "/-/ping")).unwrap();
        assert_eq!(t.path, "/-/ping");
        assert!(resolve(&s, &facts("127.0.0.1:1", "/Bad_Org/x")).is_err());
    }
}
