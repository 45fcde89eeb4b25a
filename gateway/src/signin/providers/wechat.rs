//! WeChat's `jscode2session`.
//!
//! The wire format: `GET {base}/sns/jscode2session?appid&secret&js_code&grant_type=authorization_code`,
//! answered with JSON sent as `text/plain`. Success carries `openid`,
//! `session_key` and maybe `unionid`, and no `errcode`; failure carries
//! `errcode` and `errmsg`.
//!
//! The request URL contains the app secret, so it never reaches a log line or
//! an error: [`super::Provider`] classifies reqwest errors (which carry
//! their URL) and drops them, never formatting them.

use http::StatusCode;
use reqwest::Url;
use serde::Deserialize;

use super::{
    non_empty, CredentialKind, Exchange, ExchangeError, Exchanged, Login, PlatformSpec,
    ProviderSetupError, SignIn,
};
use crate::config::{ProviderConfig, Secret};
use crate::wechat::WxError;

/// A WeChat service's failure met during a sign-in (the web sign-in's
/// token exchange), as the code exchange's error.
impl From<WxError> for ExchangeError {
    fn from(e: WxError) -> Self {
        match e {
            WxError::InvalidCode => ExchangeError::InvalidCode,
            WxError::RateLimited => ExchangeError::RateLimited,
            WxError::RiskyUser => ExchangeError::RiskyUser,
            WxError::Busy | WxError::NoTicket => ExchangeError::Unavailable,
            WxError::NotAuthorized => ExchangeError::NotAuthorized,
            WxError::Timeout => ExchangeError::Timeout,
            WxError::TokenRejected => ExchangeError::TokenRefused,
            WxError::StaleSessionKey | WxError::Unusable => ExchangeError::Unusable,
        }
    }
}

/// WeChat in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::MiniProgram,
    name: "wechat",
    default_base_url: "https://api.weixin.qq.com",
    credentials: CredentialKind::AppSecret,
    build: |config| Ok(Box::new(WeChat::new(config)?)),
};

/// A client for one mini-program's code exchange (QQ's too: same wire).
pub struct WeChat {
    appid: String,
    secret: Secret,
    endpoint: Url,
}

impl std::fmt::Debug for WeChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeChat")
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
    errcode: Option<i64>,
}

impl WeChat {
    /// A client for the provider in `config`.
    pub fn new(config: &ProviderConfig) -> Result<WeChat, ProviderSetupError> {
        Ok(WeChat {
            appid: config.appid.clone(),
            secret: super::secret_of(config)?,
            endpoint: super::endpoint(config, "/sns/jscode2session")?,
        })
    }
}

impl Exchange for WeChat {
    fn request(
        &self,
        http: &reqwest::Client,
        login: &Login<'_>,
    ) -> Result<reqwest::RequestBuilder, ExchangeError> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("appid", &self.appid)
            .append_pair("secret", self.secret.expose())
            .append_pair("js_code", login.code)
            .append_pair("grant_type", "authorization_code");
        Ok(http.get(url))
    }

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
        if !status.is_success() {
            tracing::warn!(appid = %self.appid, status = status.as_u16(), "jscode2session answered with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        interpret(&self.appid, body)
    }
}

/// Maps a `jscode2session` answer body, whatever its Content-Type, to a
/// session or error. `appid` is only for log lines. QQ answers in the same
/// shape and is read by this too.
pub fn interpret(appid: &str, body: &[u8]) -> Result<Exchanged, ExchangeError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| {
        tracing::warn!(appid = %appid, "the jscode2session answer is not JSON");
        ExchangeError::Unusable
    })?;
    match answer.errcode {
        None | Some(0) => {}
        Some(code) => {
            tracing::warn!(
                appid = %appid,
                errcode = code,
                meaning = super::meaning::wechat(code),
                "jscode2session refused the code"
            );
            // WeChat's errcodes are mapped in one place, for every call.
            return Err(WxError::from_errcode(code).into());
        }
    }
    match (answer.openid, answer.session_key) {
        (Some(openid), Some(session_key)) if !openid.is_empty() => Ok(Exchanged {
            openid,
            unionid: non_empty(answer.unionid),
            session_key: Some(Secret::new(session_key)),
            anonymous_openid: None,
            tenant: None,
        }),
        _ => {
            tracing::warn!(appid = %appid, "the jscode2session answer has no openid or session_key");
            Err(ExchangeError::Unusable)
        }
    }
}
