//! `minigate serve --dev`: the whole gateway on one machine with nothing to set up.
//!
//! Dev mode runs the real gateway (real platform client, real token code,
//! real proxy) against two built-in neighbours on 127.0.0.1: a stand-in for
//! the code exchange of one platform (`--platform`, WeChat by default) that
//! speaks its wire format and accepts any code of the dev app ([`standins`]
//! with the script of `apps`), and a demo upstream that echoes the identity
//! headers it received. Keys are generated in memory and gone at exit. With
//! WeChat, the stand-in also plays WeChat's web authorization (an authorize
//! page that sends the browser back with a code and the state, and
//! `sns/oauth2/access_token`), so the browser sign-in can be clicked
//! through on `http://127.0.0.1` (a `wechat_web` app, `[web] cookies =
//! true`). With `--platform wechat_component` the stand-in is a third-party
//! platform's WeChat, which pushes the gateway a `component_verify_ticket`
//! at start as WeChat would, and the dev mini-program logs in through the
//! platform. None of this runs without `--dev`: the stand-ins are public so
//! that the integration tests drive the same ones, but only [`start`] and
//! the tests start them.

mod apps;
pub mod standins;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::{
    defaults, AuthMode, Config, KeysConfig, Platform, RouteConfig, ServerConfig, SessionsConfig,
    TokensConfig, WebConfig,
};
use crate::gateway::{Gateway, StartError};
use crate::listener::Running;

pub use apps::{DEV_APPID, DEV_WEB_APPID};

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

/// The dev config: routes to the demo upstream, one dev mini-program of
/// `platform` whose stand-in listens at `stand_in`.
fn dev_config(
    listen: SocketAddr,
    platform: Platform,
    stand_in: SocketAddr,
    upstream: SocketAddr,
) -> Result<Config, DevError> {
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
    Ok(Config {
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
        providers: apps::providers(platform, stand_in)?,
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
        audit: Default::default(),
        tracing: None,
        web: (platform == Platform::wechat()).then(|| WebConfig {
            public_url: format!("http://{listen}"),
            cookies: true,
        }),
    })
}

