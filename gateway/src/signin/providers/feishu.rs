//! Feishu (Lark) mini-programs: `tokenLoginValidate`, made with the app's
//! `app_access_token`.
//!
//! `tt.login()` in a Feishu mini-program gives the code. The gateway first
//! holds an `app_access_token`: `POST {base}/open-apis/auth/v3/app_access_token/internal`
//! with the JSON `{"app_id","app_secret"}`, answered with
//! `{"code":0,"msg","app_access_token","expire"}` (`expire` in seconds,
//! about two hours; Feishu hands out a new token only in the last half
//! hour of the old one's life). [`super::Provider`] keeps it, renews it
//! 5 minutes before it expires and shares it across replicas like WeChat's
//! access token ([`crate::outbound::kept`]). Then
//! `POST {base}/open-apis/mina/v2/tokenLoginValidate` with
//! `Authorization: Bearer <app_access_token>` and `{"code"}` trades the code,
//! answered with `{"code":0,"msg","data":{"open_id","tenant_key","session_key","employee_id"?,…}}`.
//!
//! The user is an organisation's: `tenant_key` is part of the identity (the
//! `tenant` claim, `X-Auth-Tenant`, and the user key, see
//! [`crate::tokens::user_key`]). The answer's `union_id` is not read:
//! Feishu documents it as deprecated here and not the Union ID of its other
//! APIs. Neither are the user's own `access_token` and `refresh_token`.
//!
//! `code`s read, onto the contract's error table (any other is a 502
//! `provider_error`):
//!
//! | `code` | meaning | answered |
//! |---|---|---|
//! | 10202, 99991661, 99991663, 99991664, 99991668, 99991677 | the `app_access_token` is missing, invalid or expired | renewed and retried once, then 502 `provider_error` |
//! | 10213 | the code is of another app, used or expired | 400 `invalid_code` |
//! | 10228 | the app is not visible to this user (its availability, set by the organisation) | 403 `access_denied` |
//! | 99991400 | the app called too often | 429 `rate_limited` |
//!
//! An HTTP 5xx is busy (503 `provider_unavailable`, decided before this
//! file). The token call's body holds the app secret, and the exchange's
//! header the token: neither is ever logged.

use http::StatusCode;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{
    non_empty, AppToken, CredentialKind, Exchange, ExchangeError, Exchanged, Login, PlatformSpec,
    ProviderSetupError, SignIn,
};
use crate::config::{ProviderConfig, Secret};

/// Feishu in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::MiniProgram,
    name: "feishu",
    default_base_url: "https://open.feishu.cn",
    credentials: CredentialKind::AppSecret,
    build: |config| Ok(Box::new(Feishu::new(config)?)),
};

/// The path of the `app_access_token` call (a self-built app's).
pub const TOKEN_PATH: &str = "/open-apis/auth/v3/app_access_token/internal";
/// The path of the code exchange.
pub const EXCHANGE_PATH: &str = "/open-apis/mina/v2/tokenLoginValidate";

/// `code`s saying the `app_access_token` was refused.
pub const TOKEN_REFUSED: [i64; 6] = [10202, 99991661, 99991663, 99991664, 99991668, 99991677];
/// The login code is of another app, used or expired.
pub const BAD_CODE: i64 = 10213;
/// The app is not visible to this user.
pub const NOT_VISIBLE: i64 = 10228;
/// The app called too often.
pub const TOO_OFTEN: i64 = 99991400;

/// A client for one Feishu mini-program's code exchange.
pub struct Feishu {
    appid: String,
    secret: Secret,
    token_url: Url,
    endpoint: Url,
}

impl Feishu {
    /// A client for the provider in `config`.
    pub fn new(config: &ProviderConfig) -> Result<Feishu, ProviderSetupError> {
        Ok(Feishu {
            appid: config.appid.clone(),
            secret: super::secret_of(config)?,
            token_url: super::endpoint(config, TOKEN_PATH)?,
            endpoint: super::endpoint(config, EXCHANGE_PATH)?,
        })
    }
}

#[derive(Serialize)]
struct TokenAsk<'a> {
    app_id: &'a str,
    app_secret: &'a str,
}

#[derive(Deserialize)]
struct TokenAnswer {
    code: Option<i64>,
    app_access_token: Option<String>,
    expire: Option<u64>,
}

