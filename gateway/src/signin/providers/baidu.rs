//! Baidu smart programs: `jscode2sessionkey`.
//!
//! `POST {base}/oauth/jscode2sessionkey` with the form `code&client_id&sk`
//! (`client_id` is the app's App Key, which is the provider's `appid`, and
//! `sk` its App Secret), answered with `{"openid","session_key"}` or, in
//! OAuth's manner, `{"errno","error","error_description"}`. `error`
//! `invalid_grant` is a bad or used code; an HTTP 5xx is busy (decided
//! before this file); anything else is unusable. Baidu gives no unionid
//! here. The body holds the app secret: it is never logged.

use http::StatusCode;
use serde::Deserialize;

use super::{
    CredentialKind, Exchange, ExchangeError, Exchanged, Login, PlatformSpec, ProviderSetupError,
    SecretApp, SignIn,
};
use crate::config::{ProviderConfig, Secret};

/// Baidu in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::MiniProgram,
    name: "baidu",
    default_base_url: "https://spapi.baidu.com",
    credentials: CredentialKind::AppSecret,
    build: |config| Ok(Box::new(Baidu::new(config)?)),
};

/// A client for one Baidu smart program's code exchange.
pub struct Baidu(SecretApp);

impl Baidu {
    /// A client for the provider in `config`.
    pub fn new(config: &ProviderConfig) -> Result<Baidu, ProviderSetupError> {
        Ok(Baidu(SecretApp::new(config, "/oauth/jscode2sessionkey")?))
    }
}

#[derive(Deserialize)]
struct Answer {
    openid: Option<String>,
    session_key: Option<String>,
    errno: Option<serde_json::Value>,
    error: Option<String>,
}

impl Exchange for Baidu {
    fn request(
        &self,
        http: &reqwest::Client,
        login: &Login<'_>,
    ) -> Result<reqwest::RequestBuilder, ExchangeError> {
        let app = &self.0;
        Ok(app.post_form(
            http,
            &[
                ("code", login.code),
                ("client_id", &app.appid),
                ("sk", app.secret.expose()),
            ],
        ))
    }

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
        interpret(&self.0.appid, status, body)
    }
}

/// Maps a `jscode2sessionkey` answer to a session or error. `appid` is only
/// for log lines. An `error` is read whatever the status (OAuth errors come
/// with 400); a session needs a 2xx.
pub fn interpret(appid: &str, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        tracing::warn!(appid = %appid, status = status.as_u16(), "Baidu's answer is not JSON of its shape");
        return Err(ExchangeError::Unusable);
    };
    // errno 0 (a number or a string) is no error; any other is one.
    let errno_failed = match &answer.errno {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Number(n)) => n.as_i64() != Some(0),
        Some(serde_json::Value::String(s)) => s != "0",
        Some(_) => true,
    };
    let error = answer.error.filter(|e| !e.is_empty());
    if error.is_some() || errno_failed {
        let invalid = error.as_deref() == Some("invalid_grant");
        tracing::warn!(
            appid = %appid,
            errno = ?answer.errno.as_ref().and_then(serde_json::Value::as_i64),
            invalid_grant = invalid,
            meaning = super::meaning::baidu(error.as_deref()),
            "Baidu refused the code"
        );
        return Err(if invalid {
            ExchangeError::InvalidCode
        } else {
            ExchangeError::Unusable
        });
    }
    match (answer.openid, answer.session_key) {
        (Some(openid), Some(session_key))
            if status.is_success() && !openid.is_empty() && !session_key.is_empty() =>
        {
            Ok(Exchanged {
                openid,
                unionid: None,
                session_key: Some(Secret::new(session_key)),
                anonymous_openid: None,
                tenant: None,
            })
        }
        _ => {
            tracing::warn!(appid = %appid, status = status.as_u16(), "Baidu's answer has no openid or session_key");
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
        for body in [
            &br#"{"openid":"o","session_key":"k"}"#[..],
            br#"{"errno":0,"error":"","openid":"o","session_key":"k"}"#,
            br#"{"errno":"0","openid":"o","session_key":"k"}"#,
        ] {
            let s = interpret("a", ok, body).unwrap();
            assert_eq!((s.openid.as_str(), s.unionid), ("o", None));
        }
        use ExchangeError::*;
        for (status, body, want) in [
            (
                StatusCode::BAD_REQUEST,
                &br#"{"errno":40001,"error":"invalid_grant","error_description":"x"}"#[..],
                InvalidCode,
            ),
            (ok, br#"{"error":"invalid_grant"}"#, InvalidCode),
            (ok, br#"{"errno":1,"error":"invalid_client"}"#, Unusable),
            (
                ok,
                br#"{"errno":2,"openid":"o","session_key":"k"}"#,
                Unusable,
            ),
            (
                ok,
                br#"{"errno":[],"openid":"o","session_key":"k"}"#,
                Unusable,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"openid":"o","session_key":"k"}"#,
                Unusable,
            ),
            (ok, br#"{"openid":"o"}"#, Unusable),
            (ok, b"", Unusable),
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
