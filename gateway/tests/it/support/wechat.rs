//! The stand-in WeChat: speaks `jscode2session`'s wire format, with codes
//! that choose its answer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::serve;

pub const APPID: &str = "wx0000000000000001";
pub const APPID2: &str = "wx0000000000000002";
pub const SECRET: &str = "APP-SECRET-must-not-leak-7f3a";
pub const SESSION_KEY: &str = "SESSIONKEY-must-not-leak-9c1d";

fn plain(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    res
}

/// The stand-in WeChat (and QQ, for `QQ_APPID`). Login codes choose the answer:
/// `err:N` errcode N; `slow` answers after 3 s; `notjson`; `noopenid`;
/// `http500`; `badopenid`; `union:X` adds unionid X; `aes:...` hands out
/// a real AES-128 session_key ([`session_key_for`]); anything else logs in
/// with an openid derived from the code and [`SESSION_KEY`].
///
/// It also serves `cgi-bin/stable_token` (counting calls; tokens are
/// `AT-{appid}-{n}`, a new `n` on `force_refresh` or after
/// [`WeChat::drop_token`]) and `wxa/business/getuserphonenumber` (codes:
/// `phone:NUMBER` answers that number with this app's watermark,
/// `phone-other-app` another app's watermark, `err:N` errcode N; a token
/// that is not the current one gets 40001).
#[derive(Clone)]
pub struct WeChat {
    pub addr: SocketAddr,
    /// Every raw query string received.
    pub queries: Arc<Mutex<Vec<String>>>,
    /// `stable_token` calls so far.
    pub token_calls: Arc<std::sync::atomic::AtomicUsize>,
    /// The current access token generation.
    pub generation: Arc<std::sync::atomic::AtomicUsize>,
}

