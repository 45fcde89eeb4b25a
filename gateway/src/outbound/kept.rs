//! An app's access token to a platform, kept until shortly before it
//! expires and renewed one caller at a time: WeChat's `stable_token`, a
//! WeChat third-party platform's `component_access_token` (both in
//! `wechat::token`) and Feishu's `app_access_token` (`signin::providers`)
//! are all kept by this.
//!
//! Every instance that fetches such a token on its own risks what the
//! platforms' SDK trackers are full of: tokens handed out anew invalidate
//! or shorten the previous ones, so replicas overwrite each other, and the
//! platform rate-limits the fetching. So a token is kept until [`MARGIN`]
//! before it expires, renewed one caller at a time in each process
//! (single-flight), and with Redis one replica at a time for the whole
//! cluster: a lock with an expiry, and the token stored for the others, who
//! wait for it. What the fetch is, and what its failures are, stay with the
//! platform: this knows tokens, expiries and Redis. An app's keys in Redis
//! share one hash tag, `<platform>:<appid>`, so a platform may keep more of
//! the app's state beside the token ([`Share::get`], [`Share::set`]).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tokens::now_secs;

/// How long before its expiry a token is renewed.
pub const MARGIN: u64 = 300;
/// How long the cluster-wide renewal lock is held at most.
const LOCK_TTL: Duration = Duration::from_secs(10);
/// How often a replica waiting for another one's renewal looks again.
const POLL: Duration = Duration::from_millis(100);

/// An access token and when it expires.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    value: String,
    /// Unix seconds.
    expires_at: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// A token the platform just gave, living `expires_in` seconds.
    pub fn new(value: String, expires_in: u64) -> Token {
        Token {
            value,
            expires_at: now_secs().saturating_add(expires_in),
        }
    }

    /// The token itself: for the one call that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Seconds until it expires.
    pub fn expires_in(&self) -> u64 {
        self.expires_at.saturating_sub(now_secs())
    }

    /// When it expires (unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Is it more than [`MARGIN`] from its expiry?
    pub fn fresh(&self) -> bool {
        now_secs().saturating_add(MARGIN) < self.expires_at
    }
}

/// Where replicas share the tokens: Redis.
#[derive(Clone)]
pub struct Share {
    redis: redis::aio::ConnectionManager,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Share(redis)")
    }
}

/// Releases the lock only if it is still ours.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

impl Share {
    /// Shares through the Redis at `url`, connecting lazily.
    pub fn new(url: &str) -> Option<Share> {
        let client = redis::Client::open(url).ok()?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let redis = redis::aio::ConnectionManager::new_lazy_with_config(client, config).ok()?;
        Some(Share { redis })
    }

    /// Keys of the app tagged `tag`, under one hash tag so they share a
    /// Cluster slot.
    fn key(tag: &str, what: &str) -> String {
        format!("minigate:{{{tag}}}:{what}")
    }

    /// The value of `what` of the app tagged `tag` (`<platform>:<appid>`).
    pub async fn get(&self, tag: &str, what: &str) -> redis::RedisResult<Option<String>> {
        let mut con = self.redis.clone();
        redis::cmd("GET")
            .arg(Self::key(tag, what))
            .query_async(&mut con)
            .await
    }

    /// Sets `what` of the app tagged `tag` to `value` for `ttl` seconds.
    pub async fn set(
        &self,
        tag: &str,
        what: &str,
        value: &str,
        ttl: u64,
    ) -> redis::RedisResult<()> {
        let mut con = self.redis.clone();
        redis::cmd("SET")
            .arg(Self::key(tag, what))
            .arg(value)
            .arg("EX")
            .arg(ttl.max(1))
            .query_async(&mut con)
            .await
    }

    async fn shared(&self, tag: &str) -> redis::RedisResult<Option<Token>> {
        let raw = self.get(tag, "access_token").await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn put(&self, tag: &str, token: &Token) -> redis::RedisResult<()> {
        let value = serde_json::to_string(token).unwrap_or_default();
        self.set(tag, "access_token", &value, token.expires_in())
            .await
    }

    async fn lock(&self, tag: &str, me: &str) -> redis::RedisResult<bool> {
        let mut con = self.redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(Self::key(tag, "renewing"))
            .arg(me)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_TTL.as_millis() as u64)
            .query_async(&mut con)
            .await?;
        Ok(set.is_some())
    }

    async fn unlock(&self, tag: &str, me: &str) {
        let mut con = self.redis.clone();
        let _: redis::RedisResult<i64> = redis::Script::new(UNLOCK)
            .key(Self::key(tag, "renewing"))
            .arg(me)
            .invoke_async(&mut con)
            .await;
    }
}

