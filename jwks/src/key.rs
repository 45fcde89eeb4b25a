//! One signing key pair.
//!
//! The private half exists only inside a [`Key`] (its PKCS#8 bytes and ring's
//! key pair parsed from them) and is never formatted: `Debug` prints the kid and algorithm and nothing else. The
//! public half is derived from the private one at load time, so a key file can
//! never pair a private key with someone else's public key, and the kid is
//! recomputed and compared rather than trusted. The pair is parsed once, at
//! load time: ring checks a private key and derives its public point when it
//! parses one, which costs as much again as an ES256 signature, so a key
//! parsed at each signature (as jsonwebtoken's `EncodingKey` is) would double
//! the cost of every token a login or a refresh issues.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _};
use serde::Serialize;

use crate::Alg;

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PKCS#8 bytes are not a valid private key of the stated algorithm.
    #[error("not a valid {0} private key (PKCS#8)")]
    Invalid(Alg),
    /// ring generates only elliptic-curve keys; RSA keys must come from elsewhere.
    #[error("{0} keys cannot be generated here (ring makes only ES256 and EdDSA keys)")]
    CannotGenerate(Alg),
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// A private key with its derived public half, ready to sign and verify.
pub struct Key {
    kid: String,
    alg: Alg,
    pkcs8: Vec<u8>,
    signer: Signer,
    decoding: DecodingKey,
    public: PublicJwk,
}

/// The private half, parsed by ring once.
enum Signer {
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The public members of a key as a JWK (RFC 7517), with `use: "sig"`.
///
/// Only public members exist on this type, so serializing it cannot leak a
/// private one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    /// Key type: `EC`, `OKP` or `RSA`.
    pub kty: &'static str,
    /// The key id: the RFC 7638 thumbprint.
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// The one algorithm this key is used with.
    pub alg: &'static str,
    /// Curve, for EC and OKP keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    /// Public coordinate or key, for EC and OKP keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Second public coordinate, for EC keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Modulus, for RSA keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Public exponent, for RSA keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// One DER element at the start of `der`: (tag, contents, rest).
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The DER of the OID rsaEncryption (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The PKCS#1 `RSAPublicKey` inside an X.509 `SubjectPublicKeyInfo` (RFC
/// 5280; a PEM `PUBLIC KEY`): SEQUENCE { SEQUENCE { OID rsaEncryption, NULL },
/// BIT STRING }. ring verifies RSA signatures with the inner key only. `None`
/// for anything else: another algorithm, trailing bytes, unused bits.
pub fn rsa_public_key_of_spki(spki: &[u8]) -> Option<&[u8]> {
    let (0x30, info, []) = der_element(spki)? else {
        return None;
    };
    let (0x30, algorithm, rest) = der_element(info)? else {
        return None;
    };
    let (0x06, oid, params) = der_element(algorithm)? else {
        return None;
    };
    if oid != RSA_ENCRYPTION || !matches!(params, [] | [0x05, 0x00]) {
        return None;
    }
    match der_element(rest)? {
        (0x03, [0x00, key @ ..], []) => Some(key),
        _ => None,
    }
}

/// The size in bits of the modulus of a PKCS#1 `RSAPublicKey`
/// (SEQUENCE { INTEGER n, INTEGER e }), or `None` if it is not one.
pub fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Option<usize> {
    let (0x30, key, []) = der_element(rsa_public_key)? else {
        return None;
    };
    let (0x02, n, rest) = der_element(key)? else {
        return None;
    };
    let (0x02, _, []) = der_element(rest)? else {
        return None;
    };
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    let first = *n.first()?;
    Some(n.len() * 8 - first.leading_zeros() as usize)
}

impl Key {
    /// Makes a new key pair with ring's system random source.
    pub fn generate(alg: Alg) -> Result<Key, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Alg::ES256 => signature::EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .map_err(|_| KeyError::Random)?,
            Alg::EdDSA => {
                signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?
            }
            Alg::RS256 => return Err(KeyError::CannotGenerate(alg)),
        };
        Key::from_pkcs8(alg, pkcs8.as_ref().to_vec())
    }

