//! Compact JWS: signing with the current key and verifying against the set.
//!
//! Verification follows RFC 8725: the algorithm comes from the local key that
//! `kid` names, never from the token; `none`, HMAC and any algorithm other
//! than the key's are refused; header members that point at other keys (`jwk`,
//! `jku`, `x5u`, `x5c`) and `crit` are refused; `typ` must match exactly; and
//! sizes are capped before anything is decoded. All of that is decided from
//! the header alone, so a hostile token costs no signature math. Claims are
//! the caller's business: this returns the verified payload bytes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{Key, KeySet};

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The longest encoded JOSE header accepted, in bytes.
const MAX_HEADER_LEN: usize = 1024;

/// Why a token failed verification. The `Display` text is safe to show to
/// the client: it never contains the token or any part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// Longer than [`MAX_TOKEN_LEN`] or with an oversized header.
    TooLarge,
    /// Not three base64url segments with a JSON header.
    Malformed,
    /// The header names a `typ` other than the one expected here.
    WrongType,
    /// The header carries `crit`, `jwk`, `jku`, `x5u` or `x5c`.
    ForbiddenHeader,
    /// No `kid`, or one that is not in the key set.
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key `kid` names.
    AlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
}

impl std::error::Error for VerifyError {}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl VerifyError {
    /// Every variant, so a metric can register one series per reason.
    pub const ALL: [VerifyError; 7] = [
        VerifyError::TooLarge,
        VerifyError::Malformed,
        VerifyError::WrongType,
        VerifyError::ForbiddenHeader,
        VerifyError::UnknownKey,
        VerifyError::AlgorithmMismatch,
        VerifyError::BadSignature,
    ];

    /// A short fixed sentence, safe for an `error_description`.
    pub const fn message(self) -> &'static str {
        match self {
            VerifyError::TooLarge => "token too large",
            VerifyError::Malformed => "malformed token",
            VerifyError::WrongType => "wrong token type",
            VerifyError::ForbiddenHeader => "unsupported token header",
            VerifyError::UnknownKey => "unknown signing key",
            VerifyError::AlgorithmMismatch => "algorithm not allowed",
            VerifyError::BadSignature => "bad signature",
        }
    }

    /// A short stable name, for metrics labels and logs.
    pub const fn reason(self) -> &'static str {
        match self {
            VerifyError::TooLarge => "too_large",
            VerifyError::Malformed => "malformed",
            VerifyError::WrongType => "wrong_type",
            VerifyError::ForbiddenHeader => "forbidden_header",
            VerifyError::UnknownKey => "unknown_kid",
            VerifyError::AlgorithmMismatch => "bad_alg",
            VerifyError::BadSignature => "bad_signature",
        }
    }
}

/// The JOSE header members this verifier looks at. Members that would make
/// it fetch or trust another key are captured only to be refused.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: &'a str,
    #[serde(borrow, default)]
    typ: Option<&'a str>,
    #[serde(borrow, default)]
    kid: Option<&'a str>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    jwk: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    jku: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5u: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5c: Option<serde::de::IgnoredAny>,
}

#[derive(Serialize)]
struct SignHeader<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

/// Does the header's `typ` name the expected media type? RFC 7515 lets the
/// `application/` prefix be left out, and media types are case-insensitive.
fn typ_matches(got: &str, want: &str) -> bool {
    let got = match got.get(..12) {
        Some(p) if p.eq_ignore_ascii_case("application/") => &got[12..],
        _ => got,
    };
    got.eq_ignore_ascii_case(want)
}

impl KeySet {
    /// Signs `claims` with the current key as a compact JWS whose header
    /// carries `typ` and the key's kid.
    pub fn sign<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String, SignError> {
        sign_with(self.current(), typ, claims)
    }

    /// The length of the token [`KeySet::sign`] would make of `claims` now,
    /// found without signing: whether a token would pass
    /// [`MAX_TOKEN_LEN`] can be known before it is issued.
    pub fn signed_len<C: Serialize>(&self, typ: &str, claims: &C) -> Result<usize, SignError> {
        signed_len_with(self.current(), typ, claims)
    }

