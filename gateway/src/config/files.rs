//! The files a config names: the config itself, secret files, the TLS pair.
//!
//! Each read names the key and the path in its error and never the file's
//! content, which may be a secret. The TLS pair is read here (not in the
//! TLS module) so that checking a config and reloading a certificate use
//! one reader, and the config owes nothing to the server that uses it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::parse::duration_or;
use super::raw::RawRolesOnly;
use super::{defaults, err, Config, ConfigError, RoleGrant, TlsConfig};

impl Config {
    /// Reads and validates a config file. Errors name the file or the key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), e.to_string()))?;
        let mut config = Self::from_toml(&text, &|name| std::env::var(name).ok())?;
        config.source = Some(path.to_owned());
        Ok(config)
    }
}

/// The `[[roles]]` of a config file, checked like at start: what a reload
/// of static grants reads. Nothing else of the file is resolved (no secret
/// is read again).
pub fn grants_of(path: &Path) -> Result<Vec<RoleGrant>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path.display().to_string(), e.to_string()))?;
    let raw: RawRolesOnly =
        toml::from_str(&text).map_err(|e| err("config", e.message().replace('\n', " ")))?;
    super::parse::grants(raw.roles)
}

/// The refresh TTL of a config file, read without resolving anything else:
/// key pruning needs only that, and must not need the app secrets.
pub fn refresh_ttl_of(path: &Path) -> Result<Duration, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path.display().to_string(), e.to_string()))?;
    let value: toml::Table =
        toml::from_str(&text).map_err(|e| err("config", e.message().replace('\n', " ")))?;
    let ttl = value
        .get("tokens")
        .and_then(|t| t.get("refresh_ttl"))
        .and_then(|v| v.as_str());
    duration_or("tokens.refresh_ttl", ttl, defaults::REFRESH_TTL)
}

/// `[admin] listen` of a config file, read without resolving anything
/// else: `minigate sessions` needs only that, not the app secrets.
pub fn admin_listen_of(path: &Path) -> Result<std::net::SocketAddr, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path.display().to_string(), e.to_string()))?;
    let value: toml::Table =
        toml::from_str(&text).map_err(|e| err("config", e.message().replace('\n', " ")))?;
    let listen = value
        .get("admin")
        .and_then(|t| t.get("listen"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| err("admin.listen", "is not set: there is no admin listener"))?;
    listen
        .parse()
        .map_err(|_| err("admin.listen", format!("{listen:?} is not an address")))
}

/// A secret file's value, without its trailing newline.
pub(super) fn read_secret(key: &str, path: &Path) -> Result<String, ConfigError> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| err(key, format!("{}: {e}", path.display())))?
        .trim_end_matches(['\r', '\n'])
        .to_owned())
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
