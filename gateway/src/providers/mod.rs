//! Code exchange: trading a mini-program login code for the user's identity.
//!
//! Each platform speaks its own wire format and error codes, so each has one
//! file here; what comes out is the same [`Session`] or [`ExchangeError`], and
//! the rest of the gateway knows nothing of any platform's API. Dispatch is a
//! plain enum rather than a trait object: the set of platforms is closed and
//! known at compile time.

pub mod wechat;

use std::fmt;

use crate::config::{is_header_safe, Platform, ProviderConfig, Secret};
use crate::error::ApiError;

/// What a successful exchange yields.
pub struct Session {
    /// The user's id within this mini-program.
    pub openid: String,
    /// The user's id across the developer's apps, when the platform gives one.
    pub unionid: Option<String>,
    /// The platform's session key. It never leaves the gateway.
    pub session_key: Secret,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed, in the contract's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeError {
    /// The code is bad or already used.
    InvalidCode,
    /// The platform rate-limited the app.
    RateLimited,
    /// The platform refuses this user as risky.
    RiskyUser,
    /// The platform is busy or unreachable.
    Unavailable,
    /// The platform did not answer within the provider's timeout.
    Timeout,
    /// The answer cannot be used (not JSON, no openid, unknown errcode…).
    Unusable,
}

impl From<ExchangeError> for ApiError {
    fn from(e: ExchangeError) -> ApiError {
        match e {
            ExchangeError::InvalidCode => ApiError::InvalidCode,
            // WeChat's jscode2session limit is per minute.
            ExchangeError::RateLimited => ApiError::RateLimited(60),
            ExchangeError::RiskyUser => ApiError::RiskyUser,
            ExchangeError::Unavailable => ApiError::ProviderUnavailable,
            ExchangeError::Timeout => ApiError::ProviderTimeout,
            ExchangeError::Unusable => ApiError::ProviderError,
        }
    }
}

/// A provider that could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The shared HTTPS client could not be made.
    #[error("could not build the HTTP client for code exchange")]
    Client,
    /// A base URL that does not make an endpoint URL.
    #[error("providers: base_url of {appid} is not a URL")]
    BaseUrl {
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

/// One configured mini-program and the client for its platform.
#[derive(Debug)]
pub struct Provider {
    /// The mini-program's appid (`client_id` of its tokens).
    pub appid: String,
    /// Its platform.
    pub platform: Platform,
    exchange: Exchange,
}

#[derive(Debug)]
enum Exchange {
    WeChat(wechat::WeChat),
}

impl Provider {
    /// Builds the provider's client. `http` is shared by all providers.
    pub fn new(config: &ProviderConfig, http: reqwest::Client) -> Result<Provider, SetupError> {
        let exchange = match config.platform {
            Platform::WeChat => Exchange::WeChat(wechat::WeChat::new(config, http)?),
            // Browser sign-ins are crate::web's; Providers::new skips them.
            Platform::WeChatWeb | Platform::WeChatPc => {
                return Err(SetupError::NotMiniProgram {
                    appid: config.appid.clone(),
                })
            }
        };
        Ok(Provider {
            appid: config.appid.clone(),
            platform: config.platform,
            exchange,
        })
    }

    /// Trades a login code for the user's session.
    pub async fn exchange(&self, code: &str) -> Result<Session, ExchangeError> {
        let session = match &self.exchange {
            Exchange::WeChat(w) => w.exchange(code).await?,
        };
        // Ids travel in headers and tokens: refuse anything that cannot.
        let ok = is_header_safe(&session.openid, 128)
            && session
                .unionid
                .as_deref()
                .is_none_or(|u| is_header_safe(u, 128));
        if !ok {
            tracing::warn!(appid = %self.appid, "code exchange returned an unusable openid or unionid");
            return Err(ExchangeError::Unusable);
        }
        Ok(session)
    }
}

/// The HTTPS client of every outbound call the gateway makes: rustls over
/// ring, and no redirects followed. A platform that answers 3xx is broken
/// or impersonated; following it would send the next request (and, with
/// reqwest's `Referer`, the URL holding the app secret) wherever it points.
pub fn outbound_client() -> Result<reqwest::Client, SetupError> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|_| SetupError::Client)
}

/// The configured providers, looked up by appid.
#[derive(Debug, Default)]
pub struct Providers {
    list: Vec<Provider>,
}

impl Providers {
    /// Builds every configured mini-program provider over one shared HTTP
    /// client (web sign-ins are [`crate::web`]'s).
    pub fn new(configs: &[ProviderConfig]) -> Result<Providers, SetupError> {
        let http = outbound_client()?;
        let list = configs
            .iter()
            .filter(|c| !c.platform.is_web())
            .map(|c| Provider::new(c, http.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Providers { list })
    }

    /// The provider for a login: the one named by `appid`, or the only one.
    pub fn pick(&self, appid: Option<&str>) -> Result<&Provider, ApiError> {
        match appid {
            Some(id) => self
                .list
                .iter()
                .find(|p| p.appid == id)
                .ok_or(ApiError::InvalidRequest("unknown appid")),
            None => match self.list.as_slice() {
                [only] => Ok(only),
                [] => Err(ApiError::InvalidRequest(
                    "no mini-program is configured for login",
                )),
                _ => Err(ApiError::InvalidRequest(
                    "appid is required: several mini-programs are configured",
                )),
            },
        }
    }
}