#[derive(Serialize)]
struct Call<'a> {
    code: &'a str,
}

#[derive(Deserialize)]
struct Answer {
    code: Option<i64>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    open_id: Option<String>,
    tenant_key: Option<String>,
    session_key: Option<String>,
}

/// Feishu's `{"code": N}`, whatever else an answer holds.
#[derive(Deserialize)]
struct Code {
    code: Option<i64>,
}

fn json_post(
    http: &reqwest::Client,
    url: &Url,
    body: &impl Serialize,
) -> Result<reqwest::RequestBuilder, ExchangeError> {
    let body = serde_json::to_vec(body).map_err(|_| ExchangeError::Unusable)?;
    Ok(http
        .post(url.clone())
        .header(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .body(body))
}

impl Exchange for Feishu {
    fn request(
        &self,
        http: &reqwest::Client,
        login: &Login<'_>,
    ) -> Result<reqwest::RequestBuilder, ExchangeError> {
        let token = login.app_token.ok_or(ExchangeError::Unusable)?;
        let mut bearer = http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ExchangeError::Unusable)?;
        bearer.set_sensitive(true);
        Ok(json_post(http, &self.endpoint, &Call { code: login.code })?
            .header(http::header::AUTHORIZATION, bearer))
    }

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
        interpret(&self.appid, status, body)
    }

    fn app_token(&self) -> Option<&dyn AppToken> {
        Some(self)
    }
}

impl AppToken for Feishu {
    fn request(&self, http: &reqwest::Client) -> Result<reqwest::RequestBuilder, ExchangeError> {
        let ask = TokenAsk {
            app_id: &self.appid,
            app_secret: self.secret.expose(),
        };
        json_post(http, &self.token_url, &ask)
    }

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<(String, u64), ExchangeError> {
        interpret_token(&self.appid, status, body)
    }

    fn refused(&self, _status: StatusCode, body: &[u8]) -> bool {
        token_refused(body)
    }
}

/// Whether an answer's `code` says the `app_access_token` was refused.
pub fn token_refused(body: &[u8]) -> bool {
    serde_json::from_slice::<Code>(body)
        .ok()
        .and_then(|c| c.code)
        .is_some_and(|c| TOKEN_REFUSED.contains(&c))
}

/// The error a `code` other than 0 means.
pub fn error_of(code: i64) -> ExchangeError {
    match code {
        BAD_CODE => ExchangeError::InvalidCode,
        NOT_VISIBLE => ExchangeError::Refused,
        TOO_OFTEN => ExchangeError::RateLimited,
        _ => ExchangeError::Unusable,
    }
}

