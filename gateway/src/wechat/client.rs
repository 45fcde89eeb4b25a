//! The one client of every WeChat call after the login: the phone-number
//! exchange, `stable_token`, and whatever comes next.
//!
//! WeChat's APIs share their failure modes, so they are handled once here.
//! URLs carry an access token or a secret: the calls go through
//! [`crate::outbound`], which never logs or formats them, gives every call
//! a deadline and reads answers up to a bound whatever their Content-Type
//! (WeChat sends JSON as `text/plain`). Here, an HTTP 5xx is busy, any
//! other status but 2xx unusable, and `errcode`s map to one enum.

use std::time::Duration;

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::outbound::{self, CallError};
use crate::telemetry::labels::label_enum;

label_enum! {
    /// What went wrong with a WeChat call.
    pub enum WxError by WxError::label {
        /// 40029 / 40163: the code is invalid or was used.
        InvalidCode,
        /// 45011: the app is rate-limited.
        RateLimited,
        /// 40226: the user is flagged as risky.
        RiskyUser,
        /// -1, an HTTP 5xx, or no connection: busy or unreachable.
        Busy,
        /// 40001 / 42001 / 40014: the access token was refused (expired, or
        /// replaced by another caller).
        TokenRejected,
        /// No answer within the call's deadline.
        Timeout,
        /// 61003: the mini-program has not authorized the third-party
        /// platform that asked for it.
        NotAuthorized,
        /// 87009: the `session_key` a call was signed with is not the
        /// user's current one (`checksession`, `resetusersessionkey`).
        StaleSessionKey,
        /// A third-party platform has no `component_verify_ticket` yet, or
        /// WeChat refused the one it has (61005, 61006).
        NoTicket,
        /// Anything else: not JSON, another errcode, a 3xx or 4xx.
        Unusable,
    }
}

impl WxError {
    /// The error a WeChat `errcode` means.
    pub fn from_errcode(code: i64) -> WxError {
        match code {
            40029 | 40163 => WxError::InvalidCode,
            45011 => WxError::RateLimited,
            40226 => WxError::RiskyUser,
            -1 => WxError::Busy,
            40001 | 42001 | 40014 => WxError::TokenRejected,
            61003 => WxError::NotAuthorized,
            61005 | 61006 => WxError::NoTicket,
            87009 => WxError::StaleSessionKey,
            _ => WxError::Unusable,
        }
    }

    /// The contract's error for a failed WeChat call: a refused code is the
    /// client's, the rest are the platform's.
    pub fn into_api(self) -> crate::error::ApiError {
        use crate::error::ApiError;
        match self {
            WxError::InvalidCode => ApiError::InvalidCode,
            WxError::RateLimited => ApiError::RateLimited(60),
            WxError::RiskyUser => ApiError::RiskyUser,
            WxError::Busy | WxError::NoTicket => ApiError::ProviderUnavailable,
            WxError::Timeout => ApiError::ProviderTimeout,
            WxError::NotAuthorized => ApiError::InvalidRequest(NOT_AUTHORIZED),
            WxError::StaleSessionKey => ApiError::SessionKeyChecked { valid: false },
            WxError::TokenRejected | WxError::Unusable => ApiError::ProviderError,
        }
    }

    /// A short stable name, for logs and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            WxError::InvalidCode => "invalid_code",
            WxError::RateLimited => "rate_limited",
            WxError::RiskyUser => "risky_user",
            WxError::Busy => "busy",
            WxError::TokenRejected => "token_rejected",
            WxError::Timeout => "timeout",
            WxError::NotAuthorized => "not_authorized",
            WxError::NoTicket => "no_ticket",
            WxError::StaleSessionKey => "stale_session_key",
            WxError::Unusable => "unusable",
        }
    }
}

/// What a login for a mini-program that has not authorized the
/// third-party platform (61003) is told.
pub const NOT_AUTHORIZED: &str =
    "this mini-program has not authorized the third-party platform (WeChat errcode 61003)";

/// The client; cheap to clone.
#[derive(Debug, Clone)]
pub struct WxClient {
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Errcode {
    errcode: Option<i64>,
}

impl WxClient {
    /// A client over the gateway's outbound HTTPS client (no redirects).
    pub fn new(http: reqwest::Client) -> WxClient {
        WxClient { http }
    }

    /// POSTs `body` as JSON to `url` and reads the answer as `T`, after
    /// mapping a non-zero `errcode`.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        url: Url,
        body: &impl serde::Serialize,
        deadline: Duration,
    ) -> Result<T, WxError> {
        let body = serde_json::to_vec(body).map_err(|_| WxError::Unusable)?;
        let req = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        let answer = answer(req, deadline).await?;
        parse(&answer)
    }

