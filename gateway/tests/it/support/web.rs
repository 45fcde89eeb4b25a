//! The browser sign-in's neighbours: a stand-in for WeChat's web
//! authorization (its authorize pages and `sns/oauth2/access_token`), and
//! an upstream serving pages that show who reached them.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;

use super::{openid_for, serve, Seen};

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

/// The stand-in for WeChat's web authorization.
///
/// Its authorize pages (`/connect/oauth2/authorize` with `snsapi_base`,
/// `/connect/qrconnect` with `snsapi_login`) check their parameters and
/// send the browser straight back (302) to `redirect_uri?code=...&state=...`,
/// as WeChat does once the user allows; the code is the next one queued
/// with [`WebWeChat::next_code`], else a fresh one, and `deny` comes back
/// without a code. `sns/oauth2/access_token` answers codes as the
/// mini-program stand-in does: `union:X` gives unionid X, `err:N` errcode N,
/// `notjson`, `slow` (3 s), anything else an openid of the app and code; a
/// code is good once per app (40163 after).
#[derive(Clone)]
pub struct WebWeChat {
    pub addr: SocketAddr,
    /// Codes the authorize page hands out next, in order.
    pub codes: Arc<Mutex<VecDeque<String>>>,
    /// Every authorize page query.
    pub authorizes: Arc<Mutex<Vec<String>>>,
    /// Every exchange query.
    pub exchanges: Arc<Mutex<Vec<String>>>,
}

impl WebWeChat {
    /// The base URL of both the authorize page and the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues the code the authorize page hands out next.
    pub fn next_code(&self, code: &str) {
        self.codes.lock().unwrap().push_back(code.to_owned());
    }

    pub fn exchange_count(&self) -> usize {
        self.exchanges.lock().unwrap().len()
    }
}

fn query_of(req: &Request<Incoming>) -> (String, Vec<(String, String)>) {
    let query = req.uri().query().unwrap_or("").to_owned();
    let url = reqwest::Url::parse(&format!("http://x/?{query}")).unwrap();
    let pairs = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (query, pairs)
}

pub async fn web_wechat() -> WebWeChat {
    let codes: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let authorizes: Arc<Mutex<Vec<String>>> = Arc::default();
    let exchanges: Arc<Mutex<Vec<String>>> = Arc::default();
    let used: Arc<Mutex<HashSet<String>>> = Arc::default();
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (c, a, e) = (codes.clone(), authorizes.clone(), exchanges.clone());
    let addr = serve(move |req: Request<Incoming>| {
        let (codes, authorizes, exchanges, used, counter) = (
            c.clone(),
            a.clone(),
            e.clone(),
            used.clone(),
            counter.clone(),
        );
        async move {
            let (query, pairs) = query_of(&req);
            let param = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let json = |v: serde_json::Value| plain(StatusCode::OK, "text/plain", v.to_string());
            let path = req.uri().path().to_owned();
            let scope = match path.as_str() {
                "/connect/oauth2/authorize" => Some("snsapi_base"),
                "/connect/qrconnect" => Some("snsapi_login"),
                _ => None,
            };
            if let Some(scope) = scope {
                authorizes.lock().unwrap().push(query.clone());
                let app = param("appid").unwrap_or_default();
                let ok = matches!(
                    (app.as_str(), scope),
                    (WEB_APPID, "snsapi_base") | (PC_APPID, "snsapi_login")
                ) && param("response_type").as_deref() == Some("code")
                    && param("scope").as_deref() == Some(scope);
                let (Some(redirect), Some(state)) = (param("redirect_uri"), param("state")) else {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "redirect_uri and state are required",
                    );
                };
                if !ok {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "bad authorize parameters",
                    );
                }
                let code = codes.lock().unwrap().pop_front().unwrap_or_else(|| {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    format!("web-user-{n}")
                });
                let mut back = reqwest::Url::parse(&redirect).unwrap();
                if code != "deny" {
                    back.query_pairs_mut().append_pair("code", &code);
                }
                back.query_pairs_mut().append_pair("state", &state);
                let mut res = plain(StatusCode::FOUND, "text/html", "<html>redirecting</html>");
                res.headers_mut()
                    .insert("location", back.as_str().parse().unwrap());
                return res;
            }
            if path != "/sns/oauth2/access_token" || req.method() != http::Method::GET {
                return plain(StatusCode::NOT_FOUND, "text/html", "<html>404</html>");
            }
            exchanges.lock().unwrap().push(query.clone());
            let app = param("appid").unwrap_or_default();
            if !matches!(app.as_str(), WEB_APPID | PC_APPID)
                || param("secret").as_deref() != Some(WEB_SECRET)
                || param("grant_type").as_deref() != Some("authorization_code")
            {
                return json(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
            }
            let code = param("code").unwrap_or_default();
            if !used.lock().unwrap().insert(format!("{app}:{code}")) {
                return json(serde_json::json!({"errcode": 40163, "errmsg": "code been used"}));
            }
            let ok = |unionid: Option<&str>| {
                let mut v = serde_json::json!({
                    "access_token": WX_WEB_TOKEN, "expires_in": 7200,
                    "refresh_token": "WX-WEB-REFRESH", "openid": web_openid(&app, &code),
                    "scope": if app == PC_APPID { "snsapi_login" } else { "snsapi_base" },
                });
                if let Some(u) = unionid {
                    v["unionid"] = u.into();
                }
                json(v)
            };
            match code.as_str() {
                "notjson" => plain(StatusCode::OK, "text/html", "<html>system busy</html>"),
                "slow" => {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    ok(None)
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
    WebWeChat {
        addr,
        codes,
        authorizes,
        exchanges,
    }
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
