//! A WeChat third-party platform (service provider) logging users in to
//! the mini-programs that authorized it: WeChat's `jscode2session` on the
//! platform's behalf.
//!
//! The wire format: `GET {base}/sns/component/jscode2session?appid&js_code&grant_type=authorization_code&component_appid&component_access_token`,
//! answered as WeChat's own `jscode2session` (JSON as `text/plain`; read by
//! [`super::wechat::interpret`]); errcode 61003 says the mini-program has
//! not authorized this platform. The platform holds no mini-program's
//! secret: the call carries its `component_access_token`, which the login
//! fetches first ([`crate::wechat::token::AccessTokens::component`]) and
//! hands over in [`Login::platform_token`]. The URL holds that token, so
//! it is never logged ([`super::Provider`] never formats a call).

use http::StatusCode;
use reqwest::Url;

use super::{
    CredentialKind, Exchange, ExchangeError, Exchanged, Login, PlatformSpec, ProviderSetupError,
    SignIn,
};
use crate::config::ProviderConfig;

/// The WeChat third-party platform in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::MiniProgram,
    name: "wechat_component",
    default_base_url: "https://api.weixin.qq.com",
    credentials: CredentialKind::AppSecret,
    build: |config| Ok(Box::new(Component::new(config)?)),
};

/// The code exchange of one third-party platform, for any mini-program it
/// logs in.
#[derive(Debug)]
pub struct Component {
    component_appid: String,
    endpoint: Url,
}

impl Component {
    /// The exchange of the platform in `config`.
    pub fn new(config: &ProviderConfig) -> Result<Component, ProviderSetupError> {
        Ok(Component {
            component_appid: config.appid.clone(),
            endpoint: super::endpoint(config, "/sns/component/jscode2session")?,
        })
    }
}

impl Exchange for Component {
    fn request(
        &self,
        http: &reqwest::Client,
        login: &Login<'_>,
    ) -> Result<reqwest::RequestBuilder, ExchangeError> {
        // Fetched by the login before the exchange; without one there is
        // nothing to call with.
        let token = login.platform_token.ok_or(ExchangeError::Unavailable)?;
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("appid", login.appid)
            .append_pair("js_code", login.code)
            .append_pair("grant_type", "authorization_code")
            .append_pair("component_appid", &self.component_appid)
            .append_pair("component_access_token", token);
        Ok(http.get(url))
    }

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
        if !status.is_success() {
            tracing::warn!(component_appid = %self.component_appid, status = status.as_u16(), "component jscode2session answered with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        super::wechat::interpret(&self.component_appid, body)
    }
}
