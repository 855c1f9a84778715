//! The few fields of a version's manifest the rules read, parsed once per version (the rest
//! of the manifest is skipped unparsed).

use std::collections::{BTreeMap, HashMap};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize, Default)]
pub(super) struct Facts {
    #[serde(default)]
    pub(super) scripts: Option<HashMap<String, IgnoredAny>>,
    #[serde(default)]
    pub(super) dependencies: Option<BTreeMap<String, IgnoredAny>>,
    #[serde(rename = "_npmUser", default)]
    pub(super) npm_user: Option<NpmUser>,
    #[serde(default)]
    pub(super) license: Option<Value>,
    #[serde(default)]
    pub(super) licenses: Option<Value>,
    #[serde(default)]
    pub(super) deprecated: Option<Value>,
}

#[derive(Deserialize, Default)]
pub(super) struct NpmUser {
    pub(super) name: Option<String>,
}
