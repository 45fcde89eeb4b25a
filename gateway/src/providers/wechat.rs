//! WeChat's `jscode2session`.
//!
//! The wire format: `GET {base}/sns/jscode2session?appid&secret&js_code&grant_type=authorization_code`,
//! answered with JSON sent as `text/plain`. Success carries `openid`,
//! `session_key` and maybe `unionid`, and no `errcode`; failure carries
//! `errcode` and `errmsg`.
//!
//! The request URL contains the app secret, so it never reaches a log line or
//! an error: reqwest errors carry their URL, so they are classified here and
//! dropped, never formatted.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::{ExchangeError, Session, SetupError};
use crate::config::{ProviderConfig, Secret};

/// The largest answer read from WeChat; real answers are under 200 bytes.
const MAX_ANSWER: usize = 64 * 1024;

/// A client for one mini-program's code exchange.
pub struct WeChat {
    appid: String,
    secret: Secret,
    endpoint: Url,
    timeout: Duration,
    http: reqwest::Client,
}

impl std::fmt::Debug for WeChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeChat")
            .field("appid", &self.appid)
            .field("timeout", &self.timeout)
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
    pub fn new(config: &ProviderConfig, http: reqwest::Client) -> Result<WeChat, SetupError> {
        let endpoint =
            Url::parse(&format!("{}/sns/jscode2session", config.base_url)).map_err(|_| {
                SetupError::BaseUrl {
                    appid: config.appid.clone(),
                }
            })?;
        Ok(WeChat {
            appid: config.appid.clone(),
            secret: config.secret.clone(),
            endpoint,
            timeout: config.timeout,
            http,
        })
    }

    /// Trades `code` for the user's session.
    pub async fn exchange(&self, code: &str) -> Result<Session, ExchangeError> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut()
            .append_pair("appid", &self.appid)
            .append_pair("secret", self.secret.expose())
            .append_pair("js_code", code)
            .append_pair("grant_type", "authorization_code");
        let started = std::time::Instant::now();
        let result = self.call(url).await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => tracing::debug!(appid = %self.appid, ms, "code exchange succeeded"),
            Err(e) => tracing::warn!(appid = %self.appid, ms, error = ?e, "code exchange failed"),
        }
        result
    }

    async fn call(&self, url: Url) -> Result<Session, ExchangeError> {
        let mut res = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(classify)?;
        let status = res.status();
        if status.is_server_error() {
            tracing::warn!(appid = %self.appid, status = status.as_u16(), "WeChat answered with an HTTP error");
            return Err(ExchangeError::Unavailable);
        }
        if !status.is_success() {
            // 3xx included: redirects are never followed.
            tracing::warn!(appid = %self.appid, status = status.as_u16(), "WeChat answered with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(ExchangeError::Unusable);
            }
            body.extend_from_slice(&chunk);
        }
        interpret(&self.appid, &body)
    }
}

/// Maps a `jscode2session` answer body, whatever its Content-Type, to a
/// session or error. `appid` is only for log lines.
pub fn interpret(appid: &str, body: &[u8]) -> Result<Session, ExchangeError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| {
        tracing::warn!(appid = %appid, "WeChat's answer is not JSON");
        ExchangeError::Unusable
    })?;
    match answer.errcode {
        None | Some(0) => {}
        Some(code) => {
            tracing::warn!(appid = %appid, errcode = code, "WeChat refused the code");
            return Err(match code {
                40029 | 40163 => ExchangeError::InvalidCode,
                45011 => ExchangeError::RateLimited,
                40226 => ExchangeError::RiskyUser,
                -1 => ExchangeError::Unavailable,
                _ => ExchangeError::Unusable,
            });
        }
    }
    match (answer.openid, answer.session_key) {
        (Some(openid), Some(session_key)) if !openid.is_empty() => Ok(Session {
            openid,
            unionid: answer.unionid.filter(|u| !u.is_empty()),
            session_key: Secret::new(session_key),
        }),
        _ => {
            tracing::warn!(appid = %appid, "WeChat's answer has no openid or session_key");
            Err(ExchangeError::Unusable)
        }
    }
}

/// Classifies a reqwest error without ever formatting it (it holds the URL).
fn classify(e: reqwest::Error) -> ExchangeError {
    if e.is_timeout() {
        ExchangeError::Timeout
    } else if e.is_connect() {
        ExchangeError::Unavailable
    } else {
        ExchangeError::Unusable
    }
}