    /// Reads a PKCS#8 private key of the given algorithm and derives the rest.
    /// For RS256 the key must have been made elsewhere: ring cannot generate
    /// RSA keys, but it loads, signs and verifies with them.
    pub fn from_pkcs8(alg: Alg, pkcs8: Vec<u8>) -> Result<Key, KeyError> {
        let invalid = |_| KeyError::Invalid(alg);
        let (public, decoding, signer) = match alg {
            Alg::ES256 => {
                let pair = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(invalid)?;
                // An uncompressed SEC1 point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let (x, y) = point[1..].split_at(32);
                let jwk = PublicJwk::new("EC", alg).with_curve("P-256", x, Some(y));
                let decoding = DecodingKey::from_ec_der(point);
                (jwk, decoding, Signer::Ecdsa(pair))
            }
            Alg::EdDSA => {
                let pair = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
                    .map_err(invalid)?;
                let x = pair.public_key().as_ref();
                let jwk = PublicJwk::new("OKP", alg).with_curve("Ed25519", x, None);
                let decoding = DecodingKey::from_ed_der(x);
                (jwk, decoding, Signer::Ed25519(pair))
            }
            Alg::RS256 => {
                let pair = signature::RsaKeyPair::from_pkcs8(&pkcs8).map_err(invalid)?;
                let parts = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                let mut jwk = PublicJwk::new("RSA", alg);
                jwk.n = Some(B64.encode(&parts.n));
                jwk.e = Some(B64.encode(&parts.e));
                let decoding = DecodingKey::from_rsa_raw_components(&parts.n, &parts.e);
                (jwk, decoding, Signer::Rsa(pair))
            }
        };
        let mut public = public;
        public.kid = public.thumbprint();
        Ok(Key {
            kid: public.kid.clone(),
            alg,
            pkcs8,
            signer,
            decoding,
            public,
        })
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key signs and verifies with.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The public JWK, for JWKS documents.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    /// The length in bytes of this key's signatures: 64 for ES256 (`r || s`)
    /// and EdDSA, the modulus's length for RS256.
    pub fn signature_len(&self) -> usize {
        match self.alg {
            Alg::ES256 | Alg::EdDSA => 64,
            // The modulus, base64url without padding: 4 characters per 3 bytes.
            Alg::RS256 => self.public.n.as_ref().map_or(0, |n| n.len() * 3 / 4),
        }
    }

    pub(crate) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The JWS signature of `message` with this key's algorithm (ES256's
    /// `r || s`, EdDSA's 64 bytes, RS256's PKCS#1 v1.5 with SHA-256), or
    /// `None` if ring's random source failed.
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match &self.signer {
            Signer::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .ok()
                .map(|sig| sig.as_ref().to_vec()),
            Signer::Ed25519(pair) => Some(pair.sign(message).as_ref().to_vec()),
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .ok()?;
                Some(sig)
            }
        }
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl PublicJwk {
    fn new(kty: &'static str, alg: Alg) -> PublicJwk {
        PublicJwk {
            kty,
            kid: String::new(),
            use_: "sig",
            alg: alg.name(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
        }
    }

    fn with_curve(mut self, crv: &'static str, x: &[u8], y: Option<&[u8]>) -> PublicJwk {
        self.crv = Some(crv);
        self.x = Some(B64.encode(x));
        self.y = y.map(|y| B64.encode(y));
        self
    }

    /// The RFC 7638 thumbprint: SHA-256 over the required members in
    /// lexicographic order with no whitespace, base64url without padding.
    pub fn thumbprint(&self) -> String {
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        let canonical = match self.kty {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                self.crv.unwrap_or_default(),
                s(&self.x),
                s(&self.y)
            ),
            "OKP" => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                self.crv.unwrap_or_default(),
                s(&self.x)
            ),
            _ => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                s(&self.e),
                s(&self.n)
            ),
        };
        B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit RSA key made for tests and benchmarks only.
    const RS256_PKCS8: &str = include_str!("../testdata/rs256-2048.pk8.b64");

