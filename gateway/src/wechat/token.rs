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
//! an expiry, and the token stored for the others, who wait for it (the
//! keeping is [`crate::outbound::kept`]'s, shared with Feishu's). A call
//! WeChat refuses with 40001/42001 renews the token once; if `stable_token`
//! answers with the very token just refused, the renewal forces a new one.
//! A token in use is renewed ahead of its expiry on the reload tick, so a
//! caller rarely waits for WeChat.
//!
//! A third-party platform's `component_access_token` is the same kind of
//! thing, kept by the same machinery: only its fetch differs
//! ([`TokenKind::Component`]: `api_component_token`, with the latest
//! `component_verify_ticket` WeChat pushed, from [`Tickets`]).

use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::client::{WxClient, WxError};
pub use super::component::Tickets;
pub use super::share::{Share, Token, TokenKind, MARGIN};
use crate::config::Secret;
use crate::outbound::kept::Kept;
use crate::telemetry::labels::Counters;

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
    kind: TokenKind,
    secret: Secret,
    base: String,
    url: Url,
    timeout: Duration,
    kept: Kept,
}

impl App {
    fn appid(&self) -> &str {
        self.kept.appid()
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

#[derive(Serialize)]
struct ComponentTokenAsk<'a> {
    component_appid: &'a str,
    component_appsecret: &'a str,
    component_verify_ticket: &'a str,
}

#[derive(Deserialize)]
struct ComponentTokenAnswer {
    component_access_token: String,
    expires_in: u64,
}

/// The access tokens of every configured WeChat app, and the
/// `component_access_token` of every third-party platform.
#[derive(Debug)]
pub struct AccessTokens {
    apps: Vec<(App, TokenMetrics)>,
    client: WxClient,
    share: Option<Share>,
    /// The third-party platforms' `component_verify_ticket`s.
    pub tickets: Tickets,
}

/// One app to keep a token for.
pub struct AppConfig<'a> {
    /// The appid (a third-party platform's `component_appid`).
    pub appid: &'a str,
    /// Which token.
    pub kind: TokenKind,
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
                let path = match a.kind {
                    TokenKind::Stable => "/cgi-bin/stable_token",
                    TokenKind::Component => "/cgi-bin/component/api_component_token",
                };
                let url = Url::parse(&format!("{}{path}", a.base_url)).ok()?;
                Some((
                    App {
                        kind: a.kind,
                        secret: a.secret.clone(),
                        base: a.base_url.to_owned(),
                        url,
                        timeout: a.timeout,
                        kept: Kept::new(a.kind.platform(), a.appid, a.timeout),
                    },
                    m,
                ))
            })
            .collect();
        AccessTokens {
            apps,
            client,
            tickets: Tickets::new(share.clone()),
            share,
        }
    }

    /// Whether `appid` is one of the (mini-program) apps.
    pub fn knows(&self, appid: &str) -> bool {
        self.app(appid, TokenKind::Stable).is_ok()
    }

    /// The app's token: the one in hand while it is fresh, else a renewed one.
    pub async fn get(&self, appid: &str) -> Result<Token, WxError> {
        self.get_kind(appid, TokenKind::Stable).await
    }

    /// The `component_access_token` of the third-party platform
    /// `component_appid`, likewise.
    pub async fn component(&self, component_appid: &str) -> Result<Token, WxError> {
        self.get_kind(component_appid, TokenKind::Component).await
    }

    async fn get_kind(&self, appid: &str, kind: TokenKind) -> Result<Token, WxError> {
        let (app, m) = self.app(appid, kind)?;
        if let Some(t) = app.kept.fresh() {
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
        self.call_with(appid, path, &[], Some(body)).await
    }

    /// GETs `path` of the app's WeChat API with `query` and its access
    /// token, renewed and retried once as [`AccessTokens::call`] does.
    pub async fn call_get<T: serde::de::DeserializeOwned>(
        &self,
        appid: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, WxError> {
        self.call_with(appid, path, query, None::<&()>).await
    }

    /// A POST of `body`, or without one a GET, of `path` with `query` and
    /// the app's access token.
    async fn call_with<T: serde::de::DeserializeOwned>(
        &self,
        appid: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&impl Serialize>,
    ) -> Result<T, WxError> {
        let (app, _) = self.app(appid, TokenKind::Stable)?;
        let mut token = self.get(appid).await?;
        for attempt in 0..2 {
            let mut url =
                Url::parse(&format!("{}{path}", app.base)).map_err(|_| WxError::Unusable)?;
            url.query_pairs_mut()
                .append_pair("access_token", token.expose())
                .extend_pairs(query);
            let answer = match body {
                Some(body) => self.client.post_json(url, body, app.timeout).await,
                None => self.client.get_json(url, app.timeout).await,
            };
            match answer {
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
            if app.kept.due() {
                // A failure is counted and logged inside; the next caller
                // or tick tries again.
                let _ = self.renew(app, m, None).await;
            }
        }
    }

    /// A new token after WeChat refused `rejected`.
    pub async fn renew_rejected(&self, appid: &str, rejected: &Token) -> Result<Token, WxError> {
        let (app, m) = self.app(appid, TokenKind::Stable)?;
        self.renew(app, m, Some(rejected)).await
    }

    /// A new `component_access_token` after WeChat refused `rejected` at
    /// a login's exchange.
    pub async fn component_rejected(
        &self,
        component_appid: &str,
        rejected: &Token,
    ) -> Result<Token, WxError> {
        let (app, m) = self.app(component_appid, TokenKind::Component)?;
        self.renew(app, m, Some(rejected)).await
    }

    fn app(&self, appid: &str, kind: TokenKind) -> Result<(&App, &TokenMetrics), WxError> {
        self.apps
            .iter()
            .find(|(a, _)| a.appid() == appid && a.kind == kind)
            .map(|(a, m)| (a, m))
            .ok_or(WxError::Unusable)
    }

    async fn renew(
        &self,
        app: &App,
        m: &TokenMetrics,
        rejected: Option<&Token>,
    ) -> Result<Token, WxError> {
        let token = app
            .kept
            .renew(
                self.share.as_ref(),
                rejected,
                || self.fetch(app, m, rejected),
                || {
                    m.failures.increment(WxError::Timeout);
                    WxError::Timeout
                },
            )
            .await?;
        m.expiry.set(token.expires_at() as f64);
        Ok(token)
    }

    /// Asks `stable_token`; forces a new token if it hands back the one
    /// WeChat just refused. A third-party platform's comes from
    /// `api_component_token`, new at every call.
    async fn fetch(
        &self,
        app: &App,
        m: &TokenMetrics,
        rejected: Option<&Token>,
    ) -> Result<Token, WxError> {
        if app.kind == TokenKind::Component {
            return self.component_token(app, m).await;
        }
        let mut token = self.stable_token(app, m, false).await?;
        if rejected.is_some_and(|r| r.expose() == token.expose()) {
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
            appid: app.appid(),
            secret: app.secret.expose(),
            force_refresh,
        };
        let answer: Result<StableTokenAnswer, WxError> = self
            .client
            .post_json(app.url.clone(), &ask, app.timeout)
            .await;
        let answer = answer.map(|a| (a.access_token, a.expires_in));
        Self::counted(app, m, answer)
    }

    async fn component_token(&self, app: &App, m: &TokenMetrics) -> Result<Token, WxError> {
        let Some(ticket) = self.tickets.current(app.appid()).await else {
            m.failures.increment(WxError::NoTicket);
            tracing::warn!(appid = %app.appid(), "no component_verify_ticket from WeChat yet: the component_access_token must wait for one");
            return Err(WxError::NoTicket);
        };
        let ask = ComponentTokenAsk {
            component_appid: app.appid(),
            component_appsecret: app.secret.expose(),
            component_verify_ticket: ticket.expose(),
        };
        let answer: Result<ComponentTokenAnswer, WxError> = self
            .client
            .post_json(app.url.clone(), &ask, app.timeout)
            .await;
        let answer = answer.map(|a| (a.component_access_token, a.expires_in));
        Self::counted(app, m, answer)
    }

    /// A fetched token (its value and lifetime) as a [`Token`], counted.
    fn counted(
        app: &App,
        m: &TokenMetrics,
        answer: Result<(String, u64), WxError>,
    ) -> Result<Token, WxError> {
        match answer {
            Ok((value, expires_in)) if !value.is_empty() && expires_in > 0 => {
                m.renewals.increment(1);
                tracing::info!(appid = %app.appid(), kind = ?app.kind, expires_in, "WeChat access token renewed");
                Ok(Token::new(value, expires_in))
            }
            Ok(_) => {
                m.failures.increment(WxError::Unusable);
                Err(WxError::Unusable)
            }
            Err(e) => {
                m.failures.increment(e);
                tracing::warn!(appid = %app.appid(), failure = e.label(), "WeChat access token renewal failed");
                Err(e)
            }
        }
    }
}
