//! WeChat's web authorization: the authorize page a browser is sent to, and
//! the `sns/oauth2/access_token` exchange of the code it comes back with.
//!
//! - `wechat_web` (an H5 page opened inside WeChat, an official account's
//!   web authorization): `{authorize_url}/connect/oauth2/authorize`, scope
//!   `snsapi_base` (silent: the openid, and the unionid when the account
//!   is bound to the developer's Open Platform account);
//! - `wechat_pc` (a website, QR-code login): `{authorize_url}/connect/qrconnect`,
//!   scope `snsapi_login`.
//!
//! Both come back to `redirect_uri?code=CODE&state=STATE` (without `code`
//! when the user declined), and both codes are exchanged the same way:
//! `GET {base_url}/sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`,
//! answered (as `text/plain`) with `{"access_token", "expires_in",
//! "refresh_token", "openid", "scope", "unionid"?}` or `{"errcode",
//! "errmsg"}`. WeChat's own access token is for its `sns/userinfo` call,
//! which minigate does not make: it is dropped unread.
//!
//! The request URL holds the app secret, so like the mini-program exchange
//! it is never logged, and the call goes through [`crate::outbound`],
//! which never formats it. Errcodes map as the mini-program's do.

use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;

use crate::config::{is_header_safe, Platform, ProviderConfig, Secret};
use crate::outbound;
use crate::signin::providers::{ExchangeError, ProviderSetupError};

/// Who a code says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUser {
    /// The user's openid for this app.
    pub openid: String,
    /// The user's unionid, when WeChat gives one.
    pub unionid: Option<String>,
}

/// One configured web sign-in.
pub struct WebProvider {
    /// The app's appid (`client_id` of its tokens).
    pub appid: String,
    /// `wechat_web` or `wechat_pc`.
    pub platform: Platform,
    browser: crate::signin::providers::Browser,
    secret: Secret,
    authorize: Url,
    endpoint: Url,
    timeout: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for WebProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebProvider")
            .field("appid", &self.appid)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    unionid: Option<String>,
    errcode: Option<i64>,
}

impl WebProvider {
    /// The sign-in of a `wechat_web` or `wechat_pc` provider.
    pub fn new(
        config: &ProviderConfig,
        http: reqwest::Client,
    ) -> Result<WebProvider, ProviderSetupError> {
        let bad = || ProviderSetupError::BaseUrl {
            appid: config.appid.clone(),
        };
        let browser =
            config
                .platform
                .browser()
                .ok_or_else(|| ProviderSetupError::NotMiniProgram {
                    appid: config.appid.clone(),
                })?;
        let page = browser.authorize_path;
        let base = config
            .authorize_url
            .as_deref()
            .unwrap_or(crate::config::defaults::WEB_AUTHORIZE_URL);
        Ok(WebProvider {
            appid: config.appid.clone(),
            platform: config.platform,
            browser,
            secret: config.secret().cloned().ok_or_else(bad)?,
            authorize: Url::parse(&format!("{base}{page}")).map_err(|_| bad())?,
            endpoint: Url::parse(&format!("{}/sns/oauth2/access_token", config.base_url))
                .map_err(|_| bad())?,
            timeout: config.timeout,
            http,
        })
    }

    /// The OAuth scope of its authorize page.
    pub fn scope(&self) -> &'static str {
        self.browser.scope
    }

    /// The device class of its sessions: `pc` for QR-code login, else `web`.
    pub fn device_type(&self) -> &'static str {
        self.browser.device_type
    }

    /// Where to send the browser: the authorize page, its parameters in the
    /// order WeChat wants them, and WeChat's `#wechat_redirect`.
    pub fn authorize_location(&self, redirect_uri: &str, state: &str) -> String {
        let mut url = self.authorize.clone();
        url.query_pairs_mut()
            .append_pair("appid", &self.appid)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", self.scope())
            .append_pair("state", state);
        url.set_fragment(Some("wechat_redirect"));
        url.into()
    }

    /// Trades a code for the user's ids.
    pub async fn exchange(&self, code: &str) -> Result<WebUser, ExchangeError> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("appid", &self.appid)
            .append_pair("secret", self.secret.expose())
            .append_pair("code", code)
            .append_pair("grant_type", "authorization_code");
        let started = Instant::now();
        let result = self.call(url).await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => tracing::debug!(appid = %self.appid, ms, "web code exchange succeeded"),
            Err(e) => {
                tracing::warn!(appid = %self.appid, ms, error = ?e, "web code exchange failed")
            }
        }
        result
    }

    async fn call(&self, url: Url) -> Result<WebUser, ExchangeError> {
        let res = outbound::send(self.http.get(url), self.timeout).await?;
        let status = res.status();
        if status.is_server_error() {
            return Err(ExchangeError::Unavailable);
        }
        if !status.is_success() {
            // 3xx included: redirects are never followed.
            tracing::warn!(appid = %self.appid, status = status.as_u16(), "WeChat answered with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        let body = outbound::read(res).await?;
        interpret(&self.appid, &body)
    }
}

/// Maps an `sns/oauth2/access_token` answer body, whatever its
/// Content-Type, to the user's ids or the error. `appid` is for log lines.
pub fn interpret(appid: &str, body: &[u8]) -> Result<WebUser, ExchangeError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| {
        tracing::warn!(appid = %appid, "WeChat's answer is not JSON");
        ExchangeError::Unusable
    })?;
    match answer.errcode {
        None | Some(0) => {}
        Some(code) => {
            tracing::warn!(appid = %appid, errcode = code, "WeChat refused the web code");
            // As the mini-program exchange maps them.
            return Err(match code {
                40029 | 40163 => ExchangeError::InvalidCode,
                45011 => ExchangeError::RateLimited,
                40226 => ExchangeError::RiskyUser,
                -1 => ExchangeError::Unavailable,
                _ => ExchangeError::Unusable,
            });
        }
    }
    let openid = answer.openid.unwrap_or_default();
    let unionid = answer.unionid.filter(|u| !u.is_empty());
    // Ids travel in headers and tokens: refuse anything that cannot.
    if !is_header_safe(&openid, 128) || unionid.as_deref().is_some_and(|u| !is_header_safe(u, 128))
    {
        tracing::warn!(appid = %appid, "WeChat's answer has no usable openid or unionid");
        return Err(ExchangeError::Unusable);
    }
    Ok(WebUser { openid, unionid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_like_the_mini_program_exchange() {
        let ok = interpret("a", br#"{"access_token":"AT","expires_in":7200,"refresh_token":"RT","openid":"o1","scope":"snsapi_base","unionid":"u1"}"#);
        assert_eq!(
            ok,
            Ok(WebUser {
                openid: "o1".into(),
                unionid: Some("u1".into())
            })
        );
        for (body, e) in [
            (
                &br#"{"errcode":40029,"errmsg":"invalid code"}"#[..],
                ExchangeError::InvalidCode,
            ),
            (
                br#"{"errcode":40163,"errmsg":"code been used"}"#,
                ExchangeError::InvalidCode,
            ),
            (br#"{"errcode":45011}"#, ExchangeError::RateLimited),
            (br#"{"errcode":-1}"#, ExchangeError::Unavailable),
            (br#"{"errcode":40125}"#, ExchangeError::Unusable),
            (br#"{"access_token":"AT"}"#, ExchangeError::Unusable),
            (b"<html>busy</html>", ExchangeError::Unusable),
            (br#"{"openid":"bad id"}"#, ExchangeError::Unusable),
        ] {
            assert_eq!(interpret("a", body), Err(e));
        }
    }
}
