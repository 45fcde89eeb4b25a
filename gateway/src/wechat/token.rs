//! The app's WeChat access token, for the gateway's own calls and for
//! backend services (served on the admin listener).
//!
//! Every instance that fetches the token on its own risks what WeChat's
//! SDK trackers are full of: the old `token` endpoint hands out a new token
//! and invalidates the previous one, so replicas overwrite each other and
//! calls fail with 40001. minigate uses `stable_token` (which returns the
//! same token while it is valid), keeps it until 5 minutes before it
//! expires, renews it one caller at a time in each process (single-flight),
//! and with Redis one replica at a time for the whole cluster: a lock with
//! an expiry, and the token stored for the others, who wait for it. A call
//! WeChat refuses with 40001/42001 renews the token once; if `stable_token`
//! answers with the very token just refused, the renewal forces a new one.
//! A token in use is renewed ahead of its expiry on the reload tick, so a
//! caller rarely waits for WeChat.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::client::{WxClient, WxError};
use crate::config::Secret;
use crate::telemetry::labels::Counters;
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
    /// The token itself: for the one call that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Seconds until it expires.
    pub fn expires_in(&self) -> u64 {
        self.expires_at.saturating_sub(now_secs())
    }

    fn fresh(&self) -> bool {
        now_secs().saturating_add(MARGIN) < self.expires_at
    }
}

/// The metrics of one app's token.
#[derive(Debug)]
pub struct TokenMetrics {
    /// Tokens fetched from WeChat.
    pub renewals: metrics::Counter,
    /// Failed fetches, by kind.
    pub failures: Counters<WxError>,
    /// When the token in hand expires (unix seconds).
    pub expiry: metrics::Gauge,
}

/// One WeChat app's token.
#[derive(Debug)]
struct App {
    appid: String,
    secret: Secret,
    base: String,
    url: Url,
    timeout: Duration,
    cached: Mutex<Option<Token>>,
    renewing: tokio::sync::Mutex<()>,
}

impl App {
    fn cached(&self) -> Option<Token> {
        self.cached.lock().ok().and_then(|c| c.clone())
    }

    fn keep(&self, token: &Token) {
        if let Ok(mut c) = self.cached.lock() {
            *c = Some(token.clone());
        }
    }
}

/// Where replicas share the token: Redis.
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

    /// Keys of one app, under one hash tag so they share a Cluster slot.
    fn key(appid: &str, what: &str) -> String {
        format!("minigate:{{wechat:{appid}}}:{what}")
    }

    async fn shared(&self, appid: &str) -> redis::RedisResult<Option<Token>> {
        let mut con = self.redis.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(Self::key(appid, "access_token"))
            .query_async(&mut con)
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    async fn put(&self, appid: &str, token: &Token) -> redis::RedisResult<()> {
        let mut con = self.redis.clone();
        let ttl = token.expires_in().max(1);
        let value = serde_json::to_string(token).unwrap_or_default();
        redis::cmd("SET")
            .arg(Self::key(appid, "access_token"))
            .arg(value)
            .arg("EX")
            .arg(ttl)
            .query_async(&mut con)
            .await
    }

    async fn lock(&self, appid: &str, me: &str) -> redis::RedisResult<bool> {
        let mut con = self.redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(Self::key(appid, "renewing"))
            .arg(me)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_TTL.as_millis() as u64)
            .query_async(&mut con)
            .await?;
        Ok(set.is_some())
    }

    async fn unlock(&self, appid: &str, me: &str) {
        let mut con = self.redis.clone();
        let _: redis::RedisResult<i64> = redis::Script::new(UNLOCK)
            .key(Self::key(appid, "renewing"))
            .arg(me)
            .invoke_async(&mut con)
            .await;
    }
}

#[derive(Serialize)]
struct StableTokenAsk<'a> {
    grant_type: &'static str,
    appid: &'a str,
    secret: &'a str,
    force_refresh: bool,
}

