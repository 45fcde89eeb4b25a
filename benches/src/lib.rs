//! Shared by the criterion benches and the load comparison's `mint` tool:
//! key sets of each algorithm and tokens the gateway under test accepts.
//!
//! ring cannot generate RSA keys, so RS256 uses a fixed 2048-bit key made
//! for these benchmarks only (`jwks/testdata/rs256-2048.pk8.b64`); it signs
//! nothing anywhere else.

// Benchmark set-up: a fixture that cannot be built is a broken benchmark,
// and stopping with a panic says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jwks::{Alg, KeySet};
use minigate::config::TokensConfig;
use minigate::tokens::keys::KeyStore;
use minigate::tokens::{now_secs, Tokens, ACCESS_TYP};

/// The issuer of every benchmark token.
pub const ISSUER: &str = "https://bench.minigate";
/// The audience of every benchmark token.
pub const AUDIENCE: &str = "api";

const RS256_PKCS8: &str = include_str!("../../jwks/testdata/rs256-2048.pk8.b64");

/// A key set whose current key is of `alg`.
pub fn key_set(alg: Alg) -> KeySet {
    if alg != Alg::RS256 {
        return KeySet::generate(alg, SystemTime::now()).expect("key generation");
    }
    let pkcs8 = B64
        .decode(RS256_PKCS8.trim())
        .expect("fixture is base64url");
    let key = jwks::Key::from_pkcs8(Alg::RS256, pkcs8).expect("fixture is an RSA key");
    let doc = serde_json::json!({
        "format": "minigate-keyset/1",
        "keys": [{
            "kid": key.kid(), "alg": "RS256", "state": "current",
            "created": "2026-01-01T00:00:00Z", "activated": "2026-01-01T00:00:00Z",
            "private_key": RS256_PKCS8.trim(),
        }],
    });
    KeySet::from_json(doc.to_string().as_bytes()).expect("a valid RS256 set")
}

/// Token handling as the gateway configures it, with a verified-token cache
/// of `cache` entries.
pub fn tokens(set: KeySet, cache: u64) -> Tokens {
    let config = TokensConfig {
        issuer: ISSUER.into(),
        audience: vec![AUDIENCE.into()],
        access_ttl: Duration::from_secs(3600),
        refresh_ttl: Duration::from_secs(86400),
        leeway: Duration::from_secs(30),
        cache_capacity: cache,
    };
    Tokens::new(config, Arc::new(KeyStore::new(set, ISSUER)))
}

/// A valid access token for user `n`, living `ttl` seconds.
pub fn access_token(set: &KeySet, n: usize, ttl: u64) -> String {
    let now = now_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("openid-{n:08}"),
        "client_id": "wx0123456789abcdef", "iat": now, "exp": now + ttl,
        "jti": format!("jti-{n}"), "sid": format!("sid-{n}"), "platform": "wechat",
        "unionid": format!("union-{n:08}"),
    });
    set.sign(ACCESS_TYP, &claims).expect("signing")
}

/// The `n`th access token shaped like those the gateway issues at a
/// WeChat login: a 28-character openid and unionid, 22-character `jti` and
/// `sid`, a device class. (`access_token`'s short ids understate what a
/// cached identity holds.)
pub fn issued_access_token(set: &KeySet, n: usize, ttl: u64) -> String {
    let now = now_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("oGZUI0egBJY1zhBYw2KhdUf{n:05}"),
        "client_id": "wx0123456789abcdef", "iat": now, "exp": now + ttl,
        "jti": format!("q3JcV8kL2mN4pR6sT8vW{:02}", n % 100),
        "sid": format!("Zx9yW7vU5tS3rQ1pO{n:05}"), "platform": "wechat",
        "unionid": format!("o6_bmasdasdsad6_2sgVt7hMZO{:02}", n % 100), "dvt": "phone",
    });
    set.sign(ACCESS_TYP, &claims).expect("signing")
}

/// The PEM (SubjectPublicKeyInfo) of an ES256 public key, for HAProxy's
/// `jwt_verify`. A P-256 SPKI is a fixed DER prefix and the 65-byte point.
pub fn es256_public_pem(key: &jwks::Key) -> Option<String> {
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let jwk = key.public_jwk();
    let (x, y) = (
        B64.decode(jwk.x.as_ref()?).ok()?,
        B64.decode(jwk.y.as_ref()?).ok()?,
    );
    let mut der = PREFIX.to_vec();
    der.push(0x04);
    der.extend_from_slice(&x);
    der.extend_from_slice(&y);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    Some(format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    ))
}
