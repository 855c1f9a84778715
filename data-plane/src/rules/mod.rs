//! The org's rules as the data plane holds them: the engine itself is pure and lives in
//! `nproxy_core::rules`; `pb` converts the org snapshot's protobuf rules into it.

pub mod pb;