    #[test]
    fn an_rs256_key_made_elsewhere_signs_and_verifies() {
        let pkcs8 = B64.decode(RS256_PKCS8.trim()).unwrap();
        let key = Key::from_pkcs8(Alg::RS256, pkcs8).unwrap();
        let token = crate::jws::sign_with(&key, "at+jwt", &serde_json::json!({"a": 1})).unwrap();
        let doc = serde_json::json!({"format": "minigate-keyset/1", "keys": [{
            "kid": key.kid(), "alg": "RS256", "state": "current",
            "created": "2026-01-01T00:00:00Z", "private_key": RS256_PKCS8.trim()}]});
        let set = crate::KeySet::from_json(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.verify(&token, "at+jwt").unwrap(), b"{\"a\":1}");
        assert_eq!(key.public_jwk().kty, "RSA");
    }

    #[test]
    fn an_rs256_key_that_is_not_one_is_refused() {
        assert!(Key::from_pkcs8(Alg::RS256, vec![0x30, 0x00]).is_err());
        assert!(Key::from_pkcs8(Alg::RS256, vec![0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
    }

    #[test]
    fn the_rsa_public_key_inside_an_spki() {
        // The SPKI of the test key, built around ring's RSAPublicKey.
        let pkcs8 = B64.decode(RS256_PKCS8.trim()).unwrap();
        let pair = signature::RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
        let inner = pair.public().as_ref();
        let der = |tag: u8, body: &[u8]| {
            let mut out = vec![tag];
            match body.len() {
                n if n < 0x80 => out.push(n as u8),
                n if n < 0x100 => out.extend([0x81, n as u8]),
                n => out.extend([0x82, (n >> 8) as u8, n as u8]),
            }
            out.extend_from_slice(body);
            out
        };
        let algorithm = [der(0x06, &RSA_ENCRYPTION), vec![0x05, 0x00]].concat();
        let bits = [&[0x00][..], inner].concat();
        let spki = der(0x30, &[der(0x30, &algorithm), der(0x03, &bits)].concat());
        assert_eq!(rsa_public_key_of_spki(&spki), Some(inner));
        assert_eq!(rsa_modulus_bits(inner), Some(2048));
        assert_eq!(rsa_modulus_bits(&spki), None);
        // Trailing bytes, unused bits, another algorithm: refused.
        assert!(rsa_public_key_of_spki(&[spki.clone(), vec![0]].concat()).is_none());
        let odd = der(
            0x30,
            &[
                der(0x30, &algorithm),
                der(0x03, &[&[0x01][..], inner].concat()),
            ]
            .concat(),
        );
        assert!(rsa_public_key_of_spki(&odd).is_none());
        let ec = [
            der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
            vec![0x05, 0x00],
        ]
        .concat();
        let ec = der(0x30, &[der(0x30, &ec), der(0x03, &bits)].concat());
        assert!(rsa_public_key_of_spki(&ec).is_none());
        assert!(rsa_public_key_of_spki(&[]).is_none());
        assert!(rsa_public_key_of_spki(&pkcs8).is_none());
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // The RSA key of RFC 7638 section 3.1 and its published thumbprint.
        let jwk = PublicJwk {
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            ..PublicJwk::new("RSA", Alg::RS256)
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_round_trip_through_pkcs8() {
        for alg in [Alg::ES256, Alg::EdDSA] {
            let key = Key::generate(alg).unwrap();
            let again = Key::from_pkcs8(alg, key.pkcs8().to_vec()).unwrap();
            assert_eq!(key.kid(), again.kid());
            assert_eq!(key.public_jwk(), again.public_jwk());
            assert_eq!(key.kid().len(), 43);
        }
    }

    #[test]
    fn wrong_algorithm_for_bytes_is_refused() {
        let ec = Key::generate(Alg::ES256).unwrap();
        assert_eq!(
            Key::from_pkcs8(Alg::EdDSA, ec.pkcs8().to_vec()).unwrap_err(),
            KeyError::Invalid(Alg::EdDSA)
        );
        assert!(Key::from_pkcs8(Alg::ES256, b"garbage".to_vec()).is_err());
        assert!(Key::from_pkcs8(Alg::RS256, vec![]).is_err());
    }

    #[test]
    fn debug_never_shows_private_bytes() {
        let key = Key::generate(Alg::ES256).unwrap();
        let dbg = format!("{key:?}");
        assert!(dbg.contains(key.kid()));
        assert!(!dbg.contains(&B64.encode(key.pkcs8())));
        assert!(!dbg.contains("pkcs8"));
    }
}
