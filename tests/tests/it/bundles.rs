//! Issue 14, part 1: air-gapped installs from bundles. Lockfiles made by real npm, pnpm and
//! yarn (1 and 4) through a connected nproxy → `nproxyctl bundle create` → `bundle import`
//! into a second nproxy (its own control plane) whose data plane has no upstream →
//! `npm ci`, `pnpm install --frozen-lockfile`, `yarn install --immutable` (and yarn 1's
//! `--frozen-lockfile`) there, with fresh caches. Then what must be refused is: a flipped
//! byte anywhere, a tarball that would replace different stored bytes; and importing twice
//! changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nproxy_tests::clients::{Project, Tool};
use nproxy_tests::control::{ctl, CtlRun};
use nproxy_tests::stack::Stack;

use crate::support::{blocking, files_under};

/// The installs suite's fixture project.
const DEPS: &[(&str, &str)] = &[("fx-a", "^2.0.0"), ("fx-big", "^1.0.0")];
const TOOLS: [Tool; 4] = [Tool::Npm11, Tool::Pnpm10, Tool::Yarn4, Tool::Yarn1];

fn lockfile(tool: Tool) -> &'static str {
    match tool {
        Tool::Npm10 | Tool::Npm11 | Tool::Npm12 => "package-lock.json",
        Tool::Pnpm9 | Tool::Pnpm10 | Tool::Pnpm11 | Tool::Pnpm12 => "pnpm-lock.yaml",
        Tool::Yarn1 | Tool::Yarn4 => "yarn.lock",
        Tool::Bun => "bun.lock",
    }
}

fn assert_installed(p: &Project, tool: Tool) {
    for (from, name, version) in [
        (None, "fx-a", "2.0.0"),
        (None, "fx-big", "1.0.399"),
        (Some("fx-a"), "@fx/b", "1.0.1"),
        (Some("fx-a"), "fx-c", "1.0.0"),
    ] {
        assert_eq!(
            p.resolved_version(from, name).as_deref(),
            Some(version),
            "{tool:?}: {name}"
        );
    }
}

/// The connected side: a stack with org `acme` (public reads, a `proxy` token) and a data
/// plane in front of the fixture upstream.
struct Exporter {
    stack: Stack,
    token: String,
}

async fn exporter() -> Exporter {
    let stack = Stack::start(&[]).await;
    let (_, token) = stack.org_and_token(true, &["proxy"]);
    Exporter { stack, token }
}

