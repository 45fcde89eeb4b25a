//! What replicas share of WeChat's tokens through Redis: the token itself
//! under its app's hash tag, and the lock that lets one replica at a time
//! renew it ([`Share`]). The token machinery ([`super::token`]) and a
//! third-party platform's tickets ([`super::component`]) both keep their
//! state here, so neither needs the other's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::tokens::now_secs;

/// How long before its expiry a token is renewed.
pub const MARGIN: u64 = 300;
/// How long the cluster-wide renewal lock is held at most.
pub(super) const LOCK_TTL: Duration = Duration::from_secs(10);

/// An access token and when it expires.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub(super) value: String,
    /// Unix seconds.
    pub(super) expires_at: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// The token itself: for the one call that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Seconds until it expires.
    pub fn expires_in(&self) -> u64 {
        self.expires_at.saturating_sub(now_secs())
    }

    pub(super) fn fresh(&self) -> bool {
        now_secs().saturating_add(MARGIN) < self.expires_at
    }
}

/// Which of WeChat's tokens an app keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A mini-program's access token, from `stable_token`.
    Stable,
    /// A third-party platform's `component_access_token`, from
    /// `api_component_token`.
    Component,
}

impl TokenKind {
    /// The hash tag of an app's keys in Redis.
    pub(super) fn tag(self, appid: &str) -> String {
        match self {
            TokenKind::Stable => format!("wechat:{appid}"),
            TokenKind::Component => format!("wechat_component:{appid}"),
        }
    }
}

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

    /// Keys of one app (its [`TokenKind::tag`]), under one hash tag so
    /// they share a Cluster slot.
    fn key(tag: &str, what: &str) -> String {
        format!("minigate:{{{tag}}}:{what}")
    }

    /// The value of `what` of the app tagged `tag`.
    pub(super) async fn get(&self, tag: &str, what: &str) -> redis::RedisResult<Option<String>> {
        let mut con = self.redis.clone();
        redis::cmd("GET")
            .arg(Self::key(tag, what))
            .query_async(&mut con)
            .await
    }

    /// Sets `what` of the app tagged `tag` to `value` for `ttl` seconds.
    pub(super) async fn set(
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

    pub(super) async fn shared(&self, tag: &str) -> redis::RedisResult<Option<Token>> {
        let raw = self.get(tag, "access_token").await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    pub(super) async fn put(&self, tag: &str, token: &Token) -> redis::RedisResult<()> {
        let value = serde_json::to_string(token).unwrap_or_default();
        self.set(tag, "access_token", &value, token.expires_in())
            .await
    }

    pub(super) async fn lock(&self, tag: &str, me: &str) -> redis::RedisResult<bool> {
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

    pub(super) async fn unlock(&self, tag: &str, me: &str) {
        let mut con = self.redis.clone();
        let _: redis::RedisResult<i64> = redis::Script::new(UNLOCK)
            .key(Self::key(tag, "renewing"))
            .arg(me)
            .invoke_async(&mut con)
            .await;
    }
}
