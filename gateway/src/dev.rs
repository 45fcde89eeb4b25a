//! `minigate serve --dev`: the whole gateway on one machine with nothing to set up.
//!
//! Dev mode runs the real gateway (real WeChat client, real token code, real
//! proxy) against two built-in neighbours on 127.0.0.1: a stand-in for
//! WeChat's `jscode2session` that speaks its wire format and accepts any
//! code, and a demo upstream that echoes the identity headers it received.
//! The stand-in also plays WeChat's web authorization (an authorize page
//! that sends the browser back with a code and the state, and
//! `sns/oauth2/access_token`), so the browser sign-in can be clicked
//! through on `http://127.0.0.1` (a `wechat_web` app, `[web] cookies = true`).
//! Keys are generated in memory and gone at exit. None of this is reachable
//! without `--dev`: the stand-ins exist only inside [`run`].

use std::convert::Infallible;
use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::{
    defaults, AuthMode, Config, KeysConfig, Platform, ProviderConfig, RouteConfig, Secret,
    ServerConfig, SessionsConfig, TokensConfig, WebConfig,
};
use crate::gateway::{Gateway, StartError};
use crate::server::Running;

/// The appid of the dev mini-program.
pub const DEV_APPID: &str = "wxdev000000000000";
const DEV_SECRET: &str = "dev-mode-app-secret";
/// The appid of the dev web sign-in (`wechat_web`).
pub const DEV_WEB_APPID: &str = "wxdevweb000000000";
const DEV_WEB_SECRET: &str = "dev-mode-web-secret";

