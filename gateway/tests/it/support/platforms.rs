//! Stand-ins for Douyin, Baidu and Alipay, each speaking its platform's wire
//! format, with codes that choose the answer. (QQ speaks WeChat's, so the
//! stand-in WeChat serves it too, for `QQ_APPID`.) Every call is recorded.
//!
//! Codes common to all: `slow` answers after 3 s; `garbage` is an HTML
//! page; `http500` is a 500; `bad` is the platform's bad-code answer;
//! `busy` its busy answer; `union:X` logs in with unionid X where the
//! platform has unionids; anything else logs in with `openid_for(code)`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use minigate::crypto::rsa2::{SigningKey, VerifyingKey};
use minigate::signin::providers::alipay::{china_time, sign_content, ERROR_RESPONSE, RESPONSE};

use super::{openid_for, serve};

pub const QQ_APPID: &str = "1109000001";
pub const QQ_SECRET: &str = "QQ-SECRET-must-not-leak-51e2";
pub const DOUYIN_APPID: &str = "tt0000000000000001";
pub const DOUYIN_SECRET: &str = "DOUYIN-SECRET-must-not-leak-0b77";
pub const BAIDU_APPID: &str = "baiduAppKey0000000000001";
pub const BAIDU_SECRET: &str = "BAIDU-SECRET-must-not-leak-a4c9";
pub const ALIPAY_APPID: &str = "2021000000000001";
/// Session keys and Alipay's access token: in the stand-ins' answers, never
/// in the gateway's responses or logs.
pub const PLATFORM_SESSION_KEY: &str = "PLATFORM-SESSIONKEY-must-not-leak-33aa";
pub const ALIPAY_ACCESS_TOKEN: &str = "authusrB-ALIPAY-TOKEN-must-not-leak-e1";

/// The fixtures directory of the TEST-ONLY Alipay keys.
pub fn alipay_fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/alipay")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(alipay_fixtures().join(name)).unwrap()
}

/// The app's private key (signs the gateway's calls).
pub fn app_key() -> SigningKey {
    SigningKey::parse(&fixture("app.pk8.pem")).unwrap()
}

/// The stand-in Alipay's private key (signs its answers).
pub fn alipay_key() -> SigningKey {
    SigningKey::parse(&fixture("alipay.pk8.pem")).unwrap()
}

/// A key of neither: the jwks crate's RS256 test key.
pub fn stranger_key() -> SigningKey {
    let b64 = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../jwks/testdata/rs256-2048.pk8.b64"),
    )
    .unwrap();
    let der = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64.trim())
        .unwrap();
    SigningKey::from_pkcs8(&der).unwrap()
}

/// One call a stand-in received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub query: String,
    pub body: String,
}

impl Call {
    /// Its form or query parameters, decoded.
    pub fn params(&self) -> Vec<(String, String)> {
        let encoded = if self.query.is_empty() {
            &self.body
        } else {
            &self.query
        };
        reqwest::Url::parse(&format!("http://x/?{encoded}"))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A running stand-in.
#[derive(Clone)]
pub struct StandIn {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<Call>>>,
    /// Alipay: calls refused for their signature.
    pub bad_signatures: Arc<std::sync::atomic::AtomicUsize>,
}

impl StandIn {
    pub fn last(&self) -> Call {
        self.calls.lock().unwrap().last().cloned().unwrap()
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    res
}

fn json(v: serde_json::Value) -> Response<Full<Bytes>> {
    reply(StatusCode::OK, "application/json", v.to_string())
}

/// Serves `answer` for every call, recording it first.
async fn stand_in<F, Fut>(answer: F) -> StandIn
where
    F: Fn(Call, StandIn) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let calls = Arc::new(Mutex::new(Vec::new()));
    let bad_signatures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let shared = Arc::new(Mutex::new(None::<StandIn>));
    let me = shared.clone();
    let seen = calls.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let answer = answer.clone();
        let seen = seen.clone();
        let me = me.clone();
        async move {
            let call = Call {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
                content_type: req
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                query: req.uri().query().unwrap_or("").to_owned(),
                body: String::from_utf8(
                    req.into_body().collect().await.unwrap().to_bytes().to_vec(),
                )
                .unwrap(),
            };
            seen.lock().unwrap().push(call.clone());
            let this = me.lock().unwrap().clone().unwrap();
            let code = common(&call);
            match code.as_deref() {
                Some("slow") => tokio::time::sleep(Duration::from_secs(3)).await,
                Some("garbage") => return reply(StatusCode::OK, "text/html", "<html>busy</html>"),
                Some("http500") => {
                    return reply(StatusCode::INTERNAL_SERVER_ERROR, "text/html", "oops")
                }
                _ => {}
            }
            answer(call, this).await
        }
    })
    .await;
    let standin = StandIn {
        addr,
        calls,
        bad_signatures,
    };
    *shared.lock().unwrap() = Some(standin.clone());
    standin
}

