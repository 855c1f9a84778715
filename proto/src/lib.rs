//! The gRPC contract between the control plane and its clients (CLI, data plane).
//!
//! Empty until the control-plane issue defines the services; the crate exists now so
//! the workspace has its final shape and clients can depend on it without moving.
