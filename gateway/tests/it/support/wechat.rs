//! The stand-in WeChat (the gateway's own, `minigate::ops::dev::standins`,
//! as `serve --dev` runs it), with the test apps and the test codes of
//! [`Codes`](super::Codes).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{Request, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use minigate::config::Platform;
use minigate::ops::dev::standins::{App, AuthorizePage, StandIn};

use super::{serve, Codes};

pub const APPID: &str = "wx0000000000000001";
pub const APPID2: &str = "wx0000000000000002";
pub const SECRET: &str = "APP-SECRET-must-not-leak-7f3a";
pub const SESSION_KEY: &str = "SESSIONKEY-must-not-leak-9c1d";

/// The stand-in WeChat (and QQ, for `QQ_APPID`). Login codes choose the
/// answer: `err:N` errcode N; `slow` answers after 3 s; `notjson`;
/// `noopenid`; `http500`; `badopenid`; `union:X` adds unionid X; `aes:...`
/// hands out a real AES-128 session_key ([`session_key_for`]); anything
/// else logs in with an openid derived from the code and [`SESSION_KEY`].
///
/// It also serves `cgi-bin/stable_token` (counting calls; tokens are
/// `AT-{appid}-{n}`, a new `n` on `force_refresh` or after
/// [`StandIn::drop_token`]) and `wxa/business/getuserphonenumber` (codes:
/// `phone:NUMBER` answers that number with this app's watermark,
/// `phone-other-app` another app's watermark, `err:N` errcode N; a token
/// that is not the current one gets 40001). Every call is recorded
/// ([`StandIn::queries`]).
pub type WeChat = StandIn;

pub async fn wechat() -> WeChat {
    let qq = Platform::named("qq").unwrap();
    let apps = vec![
        App::secret(Platform::wechat(), APPID, SECRET),
        App::secret(Platform::wechat(), APPID2, SECRET),
        App::secret(qq, super::QQ_APPID, super::QQ_SECRET),
    ];
    StandIn::start(apps, Codes::default(), AuthorizePage::Redirect)
        .await
        .unwrap()
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

/// An impostor at a platform's address: answers every call with a
/// redirect to the same call at `to`.
pub struct Redirecting {
    pub addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
}

impl Redirecting {
    /// Every raw query string received.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

/// A server that answers every call with a redirect to the same call at
/// `to` (the query, app secret included, carried along): status `N` for
/// the code `redirect:N`, else 302. What a hijacked or impersonated
/// platform endpoint would do.
pub async fn wechat_redirecting(to: SocketAddr) -> Redirecting {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let query = req.uri().query().unwrap_or("").to_owned();
            seen.lock().unwrap().push(query.clone());
            let status = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "js_code")
                .and_then(|(_, v)| v.strip_prefix("redirect:")?.parse().ok())
                .unwrap_or(302);
            http::Response::builder()
                .status(StatusCode::from_u16(status).unwrap())
                .header("content-type", "text/html")
                .header(
                    "location",
                    format!("http://{to}{}?{query}", req.uri().path()),
                )
                .body(Full::new(bytes::Bytes::from_static(b"<html>moved</html>")))
                .unwrap()
        }
    })
    .await;
    Redirecting { addr, queries }
}
