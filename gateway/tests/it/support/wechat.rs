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

/// The stand-in WeChat (and QQ, for `QQ_APPID`). Codes choose the answer:
/// `err:N` errcode N; `slow` answers after 3 s; `notjson`; `noopenid`;
/// `http500`; `badopenid`; `union:X` adds unionid X; anything else logs in
/// with an openid derived from the code.
#[derive(Clone)]
pub struct WeChat {
    pub addr: SocketAddr,
    /// Every raw query string received.
    pub queries: Arc<Mutex<Vec<String>>>,
}

pub fn openid_for(code: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    format!(
        "openid-{}",
        d.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

pub async fn wechat() -> WeChat {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let seen = seen.clone();
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
            if req.method() != http::Method::GET || req.uri().path() != "/sns/jscode2session" {
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
            let ok = |unionid: Option<&str>| {
                let mut v =
                    serde_json::json!({"openid": openid_for(&code), "session_key": SESSION_KEY});
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
    WeChat { addr, queries }
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
    WeChat { addr, queries }
}
