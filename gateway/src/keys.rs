//! The key set as the running gateway holds it.
//!
//! Requests read the key set on every verification and every JWKS fetch, and
//! a reload must replace it whole. An [`ArcSwap`] gives both: readers take a
//! snapshot without a lock, and a new, fully validated set replaces the old
//! in one pointer swap, so no request ever sees a mix. The JWKS and discovery
//! documents are rendered once per set, not per request.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use jwks::KeySet;

/// One loaded key set with the documents rendered from it.
#[derive(Debug)]
pub struct Loaded {
    /// The keys.
    pub set: KeySet,
    /// `/.well-known/jwks.json`.
    pub jwks_json: Bytes,
    /// `/.well-known/openid-configuration`.
    pub discovery_json: Bytes,
}

impl Loaded {
    /// Renders the documents for `set` under `issuer`.
    pub fn new(set: KeySet, issuer: &str) -> Loaded {
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
            jwks_json,
            discovery_json: Bytes::from(discovery.to_string()),
        }
    }
}

/// The gateway's current key set.
#[derive(Debug)]
pub struct KeyStore {
    issuer: String,
    current: ArcSwap<Loaded>,
}

impl KeyStore {
    /// Holds `set`, rendering its documents under `issuer`.
    pub fn new(set: KeySet, issuer: &str) -> KeyStore {
        KeyStore {
            issuer: issuer.to_owned(),
            current: ArcSwap::from_pointee(Loaded::new(set, issuer)),
        }
    }

    /// A snapshot of the current set, cheap and lock-free.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Loaded>> {
        self.current.load()
    }

    /// Replaces the whole set at once.
    pub fn replace(&self, set: KeySet) {
        self.current.store(Arc::new(Loaded::new(set, &self.issuer)));
    }
}
