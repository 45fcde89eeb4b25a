//! Alipay mini-programs: `alipay.system.oauth.token` on the open gateway.
//!
//! The call is a form POST to `base_url`, the whole gateway URL
//! (`https://openapi.alipay.com/gateway.do`), of the open platform's public
//! parameters (`app_id`, `method`, `format=JSON`, `charset=utf-8`,
//! `sign_type=RSA2`, `timestamp` as `yyyy-MM-dd HH:mm:ss` in China time,
//! `version=1.0`) and the method's own (`grant_type=authorization_code`,
//! `code`), plus `sign`: the RSA2 signature, with the app's private key, of
//! every other non-empty parameter sorted by name as `name=value` joined by
//! `&` (raw values, not URL-encoded). Alipay has no app secret.
//!
//! The answer is `{"alipay_system_oauth_token_response": {...}, "sign": "..."}`
//! or `{"error_response": {...}, "sign": "..."}`, where `sign` is Alipay's
//! RSA2 signature over the exact text of that inner object, byte for byte as
//! it stands in the body. Nothing in the answer is believed before that
//! signature verifies with Alipay's public key: the text is taken from the
//! body as it is (serde_json's `RawValue`, never re-serialised), an answer
//! with both objects, a repeated one or no `sign` is refused, and a
//! signature that does not verify is 502 `provider_error`.
//!
//! A verified answer maps: `open_id` (preferred) or the legacy `user_id` is
//! the openid; an error (an `error_response`, or a `code` other than
//! `10000`) with `sub_code` `isv.code-invalid` is a bad or used code, one
//! with a `sub_code` starting `isp.` is busy, any other is unusable. The
//! answer's `access_token` is Alipay's key to the user's data: it is not
//! read, kept or logged.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use reqwest::Url;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    non_empty, CredentialKind, Exchange, ExchangeError, Exchanged, Login, PlatformSpec,
    ProviderSetupError, SignIn,
};
use crate::config::{is_header_safe, ProviderConfig};
use crate::crypto::rsa2::{SigningKey, VerifyingKey};

/// Alipay in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::MiniProgram,
    name: "alipay",
    default_base_url: "https://openapi.alipay.com/gateway.do",
    credentials: CredentialKind::KeyPair,
    build: |config| Ok(Box::new(Alipay::new(config)?)),
};

/// The open platform method that trades an auth code.
pub const METHOD: &str = "alipay.system.oauth.token";
/// The member of a success answer (the method's name with `_`, `_response`).
pub const RESPONSE: &str = "alipay_system_oauth_token_response";
/// The member of an error answer.
pub const ERROR_RESPONSE: &str = "error_response";

/// A client for one Alipay mini-program's code exchange.
pub struct Alipay {
    app_id: String,
    endpoint: Url,
    private_key: SigningKey,
    alipay_key: VerifyingKey,
}

impl Alipay {
    /// A client for the provider in `config`.
    pub fn new(config: &ProviderConfig) -> Result<Alipay, ProviderSetupError> {
        let keys = config
            .key_pair()
            .ok_or_else(|| ProviderSetupError::Credentials {
                appid: config.appid.clone(),
            })?;
        Ok(Alipay {
            app_id: config.appid.clone(),
            endpoint: super::endpoint(config, "")?,
            private_key: keys.private_key.clone(),
            alipay_key: keys.platform_key.clone(),
        })
    }
}

