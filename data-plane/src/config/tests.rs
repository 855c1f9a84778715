//! The data plane's configuration: layering, validation, and the errors naming their key.

use super::*;

fn base() -> Config {
    Config {
        upstream: "http://127.0.0.1:1/registry/".into(),
        ..Config::default()
    }
}

#[test]
fn defaults_with_upstream_validate() {
    let s = base().validate().unwrap();
    assert_eq!(
        s.upstream.as_ref().map(url_base).as_deref(),
        Some("http://127.0.0.1:1/registry")
    );
    assert_eq!(s.default_org.unwrap().as_str(), "default");
}

#[test]
fn upstream_is_optional() {
    assert!(Config::default().validate().unwrap().upstream.is_none());
    let c = Config {
        upstream: " ".into(),
        ..Config::default()
    };
    assert!(c.validate().unwrap().upstream.is_none());
}

#[test]
fn errors_name_the_key() {
    let e = Config {
        upstream: "ftp://x".into(),
        ..Config::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("`upstream`"), "{e}");
    let e = Config {
        listen: "nope".into(),
        ..base()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("`listen`"), "{e}");
    let e = Config {
        org_mode: OrgMode::Host,
        ..base()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("`base_domain`"), "{e}");
    let e = Config {
        trusted_proxies: vec!["10.0.0.0/99".into()],
        ..base()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("`trusted_proxies`"), "{e}");
    let mut c = base();
    c.storage.kind = StorageKind::S3;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("`storage.s3.bucket`"), "{e}");
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
fn env_overrides_file_and_unknown_keys_fail() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "n.toml",
            "upstream = \"http://a.test\"\n[storage]\nkind = \"local\"\npath = \"/x\"\n",
        )?;
        jail.set_env("NPROXY_STORAGE__PATH", "/y");
        let c = Config::load(Config::figment(Some(std::path::Path::new("n.toml")))).unwrap();
        assert_eq!(c.storage.path, PathBuf::from("/y"));
        assert_eq!(c.upstream, "http://a.test");
        jail.create_file("bad.toml", "upstrem = \"http://a.test\"\n")?;
        let e = Config::load(Config::figment(Some(std::path::Path::new("bad.toml"))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("upstrem"), "{e}");
        Ok(())
    });
}

#[test]
fn cidrs() {
    let c = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(c.contains("10.1.2.3".parse().unwrap()));
    assert!(!c.contains("11.1.2.3".parse().unwrap()));
    assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
    let one = Cidr::parse("127.0.0.1").unwrap();
    assert!(one.contains("127.0.0.1".parse().unwrap()));
    assert!(!one.contains("127.0.0.2".parse().unwrap()));
    assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
    assert!(Cidr::parse("0.0.0.0/0")
        .unwrap()
        .contains("8.8.8.8".parse().unwrap()));
    assert!(Cidr::parse("x").is_none());
}
