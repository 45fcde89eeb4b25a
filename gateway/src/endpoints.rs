//! The gateway's own endpoints: login, refresh, logout, key publication,
//! health.
//!
//! These are the only places a request body is read whole, so each read is
//! bounded in size (16 KiB, 413 beyond) and in time before any JSON parsing,
//! and every failure maps to the contract's error table. Token responses
//! carry `Cache-Control: no-store` (RFC 6749 section 5.1).
//!
//! Refresh and logout go through the session store ([`crate::sessions`]):
//! a refresh token redeems once, a second redemption revokes its session.
//! When the store cannot be reached they fail closed with 503; nothing else
//! here or on the proxied path depends on it.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, PRAGMA};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::body::{full, json, Body};
use crate::config::is_header_safe;
use crate::enrich::{merge_roles, Ask, Event, Refused};
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::metrics::{Own, Refusal, SessionOp};
use crate::providers::Login;
use crate::routes::check_path;
use crate::sessions::{Redeemed, SessionStore as _};
use crate::tokens::{random_id, Subject, TokenPair};

/// The largest body accepted on `/auth/*`.
pub const MAX_BODY: usize = 16 * 1024;
/// The longest login code accepted.
pub const MAX_CODE: usize = 256;
/// `max-age` of the JWKS document: verifiers re-fetch at least this often.
pub const JWKS_MAX_AGE: u64 = 300;

