//! Code exchange: trading a mini-program login code for the user's identity.
//!
//! Each platform speaks its own wire format and error codes, so each has one
//! file here holding all it knows: a [`PlatformSpec`] (its name, default
//! base URL and the kind of credentials it needs) and an [`Exchange`] (the
//! request it sends, and how its answer maps onto a [`Exchanged`] or an
//! [`ExchangeError`]). The registry below lists the files; config parsing,
//! metrics, the error table and `config check` read the platform from it, so
//! adding a platform is its file, its `mod` line and one entry in
//! [`PLATFORMS`] below.
//!
//! A platform whose exchange is made with an app access token fetched first
//! (Feishu's `app_access_token`) says so with [`Exchange::app_token`]: the
//! token is then fetched, kept and shared across replicas by [`Provider`]
//! ([`crate::outbound::kept`]), and renewed once when the exchange's answer
//! says it was refused.
//!
//! What every platform shares is done once here, by [`Provider`], over
//! [`crate::outbound`] (the timeout, redirects refused, transport errors
//! classified without ever being formatted, the answer read within a size
//! limit): HTTP 5xx as busy and 3xx as unusable, the ids checked fit for
//! headers, and one log line per exchange.

use std::fmt;
use std::time::{Duration, Instant};

use http::StatusCode;

pub use crate::config::CredentialKind;
use crate::config::{is_header_safe, ProviderConfig, Secret};
use crate::error::ApiError;
use crate::outbound::kept::{Kept, Share, Token};
use crate::outbound::{self, CallError};
use crate::telemetry::labels::label_enum;
use crate::telemetry::metrics::Counters;
use metrics::Histogram;

pub mod alipay;
pub mod baidu;
pub mod douyin;
pub mod feishu;
pub mod kuaishou;
pub mod qq;
pub mod wechat;
pub mod wechat_component;
pub mod wechat_pc;
pub mod wechat_web;

/// Every platform minigate can exchange codes with, in the order they are
/// listed to operators: the registry. (The modules are declared plainly,
/// not by a macro with this list, so that `cargo fmt` reaches their files;
/// a test checks that every platform file here is listed.)
static PLATFORMS: &[&PlatformSpec] = &[
    &wechat::PLATFORM,
    &qq::PLATFORM,
    &douyin::PLATFORM,
    &baidu::PLATFORM,
    &alipay::PLATFORM,
    &kuaishou::PLATFORM,
    &feishu::PLATFORM,
    &wechat_web::PLATFORM,
    &wechat_pc::PLATFORM,
    &wechat_component::PLATFORM,
];

/// The platforms' error codes in operators' terms.
pub mod meaning;

/// How a platform's users sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// A mini-program's login code, traded at `POST /auth/login`.
    MiniProgram,
    /// A browser: an authorize page and a callback ([`crate::signin::web`]).
    Browser(Browser),
}

/// What a browser sign-in's authorize redirect and session are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Browser {
    /// The authorize page's path on `authorize_url`.
    pub authorize_path: &'static str,
    /// The OAuth scope asked for.
    pub scope: &'static str,
    /// The device class of its sessions.
    pub device_type: &'static str,
}

/// A platform's entry in the registry.
pub struct PlatformSpec {
    /// How its users sign in.
    pub sign_in: SignIn,
    /// The name in config, in the `platform` claim and in `X-Auth-Platform`.
    pub name: &'static str,
    /// The API's base URL when the config names none.
    pub default_base_url: &'static str,
    /// Which credentials its providers are configured with.
    pub credentials: CredentialKind,
    /// Builds the client of one configured mini-program.
    pub build: fn(&ProviderConfig) -> Result<Box<dyn Exchange>, ProviderSetupError>,
}

