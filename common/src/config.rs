//! The configuration layering every nproxy binary uses: typed defaults, then a TOML file
//! (if given; it must exist), then `NPROXY_*` environment variables with nested keys joined
//! by `__` (`NPROXY_STORAGE__KIND=s3`). Each binary merges its flags on top and validates
//! the result into its own settings, with errors naming the key.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

pub fn layered<T: serde::Serialize>(defaults: T, file: Option<&Path>) -> Figment {
    let mut f = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = file {
        f = f.merge(Toml::file_exact(file));
    }
    // `NPROXY_CONFIG` names the file (a flag's variable), not a key inside it.
    f.merge(Env::prefixed("NPROXY_").ignore(&["config"]).split("__"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Cfg {
        listen: String,
        nested: Nested,
    }
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Nested {
        kind: String,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn file_overrides_defaults_and_env_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "listen = \"file\"\n[nested]\nkind = \"file\"")?;
            jail.set_env("NPROXY_NESTED__KIND", "env");
            let defaults = Cfg {
                listen: "default".into(),
                nested: Nested {
                    kind: "default".into(),
                },
            };
            let c: Cfg = layered(defaults, Some(Path::new("c.toml"))).extract()?;
            assert_eq!((c.listen.as_str(), c.nested.kind.as_str()), ("file", "env"));
            Ok(())
        });
    }

    /// Structs that refuse unknown keys must still start with `NPROXY_CONFIG` set: it is
    /// the `--config` flag's variable.
    #[test]
    #[allow(clippy::result_large_err)]
    fn the_config_file_variable_is_not_a_key() {
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            listen: String,
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("NPROXY_CONFIG", "/etc/nproxy/x.toml");
            jail.set_env("NPROXY_LISTEN", "env");
            let c: Strict = layered(
                Strict {
                    listen: "default".into(),
                },
                None,
            )
            .extract()?;
            assert_eq!(c.listen, "env");
            Ok(())
        });
    }
}