/// The gateway's own endpoints, matched by exact path before any route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/refresh`.
    Refresh,
    /// `POST /auth/logout`.
    Logout,
    /// `GET /.well-known/jwks.json`.
    Jwks,
    /// `GET /.well-known/openid-configuration`.
    Discovery,
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics`.
    Metrics,
    /// `/auth/verify` and below, any method: forward-auth.
    Verify,
}

impl Endpoint {
    /// The endpoint at exactly `path`, if any.
    #[inline]
    pub fn of(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/auth/login" => Endpoint::Login,
            "/auth/refresh" => Endpoint::Refresh,
            "/auth/logout" => Endpoint::Logout,
            "/.well-known/jwks.json" => Endpoint::Jwks,
            "/.well-known/openid-configuration" => Endpoint::Discovery,
            "/healthz" => Endpoint::Healthz,
            "/readyz" => Endpoint::Readyz,
            "/metrics" => Endpoint::Metrics,
            _ if path == VERIFY || path.starts_with("/auth/verify/") => Endpoint::Verify,
            _ => return None,
        })
    }

    /// What its responses are counted under.
    pub fn counted(self) -> Own {
        match self {
            Endpoint::Login => Own::Login,
            Endpoint::Refresh => Own::Refresh,
            Endpoint::Logout => Own::Logout,
            Endpoint::Jwks | Endpoint::Discovery => Own::WellKnown,
            Endpoint::Healthz | Endpoint::Readyz => Own::Health,
            Endpoint::Metrics => Own::Metrics,
            Endpoint::Verify => Own::Verify,
        }
    }
}

/// Serves one of the gateway's own endpoints; `client` is the request's
/// client address.
pub async fn serve(
    endpoint: Endpoint,
    gw: &Gateway,
    req: Request<Incoming>,
    client: IpAddr,
) -> Result<Response<Body>, ApiError> {
    match endpoint {
        Endpoint::Login => login(gw, req, client).await,
        Endpoint::Refresh => refresh(gw, req).await,
        Endpoint::Logout => logout(gw, req).await,
        Endpoint::Jwks => jwks(gw, &req),
        Endpoint::Discovery => discovery(gw, &req),
        Endpoint::Healthz => Ok(healthz()),
        Endpoint::Readyz => Ok(readyz(gw)),
        Endpoint::Metrics => metrics(gw, &req),
        Endpoint::Verify => verify(gw, &req),
    }
}

fn require(req: &Request<Incoming>, method: Method, allow: &'static str) -> Result<(), ApiError> {
    if req.method() == method {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed(allow))
    }
}

/// Reads a body of at most [`MAX_BODY`] bytes, arriving within the
/// configured body timeout.
async fn read_body(gw: &Gateway, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::TooLarge);
    }
    let collect = Limited::new(req.into_body(), MAX_BODY).collect();
    let body = tokio::time::timeout(gw.server.body_timeout, collect)
        .await
        .map_err(|_| ApiError::BodyTimeout)?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::TooLarge
            } else {
                ApiError::InvalidRequest("could not read the request body")
            }
        })?
        .to_bytes();
    Ok(body)
}

fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::InvalidRequest("the body is not the expected JSON object"))
}

/// The session store failed during `op`: counted, and 503.
fn store_down(gw: &Gateway, op: SessionOp) -> ApiError {
    gw.metrics.session_errors.increment(op);
    ApiError::SessionsUnavailable
}

fn token_response(pair: &TokenPair) -> Response<Body> {
    let mut res = json(StatusCode::OK, pair);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

#[derive(Deserialize)]
struct LoginBody {
    code: Option<String>,
    appid: Option<String>,
    device_id: Option<String>,
    anonymous_code: Option<String>,
}

/// A checked login request.
#[derive(Debug)]
pub struct LoginRequest {
    /// The login code (`wx.login()`'s, `my.getAuthCode()`'s `authCode`…):
    /// 1 to [`MAX_CODE`] bytes.
    pub code: String,
    /// Which provider, when several are configured.
    pub appid: Option<String>,
    /// A device id fit for a header, if sent.
    pub device_id: Option<String>,
    /// Douyin's `anonymousCode` (1 to [`MAX_CODE`] bytes), if sent; other
    /// platforms ignore it.
    pub anonymous_code: Option<String>,
}

impl LoginRequest {
    /// What the provider is asked to trade.
    pub fn login(&self) -> Login<'_> {
        Login {
            code: &self.code,
            anonymous_code: self.anonymous_code.as_deref(),
        }
    }
}

/// Parses and checks a login body.
pub fn parse_login(body: &[u8]) -> Result<LoginRequest, ApiError> {
    let body: LoginBody = from_json(body)?;
    let code = body.code.unwrap_or_default();
    if code.is_empty() {
        return Err(ApiError::InvalidRequest("code is required"));
    }
    if code.len() > MAX_CODE {
        return Err(ApiError::InvalidRequest("code is too long"));
    }
    if body
        .anonymous_code
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > MAX_CODE)
    {
        return Err(ApiError::InvalidRequest(
            "anonymous_code must be 1-256 bytes when sent",
        ));
    }
    if let Some(d) = &body.device_id {
        if !is_header_safe(d, 128) {
            return Err(ApiError::InvalidRequest(
                "device_id must be 1-128 visible ASCII characters",
            ));
        }
    }
    Ok(LoginRequest {
        code,
        appid: body.appid,
        device_id: body.device_id,
        anonymous_code: body.anonymous_code,
    })
}

/// `POST /auth/login`: code exchange, then a new login session and its tokens.
pub async fn login(
    gw: &Gateway,
    req: Request<Incoming>,
    client: IpAddr,
) -> Result<Response<Body>, ApiError> {
    require(&req, Method::POST, "POST")?;
    gw.login_limiter
        .check(client)
        .map_err(ApiError::TooManyLogins)?;
    let body = parse_login(&read_body(gw, req).await?)?;
    let provider = gw.providers.pick(body.appid.as_deref())?;
    let started = std::time::Instant::now();
    let exchanged = provider.exchange(&body.login()).await;
    let metrics = gw.metrics.exchange(provider.platform);
    if let Some(m) = metrics {
        m.latency.record(started.elapsed().as_secs_f64());
    }
    let session = exchanged.map_err(|e| {
        if let Some(m) = metrics {
            m.errors.increment(e);
        }
        ApiError::from(e)
    })?;
    let subject = Subject {
        openid: session.openid,
        unionid: session.unionid,
        appid: provider.appid.clone(),
        platform: provider.platform.name().to_owned(),
        device_id: body.device_id,
        uid: None,
        roles: Vec::new(),
        ext: BTreeMap::new(),
    };
    let sid = random_id()?;
    let subject = identify(gw, subject, Event::Login, &sid).await?;
    let refresh_jti = random_id()?;
    gw.sessions
        .begin(&sid, &refresh_jti, gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Login))?;
    let mut pair = gw.tokens.issue(&subject, &sid, refresh_jti)?;
    pair.anonymous_openid = session.anonymous_openid;
    tracing::info!(appid = %subject.appid, platform = %subject.platform, sub = %subject.openid, sid = %sid, "login");
    Ok(token_response(&pair))
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// Parses a refresh or logout body: the refresh token, not yet verified.
pub fn parse_refresh(body: &[u8]) -> Result<String, ApiError> {
    let body: RefreshBody = from_json(body)?;
    let token = body.refresh_token.unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::InvalidRequest("refresh_token is required"));
    }
    Ok(token)
}

/// Reads and verifies the refresh token of a refresh or logout body.
async fn refresh_token_of(
    gw: &Gateway,
    req: Request<Incoming>,
) -> Result<crate::tokens::Refresh, ApiError> {
    require(&req, Method::POST, "POST")?;
    let token = parse_refresh(&read_body(gw, req).await?)?;
    gw.tokens
        .verify_refresh(&token)
        .map_err(|e| ApiError::InvalidGrant(e.message()))
}

/// `POST /auth/refresh`: a verified refresh token, redeemed once, buys a new
/// pair in the same login session.
pub async fn refresh(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let old = refresh_token_of(gw, req).await?;
    // Asked before the token is redeemed: a user service that is down must
    // not cost the client its refresh token.
    let subject = match identify(gw, old.subject.clone(), Event::Refresh, &old.sid).await {
        Err(ApiError::AccessDenied) => {
            // A banned user's session ends here, not at its refresh TTL.
            if gw
                .sessions
                .revoke(&old.sid, gw.tokens.refresh_ttl())
                .await
                .is_err()
            {
                gw.metrics.session_errors.increment(SessionOp::Logout);
            }
            tracing::info!(appid = %old.subject.appid, sid = %old.sid, "refresh refused by the user service: session ended");
            return Err(ApiError::AccessDenied);
        }
        other => other?,
    };
    let next_jti = random_id()?;
    let outcome = gw
        .sessions
        .redeem(&old.sid, &old.jti, &next_jti, gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Refresh))?;
    match outcome {
        Redeemed::Rotated => {
            let pair = gw.tokens.issue(&subject, &old.sid, next_jti)?;
            tracing::info!(appid = %old.subject.appid, sub = %old.subject.openid, sid = %old.sid, "refresh");
            Ok(token_response(&pair))
        }
        Redeemed::Reused => {
            tracing::warn!(
                appid = %old.subject.appid, sub = %old.subject.openid, sid = %old.sid,
                "refresh token reused: session revoked"
            );
            Err(ApiError::InvalidGrant("refresh token already used"))
        }
        Redeemed::Revoked => Err(ApiError::InvalidGrant("session revoked")),
        Redeemed::Unknown => Err(ApiError::InvalidGrant("unknown or expired session")),
    }
}

/// `POST /auth/logout`: revokes the login session of a valid refresh token.
/// Idempotent: logging out of a revoked or forgotten session is still 204.
pub async fn logout(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let old = refresh_token_of(gw, req).await?;
    gw.sessions
        .revoke(&old.sid, gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Logout))?;
    tracing::info!(appid = %old.subject.appid, sub = %old.subject.openid, sid = %old.sid, "logout");
    let mut res = full(StatusCode::NO_CONTENT, "application/json", Bytes::new());
    res.headers_mut().remove(http::header::CONTENT_TYPE);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The subject's roles, uid and claims, from the static grants and, when
/// `[enrich]` is configured, the user service (which may refuse the user).
async fn identify(
    gw: &Gateway,
    mut subject: Subject,
    event: Event,
    sid: &str,
) -> Result<Subject, ApiError> {
    let mut extra = Vec::new();
    if let Some(enricher) = &gw.enricher {
        let ask = Ask {
            event,
            platform: &subject.platform,
            appid: &subject.appid,
            openid: &subject.openid,
            unionid: subject.unionid.as_deref(),
            device_type: DEVICE_TYPE,
            device_id: subject.device_id.as_deref(),
            sid,
        };
        let enriched =
            enricher
                .ask(&ask, &gw.metrics.enrich)
                .await
                .map_err(|refused| match refused {
                    Refused::Denied => ApiError::AccessDenied,
                    Refused::Failed(_) => ApiError::EnrichUnavailable,
                })?;
        subject.uid = enriched.uid;
        subject.ext = enriched.claims;
        extra = enriched.roles;
    }
    subject.roles = merge_roles(&gw.grants.load(), subject.user(), &extra);
    Ok(subject)
}

/// The device class sessions are of: every mini-program login is a phone's.
const DEVICE_TYPE: &str = "phone";

/// The original request a forward-auth check is about: Traefik's
/// `X-Forwarded-Method`/`X-Forwarded-Uri`, else nginx's
/// `X-Original-Method`/`X-Original-URI`, else the request itself with the
/// `/auth/verify` prefix taken off (Envoy's `path_prefix`).
fn original_request(req: &Request<Incoming>) -> Result<(Method, &str), ApiError> {
    let header = |name: &str| req.headers().get(name);
    let (method, uri) = match (
        header("x-forwarded-method").or(header("x-original-method")),
        header("x-forwarded-uri").or(header("x-original-uri")),
    ) {
        (method, Some(uri)) => {
            let method = match method {
                Some(m) => Method::from_bytes(m.as_bytes())
                    .map_err(|_| ApiError::InvalidRequest("the original method is not a method"))?,
                None => req.method().clone(),
            };
            let uri = uri
                .to_str()
                .map_err(|_| ApiError::InvalidRequest("the original URI is not visible ASCII"))?;
            (method, uri)
        }
        (_, None) => {
            let rest = req.uri().path().strip_prefix(VERIFY).unwrap_or("");
            (req.method().clone(), rest)
        }
    };
    let path = uri.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(ApiError::InvalidRequest(
            "no original request: send X-Forwarded-Uri or X-Original-URI, or a path after /auth/verify",
        ));
    }
    Ok((method, path))
}

/// `/auth/verify`: may the original request pass? 200 with the identity
/// headers, or the 401/403 a proxied request would get. No body is read and
/// the token goes through the same verified-token cache as a proxied one.
pub fn verify(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (method, path) = original_request(req)?;
    if let Err(bad) = check_path(path) {
        gw.metrics.refusals.increment(Refusal::PathRefused);
        return Err(ApiError::InvalidRequest(bad.message()));
    }
    // Every path must be someone's: one no route claims is nobody's to pass.
    let route = gw.routes.find(path).ok_or(ApiError::InsufficientScope)?;
    let identity = crate::auth::check(gw, route, &method, req.headers())?;
    let mut res = full(StatusCode::OK, "text/plain", Bytes::new());
    res.headers_mut().remove(http::header::CONTENT_TYPE);
    if let Some(id) = identity {
        for (name, value) in &id.headers {
            res.headers_mut().insert(name.clone(), value.clone());
        }
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The prefix of the forward-auth endpoint.
pub const VERIFY: &str = "/auth/verify";

/// GET or HEAD only, for the documents and metrics.
fn require_get(req: &Request<Incoming>) -> Result<(), ApiError> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed("GET, HEAD"))
    }
}

fn document(
    req: &Request<Incoming>,
    body: Bytes,
    max_age: u64,
) -> Result<Response<Body>, ApiError> {
    require_get(req)?;
    let mut res = full(StatusCode::OK, "application/json", body);
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        res.headers_mut().insert(CACHE_CONTROL, v);
    }
    Ok(res)
}

/// `GET /.well-known/jwks.json`: every published public key.
pub fn jwks(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    document(req, gw.tokens.keys().load().jwks_json.clone(), JWKS_MAX_AGE)
}

/// `GET /.well-known/openid-configuration`: issuer, jwks_uri, algorithms.
pub fn discovery(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    document(
        req,
        gw.tokens.keys().load().discovery_json.clone(),
        JWKS_MAX_AGE,
    )
}

/// `GET /metrics`: the Prometheus text exposition.
pub fn metrics(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    require_get(req)?;
    let body = gw.metrics.render(gw.tokens.keys());
    let mut res = full(StatusCode::OK, "text/plain; version=0.0.4", body);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /healthz`: the process answers.
pub fn healthz() -> Response<Body> {
    full(
        StatusCode::OK,
        "application/json",
        &b"{\"status\":\"ok\"}"[..],
    )
}

/// `GET /readyz`: a key set is loaded, so tokens can be issued and verified.
/// A refused reload does not make the gateway unready (it keeps serving the
/// previous set) but is reported here.
pub fn readyz(gw: &Gateway) -> Response<Body> {
    use std::sync::atomic::Ordering::Relaxed;
    let store = gw.tokens.keys();
    let keys = store.load();
    let body = serde_json::json!({
        "status": "ready",
        "current_kid": keys.set.current().kid(),
        "keys": keys.set.entries().iter().map(|e| serde_json::json!({
            "kid": e.key.kid(), "alg": e.key.alg().name(), "state": e.state.to_string(),
        })).collect::<Vec<_>>(),
        "reloads": store.stats.replaced.load(Relaxed),
        "reload_failures": store.stats.refused.load(Relaxed),
        "last_reload_error": store.last_error(),
        "sessions": gw.sessions.kind(),
    });
    json(StatusCode::OK, &body)
}
