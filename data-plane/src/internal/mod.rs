//! An org's internal packages: the npm API (`api`), their documents and blobs in the store
//! (`store`), the audit outbox (`outbox`) and the control-plane client that signs and
//! records (`cp_client`), and what storing can refuse or fail with (`error`). Nothing here talks to the upstream.

pub mod api;
pub mod cp_client;
pub mod error;
pub mod outbox;
pub mod store;
