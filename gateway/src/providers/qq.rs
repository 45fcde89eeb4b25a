//! QQ mini-programs: WeChat's wire at `api.q.qq.com`.
//!
//! `GET {base}/sns/jscode2session?appid&secret&js_code&grant_type=authorization_code`,
//! answered in WeChat's shape (`openid`, `session_key`, `unionid` when the
//! app is bound to a QQ open platform account; or `errcode`/`errmsg` with
//! WeChat's codes), so the answer is read by [`super::wechat::interpret`].
//! The URL holds the app secret: it is never logged.

use http::StatusCode;
use reqwest::Url;

use super::{CredentialKind, Exchange, ExchangeError, Login, PlatformSpec, Session, SetupError};
use crate::config::{ProviderConfig, Secret};

/// QQ in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    name: "qq",
    default_base_url: "https://api.q.qq.com",
    credentials: CredentialKind::AppSecret,
    build: |config| Ok(Box::new(Qq::new(config)?)),
};

/// A client for one QQ mini-program's code exchange.
pub struct Qq {
    appid: String,
    secret: Secret,
    endpoint: Url,
}

impl Qq {
    /// A client for the provider in `config`.
    pub fn new(config: &ProviderConfig) -> Result<Qq, SetupError> {
        Ok(Qq {
            appid: config.appid.clone(),
            secret: super::secret_of(config)?,
            endpoint: super::endpoint(config, "/sns/jscode2session")?,
        })
    }
}

impl Exchange for Qq {
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

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Session, ExchangeError> {
        if !status.is_success() {
            tracing::warn!(appid = %self.appid, status = status.as_u16(), "QQ answered with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        super::wechat::interpret(&self.appid, body)
    }
}
