//! Kuaishou mini-programs: `code2session`.
//!
//! `ks.login()` gives the code; `POST {base}/oauth2/mp/code2session` with
//! the form `app_id&app_secret&js_code` trades it, answered with
//! `{"result":1,"open_id","session_key"}` or, on failure, another `result`
//! with `error` and `error_msg`. Kuaishou gives no unionid here.
//!
//! The `result` codes read, onto the contract's error table. Kuaishou's
//! open platform numbers its errors `100200xxx`; the meanings below are
//! what minigate was written against and are not checked against a current
//! table of Kuaishou's. Any code not below is a 502 `provider_error` (as is
//! an answer without `result`): a code misread costs a clear error, never
//! a login.
//!
//! | `result` | meaning | answered |
//! |---|---|---|
//! | 1 | success | the login |
//! | 100200100 | a parameter is missing or invalid: the `js_code` (expired, used, of another app) | 400 `invalid_code` |
//! | 100200101 | verification failed: `app_id` and `app_secret` do not match | 502 `provider_error` |
//! | 100200104 | the app called too often | 429 `rate_limited` |
//! | 100200500, 100200501 | Kuaishou's internal error, busy | 503 `provider_unavailable` |
//!
//! An HTTP 5xx is busy too (decided before this file). The body holds the
//! app secret: it is never logged.

use http::StatusCode;
use serde::Deserialize;

use super::{
    non_empty, CredentialKind, Exchange, ExchangeError, Exchanged, Login, PlatformSpec,
    ProviderSetupError, SecretApp, SignIn,
};
use crate::config::{ProviderConfig, Secret};

/// Kuaishou in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::MiniProgram,
    name: "kuaishou",
    default_base_url: "https://open.kuaishou.com",
    credentials: CredentialKind::AppSecret,
    build: |config| Ok(Box::new(Kuaishou::new(config)?)),
};

/// `result` of a successful `code2session`.
pub const SUCCESS: i64 = 1;
/// A parameter is missing or invalid: the login code.
pub const BAD_PARAMETER: i64 = 100_200_100;
/// The app's id and secret do not match.
pub const BAD_APP: i64 = 100_200_101;
/// The app called too often.
pub const TOO_OFTEN: i64 = 100_200_104;
/// Kuaishou's internal errors.
pub const BUSY: [i64; 2] = [100_200_500, 100_200_501];

/// A client for one Kuaishou mini-program's code exchange.
pub struct Kuaishou(SecretApp);

impl Kuaishou {
    /// A client for the provider in `config`.
    pub fn new(config: &ProviderConfig) -> Result<Kuaishou, ProviderSetupError> {
        Ok(Kuaishou(SecretApp::new(config, "/oauth2/mp/code2session")?))
    }
}

#[derive(Deserialize)]
struct Answer {
    result: Option<i64>,
    open_id: Option<String>,
    session_key: Option<String>,
}

impl Exchange for Kuaishou {
    fn request(
        &self,
        http: &reqwest::Client,
        login: &Login<'_>,
    ) -> Result<reqwest::RequestBuilder, ExchangeError> {
        let app = &self.0;
        Ok(app.post_form(
            http,
            &[
                ("app_id", &app.appid),
                ("app_secret", app.secret.expose()),
                ("js_code", login.code),
            ],
        ))
    }

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
        interpret(&self.0.appid, status, body)
    }
}

/// The error a `result` other than [`SUCCESS`] means.
pub fn error_of(result: i64) -> ExchangeError {
    match result {
        BAD_PARAMETER => ExchangeError::InvalidCode,
        TOO_OFTEN => ExchangeError::RateLimited,
        r if BUSY.contains(&r) => ExchangeError::Unavailable,
        _ => ExchangeError::Unusable,
    }
}

/// Maps a `code2session` answer to a session or error. `appid` is only for
/// log lines. A refusal's `result` is read whatever the status; a session
/// needs a 2xx.
pub fn interpret(appid: &str, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        tracing::warn!(appid = %appid, status = status.as_u16(), "Kuaishou's answer is not JSON of its shape");
        return Err(ExchangeError::Unusable);
    };
    match answer.result {
        Some(SUCCESS) if status.is_success() => {}
        Some(SUCCESS) | None => {
            tracing::warn!(appid = %appid, status = status.as_u16(), "Kuaishou's answer has no result, or came with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        Some(result) => {
            tracing::warn!(appid = %appid, result, "Kuaishou refused the code");
            return Err(error_of(result));
        }
    }
    match (non_empty(answer.open_id), non_empty(answer.session_key)) {
        (Some(openid), Some(session_key)) => {
            Ok(Exchanged::new(openid, None, Some(Secret::new(session_key))))
        }
        _ => {
            tracing::warn!(appid = %appid, "Kuaishou's answer has no open_id or session_key");
            Err(ExchangeError::Unusable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_onto_the_error_table() {
        let ok = StatusCode::OK;
        let s = interpret("a", ok, br#"{"result":1,"open_id":"f1","session_key":"k"}"#).unwrap();
        assert_eq!((s.openid.as_str(), s.unionid, s.tenant), ("f1", None, None));
        use ExchangeError::*;
        let cases: &[(StatusCode, &[u8], ExchangeError)] = &[
            (
                ok,
                &br#"{"result":100200100,"error":"invalid_grant","error_msg":"x"}"#[..],
                InvalidCode,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"result":100200100}"#,
                InvalidCode,
            ),
            (
                ok,
                br#"{"result":100200101,"error_msg":"bad secret"}"#,
                Unusable,
            ),
            (ok, br#"{"result":100200104}"#, RateLimited),
            (ok, br#"{"result":100200500}"#, Unavailable),
            (ok, br#"{"result":100200501}"#, Unavailable),
            (ok, br#"{"result":0}"#, Unusable),
            (
                ok,
                br#"{"result":1,"open_id":"","session_key":"k"}"#,
                Unusable,
            ),
            (ok, br#"{"result":1,"open_id":"f1"}"#, Unusable),
            (
                StatusCode::BAD_REQUEST,
                br#"{"result":1,"open_id":"f1","session_key":"k"}"#,
                Unusable,
            ),
            (ok, br#"{"open_id":"f1","session_key":"k"}"#, Unusable),
            (
                ok,
                br#"{"result":"1","open_id":"f1","session_key":"k"}"#,
                Unusable,
            ),
            (ok, b"<html>", Unusable),
        ];
        super::super::assert_refusals(|status, body| interpret("a", status, body), cases);
    }
}
