//! The key set as the running gateway holds it, and its reloading.
//!
//! Requests read the key set on every verification and every JWKS fetch, and
//! a reload must replace it whole. An [`ArcSwap`] gives both: readers take a
//! snapshot without a lock, and a new, fully validated set replaces the old
//! in one pointer swap, so no request ever sees a mix. The JWKS and discovery
//! documents are rendered once per set, not per request.
//!
//! Reloading re-reads `keyset.json` through its path, so it follows a
//! Kubernetes Secret volume's `..data` symlink swap like any other rename.
//! A file that is unchanged costs one small read; a new one is validated
//! whole before it replaces the old; a broken, partial or missing one is
//! refused: the old set keeps serving, one error line is logged per distinct
//! failure, and the failure is counted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use jwks::{KeySet, KeySetError};

/// One loaded key set with the documents rendered from it.
#[derive(Debug)]
pub struct Loaded {
    /// The keys.
    pub set: KeySet,
    /// Counts replacements: results derived from an older set are stale.
    pub generation: u64,
    /// `/.well-known/jwks.json`.
    pub jwks_json: Bytes,
    /// `/.well-known/openid-configuration`.
    pub discovery_json: Bytes,
}

impl Loaded {
    /// Renders the documents for `set` under `issuer`.
    fn new(set: KeySet, issuer: &str, generation: u64) -> Loaded {
        let jwks_json = Bytes::from(serde_json::to_vec(&set.jwks()).unwrap_or_default());
        let algs: Vec<&str> = set.algorithms().iter().map(|a| a.name()).collect();
        let base = issuer.trim_end_matches('/');
        let discovery = serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": algs,
        });
        Loaded {
            set,
            generation,
            jwks_json,
            discovery_json: Bytes::from(discovery.to_string()),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file is as last read (or there is no file: an in-memory set).
    Unchanged,
    /// A new set replaced the old one.
    Replaced,
    /// The new file was refused; the old set stays. The reason names the file.
    Refused(String),
}

/// Reload counters, for readiness and metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Sets that replaced the previous one.
    pub replaced: AtomicU64,
    /// New files refused.
    pub refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Source {
    /// The bytes last read, good or bad: a file unchanged since is skipped.
    last_bytes: Vec<u8>,
    /// The last refusal, logged once until something changes.
    last_error: Option<String>,
}

/// The gateway's current key set.
#[derive(Debug)]
pub struct KeyStore {
    issuer: String,
    dir: Option<PathBuf>,
    current: ArcSwap<Loaded>,
    generation: AtomicU64,
    source: Mutex<Source>,
    /// Reload counters.
    pub stats: ReloadStats,
}

impl KeyStore {
    /// Holds an in-memory `set` (dev mode, tests): reloading does nothing.
    pub fn new(set: KeySet, issuer: &str) -> KeyStore {
        KeyStore {
            issuer: issuer.to_owned(),
            dir: None,
            current: ArcSwap::from_pointee(Loaded::new(set, issuer, 0)),
            generation: AtomicU64::new(0),
            source: Mutex::default(),
            stats: ReloadStats::default(),
        }
    }

    /// Loads the set in `dir`, which later reloads re-read.
    pub fn open(dir: PathBuf, issuer: &str) -> Result<KeyStore, KeySetError> {
        let bytes = KeySet::read_file(&dir)?;
        let set = KeySet::from_json(&bytes).map_err(|reason| KeySetError::Invalid {
            path: KeySet::file_in(&dir),
            reason,
        })?;
        let store = KeyStore::new(set, issuer);
        if let Ok(mut source) = store.source.lock() {
            source.last_bytes = bytes;
        }
        Ok(KeyStore {
            dir: Some(dir),
            ..store
        })
    }

    /// A snapshot of the current set, cheap and lock-free.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Loaded>> {
        self.current.load()
    }

    /// The generation of the current set.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces the whole set at once.
    pub fn replace(&self, set: KeySet) {
        let generation = self.generation() + 1;
        self.current
            .store(Arc::new(Loaded::new(set, &self.issuer, generation)));
        self.generation.store(generation, Ordering::Release);
    }

    /// Re-reads the key directory and replaces the set if the file changed
    /// and is valid.
    pub fn reload(&self) -> Reload {
        let Some(dir) = &self.dir else {
            return Reload::Unchanged;
        };
        // One reload at a time; requests never take this lock.
        let Ok(mut source) = self.source.lock() else {
            return Reload::Unchanged;
        };
        let parsed = KeySet::read_file(dir).and_then(|bytes| {
            if bytes == source.last_bytes {
                return Ok(None);
            }
            source.last_bytes = bytes;
            KeySet::from_json(&source.last_bytes)
                .map(Some)
                .map_err(|reason| KeySetError::Invalid {
                    path: KeySet::file_in(dir),
                    reason,
                })
        });
        match parsed {
            Ok(None) => Reload::Unchanged,
            Ok(Some(set)) => {
                let kids: Vec<String> = set
                    .entries()
                    .iter()
                    .map(|e| format!("{}:{}", e.key.kid(), e.state))
                    .collect();
                self.replace(set);
                source.last_error = None;
                self.stats.replaced.fetch_add(1, Ordering::Relaxed);
                tracing::info!(keys = ?kids, "key set reloaded");
                Reload::Replaced
            }
            Err(e) => {
                // The path is for the operator's log; readiness shows the
                // reason alone.
                let reason = e.reason();
                if source.last_error.as_deref() != Some(reason.as_str()) {
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "key set reload refused; still serving the previous set");
                    source.last_error = Some(reason.clone());
                }
                Reload::Refused(reason)
            }
        }
    }

    /// The last refused reload's reason, if the set has not changed since.
    pub fn last_error(&self) -> Option<String> {
        self.source.lock().ok().and_then(|s| s.last_error.clone())
    }
}
