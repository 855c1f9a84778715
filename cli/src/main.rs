//! `nproxyctl`: the admins' tool. Talks to the control plane over gRPC only; `nproxyctl dev`
//! (default feature `dev`) runs a whole nproxy in one process for trying it out.

mod bundle;
mod commands;
#[cfg(feature = "dev")]
mod dev;
#[cfg(feature = "dev")]
mod dev_config;
mod output;
mod rules_cmd;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use serde::Deserialize;

use output::Format;

#[derive(Parser)]
#[command(name = "nproxyctl", version, about = "Administer an nproxy registry")]
pub struct Cli {
    /// Control plane gRPC endpoint, or several, comma-separated (the first reachable is used).
    #[arg(long, global = true, env = "NPROXY_ENDPOINT")]
    endpoint: Option<String>,
    /// Admin bearer token.
    #[arg(
        long,
        global = true,
        env = "NPROXY_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Config file with `endpoint` and `token` (default: ~/.config/nproxy/nproxyctl.toml).
    /// For `nproxyctl dev`: the server's config file (the data plane's keys, plus `[dev]`
    /// and `[control_plane]` sections); only this flag names it, never the variable.
    #[arg(long, global = true, env = "NPROXY_CTL_CONFIG")]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Orgs and their settings.
    #[command(subcommand)]
    Org(commands::OrgCmd),
    /// API tokens for npm clients.
    #[command(subcommand)]
    Token(commands::TokenCmd),
    /// Ed25519 signing keys.
    #[command(subcommand)]
    Key(commands::KeyCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(commands::AuditCmd),
    /// Trusted publishers: CI jobs (GitHub Actions, GitLab CI) that publish with their OIDC
    /// id token instead of a stored token.
    #[command(subcommand)]
    Trust(commands::TrustCmd),
    /// Upstream routes: names the org fetches from another registry (a vendor's, GitHub
    /// Packages), with that registry's credential, held sealed by the control plane.
    #[command(subcommand)]
    Upstream(commands::UpstreamCmd),
    /// Security rules on public packages.
    #[command(subcommand)]
    Rules(rules_cmd::RulesCmd),
    /// Versions allowed despite the rules.
    #[command(subcommand)]
    Exceptions(rules_cmd::ExceptionsCmd),
    /// Vulnerability and malware advisories (OSV).
    #[command(subcommand)]
    Advisories(rules_cmd::AdvisoriesCmd),
    /// Checks a published internal version: integrity and signature.
    Verify(verify::VerifyArgs),
    /// Signed bundles of packages for networks without the upstream (air-gapped installs).
    #[command(subcommand)]
    Bundle(bundle::BundleCmd),
    /// Prints shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Runs control plane and data plane in one process, with an org and a token.
    #[cfg(feature = "dev")]
    Dev(dev::DevArgs),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    endpoint: Option<String>,
    token: Option<String>,
}

pub struct Target {
    pub endpoint: String,
    pub token: Option<String>,
    pub output: Format,
}

fn target(cli: &Cli) -> anyhow::Result<Target> {
    use figment::providers::{Format as _, Toml};
    let path = cli.config.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/nproxy/nproxyctl.toml"))
    });
    let file: FileConfig = match &path {
        Some(p) if p.exists() => figment::Figment::from(Toml::file_exact(p))
            .extract()
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", p.display()))?,
        Some(p) if cli.config.is_some() => {
            anyhow::bail!("config file {} does not exist", p.display())
        }
        _ => FileConfig::default(),
    };
    Ok(Target {
        endpoint: cli
            .endpoint
            .clone()
            .or(file.endpoint)
            .unwrap_or_else(|| "http://127.0.0.1:7443".into()),
        token: cli.token.clone().or(file.token),
        output: cli.output,
    })
}

fn main() -> ExitCode {
    use clap::FromArgMatches;
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "nproxyctl",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        #[cfg(feature = "dev")]
        if let Command::Dev(args) = &cli.command {
            // `NPROXY_CTL_CONFIG` names nproxyctl's own file, never a server config.
            let from_flag = matches
                .subcommand_matches("dev")
                .and_then(|m| m.value_source("config"))
                == Some(clap::parser::ValueSource::CommandLine);
            return dev::run(args, cli.config.clone().filter(|_| from_flag)).await;
        }
        let t = target(&cli)?;
        if let Command::Bundle(c) = cli.command {
            return bundle::run(c, &t).await;
        }
        commands::run(&t, cli.command).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", commands::describe(&e));
            ExitCode::FAILURE
        }
    }
}
