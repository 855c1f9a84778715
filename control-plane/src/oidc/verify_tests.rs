use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::*;
use crate::oidc::test_issuer::TestKey;

const ISS: &str = "https://issuer.example";
const AUD: &str = "npm:registry.example";
const NOW: f64 = 1_700_000_000.0;

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "repo:acme/app:ref:refs/heads/main",
        "repository": "acme/app", "iat": NOW, "nbf": NOW, "exp": NOW + 300.0,
    })
}

/// Verifies against `signer`'s public key, counting how often a key is asked for.
async fn check(
    token: &str,
    signer: &TestKey,
    asked: &AtomicUsize,
) -> Result<Verified, VerifyError> {
    let key = Arc::new(Key::P256 {
        point: signer.point(),
    });
    verify(
        token,
        AUD,
        &[ISS, "https://other.example"],
        NOW,
        async |iss: &str, kid: &str| {
            asked.fetch_add(1, Ordering::SeqCst);
            assert_eq!(iss, ISS);
            if kid == signer.kid {
                Ok(key.clone())
            } else {
                Err(VerifyError::Rejected(format!("no key {kid}")))
            }
        },
    )
    .await
}

fn message(r: Result<Verified, VerifyError>) -> String {
    match r {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(VerifyError::Rejected(m)) => m,
        Err(e) => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn a_well_signed_token_verifies_with_its_claims() {
    let k = TestKey::new("k1");
    let asked = AtomicUsize::new(0);
    let v = check(&k.jwt(&claims()), &k, &asked).await.expect("valid");
    assert_eq!(v.issuer, ISS);
    assert_eq!(v.claims["repository"], "acme/app");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // `aud` may be a list.
    let mut c = claims();
    c["aud"] = json!(["other", AUD]);
    check(&k.jwt(&c), &k, &asked)
        .await
        .expect("audience in a list");
}

#[tokio::test]
async fn another_keys_signature_is_refused() {
    let (k, impostor) = (TestKey::new("k1"), TestKey::new("k1"));
    let asked = AtomicUsize::new(0);
    let m = message(check(&impostor.jwt(&claims()), &k, &asked).await);
    assert!(m.contains("signature does not verify"), "{m}");
    // A valid token with its payload swapped for another's.
    let good = k.jwt(&claims());
    let mut other = claims();
    other["repository"] = json!("evil/app");
    let forged = k.jwt(&other);
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[1] = forged.split('.').nth(1).expect("payload");
    let m = message(check(&parts.join("."), &k, &asked).await);
    assert!(m.contains("signature does not verify"), "{m}");
}

#[tokio::test]
async fn unsigned_and_hmac_tokens_are_refused_before_any_key_lookup() {
    let k = TestKey::new("k1");
    let asked = AtomicUsize::new(0);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    for (alg, sig) in [
        ("none", ""),
        ("HS256", "c2ln"),
        ("RS512", "c2ln"),
        ("es256", "c2ln"),
    ] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "k1"}).to_string());
        let m = message(check(&format!("{header}.{payload}.{sig}"), &k, &asked).await);
        assert!(m.contains("is not accepted"), "{alg}: {m}");
    }
    // Signed by the right key, yet claiming HS256: refused by its header alone.
    let hs = k.sign(&json!({"alg": "HS256", "kid": "k1"}), &claims());
    assert!(message(check(&hs, &k, &asked).await).contains("is not accepted"));
    let crit = k.sign(
        &json!({"alg": "ES256", "kid": "k1", "crit": ["b64"]}),
        &claims(),
    );
    assert!(message(check(&crit, &k, &asked).await).contains("critical"));
    let no_kid = k.sign(&json!({"alg": "ES256"}), &claims());
    assert!(message(check(&no_kid, &k, &asked).await).contains("kid"));
    assert_eq!(asked.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_untrusted_issuer_is_refused_without_a_fetch() {
    let k = TestKey::new("k1");
    let asked = AtomicUsize::new(0);
    let mut c = claims();
    c["iss"] = json!("http://169.254.169.254/latest");
    let m = message(check(&k.jwt(&c), &k, &asked).await);
    assert!(m.contains("is not trusted"), "{m}");
    c.as_object_mut().expect("object").remove("iss");
    let m = message(check(&k.jwt(&c), &k, &asked).await);
    assert!(m.contains("no issuer"), "{m}");
    assert_eq!(asked.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn expiry_and_validity_times_allow_30_seconds_of_skew() {
    let k = TestKey::new("k1");
    let asked = AtomicUsize::new(0);
    let with = |name: &str, v: Value| {
        let mut c = claims();
        if v.is_null() {
            c.as_object_mut().expect("object").remove(name);
        } else {
            c[name] = v;
        }
        k.jwt(&c)
    };
    for (name, value, ok) in [
        ("exp", json!(NOW - 10.0), true),
        ("exp", json!(NOW - 31.0), false),
        ("exp", Value::Null, false),
        ("exp", json!("soon"), false),
        ("nbf", json!(NOW + 20.0), true),
        ("nbf", json!(NOW + 31.0), false),
        ("iat", json!(NOW + 31.0), false),
        ("iat", json!("then"), false),
    ] {
        let r = check(&with(name, value.clone()), &k, &asked).await;
        assert_eq!(r.is_ok(), ok, "{name} = {value}: {r:?}");
    }
    let m = message(check(&with("exp", json!(NOW - 60.0)), &k, &asked).await);
    assert!(m.contains("expired"), "{m}");
}

#[tokio::test]
async fn the_audience_must_be_the_requested_one() {
    let k = TestKey::new("k1");
    let asked = AtomicUsize::new(0);
    for aud in [
        json!("npm:elsewhere.example"),
        json!([]),
        json!(null),
        json!(7),
    ] {
        let mut c = claims();
        c["aud"] = aud.clone();
        let m = message(check(&k.jwt(&c), &k, &asked).await);
        assert!(m.contains("audience"), "{aud}: {m}");
    }
}

#[tokio::test]
async fn malformed_and_oversized_tokens_are_refused() {
    let k = TestKey::new("k1");
    let asked = AtomicUsize::new(0);
    let mut c = claims();
    c["pad"] = json!("x".repeat(MAX_ID_TOKEN));
    let m = message(check(&k.jwt(&c), &k, &asked).await);
    assert!(m.contains("larger than"), "{m}");
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.e30.",
        "e30.!!.",
        "W10.e30.",
        "e30.e30.*",
    ] {
        message(check(bad, &k, &asked).await);
    }
    assert_eq!(asked.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unavailable_keys_are_not_a_rejection() {
    let k = TestKey::new("k1");
    let r = verify(
        &k.jwt(&claims()),
        AUD,
        &[ISS],
        NOW,
        async |_: &str, _: &str| Err(VerifyError::KeysUnavailable),
    )
    .await;
    assert_eq!(r.map(|_| ()), Err(VerifyError::KeysUnavailable));
}

/// RFC 7515 appendix A.2: the published RS256 example and its public key.
const RFC7515_A2: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const RFC7515_A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

#[test]
fn rs256_verifies_the_rfc_7515_example() {
    let key = Key::Rsa {
        n: URL_SAFE_NO_PAD.decode(RFC7515_A2_N).expect("n"),
        e: URL_SAFE_NO_PAD.decode("AQAB").expect("e"),
    };
    let (input, sig) = RFC7515_A2.rsplit_once('.').expect("three parts");
    let sig = URL_SAFE_NO_PAD.decode(sig).expect("signature");
    check_signature(Alg::Rs256, &key, input.as_bytes(), &sig).expect("the RFC's signature");
    let mut tampered = input.as_bytes().to_vec();
    tampered[30] ^= 1;
    assert!(check_signature(Alg::Rs256, &key, &tampered, &sig).is_err());
    let mut bad_sig = sig.clone();
    bad_sig[0] ^= 1;
    assert!(check_signature(Alg::Rs256, &key, input.as_bytes(), &bad_sig).is_err());
    // An RSA key never checks an ES256 signature, nor an EC key an RS256 one.
    assert!(check_signature(Alg::Es256, &key, input.as_bytes(), &sig).is_err());
    let ec = Key::P256 {
        point: TestKey::new("k").point(),
    };
    assert!(check_signature(Alg::Rs256, &ec, input.as_bytes(), &sig).is_err());
}
