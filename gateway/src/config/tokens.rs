//! The `[tokens]` and `[keys]` sections.

use std::path::PathBuf;
use std::time::Duration;

/// `[tokens]`.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// `iss` of every token, and the base of the discovery document.
    pub issuer: String,
    /// `aud` of access tokens; a token is accepted if it names any of these.
    pub audience: Vec<String>,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// Clock skew allowed on exp, nbf and iat.
    pub leeway: Duration,
    /// Most verified access tokens kept in the cache.
    pub cache_capacity: u64,
}

/// `[keys]`.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// The directory made by `minigate keys init`.
    pub dir: PathBuf,
    /// How often the key set is re-read.
    pub reload_interval: Duration,
}
