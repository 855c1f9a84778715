//! nproxy's pure cores, shared by the data plane, the fuzz targets and the tests: what a
//! request names and routes to, package documents and their transforms, publish payload
//! validation, internal-document rules, the security rules engine and OSV advisories.
//! Nothing here does I/O; each module's unit tests cover it.

pub mod attestation;
pub mod audit_bulk;
pub mod doc_bounds;
#[doc(hidden)]
pub mod fuzzing;
pub mod internal;
pub mod names;
pub mod osv;
pub mod packument;
pub mod publish;
pub mod route;
pub mod rules;
pub mod search;
pub mod upstream_route;