/// A platform of the registry. Cheap to copy and compare.
#[derive(Clone, Copy)]
pub struct Platform(&'static PlatformSpec);

impl Platform {
    /// The platform named `name` in config.
    pub fn named(name: &str) -> Option<Platform> {
        Self::all().find(|p| p.name() == name)
    }

    /// WeChat, whose services after the login (the app's access token, the
    /// phone number, decryption) the gateway also speaks.
    pub fn wechat() -> Platform {
        Platform(&wechat::PLATFORM)
    }

    /// A WeChat third-party platform, logging in the mini-programs that
    /// authorized it.
    pub fn wechat_component() -> Platform {
        Platform(&wechat_component::PLATFORM)
    }

    /// Every platform, in registry order.
    pub fn all() -> impl Iterator<Item = Platform> {
        PLATFORMS.iter().map(|spec| Platform(spec))
    }

    /// The name used in config, tokens and headers.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The platform API's base URL when the config names none.
    pub fn default_base_url(self) -> &'static str {
        self.0.default_base_url
    }

    /// What its providers are configured with.
    pub fn credentials(self) -> CredentialKind {
        self.0.credentials
    }

    /// The browser sign-in it is, if it is one rather than a mini-program.
    pub fn browser(self) -> Option<Browser> {
        match self.0.sign_in {
            SignIn::Browser(b) => Some(b),
            SignIn::MiniProgram => None,
        }
    }

    /// Is it a browser sign-in (served by [`crate::signin::web`], never by
    /// `POST /auth/login`)?
    pub fn is_web(self) -> bool {
        self.browser().is_some()
    }
}

impl PartialEq for Platform {
    fn eq(&self, other: &Platform) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Platform {}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Code-exchange metrics of one platform.
#[derive(Debug)]
pub struct ExchangeMetrics {
    /// Time of each exchange, whatever its outcome.
    pub latency: Histogram,
    /// Failed exchanges, by the contract's error code.
    pub errors: Counters<ExchangeError>,
}

/// One platform's code exchange: the call, and the reading of its answer.
/// The HTTP around them (timeout, status, size limit) is [`Provider`]'s.
pub trait Exchange: Send + Sync {
    /// The call that trades `login`'s code. It may hold the app secret or
    /// a signature: it is never logged.
    fn request(
        &self,
        http: &reqwest::Client,
        login: &Login<'_>,
    ) -> Result<reqwest::RequestBuilder, ExchangeError>;

    /// Maps the platform's answer (any status but 3xx and 5xx, which are
    /// decided before; the body whatever its Content-Type) onto a session
    /// or one of the contract's errors.
    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError>;

    /// The app access token the exchange is made with, for the platforms
    /// that need one first; `None` for the rest.
    fn app_token(&self) -> Option<&dyn AppToken> {
        None
    }
}

/// A platform's app access token: the call that fetches it and the reading
/// of its answers. [`Provider`] keeps it ([`crate::outbound::kept`]).
pub trait AppToken: Send + Sync {
    /// The call that fetches a token. It holds the app secret: it is never
    /// logged.
    fn request(&self, http: &reqwest::Client) -> Result<reqwest::RequestBuilder, ExchangeError>;

    /// The token and the seconds it lives, from the fetch's answer (any
    /// status but 3xx and 5xx).
    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<(String, u64), ExchangeError>;

    /// Whether the exchange's answer says the token was refused (expired,
    /// or replaced): the token is then renewed and the exchange retried,
    /// once.
    fn refused(&self, status: StatusCode, body: &[u8]) -> bool;
}

/// What a client sends to log in.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// The mini-program the code is for: the provider's own, or one a
    /// third-party platform logs in.
    pub appid: &'a str,
    /// The platform's access token the exchange carries, for platforms
    /// whose exchange needs one (a third-party platform's
    /// `component_access_token`); fetched by the login, never logged.
    pub platform_token: Option<&'a str>,
    /// The login code (`wx.login`'s `code`, `my.getAuthCode`'s `authCode`…).
    pub code: &'a str,
    /// Douyin's `anonymousCode`, when the client sent one.
    pub anonymous_code: Option<&'a str>,
    /// The app access token, on the platforms that need one ([`AppToken`]):
    /// set by [`Provider`], never by the client.
    pub app_token: Option<&'a str>,
}

/// What a successful exchange yields.
pub struct Exchanged {
    /// The user's id within this mini-program.
    pub openid: String,
    /// The user's id across the developer's apps, when the platform gives one.
    pub unionid: Option<String>,
    /// The platform's session key, on the platforms that have one (Alipay
    /// has none). It never leaves the gateway.
    pub session_key: Option<Secret>,
    /// Douyin's id of the anonymous user behind `anonymous_code`, when the
    /// login sent one.
    pub anonymous_openid: Option<String>,
    /// The organisation the user belongs to, on the platforms whose users
    /// are an organisation's (Feishu's `tenant_key`).
    pub tenant: Option<String>,
}

/// An id or key a platform gave, if it gave one: platforms write an absent
/// one as an empty string as often as they leave it out.
pub(super) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl Exchanged {
    /// A user of `openid`, with the ids and key the platform gave.
    pub fn new(openid: String, unionid: Option<String>, session_key: Option<Secret>) -> Exchanged {
        Exchanged {
            openid,
            unionid,
            session_key,
            anonymous_openid: None,
            tenant: None,
        }
    }
}

