//! The files a config names: secret files, admin token files, RSA key
//! files, the TLS pair.
//!
//! Each read names the key and the path in its error and never the file's
//! content, which may be a secret. The TLS pair is read here (not in the
//! TLS module) so that checking a config and reloading a certificate use
//! one reader, and the config owes nothing to the server that uses it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{err, ConfigError, TlsConfig};
use crate::crypto::rsa2::{SigningKey, VerifyingKey};

/// A secret file's value, without its trailing newline.
pub(super) fn read_secret(key: &str, path: &Path) -> Result<String, ConfigError> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| err(key, format!("{}: {e}", path.display())))?
        .trim_end_matches(['\r', '\n'])
        .to_owned())
}

/// The largest key file read: a 4096-bit RSA key in PEM is about 3.3 KiB.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// An admin token file's value, without its trailing newline. Like a
/// private key file, a file that others may access is refused: whoever can
/// read it can call the admin API. Errors name `key` and the path, never
/// the content.
pub(super) fn read_token_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let io = |e: std::io::Error| err(key, format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(err(
            key,
            format!(
                "{}: holds an admin token but is accessible to others (mode {mode:04o}); chmod 600 it",
                path.display()
            ),
        ));
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(io)?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads a key file of at most [`MAX_KEY_FILE`] bytes. A private key that
/// others may read is refused, as `keys` refuses such a key set: whoever
/// else can read it can sign as the app. Errors name `key` and the path,
/// never the content.
fn read_key_file(key: &str, path: &Path, private: bool) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let io = |e: std::io::Error| err(key, format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if private && mode & 0o007 != 0 {
        return Err(err(
            key,
            format!(
                "{}: holds a private key but is accessible to others (mode {mode:04o}); chmod 600 it",
                path.display()
            ),
        ));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(err(
            key,
            format!(
                "{}: {} bytes, more than a key file can be",
                path.display(),
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

/// An RSA private key file (PEM PKCS#8 or PKCS#1, or their bare base64).
pub(super) fn read_private_key(key: &str, path: &Path) -> Result<SigningKey, ConfigError> {
    let text = read_key_file(key, path, true)?;
    SigningKey::parse(&text).map_err(|what| err(key, format!("{}: {what}", path.display())))
}

/// An RSA public key file (PEM `PUBLIC KEY`, or its bare base64).
pub(super) fn read_public_key(key: &str, path: &Path) -> Result<VerifyingKey, ConfigError> {
    let text = read_key_file(key, path, false)?;
    VerifyingKey::parse(&text).map_err(|what| err(key, format!("{}: {what}", path.display())))
}

/// Reads the TLS pair into a server config offering h2 and http/1.1, with
/// ring as the crypto provider. Errors name `tls.cert` or `tls.key`; they
/// never quote the key file.
pub fn load_tls(files: &TlsConfig) -> Result<rustls::ServerConfig, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| err("tls.cert", format!("{}: {e}", files.cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|_| {
            err(
                "tls.cert",
                format!("{}: not a PEM certificate chain", files.cert.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(err(
            "tls.cert",
            format!("{}: no certificate in it", files.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|_| {
        err(
            "tls.key",
            format!("{}: no readable PEM private key", files.key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| err("tls", "no TLS protocol version is available"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|_| {
            err(
                "tls.key",
                "does not match the certificate, or is of an unsupported kind",
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