#[derive(Deserialize)]
struct StableTokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// The access tokens of every configured WeChat app.
#[derive(Debug)]
pub struct AccessTokens {
    apps: Vec<(App, TokenMetrics)>,
    client: WxClient,
    share: Option<Share>,
}

/// One app to keep a token for.
pub struct AppConfig<'a> {
    /// The appid.
    pub appid: &'a str,
    /// Its secret.
    pub secret: &'a Secret,
    /// The WeChat API base URL.
    pub base_url: &'a str,
    /// The deadline of one call.
    pub timeout: Duration,
}

impl AccessTokens {
    /// Tokens for `apps`, fetched with `client`, shared through `share`.
    pub fn new(
        apps: Vec<(AppConfig<'_>, TokenMetrics)>,
        client: WxClient,
        share: Option<Share>,
    ) -> AccessTokens {
        let apps = apps
            .into_iter()
            .filter_map(|(a, m)| {
                let url = Url::parse(&format!("{}/cgi-bin/stable_token", a.base_url)).ok()?;
                Some((
                    App {
                        appid: a.appid.to_owned(),
                        secret: a.secret.clone(),
                        base: a.base_url.to_owned(),
                        url,
                        timeout: a.timeout,
                        cached: Mutex::new(None),
                        renewing: tokio::sync::Mutex::new(()),
                    },
                    m,
                ))
            })
            .collect();
        AccessTokens {
            apps,
            client,
            share,
        }
    }

    /// Whether `appid` is one of the apps.
    pub fn knows(&self, appid: &str) -> bool {
        self.apps.iter().any(|(a, _)| a.appid == appid)
    }

    /// The app's token: the one in hand while it is fresh, else a renewed one.
    pub async fn get(&self, appid: &str) -> Result<Token, WxError> {
        let (app, m) = self.app(appid)?;
        if let Some(t) = app.cached().filter(Token::fresh) {
            return Ok(t);
        }
        self.renew(app, m, None).await
    }

    /// Calls `path` of the app's WeChat API with its access token (as the
    /// `access_token` query parameter) and `body`; a call WeChat refuses
    /// for its token renews the token once and is retried once.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        appid: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, WxError> {
        let (app, _) = self.app(appid)?;
        let mut token = self.get(appid).await?;
        for attempt in 0..2 {
            let mut url =
                Url::parse(&format!("{}{path}", app.base)).map_err(|_| WxError::Unusable)?;
            url.query_pairs_mut()
                .append_pair("access_token", token.expose());
            match self.client.post_json(url, body, app.timeout).await {
                Err(WxError::TokenRejected) if attempt == 0 => {
                    tracing::info!(appid, "WeChat refused the access token; renewing it once");
                    token = self.renew_rejected(appid, &token).await?;
                }
                other => return other,
            }
        }
        Err(WxError::TokenRejected)
    }

    /// Renews every token in use that is within [`MARGIN`] of its expiry,
    /// so callers (and backend services on the admin listener) find a fresh
    /// one in hand. Apps whose token nobody has asked for are left alone.
    pub async fn renew_due(&self) {
        for (app, m) in &self.apps {
            let due = app.cached().is_some_and(|t| !t.fresh());
            if due {
                // A failure is counted and logged inside; the next caller
                // or tick tries again.
                let _ = self.renew(app, m, None).await;
            }
        }
    }

    /// A new token after WeChat refused `rejected`.
    pub async fn renew_rejected(&self, appid: &str, rejected: &Token) -> Result<Token, WxError> {
        let (app, m) = self.app(appid)?;
        self.renew(app, m, Some(rejected)).await
    }

    fn app(&self, appid: &str) -> Result<(&App, &TokenMetrics), WxError> {
        self.apps
            .iter()
            .find(|(a, _)| a.appid == appid)
            .map(|(a, m)| (a, m))
            .ok_or(WxError::Unusable)
    }