/// Serves `service` on `listener` until the process ends.
fn spawn_http<F, Fut>(listener: TcpListener, service: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let service = service.clone();
                    async move { Ok::<_, Infallible>(service(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

/// The ids the stand-in gives a code: the same code is the same person
/// (the same unionid) in the mini-program and on the web.
fn dev_ids(code: &str) -> (String, String, String) {
    let digest = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    let id = B64.encode(&digest.as_ref()[..12]);
    (
        id.clone(),
        format!("dev-unionid-{id}"),
        B64.encode(&digest.as_ref()[12..28]),
    )
}

/// Escapes text for an HTML attribute or element.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The stand-in authorize page: a form that sends the browser back to
/// `redirect_uri` with the code typed in (the user it signs in as) and the
/// state, as WeChat does once the user allows.
fn stand_in_authorize(param: &dyn Fn(&str) -> Option<String>) -> Response<Full<Bytes>> {
    let (Some(redirect_uri), Some(state)) = (param("redirect_uri"), param("state")) else {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "redirect_uri and state are required\n".into(),
        );
    };
    if param("appid").as_deref() != Some(DEV_WEB_APPID)
        || !redirect_uri.starts_with("http://127.0.0.1:")
    {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "unknown appid or redirect_uri\n".into(),
        );
    }
    let page = format!(
        r#"<!doctype html><meta charset="utf-8"><title>WeChat sign-in (minigate dev stand-in)</title>
<h1>WeChat sign-in: dev stand-in</h1>
<p>In production this is WeChat's page ({scope}). Here any name signs in; the same name is the
same person (the same unionid) as a mini-program login with that code.</p>
<form method="get" action="{action}">
<input type="hidden" name="state" value="{state}">
<label>Sign in as <input id="code" name="code" value="dev-user"></label>
<button id="allow" type="submit">Allow</button>
</form>
<form method="get" action="{action}"><input type="hidden" name="state" value="{state}">
<button id="deny" type="submit">Deny</button></form>
"#,
        scope = html_escape(&param("scope").unwrap_or_default()),
        action = html_escape(&redirect_uri),
        state = html_escape(&state),
    );
    text(StatusCode::OK, "text/html; charset=utf-8", page)
}

/// The stand-in `jscode2session`: any code of the dev app logs in, and the
/// openid is derived from the code, so the same code gives the same user.
/// Also WeChat's web authorization: [`stand_in_authorize`] and
/// `sns/oauth2/access_token`.
async fn stand_in_wechat(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        reqwest::Url::parse(&format!("http://x/?{query}"))
            .ok()
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            })
    };
    // WeChat answers JSON as text/plain.
    let answer = |body: serde_json::Value| text(StatusCode::OK, "text/plain", body.to_string());
    match req.uri().path() {
        "/sns/jscode2session" => {}
        "/connect/oauth2/authorize" | "/connect/qrconnect" => return stand_in_authorize(&param),
        "/sns/oauth2/access_token" => {
            if param("appid").as_deref() != Some(DEV_WEB_APPID)
                || param("secret").as_deref() != Some(DEV_WEB_SECRET)
            {
                return answer(
                    serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}),
                );
            }
            let Some(code) = param("code").filter(|c| !c.is_empty()) else {
                return answer(serde_json::json!({"errcode": 40029, "errmsg": "invalid code"}));
            };
            let (id, unionid, _) = dev_ids(&code);
            return answer(serde_json::json!({
                "access_token": "dev-web-access-token", "expires_in": 7200,
                "refresh_token": "dev-web-refresh-token", "scope": "snsapi_base",
                "openid": format!("dev-web-openid-{id}"), "unionid": unionid,
            }));
        }
        _ => return text(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
    }
    if param("appid").as_deref() != Some(DEV_APPID)
        || param("secret").as_deref() != Some(DEV_SECRET)
    {
        return answer(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    let Some(code) = param("js_code").filter(|c| !c.is_empty()) else {
        return answer(serde_json::json!({"errcode": 40029, "errmsg": "invalid code"}));
    };
    let (id, unionid, session_key) = dev_ids(&code);
    answer(serde_json::json!({
        "openid": format!("dev-openid-{id}"),
        "unionid": unionid,
        "session_key": session_key,
    }))
}

/// The demo upstream: echoes what reached it, identity headers first.
async fn demo_upstream(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let identity: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-auth-"))
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").into()))
        .collect();
    let body = serde_json::json!({
        "upstream": "minigate dev demo upstream",
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "authenticated": !identity.is_empty(),
        "identity": identity,
        "x-request-id": header("x-request-id"),
        "x-forwarded-for": header("x-forwarded-for"),
    });
    let mut pretty = serde_json::to_string_pretty(&body).unwrap_or_default();
    pretty.push('\n');
    text(StatusCode::OK, "application/json", pretty)
}

/// The dev config: routes to the demo upstream, one dev mini-program.
fn dev_config(listen: SocketAddr, wechat: SocketAddr, upstream: SocketAddr) -> Config {
    // A socket address is always a valid authority.
    let upstream_uri = http::Uri::builder()
        .scheme("http")
        .authority(upstream.to_string())
        .path_and_query("/")
        .build()
        .unwrap_or_default();
    let route = |prefix: &str, auth| RouteConfig {
        prefix: prefix.into(),
        upstream: http::Uri::clone(&upstream_uri),
        auth,
        timeout: defaults::ROUTE_TIMEOUT,
        allow: None,
    };
    Config {
        listen,
        tokens: TokensConfig {
            issuer: format!("http://{listen}"),
            audience: vec!["minigate-dev".into()],
            access_ttl: defaults::ACCESS_TTL,
            refresh_ttl: defaults::REFRESH_TTL,
            leeway: defaults::LEEWAY,
            cache_capacity: 10_000,
        },
        keys: KeysConfig {
            dir: "(in memory)".into(),
            reload_interval: defaults::KEYS_RELOAD_INTERVAL,
        },
        providers: vec![
            ProviderConfig {
                platform: Platform::WeChat,
                appid: DEV_APPID.into(),
                secret: Secret::new(DEV_SECRET.into()),
                secret_source: "built in (dev)".into(),
                base_url: format!("http://{wechat}"),
                timeout: defaults::PROVIDER_TIMEOUT,
                authorize_url: None,
            },
            ProviderConfig {
                platform: Platform::WeChatWeb,
                appid: DEV_WEB_APPID.into(),
                secret: Secret::new(DEV_WEB_SECRET.into()),
                secret_source: "built in (dev)".into(),
                base_url: format!("http://{wechat}"),
                timeout: defaults::PROVIDER_TIMEOUT,
                authorize_url: Some(format!("http://{wechat}")),
            },
        ],
        routes: vec![
            route("/api/", AuthMode::Required),
            route("/maybe/", AuthMode::Optional),
            route("/public/", AuthMode::Public),
        ],
        sessions: SessionsConfig {
            max_sessions: 10_000,
            ..SessionsConfig::default()
        },
        server: ServerConfig::default(),
        tls: None,
        log: Default::default(),
        roles: Vec::new(),
        enrich: None,
        source: None,
        admin: None,
        web: Some(WebConfig {
            public_url: format!("http://{listen}"),
            cookies: true,
        }),
    }
}

/// The copy-paste walkthrough for a gateway at `addr`.
pub fn walkthrough(addr: SocketAddr) -> String {
    let base = format!("http://{addr}");
    format!(
        r#"minigate dev mode: NOT FOR PRODUCTION (in-memory keys, stand-in WeChat, demo upstream)
gateway on {base}
  /api/     -> demo upstream, token required
  /maybe/   -> demo upstream, token optional
  /public/  -> demo upstream, no check

Try it in another terminal (bash); any code logs in:
### walkthrough
LOGIN=$(curl -s -X POST {base}/auth/login -H 'content-type: application/json' -d '{{"code":"any-code-from-wx.login"}}'); echo "$LOGIN"
ACCESS=$(printf '%s' "$LOGIN" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
REFRESH=$(printf '%s' "$LOGIN" | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/')
curl -s {base}/api/hello -H "Authorization: Bearer $ACCESS"
curl -s -i {base}/api/hello; echo
NEXT=$(curl -s -X POST {base}/auth/refresh -H 'content-type: application/json' -d "{{\"refresh_token\":\"$REFRESH\"}}"); echo "$NEXT"
curl -s -X POST {base}/auth/refresh -H 'content-type: application/json' -d "{{\"refresh_token\":\"$REFRESH\"}}"; echo
curl -s {base}/.well-known/jwks.json; echo
### end
(The second refresh reuses a spent refresh token: the session is revoked and NEXT's refresh
token stops working too. POST /auth/logout with a refresh token ends a session the same way.)

In a browser (Chromium or Firefox: they keep Secure cookies for http://127.0.0.1, Safari does not),
sign in on the web as WeChat's H5 sign-in would, through the stand-in's authorize page:
  {base}/auth/web/login?redirect=/api/hello
The page that opens is the demo upstream, reached with the HttpOnly access cookie; from its
console, fetch('/auth/refresh', {{method: 'POST'}}) renews the cookies and
fetch('/auth/logout', {{method: 'POST'}}) ends the session.
"#
    )
}

/// Why dev mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// Dev mode is for this machine only.
    #[error("--dev listens on loopback only, not {0}")]
    NotLoopback(SocketAddr),
    /// A socket could not be bound.
    #[error("listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The in-memory keys could not be made.
    #[error(transparent)]
    Keys(#[from] jwks::KeySetError),
    /// The gateway did not start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Starts dev mode on `listen` (a loopback address): the stand-ins, then
/// the gateway. The caller prints [`walkthrough`] and stops it.
pub async fn start(listen: SocketAddr) -> Result<Running, DevError> {
    if !listen.ip().is_loopback() {
        return Err(DevError::NotLoopback(listen));
    }
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let bind = |addr| async move {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DevError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| DevError::Bind { addr, source })?;
        Ok::<_, DevError>((listener, local))
    };
    let (wechat, wechat_addr) = bind(loopback(0)).await?;
    let (upstream, upstream_addr) = bind(loopback(0)).await?;
    let (gateway_listener, listen) = bind(listen).await?;
    let config = dev_config(listen, wechat_addr, upstream_addr);
    spawn_http(wechat, stand_in_wechat);
    spawn_http(upstream, demo_upstream);
    let keys = jwks::KeySet::generate(jwks::Alg::ES256, std::time::SystemTime::now())?;
    let store = crate::keys::KeyStore::new(keys, &config.tokens.issuer);
    let gateway = std::sync::Arc::new(Gateway::new(&config, store).map_err(DevError::Start)?);
    crate::server::serve(gateway_listener, gateway).map_err(|source| DevError::Bind {
        addr: listen,
        source,
    })
}
