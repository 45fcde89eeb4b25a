//! Inbound TLS (rustls over ring, see [`crate::crypto`]) with HTTP/2 and
//! HTTP/1.1 chosen by ALPN.
//!
//! WeChat requires HTTPS of mini-program servers, so the gateway can
//! terminate TLS itself. Certificates are short-lived (ACME, cert-manager):
//! the files are re-read whenever their modification time changes, checked
//! on the key set's reload tick and on SIGHUP, and a new pair replaces the
//! old for new connections only when it loads whole. A broken pair is
//! refused and logged; the old one keeps serving.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::ServerConfig;

use crate::config::files::load_tls as load;
use crate::config::{ConfigError, TlsConfig};
use crate::telemetry::labels::label_enum;

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What a look at the certificate files found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsReload {
    /// Neither file changed.
    Unchanged,
    /// A new pair loaded whole and now serves new connections.
    Replaced,
    /// The files changed but did not load; the previous pair still serves.
    Refused,
}

// Unchanged is the common case and not counted.
label_enum! {
    impl TlsReload {
        Replaced = "replaced",
        Refused = "refused",
    } uncounted {
        Unchanged = "unchanged",
    }
}

/// The live server config, replaced when the files change.
pub struct Tls {
    files: TlsConfig,
    current: ArcSwap<ServerConfig>,
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.files.cert)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the pair; errors name the key.
    pub fn new(files: &TlsConfig) -> Result<Tls, ConfigError> {
        let stamps = (modified(&files.cert), modified(&files.key));
        let config = load(files)?;
        Ok(Tls {
            files: files.clone(),
            current: ArcSwap::from_pointee(config),
            stamps: Mutex::new(stamps),
        })
    }

    /// The config for the next handshake.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Re-reads the pair if either file changed since it was last read.
    pub fn reload_if_changed(&self) -> TlsReload {
        let now = (modified(&self.files.cert), modified(&self.files.key));
        let Ok(mut stamps) = self.stamps.lock() else {
            return TlsReload::Unchanged;
        };
        if *stamps == now {
            return TlsReload::Unchanged;
        }
        *stamps = now;
        match load(&self.files) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                TlsReload::Replaced
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate refused; the previous one keeps serving");
                TlsReload::Refused
            }
        }
    }
}