impl fmt::Debug for Exchanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchanged")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .field("anonymous_openid", &self.anonymous_openid)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

label_enum! {
    /// Why an exchange failed, in the contract's terms.
    pub enum ExchangeError by ExchangeError::code {
        /// The code is bad or already used.
        InvalidCode,
        /// The platform rate-limited the app.
        RateLimited,
        /// The platform refuses this user as risky.
        RiskyUser,
        /// The platform refuses this user the app (Feishu: the app is not
        /// visible to them).
        Refused,
        /// The platform is busy or unreachable.
        Unavailable,
        /// The platform did not answer within the provider's timeout.
        Timeout,
        /// The mini-program has not authorized the third-party platform
        /// that logs it in (WeChat's 61003).
        NotAuthorized,
        /// The answer cannot be used (not JSON, no openid, unknown errcode, a
        /// signature that does not verify…).
        Unusable,
        /// The platform refused the access token the exchange carried (a
        /// third-party platform's `component_access_token`): the login
        /// renews it and tries once more; twice refused, it is unusable.
        TokenRefused,
    }
}

impl From<ExchangeError> for ApiError {
    fn from(e: ExchangeError) -> ApiError {
        match e {
            ExchangeError::InvalidCode => ApiError::InvalidCode,
            // WeChat's jscode2session limit is per minute.
            ExchangeError::RateLimited => ApiError::RateLimited(60),
            ExchangeError::RiskyUser => ApiError::RiskyUser,
            ExchangeError::Refused => ApiError::AccessDenied,
            ExchangeError::Unavailable => ApiError::ProviderUnavailable,
            ExchangeError::Timeout => ApiError::ProviderTimeout,
            ExchangeError::NotAuthorized => {
                ApiError::InvalidRequest(crate::wechat::client::NOT_AUTHORIZED)
            }
            ExchangeError::Unusable | ExchangeError::TokenRefused => ApiError::ProviderError,
        }
    }
}

impl ExchangeError {
    /// The contract's error code it answers with, which is also its
    /// metric label.
    pub fn code(self) -> &'static str {
        ApiError::from(self).code()
    }
}

/// A provider that could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderSetupError {
    /// The shared HTTPS client could not be made.
    #[error("could not build the HTTP client for code exchange")]
    Client,
    /// A base URL that does not make an endpoint URL.
    #[error("providers: base_url of {appid} is not a URL")]
    BaseUrl {
        /// The provider's appid.
        appid: String,
    },
    /// Credentials of another kind than the platform's.
    #[error("providers: {appid} lacks the credentials its platform needs")]
    Credentials {
        /// The provider's appid.
        appid: String,
    },
    /// A web sign-in given where a mini-program's exchange was expected.
    #[error("providers: {appid} is a web sign-in, not a mini-program")]
    NotMiniProgram {
        /// The provider's appid.
        appid: String,
    },
}

/// The endpoint `base` + `path`, or the setup error naming `appid`.
pub fn endpoint(config: &ProviderConfig, path: &str) -> Result<reqwest::Url, ProviderSetupError> {
    reqwest::Url::parse(&format!("{}{path}", config.base_url)).map_err(|_| {
        ProviderSetupError::BaseUrl {
            appid: config.appid.clone(),
        }
    })
}

/// The app secret of `config`, for platforms that use one.
pub fn secret_of(config: &ProviderConfig) -> Result<Secret, ProviderSetupError> {
    config
        .secret()
        .cloned()
        .ok_or_else(|| ProviderSetupError::Credentials {
            appid: config.appid.clone(),
        })
}

/// An app that proves itself with its secret, and the endpoint of its
/// exchange: what Baidu's and Kuaishou's clients are made of.
pub struct SecretApp {
    /// The appid.
    pub appid: String,
    /// The app secret.
    pub secret: Secret,
    /// The exchange's URL.
    pub endpoint: reqwest::Url,
}

impl SecretApp {
    /// The app of `config`, exchanging at `path` of its base URL.
    pub fn new(config: &ProviderConfig, path: &str) -> Result<SecretApp, ProviderSetupError> {
        Ok(SecretApp {
            appid: config.appid.clone(),
            secret: secret_of(config)?,
            endpoint: endpoint(config, path)?,
        })
    }

    /// A form POST of `pairs` to the endpoint.
    pub fn post_form(
        &self,
        http: &reqwest::Client,
        pairs: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        http.post(self.endpoint.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form(pairs))
    }
}

