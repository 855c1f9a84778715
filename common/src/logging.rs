//! Logging for every nproxy binary. `RUST_LOG` (or the binary's default) decides levels;
//! a cap on top of it may only ever *lower* them: third-party crates that print raw request
//! headers at trace level (pingora prints `Authorization`) never log below `debug`, whatever
//! `RUST_LOG` says. (`EnvFilter::add_directive("h2=debug")` would instead *set* h2 to debug,
//! which raised it under `RUST_LOG=warn`.)

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Crates that may print request metadata (tokens) at trace level.
const CAPPED_AT_DEBUG: &[&str] = &[
    "pingora",
    "pingora_core",
    "pingora_proxy",
    "pingora_cache",
    "pingora_http",
    "h2",
    "hyper",
    "hyper_util",
    "reqwest",
    "tonic",
    "tower",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_sigv4",
    "rustls",
    "redis",
    "sqlx",
];

/// Silenced entirely. nproxy answers every request itself and never proxies through
/// pingora, so `pingora_proxy` only ever reports a *client* going away mid-request, at
/// error level, once per connection: under a slow-header attack that is a log line per
/// attacking connection. nproxy logs its own failures (with request ids) and counts cut
/// connections in `nproxy_connections_cut_total`.
const SILENCED: &[&str] = &["pingora_proxy"];

/// The cap: every level allowed, except trace for the crates above.
pub fn cap() -> Targets {
    let capped = CAPPED_AT_DEBUG
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, c| {
            t.with_target(*c, LevelFilter::DEBUG)
        });
    SILENCED
        .iter()
        .fold(capped, |t, c| t.with_target(*c, LevelFilter::OFF))
}

/// The level filter: `spec` in `RUST_LOG` syntax (e.g. `RUST_LOG`'s value, or a default).
pub fn env_filter(spec: &str) -> EnvFilter {
    EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber writing to stderr (colour only on a terminal), with
/// `RUST_LOG` or else `default` as the levels, capped. Returns false if one was already set.
pub fn init(default: &str, format: Format) -> bool {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = match format {
        Format::Text => fmt.boxed(),
        Format::Json => fmt.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(env_filter(&spec))
        .with(cap())
        .with(fmt)
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled_under(spec: &str, target_checks: impl FnOnce()) {
        let sub = tracing_subscriber::registry()
            .with(env_filter(spec))
            .with(cap());
        tracing::subscriber::with_default(sub, target_checks);
    }

    /// The regression: `RUST_LOG=warn` used to turn h2, hyper and pingora *up* to debug.
    #[test]
    fn caps_never_raise_a_level() {
        enabled_under("warn", || {
            assert!(!tracing::enabled!(target: "h2", Level::DEBUG));
            assert!(!tracing::enabled!(target: "pingora_core", Level::DEBUG));
            assert!(!tracing::enabled!(target: "hyper", Level::INFO));
            assert!(tracing::enabled!(target: "hyper", Level::WARN));
            assert!(!tracing::enabled!(target: "nproxy_data_plane", Level::INFO));
        });
        enabled_under("info", || {
            assert!(!tracing::enabled!(target: "h2", Level::DEBUG));
            assert!(tracing::enabled!(target: "nproxy_data_plane", Level::INFO));
        });
    }

    /// Asking for trace everywhere still never lets header-printing crates trace.
    #[test]
    fn secret_printing_crates_stay_below_trace() {
        enabled_under("trace", || {
            assert!(!tracing::enabled!(target: "pingora_proxy", Level::TRACE));
            // Silenced: one error line per client that goes away mid-header.
            assert!(!tracing::enabled!(target: "pingora_proxy", Level::ERROR));
            assert!(tracing::enabled!(target: "pingora_core", Level::ERROR));
            assert!(!tracing::enabled!(target: "h2::codec", Level::TRACE));
            assert!(tracing::enabled!(target: "h2", Level::DEBUG));
            assert!(tracing::enabled!(target: "nproxy_data_plane", Level::TRACE));
        });
    }
}
