//! Token parsing and verification, the whole access and refresh path: any
//! bytes as a bearer token must give a clean refusal, never a panic, and
//! only a token the gateway signed may pass.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use minigate::config::TokensConfig;
use minigate::tokens::keys::KeyStore;
use minigate::tokens::{Tokens, ACCESS_TYP};

const ISSUER: &str = "https://fuzz.test";

struct Fixture {
    tokens: Tokens,
    /// A valid token, spliced into inputs so the fuzzer starts near the
    /// interesting parts (header, claims) rather than at base64 noise.
    valid: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let set = jwks::KeySet::generate(jwks::Alg::ES256, SystemTime::now()).unwrap();
        let now = minigate::tokens::now_secs();
        let claims = serde_json::json!({"iss": ISSUER, "aud": "api", "sub": "u", "client_id": "wx",
            "iat": now, "exp": now + 3600, "jti": "j", "sid": "s", "platform": "wechat"});
        let valid = set.sign(ACCESS_TYP, &claims).unwrap();
        let config = TokensConfig {
            issuer: ISSUER.into(),
            audience: vec!["api".into()],
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(86400),
            leeway: Duration::from_secs(30),
            cache_capacity: 1000,
        };
        let tokens = Tokens::new(config, Arc::new(KeyStore::new(set, ISSUER)));
        Fixture { tokens, valid }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    // As a bearer token arrives: any bytes, checked by verification itself.
    if let Ok(id) = f.tokens.verify_access(data) {
        assert_eq!(data, f.valid.as_bytes(), "a forged token verified: {id:?}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for token in [text.to_owned(), splice(&f.valid, text)] {
        if let Ok(id) = f.tokens.verify_access(&token) {
            // Only the untouched token, or one ES256 malleability allows
            // (none: ring refuses non-canonical encodings), may pass.
            assert_eq!(token, f.valid, "a forged token verified: {id:?}");
        }
        let _ = f.tokens.verify_refresh(&token);
    }
});

/// Replaces the middle of the valid token with the fuzzer's text.
fn splice(valid: &str, text: &str) -> String {
    let at = text.len() % valid.len().max(1);
    let mut out = String::with_capacity(valid.len() + text.len());
    out.push_str(&valid[..at]);
    out.push_str(text);
    out.push_str(&valid[(at + text.len()).min(valid.len())..]);
    out
}