/// The text an RSA2 request signature covers: every parameter with a
/// value, except `sign`, sorted by name, as `name=value` joined by `&`.
pub fn sign_content(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params
        .iter()
        .filter(|(k, v)| *k != "sign" && !v.is_empty())
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let pairs: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// `t` as `yyyy-MM-dd HH:mm:ss` in China time (UTC+8 all year), the form
/// of the `timestamp` parameter.
pub fn china_time(t: SystemTime) -> String {
    let utc8 = t + Duration::from_secs(8 * 3600);
    // "2024-05-01T12:34:56Z"
    humantime::format_rfc3339_seconds(utc8)
        .to_string()
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_owned()
}

impl Exchange for Alipay {
    fn request(
        &self,
        http: &reqwest::Client,
        login: &Login<'_>,
    ) -> Result<reqwest::RequestBuilder, ExchangeError> {
        let timestamp = china_time(SystemTime::now());
        let mut params = vec![
            ("app_id", self.app_id.as_str()),
            ("method", METHOD),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", &timestamp),
            ("version", "1.0"),
            ("grant_type", "authorization_code"),
            ("code", login.code),
        ];
        let Some(sign) = self.private_key.sign(sign_content(&params).as_bytes()) else {
            tracing::error!(appid = %self.app_id, "could not sign the Alipay call: the system random source failed");
            return Err(ExchangeError::Unusable);
        };
        params.push(("sign", &sign));
        Ok(http
            .post(self.endpoint.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(super::form(&params)))
    }

    fn interpret(&self, status: StatusCode, body: &[u8]) -> Result<Exchanged, ExchangeError> {
        if !status.is_success() {
            tracing::warn!(appid = %self.app_id, status = status.as_u16(), "Alipay answered with an HTTP error");
            return Err(ExchangeError::Unusable);
        }
        interpret(&self.app_id, &self.alipay_key, body)
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, rename = "alipay_system_oauth_token_response")]
    response: Option<&'a RawValue>,
    #[serde(borrow)]
    error_response: Option<&'a RawValue>,
    sign: Option<String>,
}

/// An answer taken apart, nothing in it yet believed.
#[derive(Debug, PartialEq, Eq)]
pub struct Signed<'a> {
    /// The exact text of the answer's object, as it stands in the body.
    pub content: &'a str,
    /// Whether it is an `error_response`.
    pub is_error: bool,
    /// The signature, if the answer has one.
    pub sign: Option<String>,
}

/// Takes an answer apart: the text of its one object (success or error)
/// and its `sign`. `None` for anything else: not a JSON object, neither or
/// both objects, a member repeated.
pub fn split(body: &[u8]) -> Option<Signed<'_>> {
    let envelope: Envelope<'_> = serde_json::from_slice(body).ok()?;
    let (content, is_error) = match (envelope.response, envelope.error_response) {
        (Some(c), None) => (c, false),
        (None, Some(c)) => (c, true),
        _ => return None,
    };
    let content = content.get();
    content.starts_with('{').then_some(Signed {
        content,
        is_error,
        sign: envelope.sign,
    })
}

/// Maps an answer body: its signature checked with `alipay_key` first, then
/// its content read. `appid` is only for log lines.
pub fn interpret(
    appid: &str,
    alipay_key: &VerifyingKey,
    body: &[u8],
) -> Result<Exchanged, ExchangeError> {
    let Some(signed) = split(body) else {
        tracing::warn!(appid = %appid, "Alipay's answer is not of its shape");
        return Err(ExchangeError::Unusable);
    };
    let Some(sign) = &signed.sign else {
        // Alipay leaves some errors unsigned (a bad app_id or request
        // signature): say which, marked unverified, and believe nothing.
        let unverified: Content = serde_json::from_str(signed.content).unwrap_or_default();
        tracing::warn!(
            appid = %appid,
            unverified_sub_code = loggable(unverified.sub_code.as_deref()),
            "Alipay's answer is unsigned: refused"
        );
        return Err(ExchangeError::Unusable);
    };
    if !alipay_key.verify(signed.content.as_bytes(), sign) {
        tracing::warn!(appid = %appid, "the signature of Alipay's answer does not verify with alipay_public_key_file: refused");
        return Err(ExchangeError::Unusable);
    }
    read(appid, signed.content, signed.is_error)
}

#[derive(Deserialize, Default)]
struct Content {
    code: Option<serde_json::Value>,
    sub_code: Option<String>,
    open_id: Option<String>,
    user_id: Option<String>,
}

