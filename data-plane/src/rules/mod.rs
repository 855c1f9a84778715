//! The org's rules as the data plane holds them: the engine itself is pure and lives in
//! `nproxy_core::rules`; `pb` converts the org snapshot's protobuf rules into it, and
//! `verdicts` caches what the rules say about each package (and audits it); `audit`
//! answers `npm audit` from the org's advisories and the upstream's; `explain` shapes
//! the explain endpoint's answer.

pub mod audit;
pub mod error;
pub mod explain;
pub mod pb;
pub mod verdicts;