    /// Verifies a compact JWS of type `typ` against this set and returns its
    /// payload bytes.
    pub fn verify(&self, token: &str, typ: &str) -> Result<Vec<u8>, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::TooLarge);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header_b64, payload_b64) = signing_input
            .split_once('.')
            .ok_or(VerifyError::Malformed)?;
        if header_b64.len() > MAX_HEADER_LEN {
            return Err(VerifyError::TooLarge);
        }
        let header_json = B64.decode(header_b64).map_err(|_| VerifyError::Malformed)?;
        let header: Header<'_> =
            serde_json::from_slice(&header_json).map_err(|_| VerifyError::Malformed)?;
        if header.crit.is_some()
            || header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
        {
            return Err(VerifyError::ForbiddenHeader);
        }
        if !header.typ.is_some_and(|t| typ_matches(t, typ)) {
            return Err(VerifyError::WrongType);
        }
        let key = header
            .kid
            .and_then(|kid| self.find(kid))
            .ok_or(VerifyError::UnknownKey)?;
        if header.alg != key.alg().name() {
            return Err(VerifyError::AlgorithmMismatch);
        }
        let payload = B64
            .decode(payload_b64)
            .map_err(|_| VerifyError::Malformed)?;
        match jsonwebtoken::crypto::verify(
            signature,
            signing_input.as_bytes(),
            key.decoding(),
            key.alg().jsonwebtoken(),
        ) {
            Ok(true) => Ok(payload),
            _ => Err(VerifyError::BadSignature),
        }
    }
}

/// Signing failed: the claims would not serialize or the key would not sign.
#[derive(Debug, thiserror::Error)]
#[error("could not sign the token")]
pub struct SignError;

/// Signs `claims` with `key`; the header is `{"alg","typ","kid"}`.
pub fn sign_with<C: Serialize>(key: &Key, typ: &str, claims: &C) -> Result<String, SignError> {
    let header = SignHeader {
        alg: key.alg().name(),
        typ,
        kid: key.kid(),
    };
    let header = serde_json::to_vec(&header).map_err(|_| SignError)?;
    let claims = serde_json::to_vec(claims).map_err(|_| SignError)?;
    let mut token = B64.encode(header);
    token.push('.');
    B64.encode_string(claims, &mut token);
    let signature = key.sign(token.as_bytes()).ok_or(SignError)?;
    token.push('.');
    B64.encode_string(signature, &mut token);
    Ok(token)
}