/// Checks that `read` refuses each `(status, body)` of `cases` with its
/// error: the providers' tables of refusals.
#[cfg(test)]
pub(crate) fn assert_refusals<T: fmt::Debug>(
    read: impl Fn(StatusCode, &[u8]) -> Result<T, ExchangeError>,
    cases: &[(StatusCode, &[u8], ExchangeError)],
) {
    for (status, body, want) in cases {
        assert_eq!(
            read(*status, body).unwrap_err(),
            *want,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// `application/x-www-form-urlencoded` text of `pairs` (the WHATWG
/// serializer: `*-._` and alphanumerics kept, space as `+`).
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// One configured mini-program and the client for its platform.
pub struct Provider {
    /// The mini-program's appid (`client_id` of its tokens); a third-party
    /// platform's `component_appid`.
    pub appid: String,
    /// Its platform.
    pub platform: Platform,
    /// A third-party platform's keys and the mini-programs it logs in.
    pub component: Option<crate::config::ComponentConfig>,
    /// WeChat's risk rank asked at login, if configured.
    pub risk: Option<crate::config::RiskConfig>,
    timeout: Duration,
    http: reqwest::Client,
    wire: Box<dyn Exchange>,
    /// The app access token, on the platforms that need one.
    token: Option<Kept>,
    share: Option<Share>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("appid", &self.appid)
            .field("platform", &self.platform)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Builds the provider's client. `http` is shared by all providers.
    pub fn new(
        config: &ProviderConfig,
        http: reqwest::Client,
    ) -> Result<Provider, ProviderSetupError> {
        let wire = (config.platform.0.build)(config)?;
        let token = wire
            .app_token()
            .map(|_| Kept::new(config.platform.name(), &config.appid, config.timeout));
        Ok(Provider {
            appid: config.appid.clone(),
            platform: config.platform,
            component: config.component.clone(),
            risk: config.risk,
            timeout: config.timeout,
            http,
            wire,
            token,
            share: None,
        })
    }

    /// Trades a login code for the user's session.
    pub async fn exchange(&self, login: &Login<'_>) -> Result<Exchanged, ExchangeError> {
        let started = Instant::now();
        let result = self.call(login).await.and_then(|session| {
            // Ids travel in headers and tokens: refuse anything that cannot.
            let fits = |id: Option<&str>| id.is_none_or(|id| is_header_safe(id, 128));
            if is_header_safe(&session.openid, 128)
                && fits(session.unionid.as_deref())
                && fits(session.anonymous_openid.as_deref())
                && fits(session.tenant.as_deref())
            {
                Ok(session)
            } else {
                tracing::warn!(appid = %self.appid, "code exchange returned an unusable openid, unionid or tenant");
                Err(ExchangeError::Unusable)
            }
        });
        let ms = started.elapsed().as_millis() as u64;
        let platform = self.platform.name();
        match &result {
            Ok(_) => tracing::debug!(appid = %self.appid, platform, ms, "code exchange succeeded"),
            Err(e) => {
                tracing::warn!(appid = %self.appid, platform, ms, error = ?e, "code exchange failed")
            }
        }
        result
    }

    async fn call(&self, login: &Login<'_>) -> Result<Exchanged, ExchangeError> {
        let (Some(wire), Some(kept)) = (self.wire.app_token(), &self.token) else {
            let (status, body) = self.send(self.wire.request(&self.http, login)?).await?;
            return self.wire.interpret(status, &body);
        };
        let token = match kept.fresh() {
            Some(t) => t,
            None => self.renew(wire, kept, None).await?,
        };
        let (status, body) = self.call_with(login, &token).await?;
        if !wire.refused(status, &body) {
            return self.wire.interpret(status, &body);
        }
        tracing::info!(appid = %self.appid, platform = self.platform.name(), "the platform refused the app access token; renewing it once");
        let token = self.renew(wire, kept, Some(&token)).await?;
        let (status, body) = self.call_with(login, &token).await?;
        self.wire.interpret(status, &body)
    }

    /// The exchange of `login` made with the app access token `token`.
    async fn call_with(
        &self,
        login: &Login<'_>,
        token: &Token,
    ) -> Result<(StatusCode, Vec<u8>), ExchangeError> {
        let login = Login {
            app_token: Some(token.expose()),
            ..*login
        };
        self.send(self.wire.request(&self.http, &login)?).await
    }

    /// Sends one call to the platform: its answer's status and body, an
    /// HTTP 5xx as busy and a 3xx as unusable.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), ExchangeError> {
        let res = outbound::send(req, self.timeout).await?;
        let status = res.status();
        if status.is_server_error() || status.is_redirection() {
            // 3xx included: redirects are never followed.
            tracing::warn!(appid = %self.appid, status = status.as_u16(), "the platform answered with an HTTP error");
            return Err(if status.is_server_error() {
                ExchangeError::Unavailable
            } else {
                ExchangeError::Unusable
            });
        }
        let body = outbound::read(res).await.inspect_err(|e| {
            if *e == CallError::TooLarge {
                tracing::warn!(appid = %self.appid, "the platform's answer is over 64 KiB");
            }
        })?;
        Ok((status, body))
    }

    /// A fresh app access token other than `rejected`, kept for the next
    /// logins and shared with the other replicas.
    async fn renew(
        &self,
        wire: &dyn AppToken,
        kept: &Kept,
        rejected: Option<&Token>,
    ) -> Result<Token, ExchangeError> {
        let fetch = || async {
            let (status, body) = self.send(wire.request(&self.http)?).await?;
            let (value, expires_in) = wire.interpret(status, &body)?;
            tracing::info!(appid = %self.appid, platform = self.platform.name(), expires_in, "app access token renewed");
            Ok(Token::new(value, expires_in))
        };
        kept.renew(self.share.as_ref(), rejected, fetch, || ExchangeError::Timeout)
            .await
            .inspect_err(|e| tracing::warn!(appid = %self.appid, platform = self.platform.name(), error = ?e, "app access token renewal failed"))
    }

    /// Renews the app access token if it is in use and near its expiry,
    /// so logins find a fresh one in hand.
    pub async fn renew_due(&self) {
        if let (Some(wire), Some(kept)) = (self.wire.app_token(), &self.token) {
            if kept.due() {
                // Logged inside; the next login or tick tries again.
                let _ = self.renew(wire, kept, None).await;
            }
        }
    }
}

impl From<CallError> for ExchangeError {
    fn from(e: CallError) -> ExchangeError {
        match e {
            CallError::Timeout => ExchangeError::Timeout,
            CallError::Connect => ExchangeError::Unavailable,
            CallError::Body | CallError::Other | CallError::TooLarge => ExchangeError::Unusable,
        }
    }
}

/// The gateway's outbound HTTPS client ([`outbound::client`]), failing as
/// a provider's setup does.
pub fn outbound_client() -> Result<reqwest::Client, ProviderSetupError> {
    outbound::client().map_err(|_| ProviderSetupError::Client)
}

/// The configured providers, looked up by appid.
#[derive(Debug, Default)]
pub struct Providers {
    list: Vec<Provider>,
}

impl Providers {
    /// Builds every configured mini-program provider over one shared HTTP
    /// client (web sign-ins are [`crate::signin::web`]'s).
    pub fn new(configs: &[ProviderConfig]) -> Result<Providers, ProviderSetupError> {
        let http = outbound_client()?;
        let list = configs
            .iter()
            .filter(|c| !c.platform.is_web())
            .map(|c| Provider::new(c, http.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Providers { list })
    }

    /// Shares the providers' app access tokens with the other replicas
    /// through `share` (the session store's Redis).
    pub fn sharing(mut self, share: Option<Share>) -> Providers {
        for p in &mut self.list {
            p.share = share.clone();
        }
        self
    }

    /// Renews the app access tokens in use that are near their expiry: run
    /// on the reload tick.
    pub async fn renew_due(&self) {
        for p in &self.list {
            p.renew_due().await;
        }
    }

    /// The provider for a login and the mini-program it logs in to: the
    /// provider of `appid`, else the third-party platform that lists it,
    /// else one that takes any authorized appid; without `appid`, the only
    /// provider (a third-party platform's only mini-program).
    pub fn pick<'a>(&'a self, appid: Option<&'a str>) -> Result<Picked<'a>, ApiError> {
        let own = |p: &&Provider| p.component.is_none();
        if let Some(id) = appid {
            let listed = |p: &&Provider| {
                p.component
                    .as_ref()
                    .is_some_and(|c| c.appids.iter().any(|a| a == id))
            };
            let any = |p: &&Provider| p.component.as_ref().is_some_and(|c| c.allow_any_authorized);
            if let Some(p) = self.list.iter().filter(own).find(|p| p.appid == id) {
                return Ok(Picked {
                    provider: p,
                    appid: &p.appid,
                });
            }
            return match self
                .list
                .iter()
                .find(listed)
                .or_else(|| self.list.iter().find(any))
            {
                Some(p) => Ok(Picked {
                    provider: p,
                    appid: id,
                }),
                None => Err(ApiError::InvalidRequest("unknown appid")),
            };
        }
        let provider = pick(
            &self.list,
            None,
            |p| &p.appid,
            [
                "no mini-program is configured for login",
                "appid is required: several mini-programs are configured",
            ],
        )?;
        match &provider.component {
            None => Ok(Picked {
                provider,
                appid: &provider.appid,
            }),
            // A platform of one mini-program: that one.
            Some(c) if !c.allow_any_authorized && c.appids.len() == 1 => Ok(Picked {
                provider,
                appid: &c.appids[0],
            }),
            Some(_) => Err(ApiError::InvalidRequest(
                "appid is required: a third-party platform logs in several mini-programs",
            )),
        }
    }
}

impl Providers {
    /// The third-party platform `component_appid`.
    pub fn component(&self, component_appid: &str) -> Option<&Provider> {
        self.list
            .iter()
            .find(|p| p.component.is_some() && p.appid == component_appid)
    }
}

/// A login's provider and the mini-program it logs in to.
#[derive(Debug, Clone, Copy)]
pub struct Picked<'a> {
    /// The provider.
    pub provider: &'a Provider,
    /// The mini-program (`client_id`): the provider's own appid, or one
    /// its third-party platform logs in.
    pub appid: &'a str,
}

impl Picked<'_> {
    /// The third-party platform that logs the user in, if one does.
    pub fn component_appid(&self) -> Option<&str> {
        self.provider
            .component
            .as_ref()
            .map(|_| self.provider.appid.as_str())
    }
}

/// The app named by `appid` among `apps`, or the only one when `appid` is
/// absent: what both sign-ins (mini-program and web) ask of a login.
/// `refusals` says what is wrong with no app, and with several.
pub fn pick<'a, T>(
    apps: &'a [T],
    appid: Option<&str>,
    appid_of: impl Fn(&T) -> &str,
    [none, several]: [&'static str; 2],
) -> Result<&'a T, ApiError> {
    match (appid, apps) {
        (Some(id), _) => apps
            .iter()
            .find(|a| appid_of(a) == id)
            .ok_or(ApiError::InvalidRequest("unknown appid")),
        (None, [only]) => Ok(only),
        (None, []) => Err(ApiError::InvalidRequest(none)),
        (None, _) => Err(ApiError::InvalidRequest(several)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each platform's file is a module listed in the registry by its own
    /// name: a file added without its entry fails here, not at a login.
    #[test]
    fn every_platform_file_is_in_the_registry() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/signin/providers");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|f| f.strip_suffix(".rs").map(str::to_owned))
            .filter(|f| f != "mod" && f != "meaning")
            .collect();
        files.sort();
        let mut listed: Vec<&str> = PLATFORMS.iter().map(|p| p.name).collect();
        listed.sort_unstable();
        assert_eq!(files, listed);
    }

    #[test]
    fn the_registry_names_each_platform_once() {
        let names: Vec<&str> = Platform::all().map(Platform::name).collect();
        assert_eq!(
            names,
            [
                "wechat",
                "qq",
                "douyin",
                "baidu",
                "alipay",
                "kuaishou",
                "feishu",
                "wechat_web",
                "wechat_pc",
                "wechat_component"
            ]
        );
        let web: Vec<&str> = Platform::all()
            .filter(|p| p.is_web())
            .map(Platform::name)
            .collect();
        assert_eq!(web, ["wechat_web", "wechat_pc"]);
        assert_eq!(
            Platform::named("wechat_pc")
                .and_then(Platform::browser)
                .map(|b| b.device_type),
            Some("pc")
        );
        for p in Platform::all() {
            assert_eq!(Platform::named(p.name()), Some(p));
            assert!(p.default_base_url().starts_with("https://"));
        }
        assert_eq!(Platform::named("line"), None);
        assert_eq!(
            Platform::named("alipay").map(Platform::credentials),
            Some(CredentialKind::KeyPair)
        );
    }

    #[test]
    fn forms_are_url_encoded() {
        assert_eq!(
            form(&[("a b", "c&d=e"), ("t", "2024-01-02 03:04:05"), ("u", "é+")]),
            "a+b=c%26d%3De&t=2024-01-02+03%3A04%3A05&u=%C3%A9%2B"
        );
    }
}
