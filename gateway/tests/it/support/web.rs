//! The browser sign-in's neighbours: a stand-in for WeChat's web
//! authorization (its authorize pages and `sns/oauth2/access_token`), and
//! an upstream serving pages that show who reached them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;

use minigate::config::Platform;
use minigate::ops::dev::standins::{App, AuthorizePage, StandIn};

use super::{openid_for, serve, Codes, Seen};

/// The `wechat_web` app (in-WeChat H5, `snsapi_base`).
pub const WEB_APPID: &str = "wxweb000000000001";
/// The `wechat_pc` app (QR-code login, `snsapi_login`).
pub const PC_APPID: &str = "wxpc0000000000001";
/// Both apps' secret (env `TEST_WEB_SECRET`).
pub const WEB_SECRET: &str = "WEB-SECRET-must-not-leak-5e2b";
/// WeChat's own access token in every exchange answer: minigate must drop it.
pub const WX_WEB_TOKEN: &str = "WX-WEB-ACCESS-TOKEN-must-not-leak-a11c";

fn plain(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    res
}

/// The openid WeChat gives `code`'s user in app `appid` (openids are per app).
pub fn web_openid(appid: &str, code: &str) -> String {
    format!("web-{}", openid_for(&format!("{appid}:{code}")))
}

/// The stand-in for WeChat's web authorization: the gateway's own
/// stand-in WeChat with the `wechat_web` and `wechat_pc` apps.
///
/// Its authorize pages (`/connect/oauth2/authorize` with `snsapi_base`,
/// `/connect/qrconnect` with `snsapi_login`) check their parameters and
/// send the browser straight back (302) to `redirect_uri?code=...&state=...`,
/// as WeChat does once the user allows; the code is the next one queued
/// with [`StandIn::next_code`], else a fresh one, and `deny` comes back
/// without a code. `sns/oauth2/access_token` answers codes as the
/// mini-program stand-in does: `union:X` gives unionid X, `err:N` errcode N,
/// `notjson`, `slow` (3 s), anything else an openid of the app and code; a
/// code is good once per app (40163 after).
pub type WebWeChat = StandIn;

/// What the web stand-in was asked.
pub trait WebCalls {
    /// Every authorize page query.
    fn authorizes(&self) -> Vec<String>;
    /// Every exchange query.
    fn exchanges(&self) -> Vec<String>;
    fn exchange_count(&self) -> usize {
        self.exchanges().len()
    }
}

impl WebCalls for StandIn {
    fn authorizes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.starts_with("/connect/"))
            .map(|c| c.query)
            .collect()
    }

    fn exchanges(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == "/sns/oauth2/access_token")
            .map(|c| c.query)
            .collect()
    }
}

pub async fn web_wechat() -> WebWeChat {
    let apps = vec![
        App::secret(
            Platform::named("wechat_web").unwrap(),
            WEB_APPID,
            WEB_SECRET,
        ),
        App::secret(Platform::named("wechat_pc").unwrap(), PC_APPID, WEB_SECRET),
    ];
    StandIn::start(apps, Codes::default(), AuthorizePage::Redirect)
        .await
        .unwrap()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An upstream of pages. `GET …/page` answers an HTML page showing the
/// identity headers it was reached with (`#who` the subject or
/// `anonymous`, `#device` the device type, `#platform`, `#unionid`);
/// `GET /evil/attack.html?target=URL` is a page of another origin that,
/// once loaded, POSTs to `target` with the browser's cookies (a `no-cors`
/// `fetch`, and a form) and says so in `#sent`; anything else records what
/// reached it and answers JSON `{"subject", "cookie"}`.
#[derive(Clone)]
pub struct Pages {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Pages {
    /// What reached it with `method` at a path ending in `suffix`.
    pub fn seen(&self, method: &str, suffix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method && s.uri.split('?').next().unwrap().ends_with(suffix))
            .cloned()
            .collect()
    }
}

pub async fn pages() -> Pages {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let h = |n: &str| {
                parts
                    .headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            log.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts.headers.clone(),
                body: body.clone(),
            });
            let path = parts.uri.path();
            if path.ends_with("/page") {
                let who = match h("x-auth-subject") {
                    s if s.is_empty() => "anonymous".to_owned(),
                    s => s,
                };
                let page = format!(
                    "<!doctype html><meta charset=\"utf-8\"><title>signed in</title>\n<p id=\"who\">{}</p><p id=\"device\">{}</p><p id=\"platform\">{}</p><p id=\"unionid\">{}</p>\n",
                    escape(&who),
                    escape(&h("x-auth-device-type")),
                    escape(&h("x-auth-platform")),
                    escape(&h("x-auth-unionid")),
                );
                return plain(StatusCode::OK, "text/html; charset=utf-8", page);
            }
            if path == "/evil/attack.html" {
                let target = parts
                    .uri
                    .query()
                    .and_then(|q| q.strip_prefix("target="))
                    .map(|t| {
                        reqwest::Url::parse(&format!("http://x/?t={t}"))
                            .unwrap()
                            .query_pairs()
                            .next()
                            .unwrap()
                            .1
                            .into_owned()
                    })
                    .unwrap_or_default();
                let page = format!(
                    r#"<!doctype html><meta charset="utf-8"><title>another origin</title>
<p id="sent">pending</p>
<script>
fetch({target:?}, {{method: "POST", credentials: "include", mode: "no-cors", body: "from another origin"}})
  .then(() => {{ document.getElementById("sent").textContent = "sent"; }},
        e => {{ document.getElementById("sent").textContent = "error " + e; }});
</script>
"#
                );
                return plain(StatusCode::OK, "text/html; charset=utf-8", page);
            }
            plain(
                StatusCode::OK,
                "application/json",
                serde_json::json!({"subject": h("x-auth-subject"), "cookie": h("cookie")}).to_string(),
            )
        }
    })
    .await;
    Pages { addr, seen }
}