/// The login code of a call, wherever its platform puts it.
fn common(call: &Call) -> Option<String> {
    if call.content_type.starts_with("application/json") {
        let v: serde_json::Value = serde_json::from_str(&call.body).ok()?;
        return v["code"].as_str().map(str::to_owned);
    }
    call.param("code").or_else(|| call.param("js_code"))
}

/// Douyin's `POST /api/apps/v2/jscode2session`. Codes: `bad` is err_no
/// 40018, `badanon` 40019, `busy` -1, `other` 40014.
pub async fn douyin() -> StandIn {
    stand_in(|call: Call, _| async move {
        let error =
            |no: i64| json(serde_json::json!({"err_no": no, "err_tips": "stand-in", "data": {}}));
        if call.method != "POST"
            || call.path != "/api/apps/v2/jscode2session"
            || !call.content_type.starts_with("application/json")
        {
            return reply(StatusCode::NOT_FOUND, "text/html", "<html>404</html>");
        }
        let body: serde_json::Value = serde_json::from_str(&call.body).unwrap();
        if body["appid"] != DOUYIN_APPID || body["secret"] != DOUYIN_SECRET {
            return error(40017);
        }
        let code = body["code"].as_str().unwrap_or("").to_owned();
        let anonymous = body["anonymous_code"]
            .as_str()
            .map(|a| format!("anon-{}", openid_for(a)));
        match code.as_str() {
            "bad" => error(40018),
            "badanon" => error(40019),
            "busy" => error(-1),
            "other" => error(40014),
            c => json(
                serde_json::json!({"err_no": 0, "err_tips": "success", "data": {
                    "openid": openid_for(c),
                    "session_key": PLATFORM_SESSION_KEY,
                    // Douyin sends absent ids as "".
                    "unionid": c.strip_prefix("union:").unwrap_or(""),
                    "anonymous_openid": anonymous.unwrap_or_default(),
                }}),
            ),
        }
    })
    .await
}

/// Baidu's `POST /oauth/jscode2sessionkey`. Codes: `bad` is a 400
/// `invalid_grant`; `busy` a 503; `other` an `invalid_client`.
pub async fn baidu() -> StandIn {
    stand_in(|call: Call, _| async move {
        let error = |status: StatusCode, e: &str| {
            reply(
                status,
                "application/json",
                serde_json::json!({"errno": 40001, "error": e, "error_description": "stand-in"})
                    .to_string(),
            )
        };
        if call.method != "POST"
            || call.path != "/oauth/jscode2sessionkey"
            || !call
                .content_type
                .starts_with("application/x-www-form-urlencoded")
        {
            return reply(StatusCode::NOT_FOUND, "text/html", "<html>404</html>");
        }
        if call.param("client_id").as_deref() != Some(BAIDU_APPID)
            || call.param("sk").as_deref() != Some(BAIDU_SECRET)
        {
            return error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        match call.param("code").unwrap_or_default().as_str() {
            "bad" => error(StatusCode::BAD_REQUEST, "invalid_grant"),
            "busy" => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/html",
                "<html>503</html>",
            ),
            "other" => error(StatusCode::OK, "invalid_client"),
            c => json(
                serde_json::json!({"openid": openid_for(c), "session_key": PLATFORM_SESSION_KEY}),
            ),
        }
    })
    .await
}

