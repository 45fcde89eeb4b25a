//! Douyin (ByteDance: Douyin, Toutiao…) mini-programs: `jscode2session` v2.
//!
//! `POST {base}/api/apps/v2/jscode2session` with the JSON
//! `{"appid","secret","code","anonymous_code"?}`, answered with
//! `{"err_no","err_tips","data":{"openid","session_key","unionid"?,"anonymous_openid"?}}`.
//! `err_no` 0 is success; 40018 (bad code) and 40019 (bad anonymous_code)
//! are a bad code, -1 is busy, anything else is unusable. Douyin sends
//! absent ids as empty strings: those count as absent. The body holds the
//! app secret: it is never logged.

use http::StatusCode;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::{
    non_empty, CredentialKind, Exchange, ExchangeError, Exchanged, Login, PlatformSpec,
    ProviderSetupError, SignIn,
};
use crate::config::{ProviderConfig, Secret};

/// Douyin in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::MiniProgram,
    name: "douyin",
    default_base_url: "https://developer.toutiao.com",
    credentials: CredentialKind::AppSecret,
    build: |config| Ok(Box::new(Douyin::new(config)?)),
};

/// A client for one Douyin mini-program's code exchange.
pub struct Douyin {
    appid: String,
    secret: Secret,
    endpoint: Url,
}

impl Douyin {
    /// A client for the provider in `config`.
    pub fn new(config: &ProviderConfig) -> Result<Douyin, ProviderSetupError> {
        Ok(Douyin {
            appid: config.appid.clone(),
            secret: super::secret_of(config)?,
            endpoint: super::endpoint(config, "/api/apps/v2/jscode2session")?,
        })
    }
}

#[derive(Serialize)]
struct Call<'a> {
    appid: &'a str,
    secret: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    anonymous_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Answer {
    err_no: Option<i64>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    openid: Option<String>,
    session_key: Option<String>,
    unionid: Option<String>,
    anonymous_openid: Option<String>,
}

impl Exchange for Douyin {
    fn request(
        &self,
        http: &reqwest::Client,
        login: &Login<'_>,
    ) -> Result<reqwest::RequestBuilder, ExchangeError> {
        let body = serde_json::to_vec(&Call {
            appid: &self.appid,
            secret: self.secret.expose(),
            code: login.code,
            anonymous_code: login.anonymous_code,
        })
        .map_err(|_| ExchangeError::Unusable)?;
        Ok(http
            .post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body))
    }

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
        interpret(&self.appid, status, body)
    }
}

/// Maps a v2 `jscode2session` answer to a session or error. `appid` is only
/// for log lines. An error's `err_no` is read whatever the status; a
/// session needs a 2xx.
pub fn interpret(appid: &str, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        tracing::warn!(appid = %appid, status = status.as_u16(), "Douyin's answer is not JSON of its shape");
        return Err(ExchangeError::Unusable);
    };
    match answer.err_no {
        Some(0) if status.is_success() => {}
        Some(0) | None => {
            tracing::warn!(appid = %appid, status = status.as_u16(), "Douyin's answer has no err_no, or came with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        Some(code) => {
            tracing::warn!(
                appid = %appid,
                err_no = code,
                meaning = super::meaning::douyin(code),
                "Douyin refused the code"
            );
            return Err(match code {
                40018 | 40019 => ExchangeError::InvalidCode,
                -1 => ExchangeError::Unavailable,
                _ => ExchangeError::Unusable,
            });
        }
    }
    let data = answer.data.ok_or(ExchangeError::Unusable);
    match data.map(|d| {
        (
            non_empty(d.openid),
            non_empty(d.session_key),
            d.unionid,
            d.anonymous_openid,
        )
    }) {
        Ok((Some(openid), Some(session_key), unionid, anonymous_openid)) => Ok(Exchanged {
            openid,
            unionid: non_empty(unionid),
            session_key: Some(Secret::new(session_key)),
            anonymous_openid: non_empty(anonymous_openid),
            tenant: None,
        }),
        _ => {
            tracing::warn!(appid = %appid, "Douyin's answer has no openid or session_key");
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
            br#"{"err_no":0,"err_tips":"success","data":{"openid":"o","session_key":"k","unionid":"","anonymous_openid":"an"}}"#,
        )
        .unwrap();
        assert_eq!((s.openid.as_str(), s.unionid), ("o", None));
        assert_eq!(s.anonymous_openid.as_deref(), Some("an"));
        use ExchangeError::*;
        for (status, body, want) in [
            (
                ok,
                &br#"{"err_no":40018,"err_tips":"bad code","data":null}"#[..],
                InvalidCode,
            ),
            (ok, br#"{"err_no":40019,"data":{}}"#, InvalidCode),
            (StatusCode::BAD_REQUEST, br#"{"err_no":40018}"#, InvalidCode),
            (ok, br#"{"err_no":-1}"#, Unavailable),
            (ok, br#"{"err_no":40014}"#, Unusable),
            (
                ok,
                br#"{"err_no":0,"data":{"openid":"","session_key":"k"}}"#,
                Unusable,
            ),
            (ok, br#"{"err_no":0}"#, Unusable),
            (
                StatusCode::BAD_REQUEST,
                br#"{"err_no":0,"data":{"openid":"o","session_key":"k"}}"#,
                Unusable,
            ),
            (
                ok,
                br#"{"data":{"openid":"o","session_key":"k"}}"#,
                Unusable,
            ),
            (ok, b"<html>", Unusable),
        ] {
            assert_eq!(
                interpret("a", status, body).unwrap_err(),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