/// The hash tag of the keys of `appid` on `platform`.
pub fn tag(platform: &str, appid: &str) -> String {
    format!("{platform}:{appid}")
}

/// One app's token: the one in hand, and the renewal's one-at-a-time lock.
#[derive(Debug)]
pub struct Kept {
    platform: &'static str,
    appid: String,
    /// Its keys' hash tag in Redis.
    tag: String,
    /// How long one fetch may take: a replica waits that, and the lock's
    /// life, for another one's renewal.
    timeout: Duration,
    cached: Mutex<Option<Token>>,
    renewing: tokio::sync::Mutex<()>,
}

impl Kept {
    /// The token of `appid` on `platform` (which names its Redis keys),
    /// fetched within `timeout`.
    pub fn new(platform: &'static str, appid: &str, timeout: Duration) -> Kept {
        Kept {
            platform,
            appid: appid.to_owned(),
            tag: tag(platform, appid),
            timeout,
            cached: Mutex::new(None),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// The app's id.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// The token in hand, fresh or not.
    pub fn cached(&self) -> Option<Token> {
        self.cached.lock().ok().and_then(|c| c.clone())
    }

    /// The token in hand while it is fresh.
    pub fn fresh(&self) -> Option<Token> {
        self.cached().filter(Token::fresh)
    }

    /// Is a token in hand (so in use) and within [`MARGIN`] of its expiry?
    pub fn due(&self) -> bool {
        self.cached().is_some_and(|t| !t.fresh())
    }

    fn keep(&self, token: &Token) {
        if let Ok(mut c) = self.cached.lock() {
            *c = Some(token.clone());
        }
    }

    /// A fresh token other than `rejected`: one a concurrent caller or
    /// another replica just renewed, else one `fetch` gets (shared through
    /// `share` when there is one). `waited_out` is the error when another
    /// replica's renewal never came.
    pub async fn renew<E, F, Fut>(
        &self,
        share: Option<&Share>,
        rejected: Option<&Token>,
        fetch: F,
        waited_out: impl FnOnce() -> E,
    ) -> Result<Token, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        let usable = |t: &Token| t.fresh() && Some(t) != rejected;
        let _one_at_a_time = self.renewing.lock().await;
        // Renewed by another caller while this one waited.
        if let Some(t) = self.cached().filter(usable) {
            return Ok(t);
        }
        let token = match share {
            None => fetch().await?,
            Some(share) => {
                self.renew_shared(share, &usable, &fetch, waited_out)
                    .await?
            }
        };
        self.keep(&token);
        Ok(token)
    }

    /// The renewal when replicas share the token through Redis. Redis being
    /// unreachable is no reason to fail: this replica then renews alone.
    async fn renew_shared<E, F, Fut>(
        &self,
        share: &Share,
        usable: &impl Fn(&Token) -> bool,
        fetch: &F,
        waited_out: impl FnOnce() -> E,
    ) -> Result<Token, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        let key = &self.tag;
        if let Ok(Some(t)) = share.shared(key).await {
            if usable(&t) {
                return Ok(t);
            }
        }
        let me = crate::tokens::random_id().unwrap_or_else(|_| "minigate".to_owned());
        match share.lock(key, &me).await {
            Ok(true) => self.fetch_locked(share, &me, fetch).await,
            Ok(false) => {
                // Another replica renews: wait for its token.
                let deadline = tokio::time::Instant::now() + self.timeout + LOCK_TTL;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(POLL).await;
                    if let Ok(Some(t)) = share.shared(key).await {
                        if usable(&t) {
                            return Ok(t);
                        }
                    }
                    // The holder gave up or died: its lock is gone, try again.
                    if let Ok(true) = share.lock(key, &me).await {
                        return self.fetch_locked(share, &me, fetch).await;
                    }
                }
                Err(waited_out())
            }
            Err(_) => fetch().await,
        }
    }

    /// Fetches while holding the cluster's lock as `me`, and shares what
    /// came.
    async fn fetch_locked<E, F, Fut>(&self, share: &Share, me: &str, fetch: &F) -> Result<Token, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Token, E>>,
    {
        let key = &self.tag;
        let fetched = fetch().await;
        if let Ok(t) = &fetched {
            if let Err(e) = share.put(key, t).await {
                tracing::warn!(platform = self.platform, appid = %self.appid, error = ?e.kind(), "could not share the app's access token");
            }
        }
        share.unlock(key, me).await;
        fetched
    }
}
