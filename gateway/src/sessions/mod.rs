//! Login-session state: refresh-token rotation with reuse detection, and logout.
//!
//! Access tokens are verified without state; only refresh and logout touch
//! this. Each login session (`sid`) remembers the one refresh token (`jti`)
//! that may be redeemed next (RFC 9700 section 4.14). Redeeming it swaps in
//! its successor atomically, so of many concurrent redemptions exactly one
//! wins. Redeeming any other token of the session (an already used one) is
//! theft or a replay: the whole session is revoked, so the thief's and the
//! victim's successors both stop working. A session the store does not know
//! (expired, evicted, or from before a restart of the in-process store) is
//! refused, never adopted: the store fails closed.
//!
//! Two stores sit behind one small trait: [`memory`] (the default, bounded,
//! one process) and [`redis`] (shared by every replica). [`Store`] picks one
//! from the config without boxing.

pub mod memory;
pub mod redis;

use std::time::Duration;

/// What redeeming a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeemed {
    /// It was the session's current token; its successor is now current.
    Rotated,
    /// It was already used: the session is now revoked.
    Reused,
    /// The session was revoked earlier (logout or reuse).
    Revoked,
    /// The store does not know the session.
    Unknown,
}

/// The store could not be set up (a Redis URL the client refuses). The
/// text is the client's kind of error only: the URL may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sessions.redis_url: {0}")]
pub struct SetupError(pub String);

/// The store cannot be reached: refresh and logout fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Session state: one record per login session, living `ttl` (the refresh
/// TTL) past its last change.
pub trait SessionStore: Send + Sync {
    /// Records a new session whose next redeemable token is `jti`.
    fn begin(
        &self,
        sid: &str,
        jti: &str,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<(), Unavailable>> + Send;

    /// Redeems `jti` of session `sid`, making `next` the redeemable one.
    fn redeem(
        &self,
        sid: &str,
        jti: &str,
        next: &str,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<Redeemed, Unavailable>> + Send;

    /// Revokes session `sid`: none of its refresh tokens redeem again.
    fn revoke(
        &self,
        sid: &str,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<(), Unavailable>> + Send;
}

/// The configured store.
#[derive(Debug)]
pub enum Store {
    /// In-process.
    Memory(memory::MemoryStore),
    /// Redis, shared by replicas.
    Redis(redis::RedisStore),
}

impl Store {
    /// The store `config` asks for. Redis connects lazily: the gateway starts
    /// (and verifies access tokens) while Redis is still down.
    pub fn new(config: &crate::config::SessionsConfig) -> Result<Store, SetupError> {
        Ok(match &config.redis_url {
            Some(url) => Store::Redis(redis::RedisStore::new(url.expose())?),
            None => Store::Memory(memory::MemoryStore::new(config.max_sessions)),
        })
    }

    /// `memory` or `redis`, for logs and readiness.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }
}

impl SessionStore for Store {
    async fn begin(&self, sid: &str, jti: &str, ttl: Duration) -> Result<(), Unavailable> {
        match self {
            Store::Memory(s) => s.begin(sid, jti, ttl).await,
            Store::Redis(s) => s.begin(sid, jti, ttl).await,
        }
    }

    async fn redeem(
        &self,
        sid: &str,
        jti: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<Redeemed, Unavailable> {
        match self {
            Store::Memory(s) => s.redeem(sid, jti, next, ttl).await,
            Store::Redis(s) => s.redeem(sid, jti, next, ttl).await,
        }
    }

    async fn revoke(&self, sid: &str, ttl: Duration) -> Result<(), Unavailable> {
        match self {
            Store::Memory(s) => s.revoke(sid, ttl).await,
            Store::Redis(s) => s.revoke(sid, ttl).await,
        }
    }
}
