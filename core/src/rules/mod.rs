//! Security rules on public packages: which versions of a package an org's rules flag, and
//! what remains of the document once blocked versions are removed. Pure: the packument, the
//! rules, the package's advisories, the org's exceptions and the time in; a verdict out.
//!
//! A verdict depends on time only through the cooldown and first-seen rules; it says when it
//! expires (`recheck_at_ms`), so a held-back version appears by itself once old enough.
//!
//! Where things are: `config` (the `Rules` an org sets, each rule's `Mode`) and `pattern`
//! (allow and deny list entries); one file per family of rules, each rule a function that
//! returns its finding: `lists` (deny-list, allow-list), `age` (cooldown, first-seen),
//! `manifest` (install-scripts, deprecated, license), `history` (unexpected-dependencies,
//! publisher-change), `advisory` (vulnerability, malware); `engine` (`evaluate`, which runs
//! them in order and applies exceptions); `verdict` (the result and the refusal texts).

mod advisory;
mod age;
mod config;
mod engine;
mod facts;
mod history;
mod lists;
mod manifest;
mod pattern;
mod verdict;

pub use age::parse_iso_ms;
pub use config::{Mode, Rule, Rules};
pub use engine::evaluate;
pub use lists::refuses_whole_package;
pub use manifest::license_allowed;
pub use pattern::Pattern;
pub use verdict::{all_blocked, Finding, Verdict};

#[cfg(test)]
mod tests;
