//! RSA2, as Alipay's open platform calls it: RSA PKCS#1 v1.5 signatures
//! with SHA-256 (`SHA256WithRSA`), keys of 2048 bits or more, signatures in
//! standard base64. ring does the work; this module only reads the key
//! formats operators are handed.
//!
//! Private keys come as PEM, PKCS#8 (`PRIVATE KEY`) or PKCS#1
//! (`RSA PRIVATE KEY`); public keys as PEM `PUBLIC KEY` (an X.509
//! SubjectPublicKeyInfo). Alipay's key tool and console also hand out the
//! bare base64 of the same DER, without the PEM lines: that is read too.
//! Neither type's `Debug` shows key material, and errors never quote it.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

/// A private key that signs RSA2.
#[derive(Clone)]
pub struct SigningKey {
    pair: Arc<RsaKeyPair>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// A public key that verifies RSA2: the PKCS#1 `RSAPublicKey` ring wants.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    rsa_public_key: Arc<[u8]>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("bits", &(self.rsa_public_key.len() * 8))
            .finish_non_exhaustive()
    }
}

/// The DER inside a key file: its PEM block when it has one, else the whole
/// text read as base64 (whitespace ignored).
fn bare_base64(text: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    B64.decode(compact).ok().filter(|der| !der.is_empty())
}

/// Why a key file's content is not a key this module can use. The text
/// says what was expected, never what was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a private key in a format read here.
    #[error("not an RSA private key of 2048 bits or more (PEM PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`, or the bare base64 of either)")]
    NotPrivateKey,
    /// Not a public key in a format read here.
    #[error("not an RSA public key (PEM `PUBLIC KEY`, or its bare base64)")]
    NotPublicKey,
    /// An RSA key, but too short to be trusted (or verified by ring).
    #[error("an RSA key shorter than 2048 bits")]
    TooShort,
}

fn has_pem_block(text: &[u8]) -> bool {
    text.windows(11).any(|w| w == b"-----BEGIN ")
}

impl SigningKey {
    /// Reads a private key file's content. The error says what was expected,
    /// never what was found.
    pub fn parse(text: &[u8]) -> Result<SigningKey, KeyError> {
        const WHAT: KeyError = KeyError::NotPrivateKey;
        let pair = if has_pem_block(text) {
            match PrivateKeyDer::from_pem_slice(text).map_err(|_| WHAT)? {
                PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
                PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
                _ => return Err(WHAT),
            }
        } else {
            let der = bare_base64(text).ok_or(WHAT)?;
            RsaKeyPair::from_pkcs8(&der).or_else(|_| RsaKeyPair::from_der(&der))
        };
        Self::from_pair(pair.map_err(|_| WHAT)?)
    }

    /// A key from the DER of a PKCS#8 `PrivateKeyInfo`.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        Self::from_pair(RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::NotPrivateKey)?)
    }

    fn from_pair(pair: RsaKeyPair) -> Result<SigningKey, KeyError> {
        if pair.public().modulus_len() < 256 {
            return Err(KeyError::TooShort);
        }
        Ok(SigningKey {
            pair: Arc::new(pair),
        })
    }

    /// The RSA2 signature of `message`, base64. `None` only if the system
    /// random source (used for blinding) fails.
    pub fn sign(&self, message: &[u8]) -> Option<String> {
        let mut sig = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut sig,
            )
            .ok()?;
        Some(B64.encode(sig))
    }

    /// Its public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            rsa_public_key: self.pair.public().as_ref().into(),
        }
    }
}

impl VerifyingKey {
    /// Reads a public key file's content: a PEM `PUBLIC KEY`, or the bare
    /// base64 of its DER (what Alipay's console shows).
    pub fn parse(text: &[u8]) -> Result<VerifyingKey, KeyError> {
        const WHAT: KeyError = KeyError::NotPublicKey;
        let spki = if has_pem_block(text) {
            SubjectPublicKeyInfoDer::from_pem_slice(text)
                .map_err(|_| WHAT)?
                .as_ref()
                .to_vec()
        } else {
            bare_base64(text).ok_or(WHAT)?
        };
        let inner = jwks::key::rsa_public_key_of_spki(&spki).ok_or(WHAT)?;
        // ring refuses short keys when verifying; refuse them here too, so a
        // key that could never verify fails at start, not at every login.
        if jwks::key::rsa_modulus_bits(inner).ok_or(WHAT)? < 2048 {
            return Err(KeyError::TooShort);
        }
        Ok(VerifyingKey {
            rsa_public_key: inner.into(),
        })
    }

    /// Whether `signature_b64` (standard base64) is an RSA2 signature of
    /// `message` by this key.
    pub fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = B64.decode(signature_b64.trim()) else {
            return false;
        };
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            &self.rsa_public_key[..],
        )
        .verify(message, &sig)
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_PK8: &str = include_str!("../../tests/it/fixtures/alipay/app.pk8.pem");
    const APP_PKCS1: &str = include_str!("../../tests/it/fixtures/alipay/app.pkcs1.pem");
    const APP_SPKI: &str = include_str!("../../tests/it/fixtures/alipay/app.spki.pem");
    const ALIPAY_SPKI: &str = include_str!("../../tests/it/fixtures/alipay/alipay.spki.pem");

    /// The base64 between a PEM file's BEGIN and END lines, as Alipay's
    /// tools show keys.
    fn bare(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn keys_in_every_format_sign_and_verify() {
        let public = VerifyingKey::parse(APP_SPKI.as_bytes()).unwrap();
        assert_eq!(
            VerifyingKey::parse(bare(APP_SPKI).as_bytes()).unwrap(),
            public
        );
        for text in [
            APP_PK8.to_owned(),
            APP_PKCS1.to_owned(),
            bare(APP_PK8),
            bare(APP_PKCS1),
        ] {
            let key = SigningKey::parse(text.as_bytes()).unwrap();
            assert_eq!(key.verifying_key(), public);
            let sig = key.sign(b"a=1&b=2").unwrap();
            assert!(public.verify(b"a=1&b=2", &sig));
            assert!(!public.verify(b"a=1&b=3", &sig));
            let other = VerifyingKey::parse(ALIPAY_SPKI.as_bytes()).unwrap();
            assert!(!other.verify(b"a=1&b=2", &sig));
        }
        assert!(!public.verify(b"x", "not base64!"));
        assert!(!public.verify(b"x", ""));
    }

    #[test]
    fn wrong_kinds_are_refused_without_quoting_them() {
        for text in [
            "",
            "garbage",
            APP_SPKI,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let e = SigningKey::parse(text.as_bytes()).unwrap_err();
            assert!(e.to_string().starts_with("not an RSA private key"), "{e}");
        }
        for text in ["", "garbage", APP_PK8, &bare(APP_PK8)] {
            let e = VerifyingKey::parse(text.as_bytes()).unwrap_err();
            assert!(e.to_string().starts_with("not an RSA public key"), "{e}");
        }
        assert!(!format!("{:?}", SigningKey::parse(APP_PK8.as_bytes()).unwrap()).contains("MII"));
    }
}
