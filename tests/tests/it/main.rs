//! nproxy's cross-component tests: one binary (so the build links once), real processes.

mod support;

mod auth_matrix;
mod bundles;
mod client_matrix;
mod compat;
mod control_plane;
mod control_plane_grpc;
mod control_plane_replicas;
mod faults;
mod faults_deps;
mod faults_process;
mod http_api;
mod installs;
mod internal_packages;
mod lifecycle;
mod resilience;
mod rules;
mod scale;
mod search;
mod security;
mod settings_api;
mod single_flight;
mod storage;
mod tarball_integrity;
mod trust;
mod upstream_routes;
