//! Small pieces every nproxy binary shares. Kept free of server dependencies (no pingora,
//! tonic, Redis or S3) so any crate, fuzz target or tool can use it.

pub mod config;
pub mod hash;
pub mod logging;
pub mod secret;
pub mod slug;
pub mod time;
pub mod tls;
