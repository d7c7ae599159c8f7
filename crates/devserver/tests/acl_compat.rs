//! The ACL flows through a real Consul client library: `tests/compat_acl.py` drives py-consul against
//! the dev server (bootstrap, policy and token create, a denied write, token self, JWT login and
//! logout). The JWTs are signed here with a fresh P-256 key.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

fn jwt(key_pem: &str, claims: &serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        claims,
        &key,
    )
    .unwrap()
}

#[tokio::test]
async fn py_consul_bootstraps_writes_is_denied_and_logs_in_with_a_jwt() {
    let server = start_with(|c| {
        c.acl.enabled = true;
        c.acl.default_policy = devserver::DefaultPolicy::Deny;
    })
    .await;
    let addr = server.http_addr();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |exp: u64| {
        json!({"iss": "https://issuer.example", "aud": "consul", "sub": "task-1",
               "service": "web", "groups": ["ops", "dev"], "exp": exp, "iat": now})
    };
    let good = jwt(&key.serialize_pem(), &claims(now + 600));
    let wrong_key = jwt(&other.serialize_pem(), &claims(now + 600));
    let expired = jwt(&key.serialize_pem(), &claims(now - 3600));
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat_acl.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("CONSUL_HOST", addr.ip().to_string())
            .env("CONSUL_PORT", addr.port().to_string())
            .env("JWT_PUBKEY", key.public_key_pem())
            .env("JWT_GOOD", good)
            .env("JWT_WRONG_KEY", wrong_key)
            .env("JWT_EXPIRED", expired)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "compat_acl.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