impl Exporter {
    /// `bundle create` from `lockfiles` through `registry`; the run, whatever its outcome.
    fn create(&self, registry: &str, lockfiles: &[PathBuf], out: &Path) -> CtlRun {
        let mut args = vec![
            "-o".to_string(),
            "json".into(),
            "bundle".into(),
            "create".into(),
            "--org".into(),
            "acme".into(),
            "--registry".into(),
            registry.into(),
            "--npm-token".into(),
            self.token.clone(),
            "--out".into(),
            out.display().to_string(),
        ];
        for l in lockfiles {
            args.extend(["--lockfile".into(), l.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(&self.stack.cp.endpoint(), &args)
    }

    /// The org's Ed25519 public key as `key list -o json` prints it, written to a file.
    fn trust_key_file(&self, dir: &Path) -> PathBuf {
        let keys = self
            .stack
            .ctl(&["-o", "json", "key", "list", "--org", "acme"])
            .json();
        let ed = keys
            .as_array()
            .and_then(|a| a.iter().find(|k| k["algorithm"] == "ed25519"))
            .expect("an ed25519 key")
            .clone();
        let path = dir.join("acme-ed25519.pub");
        std::fs::write(&path, ed["public_key"].as_str().expect("public_key")).expect("key file");
        path
    }
}

/// The disconnected side: its own control plane and Redis, org `acme`, and a data plane
/// without an upstream on a local store.
struct Airgap {
    stack: Stack,
    dp: nproxy_tests::procs::DataPlane,
}

async fn airgap() -> Airgap {
    let stack = Stack::start(&[]).await;
    stack.org_and_token(true, &["proxy"]);
    let dp = stack.data_plane("dp", &[("NPROXY_UPSTREAM", "")]).await;
    Airgap { stack, dp }
}

impl Airgap {
    fn store(&self) -> PathBuf {
        self.stack.dir.path().join("store")
    }

    fn import(&self, bundle: &Path, key: &Path) -> CtlRun {
        let store = self.store().display().to_string();
        ctl(
            &self.stack.cp.endpoint(),
            &[
                "-o",
                "json",
                "bundle",
                "import",
                &bundle.display().to_string(),
                "--trust-key",
                &key.display().to_string(),
                "--org",
                "acme",
                "--storage-path",
                &store,
            ],
        )
    }

    /// Every object in the store (staging files aside) with the sha256 of its bytes.
    fn snapshot(&self) -> BTreeMap<String, String> {
        let root = self.store();
        files_under(&root)
            .into_iter()
            .filter_map(|p| {
                let rel = p.strip_prefix(&root).ok()?.display().to_string();
                (!rel.starts_with(".tmp") && !rel.starts_with(".locks")).then(|| {
                    let bytes = std::fs::read(&p).expect("read");
                    (rel, nproxy_common::hash::sha256_hex(&bytes))
                })
            })
            .collect()
    }
}

/// The importing org's `bundle.imported` events (`audit list -o json`: one per line).
fn bundle_events(ag: &Airgap) -> Vec<serde_json::Value> {
    let run = ag.stack.ctl(&[
        "-o",
        "json",
        "audit",
        "list",
        "--org",
        "acme",
        "--type",
        "bundle.imported",
    ]);
    run.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lockfiles_of_every_client_install_air_gapped_from_a_bundle() {
    let started = std::time::Instant::now();
    let ex = exporter().await;
    let dp = ex.stack.data_plane("dp", &[]).await;
    let root = ex.stack.dir.path().to_path_buf();
    // Lockfiles as the real clients write them, through the connected nproxy.
    let mut lockfiles = Vec::new();
    for tool in TOOLS {
        let p = Project::new(&root.join(format!("lock-{tool:?}")), &dp.url(), DEPS);
        let (p, r) = blocking(move || {
            let r = p.tool_install(tool, false);
            (p, r)
        })
        .await;
        assert!(r.ok, "{tool:?} install (connected):\n{}", r.output);
        lockfiles.push((tool, p.dir.join(lockfile(tool))));
    }
    let bundle = root.join("fixture.bundle.tgz");
    let paths: Vec<PathBuf> = lockfiles.iter().map(|(_, p)| p.clone()).collect();
    let made = ex.create(&dp.url(), &paths, &bundle);
    assert!(made.ok, "bundle create:\n{}\n{}", made.stdout, made.stderr);
    let made = made.json();
    assert_eq!(made["packages"], 4, "{made}");
    assert_eq!(
        made["versions"], 4,
        "fx-a, @fx/b, fx-c and fx-big, one version each"
    );
    let key = ex.trust_key_file(&root);
    let connected = dp.url();
    drop(dp);
    eprintln!("lockfiles and bundle: {:?}", started.elapsed());

    let ag = airgap().await;
    let missing = nproxy_tests::http()
        .get(format!("{}/fx-a", ag.dp.url()))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    let body = missing.text().await.unwrap_or_default();
    assert!(body.contains("no upstream configured"), "{body}");
    let imported = ag.import(&bundle, &key);
    assert!(
        imported.ok,
        "bundle import:\n{}\n{}",
        imported.stdout, imported.stderr
    );
    let imported = imported.json();
    assert_eq!(imported["new_versions"], 4, "{imported}");
    assert_eq!(imported["manifest_sha256"], made["manifest_sha256"]);

    for (tool, lock) in lockfiles {
        let p = Project::new(
            &ag.stack.dir.path().join(format!("ci-{tool:?}")),
            &ag.dp.url(),
            DEPS,
        );
        // The lockfile, pointed at this registry where it names URLs (npm, yarn 1), as
        // anyone moving a lockfile to a registry with another address does.
        let text = std::fs::read_to_string(&lock).expect("lockfile");
        std::fs::write(
            p.dir.join(lockfile(tool)),
            text.replace(&connected, &ag.dp.url()),
        )
        .expect("write lockfile");
        let (p, r) = blocking(move || {
            let r = p.tool_install(tool, true);
            (p, r)
        })
        .await;
        assert!(r.ok, "{tool:?} frozen install (air-gapped):\n{}", r.output);
        assert_installed(&p, tool);
    }
    assert!(
        ag.stack.registry.requests().is_empty(),
        "the air-gapped data plane never talks to an upstream"
    );
    let events = bundle_events(&ag);
    assert_eq!(events.len(), 1, "{events:?}");
    let details = &events[0]["details"];
    let e = &events[0];
    assert_eq!(details["manifest_sha256"], made["manifest_sha256"], "{e}");
    assert_eq!(details["packages"], 4, "{e}");
    assert_eq!(details["signer_key_id"], made["key_id"], "{e}");
    eprintln!("whole test: {:?}", started.elapsed());
}

/// A yarn berry lockfile for fx-a 2.0.0 and its dependencies (written by hand: this test is
/// about the bundle, not the clients).
const BERRY_LOCK: &str = r#"__metadata:
  version: 8
  cacheKey: 10c0

"fx-a@npm:^2.0.0":
  version: 2.0.0
  resolution: "fx-a@npm:2.0.0"

"@fx/b@npm:^1.0.0":
  version: 1.0.1
  resolution: "@fx/b@npm:1.0.1"

"fx-c@npm:^1.0.0":
  version: 1.0.0
  resolution: "fx-c@npm:1.0.0"
"#;

/// `bundle` with one byte of `member` flipped, written beside it.
fn flipped(bundle: &Path, member: &str) -> PathBuf {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).expect("bundle"));
    let mut out = tar::Builder::new(Vec::new());
    let mut found = false;
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read member");
        if path == member {
            let i = data.len() / 2;
            data[i] ^= 0x01;
            found = true;
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, &path, &data[..]).expect("append");
    }
    assert!(found, "no member {member}");
    let path = bundle.with_extension(format!("flipped-{}.tar", member.replace('/', "_")));
    std::fs::write(&path, out.into_inner().expect("tar")).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_bundles_are_refused_whole_imports_are_idempotent_and_never_replace() {
    let started = std::time::Instant::now();
    let ex = exporter().await;
    let dp = ex.stack.data_plane("dp", &[]).await;
    let root = ex.stack.dir.path().to_path_buf();
    let lock = root.join("yarn.lock");
    std::fs::write(&lock, BERRY_LOCK).expect("lockfile");
    let bundle = root.join("b.tar");
    let made = ex.create(&dp.url(), &[lock], &bundle);
    assert!(made.ok, "bundle create:\n{}\n{}", made.stdout, made.stderr);
    let key = ex.trust_key_file(&root);
    let ag = airgap().await;
    let empty = ag.snapshot();

    // One flipped byte in a tarball: refused whole, the package named, nothing written.
    let bad = ag.import(&flipped(&bundle, "tarballs/fx-a/fx-a-2.0.0.tgz"), &key);
    assert!(
        !bad.ok,
        "a flipped tarball byte was imported:\n{}",
        bad.stdout
    );
    assert!(bad.stderr.contains("fx-a@2.0.0"), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("nothing was imported"),
        "{}",
        bad.stderr
    );
    assert_eq!(ag.snapshot(), empty, "nothing new in the store");
    // In the manifest: the signature no longer verifies.
    let bad = ag.import(&flipped(&bundle, "manifest.json"), &key);
    assert!(
        !bad.ok,
        "a flipped manifest byte was imported:\n{}",
        bad.stdout
    );
    assert!(bad.stderr.contains("signature"), "{}", bad.stderr);
    assert_eq!(ag.snapshot(), empty, "nothing new in the store");
    // In a packument: its sha512 in the manifest no longer matches.
    let bad = ag.import(&flipped(&bundle, "packuments/@fx/b.json"), &key);
    assert!(!bad.ok && bad.stderr.contains("@fx/b"), "{}", bad.stderr);
    assert_eq!(ag.snapshot(), empty, "nothing new in the store");

    // Imported, then imported again: the same keys with the same bytes.
    let first = ag.import(&bundle, &key);
    assert!(first.ok, "import:\n{}\n{}", first.stdout, first.stderr);
    assert_eq!(first.json()["new_versions"], 3);
    let after_first = ag.snapshot();
    assert!(after_first.len() > empty.len());
    let second = ag.import(&bundle, &key);
    assert!(
        second.ok,
        "import again:\n{}\n{}",
        second.stdout, second.stderr
    );
    assert_eq!(second.json()["new_versions"], 0);
    assert_eq!(second.json()["tarballs_written"], 0);
    assert_eq!(
        ag.snapshot(),
        after_first,
        "importing twice changes nothing"
    );
    let events = bundle_events(&ag);
    assert_eq!(events.len(), 1, "recorded once: {events:?}");
    let served = nproxy_tests::http()
        .get(format!("{}/fx-a/-/fx-a-2.0.0.tgz", ag.dp.url()))
        .send()
        .await
        .expect("get");
    assert_eq!(served.status(), 200);

    // A stored tarball with other bytes is never replaced: that package is refused, by name.
    let stored = ag.store().join("public/tarballs/fx-c/fx-c-1.0.0.tgz");
    std::fs::write(&stored, b"other bytes").expect("write");
    let other = ag.snapshot();
    let clash = ag.import(&bundle, &key);
    assert!(!clash.ok, "a clashing import succeeded:\n{}", clash.stdout);
    assert!(
        clash.stderr.contains("fx-c@1.0.0") && clash.stderr.contains("not replaced"),
        "{}",
        clash.stderr
    );
    assert_eq!(std::fs::read(&stored).expect("read"), b"other bytes");
    assert_eq!(ag.snapshot(), other, "the rest was already there");
    eprintln!("whole test: {:?}", started.elapsed());
}