/// The length of the token [`sign_with`] makes of `claims` with `key`.
pub fn signed_len_with<C: Serialize>(key: &Key, typ: &str, claims: &C) -> Result<usize, SignError> {
    let header = SignHeader {
        alg: key.alg().name(),
        typ,
        kid: key.kid(),
    };
    let header = serde_json::to_vec(&header).map_err(|_| SignError)?.len();
    let claims = serde_json::to_vec(claims).map_err(|_| SignError)?.len();
    // base64url without padding: 4 characters per 3 bytes, rounded up.
    let b64 = |n: usize| (n * 4).div_ceil(3);
    Ok(b64(header) + 1 + b64(claims) + 1 + b64(key.signature_len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Alg;
    use std::time::SystemTime;

    fn set(alg: Alg) -> KeySet {
        KeySet::generate(alg, SystemTime::now()).unwrap()
    }

    fn forge(header: &str, payload: &str, sig: &str) -> String {
        format!("{}.{}.{}", B64.encode(header), B64.encode(payload), sig)
    }

    #[test]
    fn signs_and_verifies_both_algorithms() {
        for alg in [Alg::ES256, Alg::EdDSA] {
            let keys = set(alg);
            let token = keys
                .sign("at+jwt", &serde_json::json!({"sub": "u"}))
                .unwrap();
            let payload = keys.verify(&token, "at+jwt").unwrap();
            assert_eq!(payload, br#"{"sub":"u"}"#);
            assert_eq!(
                keys.verify(&token, "refresh+jwt"),
                Err(VerifyError::WrongType)
            );
            // Another set does not know the kid.
            assert_eq!(
                set(alg).verify(&token, "at+jwt"),
                Err(VerifyError::UnknownKey)
            );
        }
    }

    #[test]
    fn the_signed_length_is_the_length_of_the_signed_token() {
        let rsa = B64
            .decode(include_str!("../testdata/rs256-2048.pk8.b64").trim())
            .unwrap();
        let keys = [
            crate::Key::generate(Alg::ES256).unwrap(),
            crate::Key::generate(Alg::EdDSA).unwrap(),
            crate::Key::from_pkcs8(Alg::RS256, rsa).unwrap(),
        ];
        for key in &keys {
            for n in 0..8 {
                let claims = serde_json::json!({"sub": "u".repeat(n), "roles": ["é", "\u{1f600}"]});
                for typ in ["at+jwt", "refresh+jwt"] {
                    let token = sign_with(key, typ, &claims).unwrap();
                    assert_eq!(
                        signed_len_with(key, typ, &claims).unwrap(),
                        token.len(),
                        "{:?} {typ} {n}",
                        key.alg()
                    );
                }
            }
        }
        assert_eq!(keys[2].signature_len(), 256);
    }

    #[test]
    fn typ_accepts_the_application_prefix_and_any_case() {
        assert!(typ_matches("at+jwt", "at+jwt"));
        assert!(typ_matches("application/AT+JWT", "at+jwt"));
        assert!(!typ_matches("jwt", "at+jwt"));
        assert!(!typ_matches("application/jwt", "at+jwt"));
    }

    #[test]
    fn hostile_headers_are_refused_before_signature_math() {
        let keys = set(Alg::ES256);
        let kid = keys.current().kid();
        let cases = [
            (
                format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#),
                VerifyError::AlgorithmMismatch,
            ),
            (
                format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#),
                VerifyError::AlgorithmMismatch,
            ),
            (
                format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#),
                VerifyError::AlgorithmMismatch,
            ),
            (
                format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}","crit":["exp"]}}"#),
                VerifyError::ForbiddenHeader,
            ),
            (
                format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}","jku":"http://x"}}"#),
                VerifyError::ForbiddenHeader,
            ),
            (
                format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}","jwk":{{}}}}"#),
                VerifyError::ForbiddenHeader,
            ),
            (
                format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}","x5u":"http://x"}}"#),
                VerifyError::ForbiddenHeader,
            ),
            (
                format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}","x5c":[]}}"#),
                VerifyError::ForbiddenHeader,
            ),
            (
                format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#),
                VerifyError::WrongType,
            ),
            (
                r#"{"alg":"ES256","typ":"at+jwt"}"#.to_string(),
                VerifyError::UnknownKey,
            ),
            (
                format!(r#"{{"alg":"ES256","alg":"none","typ":"at+jwt","kid":"{kid}"}}"#),
                VerifyError::Malformed,
            ),
        ];
        for (header, want) in cases {
            let token = forge(&header, "{}", "AAAA");
            assert_eq!(keys.verify(&token, "at+jwt"), Err(want), "{header}");
        }
        assert_eq!(keys.verify("a.b", "at+jwt"), Err(VerifyError::Malformed));
        assert_eq!(keys.verify("", "at+jwt"), Err(VerifyError::Malformed));
        assert_eq!(
            keys.verify("{\"payload\":\"x\"}", "at+jwt"),
            Err(VerifyError::Malformed)
        );
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(keys.verify(&huge, "at+jwt"), Err(VerifyError::TooLarge));
    }

    #[test]
    fn tampering_any_segment_fails() {
        let keys = set(Alg::ES256);
        let token = keys
            .sign("at+jwt", &serde_json::json!({"sub": "alice"}))
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let evil_payload = B64.encode(r#"{"sub":"mallory"}"#);
        let tampered = [
            format!("{}.{}.{}", parts[0], evil_payload, parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], B64.encode([7u8; 64])),
            format!(
                "{}.{}.{}",
                B64.encode(format!(
                    r#"{{"alg":"ES256","typ":"at+jwt","kid":"{}","x":1}}"#,
                    keys.current().kid()
                )),
                parts[1],
                parts[2]
            ),
            format!("{}.{}.{}", parts[0], parts[1], ""),
        ];
        for t in tampered {
            assert!(keys.verify(&t, "at+jwt").is_err());
        }
    }
}