/// Maps an `app_access_token` answer to the token and its life in seconds.
/// `appid` is only for log lines.
pub fn interpret_token(
    appid: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<(String, u64), ExchangeError> {
    let Ok(answer) = serde_json::from_slice::<TokenAnswer>(body) else {
        tracing::warn!(appid = %appid, status = status.as_u16(), "Feishu's app_access_token answer is not JSON of its shape");
        return Err(ExchangeError::Unusable);
    };
    match (answer.code, answer.app_access_token, answer.expire) {
        (Some(0), Some(token), Some(expire))
            if status.is_success() && !token.is_empty() && expire > 0 =>
        {
            Ok((token, expire))
        }
        (Some(code), ..) if code != 0 => {
            tracing::warn!(appid = %appid, code, "Feishu refused the app_access_token");
            Err(match error_of(code) {
                ExchangeError::RateLimited => ExchangeError::RateLimited,
                // Anything else about the app's own credentials is the
                // operator's to fix, never the user's.
                _ => ExchangeError::Unusable,
            })
        }
        _ => {
            tracing::warn!(appid = %appid, status = status.as_u16(), "Feishu's app_access_token answer has no token or expiry");
            Err(ExchangeError::Unusable)
        }
    }
}

/// Maps a `tokenLoginValidate` answer to a session or error. `appid` is
/// only for log lines. An error's `code` is read whatever the status; a
/// session needs a 2xx.
pub fn interpret(appid: &str, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        tracing::warn!(appid = %appid, status = status.as_u16(), "Feishu's answer is not JSON of its shape");
        return Err(ExchangeError::Unusable);
    };
    match answer.code {
        Some(0) if status.is_success() => {}
        Some(0) | None => {
            tracing::warn!(appid = %appid, status = status.as_u16(), "Feishu's answer has no code, or came with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        Some(code) => {
            tracing::warn!(appid = %appid, code, "Feishu refused the code");
            return Err(error_of(code));
        }
    }
    let data = answer.data.map(|d| {
        (
            non_empty(d.open_id),
            non_empty(d.tenant_key),
            non_empty(d.session_key),
        )
    });
    match data {
        Some((Some(openid), Some(tenant), Some(session_key))) => Ok(Exchanged {
            tenant: Some(tenant),
            ..Exchanged::new(openid, None, Some(Secret::new(session_key)))
        }),
        _ => {
            tracing::warn!(appid = %appid, "Feishu's answer has no open_id, tenant_key or session_key");
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
        let s = interpret(
            "a",
            ok,
            br#"{"code":0,"msg":"success","data":{"open_id":"ou_1","union_id":"on_x","employee_id":"e1","session_key":"k","tenant_key":"t1","access_token":"u-x","expires_in":1565512680,"refresh_token":"ur-x"}}"#,
        )
        .unwrap();
        assert_eq!(s.openid, "ou_1");
        assert_eq!((s.unionid, s.tenant.as_deref()), (None, Some("t1")));
        use ExchangeError::*;
        let cases: &[(StatusCode, &[u8], ExchangeError)] = &[
            (
                ok,
                &br#"{"code":10213,"msg":"code appid not match"}"#[..],
                InvalidCode,
            ),
            (StatusCode::BAD_REQUEST, br#"{"code":10213}"#, InvalidCode),
            (
                ok,
                br#"{"code":10228,"msg":"user to app has no visibility"}"#,
                Refused,
            ),
            (ok, br#"{"code":99991400}"#, RateLimited),
            (
                ok,
                br#"{"code":10202,"msg":"access token invalid"}"#,
                Unusable,
            ),
            (ok, br#"{"code":12345}"#, Unusable),
            (
                ok,
                br#"{"code":0,"data":{"open_id":"ou_1","session_key":"k"}}"#,
                Unusable,
            ),
            (
                ok,
                br#"{"code":0,"data":{"open_id":"","tenant_key":"t","session_key":"k"}}"#,
                Unusable,
            ),
            (ok, br#"{"code":0}"#, Unusable),
            (
                StatusCode::BAD_REQUEST,
                br#"{"code":0,"data":{"open_id":"o","tenant_key":"t","session_key":"k"}}"#,
                Unusable,
            ),
            (
                ok,
                br#"{"data":{"open_id":"o","tenant_key":"t","session_key":"k"}}"#,
                Unusable,
            ),
            (ok, b"<html>", Unusable),
        ];
        super::super::assert_refusals(|status, body| interpret("a", status, body), cases);
    }

    #[test]
    fn token_answers_and_refusals() {
        let ok = StatusCode::OK;
        assert_eq!(
            interpret_token(
                "a",
                ok,
                br#"{"code":0,"msg":"ok","app_access_token":"t-1","expire":7200}"#
            )
            .unwrap(),
            ("t-1".to_owned(), 7200)
        );
        use ExchangeError::*;
        let cases: &[(StatusCode, &[u8], ExchangeError)] = &[
            (
                ok,
                &br#"{"code":10014,"msg":"app secret invalid"}"#[..],
                Unusable,
            ),
            (ok, br#"{"code":99991400}"#, RateLimited),
            (ok, br#"{"code":10213}"#, Unusable),
            (
                ok,
                br#"{"code":0,"app_access_token":"","expire":7200}"#,
                Unusable,
            ),
            (
                ok,
                br#"{"code":0,"app_access_token":"t-1","expire":0}"#,
                Unusable,
            ),
            (ok, br#"{"code":0,"app_access_token":"t-1"}"#, Unusable),
            (
                StatusCode::BAD_REQUEST,
                br#"{"code":0,"app_access_token":"t-1","expire":7200}"#,
                Unusable,
            ),
            (ok, b"", Unusable),
        ];
        super::super::assert_refusals(|status, body| interpret_token("a", status, body), cases);
        for code in TOKEN_REFUSED {
            assert!(token_refused(
                format!(r#"{{"code":{code},"msg":"x"}}"#).as_bytes()
            ));
        }
        assert!(!token_refused(br#"{"code":10213}"#));
        assert!(!token_refused(b"<html>"));
    }
}