impl WeChat {
    /// Makes WeChat forget the current access token, as when another
    /// caller forced a new one: calls with it get 40001.
    pub fn drop_token(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn stable_token_calls(&self) -> usize {
        self.token_calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The AES-128 session_key the stand-in hands out for an `aes:` code,
/// base64.
pub fn session_key_for(code: &str) -> String {
    use base64::Engine as _;
    let d = ring::digest::digest(&ring::digest::SHA256, format!("key:{code}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&d.as_ref()[..16])
}

/// The openid the stand-in gives a code. Everything from a `#` on is not
/// part of the user: `kim#1` and `kim#2` are two codes of one user (login
/// codes are single-use, and the gateway treats a code seen again as a
/// retry).
pub fn openid_for(code: &str) -> String {
    let user = code.split('#').next().unwrap_or(code);
    let d = ring::digest::digest(&ring::digest::SHA256, user.as_bytes());
    format!(
        "openid-{}",
        d.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

pub async fn wechat() -> WeChat {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let queries = Arc::new(Mutex::new(Vec::new()));
    let token_calls = Arc::new(AtomicUsize::new(0));
    let generation = Arc::new(AtomicUsize::new(1));
    let (seen, calls, gen) = (queries.clone(), token_calls.clone(), generation.clone());
    let addr = serve(move |req: Request<Incoming>| {
        let (seen, calls, gen) = (seen.clone(), calls.clone(), gen.clone());
        async move {
            let query = req.uri().query().unwrap_or("").to_owned();
            seen.lock().unwrap().push(query.clone());
            let url = reqwest::Url::parse(&format!("http://x/?{query}")).unwrap();
            let param = |n: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.into_owned())
            };
            let json = |v: serde_json::Value| plain(StatusCode::OK, "text/plain", v.to_string());
            let path = req.uri().path().to_owned();
            if req.method() == http::Method::POST && path == "/cgi-bin/stable_token" {
                let body = http_body_util::BodyExt::collect(req.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let ask: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                calls.fetch_add(1, Ordering::SeqCst);
                let appid = ask["appid"].as_str().unwrap_or_default().to_owned();
                if !matches!(appid.as_str(), APPID | APPID2)
                    || ask["secret"] != SECRET
                    || ask["grant_type"] != "client_credential"
                {
                    return json(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
                }
                if ask["force_refresh"] == true {
                    gen.fetch_add(1, Ordering::SeqCst);
                }
                let n = gen.load(Ordering::SeqCst);
                return json(serde_json::json!({"access_token": format!("AT-{appid}-{n}"), "expires_in": 7200}));
            }
            if req.method() == http::Method::POST && path == "/wxa/business/getuserphonenumber" {
                let token = param("access_token").unwrap_or_default();
                let n = gen.load(Ordering::SeqCst);
                let Some(appid) = [APPID, APPID2]
                    .into_iter()
                    .find(|a| token == format!("AT-{a}-{n}"))
                else {
                    return json(serde_json::json!({"errcode": 40001, "errmsg": "invalid credential"}));
                };
                let body = http_body_util::BodyExt::collect(req.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let ask: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let code = ask["code"].as_str().unwrap_or_default().to_owned();
                let info = |number: &str, watermark: &str| {
                    json(serde_json::json!({"errcode": 0, "errmsg": "ok", "phone_info": {
                        "phoneNumber": format!("+86 {number}"), "purePhoneNumber": number,
                        "countryCode": "86", "watermark": {"timestamp": 1, "appid": watermark}}}))
                };
                return match code.as_str() {
                    c if c.starts_with("phone:") => info(&c[6..], appid),
                    "phone-other-app" => info("13800000000", "wx-some-other-app"),
                    c if c.starts_with("err:") => {
                        let n: i64 = c[4..].parse().unwrap();
                        json(serde_json::json!({"errcode": n, "errmsg": "stand-in error"}))
                    }
                    _ => json(serde_json::json!({"errcode": 40029, "errmsg": "invalid code"})),
                };
            }
            if req.method() != http::Method::GET || path != "/sns/jscode2session" {
                return plain(StatusCode::NOT_FOUND, "text/html", "<html>404</html>");
            }
            // QQ speaks this wire too, with its own app and secret.
            let secret = match param("appid").as_deref() {
                Some(APPID | APPID2) => Some(SECRET),
                Some(super::QQ_APPID) => Some(super::QQ_SECRET),
                _ => None,
            };
            if secret.is_none()
                || param("secret").as_deref() != secret
                || param("grant_type").as_deref() != Some("authorization_code")
            {
                return json(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
            }
            let code = param("js_code").unwrap_or_default();
            let code = code.split('#').next().unwrap_or_default().to_owned();
            let ok = |unionid: Option<&str>| {
                let key = if code.starts_with("aes:") {
                    session_key_for(&code)
                } else {
                    SESSION_KEY.to_owned()
                };
                let mut v = serde_json::json!({"openid": openid_for(&code), "session_key": key});
                if let Some(u) = unionid {
                    v["unionid"] = u.into();
                }
                json(v)
            };
            match code.as_str() {
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    ok(None)
                }
                "notjson" => plain(StatusCode::OK, "text/html", "<html>system busy</html>"),
                "noopenid" => json(serde_json::json!({"session_key": SESSION_KEY})),
                "http500" => plain(StatusCode::INTERNAL_SERVER_ERROR, "text/html", "oops"),
                "badopenid" => {
                    json(serde_json::json!({"openid": "bad id\u{7f}", "session_key": SESSION_KEY}))
                }
                c if c.starts_with("err:") => {
                    let n: i64 = c[4..].parse().unwrap();
                    json(serde_json::json!({"errcode": n, "errmsg": "stand-in error"}))
                }
                c if c.starts_with("union:") => ok(Some(&c[6..])),
                _ => ok(None),
            }
        }
    })
    .await;
    WeChat {
        addr,
        queries,
        token_calls,
        generation,
    }
}

/// A stand-in WeChat that answers every call with a redirect to the same
/// call at `to` (the query, app secret included, carried along): status
/// `N` for the code `redirect:N`, else 302. What a hijacked or
/// impersonated platform endpoint would do.
pub async fn wechat_redirecting(to: SocketAddr) -> WeChat {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let query = req.uri().query().unwrap_or("").to_owned();
            seen.lock().unwrap().push(query.clone());
            let url = reqwest::Url::parse(&format!("http://x/?{query}")).unwrap();
            let status = url
                .query_pairs()
                .find(|(k, _)| k == "js_code")
                .and_then(|(_, v)| v.strip_prefix("redirect:")?.parse().ok())
                .unwrap_or(302);
            let mut res = plain(
                StatusCode::from_u16(status).unwrap(),
                "text/html",
                "<html>moved</html>",
            );
            res.headers_mut().insert(
                "location",
                format!("http://{to}{}?{query}", req.uri().path())
                    .parse()
                    .unwrap(),
            );
            res
        }
    })
    .await;
    WeChat {
        addr,
        queries,
        token_calls: Default::default(),
        generation: Default::default(),
    }
}
