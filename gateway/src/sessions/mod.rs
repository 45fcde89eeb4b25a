//! Login-session state: device classes and their limits, the per-user list
//! of live sessions, refresh-token rotation with reuse detection, ending
//! sessions, and telling every replica which sessions ended.
//!
//! Access tokens are verified without state; only login, refresh, logout
//! and the session endpoints touch this. Each login session (`sid`) belongs
//! to a user (see [`crate::tokens::Subject::user`]) and a device class, and
//! remembers the one refresh token (`jti`) that may be redeemed next (RFC
//! 9700 section 4.14). Redeeming it swaps in its successor atomically, so of
//! many concurrent redemptions exactly one wins (two with `reuse_grace`).
//! Redeeming any other token of the session (an already used one) is theft
//! or a replay: the whole session is revoked, so the thief's and the
//! victim's successors both stop working. A session the store does not know
//! (expired, evicted, or from before a restart of the in-process store) is
//! refused, never adopted: the store fails closed.
//!
//! A login is admitted against its class's limit, and the user's ceiling
//! across classes (`max_per_user`), in the same atomic step that records it
//! (one Lua script in Redis, one critical section in process), so two
//! logins racing for the last slot cannot both win. The ceiling also bounds
//! what listing a user's sessions costs: a listing reads at most
//! [`listed`] sessions, however many the user ever made.
//!
//! A refresh asks the store first ([`SessionStore::check`]) whether its
//! token is the redeemable one of a live session, before the user service
//! is asked and before the redemption: a dead token costs nothing more, and
//! a session refreshes at most [`REFRESHES_PER_WINDOW`] times a
//! [`REFRESH_WINDOW`], counted with the session (so across replicas).
//!
//! A session that ends (logout, `DELETE`, a device limit, reuse detection,
//! the admin API) goes into the [`revoked::RevokedSet`], checked on every
//! proxied request; with Redis it is also published to every replica
//! ([`redis::spawn_sync`]). Why it ended ([`EndReason`]) is kept with it
//! everywhere (the store's record, the revoked set, what replicas
//! exchange), so a client presenting one of its tokens is told why by any
//! replica, and a mini-program can tell "you signed in on another device"
//! from "you signed out everywhere".
//!
//! With `idle_ttl`, a session not refreshed for that long ends at its next
//! refresh (reason `idle`): it stops being listed and counted against the
//! limits at that point, and its record stays, revoked, only as long as
//! its last refresh token could still verify (the refresh TTL past the last
//! refresh), to tell why.
//!
//! Two stores sit behind one small trait: [`memory`] (the default, bounded,
//! one process) and [`redis`] (one Redis or a Redis Cluster, shared by
//! every replica). [`Store`] picks one from the config without boxing.

pub mod memory;
pub mod redis;
pub mod revoked;

use std::time::Duration;

use serde::Serialize;

use crate::config::{OnLimit, Secret};
pub use crate::tokens::{EndReason, SessionRef};
use crate::tokens::{Jti, Sid, UserKey};

/// What redeeming a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// It was the session's current token (or, within `reuse_grace`, the
    /// one just before it); its successor is now current.
    Rotated {
        /// The phone number the session holds (`/auth/phone`), if any.
        phone: Option<String>,
    },
    /// It was already used: the session is now revoked.
    Reused,
    /// The session ended earlier, for this reason (or, with `idle_ttl`, it
    /// was idle too long and ends now: [`EndReason::Idle`]).
    Revoked(EndReason),
    /// The store does not know the session.
    Unknown,
}

/// What the store says of a refresh token presented for a refresh, before
/// the user service is asked and before anything is redeemed: a spent,
/// revoked or unknown token goes no further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The session's current token (or, within `reuse_grace`, the one
    /// redeemed last): the refresh may go on, and counts against the
    /// session's [`REFRESHES_PER_WINDOW`].
    Live,
    /// A current token, but the session already refreshed
    /// [`REFRESHES_PER_WINDOW`] times in the last [`REFRESH_WINDOW`]: it may
    /// again after this long. Nothing changed.
    TooSoon(Duration),
    /// Already used: the session is now revoked.
    Reused,
    /// The session ended earlier, for this reason (or, with `idle_ttl`, it
    /// was idle too long and ends now: [`EndReason::Idle`]).
    Revoked(EndReason),
    /// The store does not know the session.
    Unknown,
}