    /// GETs `url` and reads the answer as `T`, after mapping a non-zero
    /// `errcode`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        deadline: Duration,
    ) -> Result<T, WxError> {
        let answer = answer(self.http.get(url), deadline).await?;
        parse(&answer)
    }
}

/// Sends `req` with `deadline` and reads its body, bounded.
async fn answer(req: reqwest::RequestBuilder, deadline: Duration) -> Result<Vec<u8>, WxError> {
    let res = outbound::send(req, deadline).await?;
    let status = res.status();
    if status.is_server_error() {
        return Err(WxError::Busy);
    }
    if !status.is_success() {
        return Err(WxError::Unusable);
    }
    Ok(outbound::read(res).await?)
}

/// What WeChat's `errcode` means (QQ's `jscode2session` answers with the
/// same codes), for operators.
pub fn errcode_meaning(errcode: i64) -> &'static str {
    match errcode {
        40029 => "the login code is invalid or expired: a client's mistake, nothing to fix here",
        40163 => "the login code was used already: a client's mistake or a replay",
        40013 => "invalid appid: check the provider's `appid` against the app's AppID (WeChat MP console: Development > Development settings)",
        40125 => "invalid app secret: check that the provider's `secret_env` or `secret_file` holds the app's current AppSecret (resetting it in the console invalidates the old one)",
        41002 | 41004 => "appid or secret missing from the call: check the provider's `appid` and that its secret is not empty",
        40164 => "the gateway's address is not in the app's IP allowlist: add the gateway's egress addresses (WeChat MP console: Development settings > IP allowlist)",
        45011 => "WeChat's per-user login rate limit was reached: the client gets 429",
        40226 => "WeChat refuses this user as high-risk: the client gets 403 risky_user",
        -1 => "WeChat is busy: retry later; it is on WeChat's side",
        40001 | 42001 | 40014 => "the app's access token was refused or expired: the gateway fetches a new one; if this repeats, check the app secret and that nothing else resets the app's token",
        48001 => "the app is not authorized for this API: check the app's permissions in the WeChat MP console",
        87009 => "the session_key the call was signed with is no longer the user's (the user logged in again, or it was reset)",
        _ => "an errcode not listed here: see WeChat's error code list",
    }
}

/// An answer as `T`, or the error its `errcode` means.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WxError> {
    let code: Errcode = serde_json::from_slice(body).map_err(|_| WxError::Unusable)?;
    match code.errcode {
        None | Some(0) => serde_json::from_slice(body).map_err(|_| WxError::Unusable),
        Some(code) => {
            let e = WxError::from_errcode(code);
            // A client's bad code is the client's, a stale session_key the
            // user's; the rest are the operator's to look at.
            if matches!(e, WxError::InvalidCode | WxError::StaleSessionKey) {
                tracing::debug!(errcode = code, "WeChat refused the call");
            } else {
                tracing::warn!(
                    errcode = code,
                    meaning = errcode_meaning(code),
                    "WeChat refused the call"
                );
            }
            Err(e)
        }
    }
}

impl From<CallError> for WxError {
    fn from(e: CallError) -> WxError {
        match e {
            CallError::Timeout => WxError::Timeout,
            CallError::Connect => WxError::Busy,
            CallError::Body | CallError::Other | CallError::TooLarge => WxError::Unusable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcodes_map_in_one_place() {
        #[derive(Deserialize, Debug)]
        struct Ok {
            v: u8,
        }
        assert_eq!(parse::<Ok>(br#"{"v":1}"#).unwrap().v, 1);
        assert_eq!(parse::<Ok>(br#"{"errcode":0,"v":2}"#).unwrap().v, 2);
        for (code, want) in [
            (40029, WxError::InvalidCode),
            (40163, WxError::InvalidCode),
            (45011, WxError::RateLimited),
            (40226, WxError::RiskyUser),
            (-1, WxError::Busy),
            (40001, WxError::TokenRejected),
            (42001, WxError::TokenRejected),
            (61003, WxError::NotAuthorized),
            (61006, WxError::NoTicket),
            (87009, WxError::StaleSessionKey),
            (99999, WxError::Unusable),
        ] {
            let body = format!(r#"{{"errcode":{code},"errmsg":"x"}}"#);
            assert_eq!(parse::<Ok>(body.as_bytes()).unwrap_err(), want);
        }
        assert_eq!(parse::<Ok>(b"<html>").unwrap_err(), WxError::Unusable);
        assert_eq!(parse::<Ok>(b"{}").unwrap_err(), WxError::Unusable);
    }
}
