//! The two forms of a document a client can ask for (`Form`, by `Accept`), and
//! `abbreviate`, which derives the abbreviated install form from the full one.

use std::collections::HashMap;

use serde::de::IgnoredAny;

use super::document::{borrowed_map, null, raw, IgnoredOr, Packument, RawMap};

/// Which representation a client asked for (by `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    Full,
    Abbreviated,
}

pub const ABBREVIATED_MEDIA_TYPE: &str = "application/vnd.npm.install-v1+json";

impl Form {
    /// npm asks `application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*`
    /// for the abbreviated form; anything without that media type gets the full document.
    pub fn from_accept(accept: Option<&str>) -> Form {
        match accept {
            Some(a) if a.contains(ABBREVIATED_MEDIA_TYPE) => Form::Abbreviated,
            _ => Form::Full,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Form::Full => "application/json",
            Form::Abbreviated => ABBREVIATED_MEDIA_TYPE,
        }
    }
}

/// Per-version fields kept in the abbreviated form (npm's registry set, plus nothing else).
const ABBREVIATED_VERSION_FIELDS: &[&str] = &[
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "os",
    "cpu",
    "libc",
    "deprecated",
    "funding",
    "license",
    "hasInstallScript",
    "_hasShrinkwrap",
];

/// The abbreviated ("corgi") form. Keeps `time` so pnpm's minimum-release-age check needs no
/// second, full fetch.
pub fn abbreviate<'a>(doc: &Packument<'a>) -> Packument<'a> {
    let mut fields = RawMap::new();
    for key in ["name", "dist-tags"] {
        if let Some(v) = doc.fields.get(key) {
            fields.insert(key.into(), v.clone());
        }
    }
    let time = doc.fields.get("time");
    // npm's registry always sends `modified`; a document without `time.modified` (some
    // mirrors drop it) gets its newest time instead.
    if let Some(modified) = time
        .and_then(|t| serde_json::from_str::<HashMap<String, IgnoredOr>>(t.get()).ok())
        .and_then(|mut t| match t.remove("modified").and_then(|m| m.0) {
            Some(m) => Some(m),
            None => t.into_values().filter_map(|v| v.0).max(),
        })
    {
        fields.insert("modified".into(), raw(&modified));
    }
    fields.insert("versions".into(), null());
    let mut versions = RawMap::with_capacity(doc.versions.len());
    for (v, manifest) in &doc.versions {
        let Ok(m) = borrowed_map(manifest.get()) else {
            continue;
        };
        let mut out = RawMap::new();
        for field in ABBREVIATED_VERSION_FIELDS {
            if let Some(x) = m.get(*field) {
                out.insert((*field).into(), x.clone());
            }
        }
        if !out.contains_key("hasInstallScript") && has_install_script(&m) {
            out.insert("hasInstallScript".into(), raw(&true));
        }
        versions.insert(v.clone(), raw(&out));
    }
    if let Some(t) = time {
        fields.insert("time".into(), t.clone());
    }
    Packument { fields, versions }
}

fn has_install_script(manifest: &RawMap<'_>) -> bool {
    manifest
        .get("scripts")
        .and_then(|s| serde_json::from_str::<HashMap<String, IgnoredAny>>(s.get()).ok())
        .is_some_and(|s| {
            ["preinstall", "install", "postinstall"]
                .iter()
                .any(|k| s.contains_key(*k))
        })
}