/// Refreshes (attempts that reach the user service and the redemption)
/// one session may make within [`REFRESH_WINDOW`]; the next is 429.
pub const REFRESHES_PER_WINDOW: usize = 10;
/// The sliding window of [`REFRESHES_PER_WINDOW`].
pub const REFRESH_WINDOW: Duration = Duration::from_secs(60);

/// What a login did to its user's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded; `evicted` are the sessions it ended to stay in the limit.
    Started {
        /// The sids ended (`evict_oldest`), oldest first.
        evicted: Vec<String>,
    },
    /// The class (or the user's ceiling) is full and `on_limit` is
    /// `refuse`: nothing recorded.
    Refused,
}

/// What logging out everywhere did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndedAll {
    /// The token was the redeemable one of a live session: these sids
    /// ended (reason [`EndReason::LoggedOut`]).
    Ended(Vec<String>),
    /// It was not (spent, revoked, idle, unknown) and nothing ended; why
    /// its session ended, if it has.
    Refused(Option<EndReason>),
}

/// A refresh token spent and the one that replaces it, named so that the
/// two cannot trade places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation<'a> {
    /// The token presented.
    pub spent: Jti<'a>,
    /// The token issued in its place.
    pub next: Jti<'a>,
}

/// A login to record.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    /// The user.
    pub user: UserKey<'a>,
    /// The new session's id.
    pub sid: Sid<'a>,
    /// Its first redeemable refresh token.
    pub jti: Jti<'a>,
    /// Its device class.
    pub device_type: &'a str,
    /// The device id the client sent, if any.
    pub device_id: Option<&'a str>,
    /// The platform signed in at (`wechat`, `qq`…), for the listing.
    pub platform: &'a str,
    /// The app (`client_id`), for the listing.
    pub appid: &'a str,
    /// The device's name the client sent at login, if any, for the listing.
    pub device_name: Option<&'a str>,
    /// Most live sessions of the user in the class; 0 = no limit.
    pub limit: u32,
    /// Most live sessions of the user across every class (`max_per_user`);
    /// 0 = no ceiling.
    pub max_per_user: u32,
    /// What to do when the class, or the user's ceiling, is full.
    pub on_limit: OnLimit,
    /// The platform's session key (WeChat's `session_key`), kept with the
    /// session for decrypting the user's data and asking WeChat of its
    /// health; it never leaves the store but for that.
    pub session_key: Option<&'a str>,
    /// The user's openid at the app, which the key is of (WeChat's
    /// `checksession` and `resetusersessionkey` name the user by it).
    pub openid: &'a str,
}

/// The platform session key kept with a live session, and whose it is.
#[derive(Debug, Clone)]
pub struct KeptKey {
    /// The key.
    pub key: Secret,
    /// The openid it was issued to.
    pub openid: String,
    /// The app it was issued by.
    pub appid: String,
}

/// One live session, as `GET /auth/sessions` and the admin API list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The session id (`sid` of its tokens).
    pub sid: String,
    /// Its device class.
    pub device_type: String,
    /// The device id sent at login, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The platform signed in at (none for a session recorded by an older
    /// gateway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The app (`client_id`) signed in to (none, as `platform`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The device's name sent at login, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Login time, unix seconds.
    pub created_at: u64,
    /// Last refresh (or the login), unix seconds.
    pub refreshed_at: u64,
}

/// The most sessions one listing returns without a ceiling (with one, the
/// ceiling, if lower): a user with more sees the most recently used ones.
pub const MAX_LISTED: usize = 1000;

/// How many sessions a listing reads at most, for a ceiling of
/// `max_per_user` (0 = none): the store's work per listing is bounded by
/// it, whatever the number of sessions the user ever made.
pub fn listed(max_per_user: u32) -> usize {
    match max_per_user {
        0 => MAX_LISTED,
        n => MAX_LISTED.min(n as usize),
    }
}