/// The copy-paste walkthrough for a gateway at `addr` whose dev
/// mini-program is of `platform`.
pub fn walkthrough(addr: SocketAddr, platform: Platform) -> String {
    let base = format!("http://{addr}");
    let name = platform.name();
    let call = apps::client_call(platform);
    format!(
        r#"minigate dev mode: NOT FOR PRODUCTION (in-memory keys, stand-in {name}, demo upstream)
gateway on {base}, one {name} mini-program (appid {appid}) logging in at a stand-in {name}{component}
  /api/     -> demo upstream, token required
  /maybe/   -> demo upstream, token optional
  /public/  -> demo upstream, no check

Try it in another terminal (bash); any code logs in, as a code from {call} would (a fresh
one each run: a login code is single-use, and one seen again rejoins the session it began):
### walkthrough
CODE=any-code-from-{code}-$RANDOM$RANDOM
LOGIN=$(curl -s -X POST {base}/auth/login -H 'content-type: application/json' -d "{{\"code\":\"$CODE\"}}"); echo "$LOGIN"
ACCESS=$(printf '%s' "$LOGIN" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
REFRESH=$(printf '%s' "$LOGIN" | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/')
curl -s {base}/api/hello -H "Authorization: Bearer $ACCESS"
curl -s -i {base}/api/hello; echo
{phone}NEXT=$(curl -s -X POST {base}/auth/refresh -H 'content-type: application/json' -d "{{\"refresh_token\":\"$REFRESH\"}}"); echo "$NEXT"
curl -s -X POST {base}/auth/refresh -H 'content-type: application/json' -d "{{\"refresh_token\":\"$REFRESH\"}}"; echo
curl -s {base}/.well-known/jwks.json; echo
### end
(The second refresh reuses a spent refresh token: the session is revoked and NEXT's refresh
token stops working too. POST /auth/logout with a refresh token ends a session the same way.
Other platforms: serve --dev --platform {platforms}.)
{browser}"#,
        appid = if platform == Platform::wechat_component() {
            apps::DEV_APPID
        } else {
            apps::appid(platform)
        },
        component = if platform == Platform::wechat_component() {
            format!(
                "\n  through the third-party platform {}, whose component_verify_ticket the stand-in\n  pushed to {base}{}{}/ticket at start, as WeChat does every 10 minutes",
                apps::DEV_COMPONENT_APPID,
                crate::endpoints::COMPONENT_PREFIX,
                apps::DEV_COMPONENT_APPID
            )
        } else {
            String::new()
        },
        browser = if platform == Platform::wechat() {
            format!(
                r#"
In a browser (Chromium or Firefox: they keep Secure cookies for http://127.0.0.1, Safari does not),
sign in on the web as WeChat's H5 sign-in would, through the stand-in's authorize page:
  {base}/auth/web/login?redirect=/api/hello
The page that opens is the demo upstream, reached with the HttpOnly access cookie; from its
console, fetch('/auth/refresh', {{method: 'POST'}}) renews the cookies and
fetch('/auth/logout', {{method: 'POST'}}) ends the session.
"#
            )
        } else {
            String::new()
        },
        code = call.trim_end_matches("()"),
        // The phone number: kept with the session, no token minted; the
        // refresh after it carries the number.
        phone = if platform == Platform::wechat() {
            format!(
                r#"curl -s -X POST {base}/auth/phone -H "Authorization: Bearer $ACCESS" -H 'content-type: application/json' -d '{{"code":"any-code-from-getPhoneNumber"}}'; echo
"#
            )
        } else {
            String::new()
        },
        platforms = Platform::all()
            .filter(|p| !p.is_web())
            .map(Platform::name)
            .collect::<Vec<_>>()
            .join("|"),
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
    /// The platform has no stand-in, or its dev key did not load.
    #[error("--platform {0}: {1}")]
    Platform(&'static str, &'static str),
}

/// Starts dev mode on `listen` (a loopback address): the stand-ins of
/// `platform` and the demo upstream, then the gateway. The caller prints
/// [`walkthrough`] and stops it.
pub async fn start(listen: SocketAddr, platform: Platform) -> Result<Running, DevError> {
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
    let (stand_in, stand_in_addr) = bind(loopback(0)).await?;
    let (upstream, upstream_addr) = bind(loopback(0)).await?;
    let (gateway_listener, listen) = bind(listen).await?;
    let config = dev_config(listen, platform, stand_in_addr, upstream_addr)?;
    let standin = standins::StandIn::serve(
        stand_in,
        apps::standin_apps(platform)?,
        apps::DevUsers,
        standins::AuthorizePage::Form,
    )
    .map_err(|source| DevError::Bind {
        addr: stand_in_addr,
        source,
    })?;
    spawn_http(upstream, demo_upstream);
    let keys = jwks::KeySet::generate(jwks::Alg::ES256, std::time::SystemTime::now())?;
    let store = crate::tokens::keys::KeyStore::new(keys, &config.tokens.issuer);
    let gateway = std::sync::Arc::new(Gateway::new(&config, store).map_err(DevError::Start)?);
    let running = crate::listener::serve(gateway_listener, gateway, None).map_err(|source| {
        DevError::Bind {
            addr: listen,
            source,
        }
    })?;
    if platform == Platform::wechat_component() {
        // WeChat pushes the platform its ticket every 10 minutes; the
        // stand-in pushes one now, so that logins work from the start.
        let pushed = match crate::outbound::client() {
            Ok(http) => standin
                .push_ticket(
                    &http,
                    apps::DEV_COMPONENT_APPID,
                    &format!(
                        "http://{listen}{}{}/ticket",
                        crate::endpoints::COMPONENT_PREFIX,
                        apps::DEV_COMPONENT_APPID
                    ),
                )
                .await
                .is_ok_and(|(status, _)| status == StatusCode::OK),
            Err(_) => false,
        };
        if !pushed {
            return Err(DevError::Platform(
                "wechat_component",
                "the stand-in could not push its component_verify_ticket to the gateway",
            ));
        }
    }
    Ok(running)
}