/// Alipay's open gateway at `/gateway.do`. The call's RSA2 signature is
/// checked with the app's public key (a bad one: a signed
/// `isv.invalid-signature`, counted); the common parameters too. Codes:
/// `bad` is a signed `error_response` `isv.code-invalid`; `bad-in-root` the
/// same inside the method's object; `busy` `isp.unknow-error`; `other`
/// `isv.invalid-app-id`; `userid` answers only the legacy `user_id`;
/// `badsign` a corrupted signature; `nosign` none; `wrongkey` signed with
/// another key; `tampered` an open_id changed after signing; `dupe` the
/// method's object twice; `unsigned-bad` an unsigned `isv.code-invalid`.
pub async fn alipay() -> StandIn {
    stand_in(|call: Call, me: StandIn| async move {
        let key = alipay_key();
        let signed = |root: &str, content: String, key: &SigningKey| {
            let sign = key.sign(content.as_bytes()).unwrap();
            format!(r#"{{"{root}":{content},"sign":"{sign}"}}"#)
        };
        let answer = |body: String| reply(StatusCode::OK, "text/html;charset=utf-8", body);
        let error = |sub_code: &str, code: &str| {
            let content = serde_json::json!({"code": code, "msg": "stand-in", "sub_code": sub_code, "sub_msg": "\u{6388}\u{6743}\u{7801}\u{65e0}\u{6548}"}).to_string();
            answer(signed(ERROR_RESPONSE, content, &key))
        };
        if call.method != "POST"
            || call.path != "/gateway.do"
            || call.content_type != "application/x-www-form-urlencoded;charset=utf-8"
        {
            return reply(StatusCode::NOT_FOUND, "text/html", "<html>404</html>");
        }
        let params = call.params();
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app_public: VerifyingKey = app_key().verifying_key();
        let sign_ok = call
            .param("sign")
            .is_some_and(|s| app_public.verify(sign_content(&pairs).as_bytes(), &s));
        if !sign_ok {
            me.bad_signatures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return error("isv.invalid-signature", "40002");
        }
        // The common parameters, and a timestamp of now in China time.
        let now = SystemTime::now();
        let fresh = call.param("timestamp").is_some_and(|t| {
            (0..=120).any(|back| china_time(now - Duration::from_secs(back)) == t)
        });
        let expected = [
            ("app_id", ALIPAY_APPID),
            ("method", "alipay.system.oauth.token"),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
            ("grant_type", "authorization_code"),
        ];
        if !fresh || expected.iter().any(|(k, v)| call.param(k).as_deref() != Some(v)) {
            return error("isv.missing-or-invalid-parameter", "40002");
        }
        let code = call.param("code").unwrap_or_default();
        let ok_content = |id_field: &str| {
            let mut v = serde_json::json!({
                "access_token": ALIPAY_ACCESS_TOKEN, "expires_in": 1_296_000,
                "refresh_token": "refresh-must-not-leak", "re_expires_in": 2_592_000,
                "auth_start": "2024-05-01 12:00:00",
            });
            v[id_field] = openid_for(&code).into();
            v.to_string()
        };
        match code.as_str() {
            "bad" => error("isv.code-invalid", "40002"),
            "busy" => error("isp.unknow-error", "20000"),
            "other" => error("isv.invalid-app-id", "40002"),
            "bad-in-root" => {
                let content = r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid","sub_msg":"\u6388\u6743\u7801\u65e0\u6548"}"#;
                answer(signed(RESPONSE, content.into(), &key))
            }
            "userid" => answer(signed(RESPONSE, ok_content("user_id"), &key)),
            "badsign" => {
                let body = signed(RESPONSE, ok_content("open_id"), &key);
                let at = body.len() - 10;
                let flipped = if &body[at..at + 1] == "A" { "B" } else { "A" };
                answer(format!("{}{flipped}{}", &body[..at], &body[at + 1..]))
            }
            "nosign" => answer(format!(r#"{{"{RESPONSE}":{}}}"#, ok_content("open_id"))),
            "unsigned-bad" => answer(format!(
                r#"{{"{ERROR_RESPONSE}":{{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid"}}}}"#
            )),
            "wrongkey" => answer(signed(RESPONSE, ok_content("open_id"), &stranger_key())),
            "tampered" => {
                let body = signed(RESPONSE, ok_content("open_id"), &key);
                answer(body.replace(&openid_for(&code), "openid-of-someone-else"))
            }
            "dupe" => {
                // A second object before the signed one: which would be believed?
                let body = signed(RESPONSE, ok_content("open_id"), &key);
                answer(format!(r#"{{"{RESPONSE}":{{"open_id":"evil"}},{}"#, &body[1..]))
            }
            _ => {
                // Both ids, keys in Alipay's order, and an escaped slash:
                // the signature covers the text exactly as sent.
                let content = format!(
                    r#"{{"access_token":"{ALIPAY_ACCESS_TOKEN}","alipay_user_id":"20880000000000000000000000000001","auth_start":"2024-05-01 12:00:00","expires_in":1296000,"open_id":"{}","re_expires_in":2592000,"refresh_token":"refresh-must-not-leak","user_id":"2088000000000001","note":"a\/b"}}"#,
                    openid_for(&code)
                );
                answer(signed(RESPONSE, content, &key))
            }
        }
    })
    .await
}
