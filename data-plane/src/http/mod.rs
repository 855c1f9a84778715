//! The HTTP edge: the pingora app that routes every npm request to its handler
//! (`server`), the org's rules there (`policy`), how answers are written and bodies read (`respond`), which org a request is
//! for (`tenant`), the trust endpoints (`trust_routes`), and the connection guard in front
//! of pingora (`conn_guard`).

pub mod conn_guard;
pub mod forward;
pub mod lifecycle;
pub mod policy;
pub mod respond;
pub mod routed;
pub mod server;
pub mod tenant;
pub mod trust_routes;