    async fn renew(
        &self,
        app: &App,
        m: &TokenMetrics,
        rejected: Option<&Token>,
    ) -> Result<Token, WxError> {
        let usable = |t: &Token| t.fresh() && Some(t) != rejected;
        let _one_at_a_time = app.renewing.lock().await;
        // Renewed by another caller while this one waited.
        if let Some(t) = app.cached().filter(usable) {
            return Ok(t);
        }
        let token = match &self.share {
            None => self.fetch(app, m, rejected).await?,
            Some(share) => self.renew_shared(share, app, m, rejected, &usable).await?,
        };
        app.keep(&token);
        m.expiry.set(token.expires_at as f64);
        Ok(token)
    }

    /// The renewal when replicas share the token through Redis. Redis being
    /// unreachable is no reason to fail: this replica then renews alone.
    async fn renew_shared(
        &self,
        share: &Share,
        app: &App,
        m: &TokenMetrics,
        rejected: Option<&Token>,
        usable: &impl Fn(&Token) -> bool,
    ) -> Result<Token, WxError> {
        if let Ok(Some(t)) = share.shared(&app.appid).await {
            if usable(&t) {
                return Ok(t);
            }
        }
        let me = crate::tokens::random_id().unwrap_or_else(|_| "minigate".to_owned());
        match share.lock(&app.appid, &me).await {
            Ok(true) => {
                let fetched = self.fetch(app, m, rejected).await;
                if let Ok(t) = &fetched {
                    if let Err(e) = share.put(&app.appid, t).await {
                        tracing::warn!(appid = %app.appid, error = ?e.kind(), "could not share the WeChat access token");
                    }
                }
                share.unlock(&app.appid, &me).await;
                fetched
            }
            Ok(false) => {
                // Another replica renews: wait for its token.
                let deadline = tokio::time::Instant::now() + app.timeout + LOCK_TTL;
                while tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(POLL).await;
                    if let Ok(Some(t)) = share.shared(&app.appid).await {
                        if usable(&t) {
                            return Ok(t);
                        }
                    }
                    // The holder gave up or died: its lock is gone, try again.
                    if let Ok(true) = share.lock(&app.appid, &me).await {
                        let fetched = self.fetch(app, m, rejected).await;
                        if let Ok(t) = &fetched {
                            let _ = share.put(&app.appid, t).await;
                        }
                        share.unlock(&app.appid, &me).await;
                        return fetched;
                    }
                }
                m.failures.increment(WxError::Timeout);
                Err(WxError::Timeout)
            }
            Err(_) => self.fetch(app, m, rejected).await,
        }
    }

    /// Asks `stable_token`; forces a new token if it hands back the one
    /// WeChat just refused.
    async fn fetch(
        &self,
        app: &App,
        m: &TokenMetrics,
        rejected: Option<&Token>,
    ) -> Result<Token, WxError> {
        let mut token = self.stable_token(app, m, false).await?;
        if rejected.is_some_and(|r| r.value == token.value) {
            token = self.stable_token(app, m, true).await?;
        }
        Ok(token)
    }

    async fn stable_token(
        &self,
        app: &App,
        m: &TokenMetrics,
        force_refresh: bool,
    ) -> Result<Token, WxError> {
        let ask = StableTokenAsk {
            grant_type: "client_credential",
            appid: &app.appid,
            secret: app.secret.expose(),
            force_refresh,
        };
        let answer: Result<StableTokenAnswer, WxError> = self
            .client
            .post_json(app.url.clone(), &ask, app.timeout)
            .await;
        match answer {
            Ok(a) if !a.access_token.is_empty() && a.expires_in > 0 => {
                m.renewals.increment(1);
                tracing::info!(appid = %app.appid, expires_in = a.expires_in, force_refresh, "WeChat access token renewed");
                Ok(Token {
                    value: a.access_token,
                    expires_at: now_secs() + a.expires_in,
                })
            }
            Ok(_) => {
                m.failures.increment(WxError::Unusable);
                Err(WxError::Unusable)
            }
            Err(e) => {
                m.failures.increment(e);
                tracing::warn!(appid = %app.appid, failure = e.label(), "WeChat access token renewal failed");
                Err(e)
            }
        }
    }
}