/// A string from an answer, fit for a log line.
fn loggable(s: Option<&str>) -> &str {
    match s {
        Some(s) if is_header_safe(s, 64) => s,
        Some(_) => "(unprintable)",
        None => "-",
    }
}

/// Maps the content of an answer whose signature verified. `appid` is only
/// for log lines.
pub fn read(appid: &str, content: &str, is_error: bool) -> Result<Exchanged, ExchangeError> {
    let Ok(c) = serde_json::from_str::<Content>(content) else {
        tracing::warn!(appid = %appid, "Alipay's signed answer is not of its shape");
        return Err(ExchangeError::Unusable);
    };
    let ok_code = match &c.code {
        None => true,
        Some(serde_json::Value::String(s)) => s == "10000",
        Some(serde_json::Value::Number(n)) => n.as_u64() == Some(10000),
        Some(_) => false,
    };
    if is_error || !ok_code {
        let sub_code = c.sub_code.as_deref().unwrap_or("");
        tracing::warn!(
            appid = %appid,
            sub_code = loggable(c.sub_code.as_deref()),
            meaning = super::meaning::alipay(sub_code),
            "Alipay refused the code"
        );
        return Err(if sub_code == "isv.code-invalid" {
            ExchangeError::InvalidCode
        } else if sub_code.starts_with("isp.") {
            ExchangeError::Unavailable
        } else {
            ExchangeError::Unusable
        });
    }
    match non_empty(c.open_id).or(non_empty(c.user_id)) {
        Some(openid) => Ok(Exchanged {
            openid,
            unionid: None,
            session_key: None,
            anonymous_openid: None,
            tenant: None,
        }),
        None => {
            tracing::warn!(appid = %appid, "Alipay's answer has neither open_id nor user_id");
            Err(ExchangeError::Unusable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_text_is_sorted_and_skips_sign_and_empty_values() {
        let params = [
            ("method", METHOD),
            ("app_id", "2021000000000001"),
            ("sign", "x"),
            ("code", "c 1&2"),
            ("empty", ""),
            ("timestamp", "2024-05-01 12:34:56"),
        ];
        assert_eq!(
            sign_content(&params),
            "app_id=2021000000000001&code=c 1&2&method=alipay.system.oauth.token&timestamp=2024-05-01 12:34:56"
        );
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/alipay");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    /// OpenSSL's RSA-SHA256 signature of the call below with `app.pk8.pem`
    /// (`openssl dgst -sha256 -sign app.pk8.pem | base64`): PKCS#1 v1.5 is
    /// deterministic, so ring must make exactly these bytes.
    const OPENSSL_SIGNATURE: &str = "HWwO7s3PTyMppknGllhaFbY6QR+wTSi/p+G3Dye5178IEC/vklDjSBgyhJuFFd8VutSAn8lX7s2G4MvoVBpsn9CjHpzhx1Ex0sigAj72k/RowtYcyM4nxZ75iqPKy/P5MvJzhzsOF4WMZRFl04UylBcgU3pXyUEtoHB4x9jOALiin3a/QsHqgYZSPThyWIPaQboj4jlFHROLFxKxrDAa9+sa1hqT9HKK2jIT8B1EduIw6IW4ogDaJ3wNgp4XdM3arDw8qWjvWNIvOeEqUCcKKt3AZwqo/yZV+4yrXp/bnFBGxrCD80HVJNe7SitPN/nNkpLE/RuNX8xn/JXlS9luXg==";

    #[test]
    fn calls_are_signed_as_openssl_signs_them() {
        let params = [
            ("app_id", "2021000000000001"),
            ("method", METHOD),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", "2024-05-01 20:34:56"),
            ("version", "1.0"),
            ("grant_type", "authorization_code"),
            ("code", "4b203fe6c11548bcabd8da5bb087a83b"),
        ];
        let key = SigningKey::parse(&fixture("app.pk8.pem")).unwrap();
        assert_eq!(
            key.sign(sign_content(&params).as_bytes()).unwrap(),
            OPENSSL_SIGNATURE
        );
    }

    #[test]
    fn answers_signed_by_openssl_verify() {
        // fuzz/seeds/alipay_answer: answers signed with `openssl dgst` and
        // alipay.pk8.pem over the object's text.
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/alipay_answer");
        let key = VerifyingKey::parse(&fixture("alipay.spki.pem")).unwrap();
        let ok = std::fs::read(format!("{seeds}/ok")).unwrap();
        let session = interpret("a", &key, &ok).unwrap();
        assert_eq!(
            session.openid,
            "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5"
        );
        assert!(session.session_key.is_none() && session.unionid.is_none());
        let err = std::fs::read(format!("{seeds}/err")).unwrap();
        assert_eq!(
            interpret("a", &key, &err).unwrap_err(),
            ExchangeError::InvalidCode
        );
        // One byte of the signed text changed: refused.
        let text = String::from_utf8(ok).unwrap().replace("074a1", "074a2");
        assert_eq!(
            interpret("a", &key, text.as_bytes()).unwrap_err(),
            ExchangeError::Unusable
        );
    }

    #[test]
    fn timestamps_are_china_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_566_896); // 2024-05-01T12:34:56Z
        assert_eq!(china_time(t), "2024-05-01 20:34:56");
        let late = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_607_999); // 23:59:59Z
        assert_eq!(china_time(late), "2024-05-02 07:59:59");
    }

    #[test]
    fn the_signed_text_is_taken_byte_for_byte() {
        let body = br#"{"alipay_system_oauth_token_response" :  {"open_id":"o\/1", "msg": "\u6210\u529f" } ,"sign":"c2ln"}"#;
        let s = split(body).unwrap();
        assert_eq!(s.content, r#"{"open_id":"o\/1", "msg": "\u6210\u529f" }"#);
        assert!(!s.is_error);
        assert_eq!(s.sign.as_deref(), Some("c2ln"));
        let err = split(br#"{"error_response":{"code":"40002"},"sign":"x"}"#).unwrap();
        assert!(err.is_error);
        for bad in [
            &br#"{"alipay_system_oauth_token_response":{},"error_response":{},"sign":"x"}"#[..],
            br#"{"alipay_system_oauth_token_response":{},"alipay_system_oauth_token_response":{"open_id":"a"},"sign":"x"}"#,
            br#"{"sign":"x"}"#,
            br#"{"alipay_system_oauth_token_response":"enc","sign":"x"}"#,
            br#"[]"#,
            b"",
        ] {
            assert_eq!(split(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn verified_content_maps_to_the_error_table() {
        let ok = |c: &str| read("a", c, false);
        assert_eq!(ok(r#"{"open_id":"o","user_id":"u"}"#).unwrap().openid, "o");
        assert_eq!(ok(r#"{"open_id":"","user_id":"u"}"#).unwrap().openid, "u");
        assert_eq!(ok(r#"{"code":"10000","user_id":"u"}"#).unwrap().openid, "u");
        assert_eq!(
            ok(r#"{"access_token":"t"}"#).unwrap_err(),
            ExchangeError::Unusable
        );
        let sub = |s: &str| {
            let c = format!(r#"{{"code":"40002","msg":"Invalid Arguments","sub_code":"{s}"}}"#);
            (
                read("a", &c, true).unwrap_err(),
                read("a", &c, false).unwrap_err(),
            )
        };
        use ExchangeError::*;
        assert_eq!(sub("isv.code-invalid"), (InvalidCode, InvalidCode));
        assert_eq!(sub("isp.unknow-error"), (Unavailable, Unavailable));
        assert_eq!(sub("isv.invalid-app-id"), (Unusable, Unusable));
        assert_eq!(read("a", "[1]", false).unwrap_err(), Unusable);
    }
}