/// The store could not be set up (a Redis URL the client refuses). The
/// text is the client's kind of error only: the URL may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {kind}")]
pub struct StoreSetupError {
    /// The config key.
    pub key: &'static str,
    /// The client's kind of error.
    pub kind: String,
}

/// The store cannot be reached: login, refresh and logout fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Session state: one record per login session, living `ttl` (the refresh
/// TTL) past its last change, and an index of each user's live sessions.
pub trait SessionStore: Send + Sync {
    /// Records a new session, within its class's limit.
    fn begin(
        &self,
        new: &NewSession<'_>,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<Recorded, Unavailable>> + Send;

    /// Checks `jti` of the session `at` before a refresh asks the user
    /// service: see [`Checked`]. A token already used revokes the session
    /// here, as a redemption would; a live one is counted against the
    /// session's refresh rate.
    fn check(
        &self,
        at: SessionRef<'_>,
        jti: Jti<'_>,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<Checked, Unavailable>> + Send;

    /// Redeems the spent refresh token of the session `at`, making the next
    /// one redeemable.
    fn redeem(
        &self,
        at: SessionRef<'_>,
        turn: Rotation<'_>,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<Redeemed, Unavailable>> + Send;

    /// Ends `user`'s live session `sid`, or all of them, for reason `why`:
    /// none of their refresh tokens redeem again. Returns the sids it ended
    /// (empty: `sid` is not a live session of `user`).
    fn end(
        &self,
        user: UserKey<'_>,
        sid: Option<Sid<'_>>,
        why: EndReason,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<Vec<String>, Unavailable>> + Send;

    /// Ends every live session of the user of `at` (reason
    /// [`EndReason::LoggedOut`]), if `jti` is the
    /// redeemable refresh token of the live session `at` (its current one, or within
    /// `reuse_grace` the one redeemed last): see [`EndedAll`]. One atomic
    /// step.
    fn end_everywhere(
        &self,
        at: SessionRef<'_>,
        jti: Jti<'_>,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<EndedAll, Unavailable>> + Send;

    /// Keeps `phone` with the live session `at`: its next refreshes carry
    /// it. `false`: the session is not live.
    fn set_phone(
        &self,
        at: SessionRef<'_>,
        phone: &str,
    ) -> impl std::future::Future<Output = Result<bool, Unavailable>> + Send;

    /// Makes `next` the redeemable refresh token of the live session `at`,
    /// without a refresh token presented: for a new pair in the same
    /// session (a phone number verified, a login code retried). The token
    /// it replaces counts as just redeemed (so `reuse_grace` covers a client
    /// that lost the answer). `false`: the session is not live.
    fn reissue(
        &self,
        at: SessionRef<'_>,
        next: Jti<'_>,
        ttl: Duration,
    ) -> impl std::future::Future<Output = Result<bool, Unavailable>> + Send;

    /// The platform session key kept with the live session `at`.
    fn session_key(
        &self,
        at: SessionRef<'_>,
    ) -> impl std::future::Future<Output = Result<Option<KeptKey>, Unavailable>> + Send;

    /// Replaces the platform session key kept with the live session `at`
    /// (WeChat's `resetusersessionkey` issued a new one). `false`: the
    /// session is not live.
    fn set_session_key(
        &self,
        at: SessionRef<'_>,
        key: &Secret,
    ) -> impl std::future::Future<Output = Result<bool, Unavailable>> + Send;

    /// `user`'s live sessions, newest first: at most the store's listing
    /// bound ([`listed`]), the most recently used ones, read with work
    /// bounded by it.
    fn list(
        &self,
        user: UserKey<'_>,
    ) -> impl std::future::Future<Output = Result<Vec<SessionInfo>, Unavailable>> + Send;
}

/// The configured store.
#[derive(Debug)]
pub enum Store {
    /// In-process.
    Memory(memory::MemoryStore),
    /// Redis or Redis Cluster, shared by replicas.
    Redis(redis::RedisStore),
}

impl Store {
    /// The store `config` asks for. Redis connects lazily: the gateway starts
    /// (and verifies access tokens) while Redis is still down.
    pub fn new(config: &crate::config::SessionsConfig) -> Result<Store, StoreSetupError> {
        let listed = listed(config.max_per_user);
        if let Some(url) = &config.redis_url {
            return Ok(Store::Redis(
                redis::RedisStore::new(url.expose(), config.reuse_grace)?
                    .listing(listed)
                    .idle(config.idle_ttl),
            ));
        }
        if !config.redis_cluster.is_empty() {
            let seeds: Vec<&str> = config.redis_cluster.iter().map(|s| s.expose()).collect();
            return Ok(Store::Redis(
                redis::RedisStore::cluster(&seeds, config.reuse_grace)?
                    .listing(listed)
                    .idle(config.idle_ttl),
            ));
        }
        Ok(Store::Memory(
            memory::MemoryStore::new(config.max_sessions, config.reuse_grace)
                .listing(listed)
                .idle(config.idle_ttl),
        ))
    }

    /// `memory`, `redis` or `redis-cluster`, for logs and readiness.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(r) => r.kind(),
        }
    }

    /// `/readyz`'s `session_store`: its kind, where it is (credentials
    /// redacted), whether it answered last (`up`, `down`, `unknown`) and so
    /// whether sign-ins work (`ready`, `degraded`). Proxying does not
    /// depend on it, so neither does readiness.
    pub fn readiness(&self) -> serde_json::Value {
        match self {
            Store::Memory(_) => serde_json::json!({
                "kind": "memory", "state": "up", "sign_in": "ready",
            }),
            Store::Redis(r) => r.health().json(r.kind()),
        }
    }

    /// Reaches the store once (`PING`): `None` for the in-process store,
    /// else how long the answer took or why none came.
    pub async fn ping(&self) -> Option<Result<Duration, String>> {
        match self {
            Store::Memory(_) => None,
            Store::Redis(r) => Some(r.ping().await),
        }
    }

    /// Tells every replica that `sids` ended, and why: into the local
    /// revoked set at once, and with Redis published and recorded for the
    /// others' resyncs (best effort: the sessions themselves are already
    /// ended in the store, so at worst an access token lives out its short
    /// life).
    pub async fn announce(&self, revoked: &revoked::RevokedSet, sids: &[String], why: EndReason) {
        if sids.is_empty() {
            return;
        }
        let at = revoked::now_ms();
        let until = at.saturating_add(revoked.lifetime_ms());
        revoked.insert_all(sids.iter().map(|sid| (sid.as_str(), until, why)));
        if let Store::Redis(r) = self {
            r.publish(sids, at, until, why).await;
        }
    }
}

/// The store's methods, each handed to the store configured.
macro_rules! to_the_store {
    ($( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )+) => {
        $(
            async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, Unavailable> {
                match self {
                    Store::Memory(s) => s.$name($($arg),*).await,
                    Store::Redis(s) => s.$name($($arg),*).await,
                }
            }
        )+
    };
}

impl SessionStore for Store {
    to_the_store! {
        fn begin(&self, new: &NewSession<'_>, ttl: Duration) -> Recorded;
        fn check(&self, at: SessionRef<'_>, jti: Jti<'_>, ttl: Duration) -> Checked;
        fn redeem(&self, at: SessionRef<'_>, turn: Rotation<'_>, ttl: Duration) -> Redeemed;
        fn end(&self, user: UserKey<'_>, sid: Option<Sid<'_>>, why: EndReason, ttl: Duration)
            -> Vec<String>;
        fn end_everywhere(&self, at: SessionRef<'_>, jti: Jti<'_>, ttl: Duration) -> EndedAll;
        fn set_phone(&self, at: SessionRef<'_>, phone: &str) -> bool;
        fn reissue(&self, at: SessionRef<'_>, next: Jti<'_>, ttl: Duration) -> bool;
        fn session_key(&self, at: SessionRef<'_>) -> Option<KeptKey>;
        fn set_session_key(&self, at: SessionRef<'_>, key: &Secret) -> bool;
        fn list(&self, user: UserKey<'_>) -> Vec<SessionInfo>;
    }
}
