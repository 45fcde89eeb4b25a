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
use crate::codes::Began;
use crate::config::is_header_safe;
use crate::enrich::{merge_roles, Ask, Event, Refused};
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::metrics::{Own, Refusal, SessionOp};
use crate::providers::Login;
use crate::routes::check_path;
use crate::sessions::{Begun, NewSession, Redeemed, SessionInfo, SessionStore as _};
use crate::tokens::TokenError;
use crate::tokens::{random_id, Subject, TokenPair};
use crate::wechat::crypt::DecryptError;
use crate::wechat::phone::PhoneError;

/// The largest body accepted on `/auth/*`.
pub const MAX_BODY: usize = 16 * 1024;
/// The longest login code accepted.
pub const MAX_CODE: usize = 256;
/// `max-age` of the JWKS document: verifiers re-fetch at least this often.
pub const JWKS_MAX_AGE: u64 = 300;
/// `DELETE /auth/sessions/{sid}` is this followed by the sid.
pub const SESSIONS_PREFIX: &str = "/auth/sessions/";

/// The gateway's own endpoints, matched by exact path before any route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /auth/login`.
    Login,
    /// `POST /auth/refresh`.
    Refresh,
    /// `POST /auth/logout`.
    Logout,
    /// `POST /auth/phone`: the user's phone number, from WeChat.
    Phone,
    /// `POST /auth/wechat/decrypt`: WeChat's legacy `encryptedData`.
    Decrypt,
    /// `GET /auth/sessions`.
    Sessions,
    /// `DELETE /auth/sessions/{sid}`.
    Session,
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
    /// `GET /auth/web/login`: a browser sign-in's start.
    WebLogin,
    /// `GET /auth/web/callback`: its return from the authorize page.
    WebCallback,
}

impl Endpoint {
    /// The endpoint at exactly `path` (or under `/auth/sessions/`), if any.
    #[inline]
    pub fn of(path: &str) -> Option<Endpoint> {
        if let Some(rest) = path.strip_prefix(SESSIONS_PREFIX) {
            return Some(if rest.is_empty() {
                Endpoint::Sessions
            } else {
                Endpoint::Session
            });
        }
        Some(match path {
            "/auth/sessions" => Endpoint::Sessions,
            "/auth/login" => Endpoint::Login,
            "/auth/refresh" => Endpoint::Refresh,
            "/auth/logout" => Endpoint::Logout,
            "/auth/phone" => Endpoint::Phone,
            "/auth/wechat/decrypt" => Endpoint::Decrypt,
            "/.well-known/jwks.json" => Endpoint::Jwks,
            "/.well-known/openid-configuration" => Endpoint::Discovery,
            "/healthz" => Endpoint::Healthz,
            "/readyz" => Endpoint::Readyz,
            "/metrics" => Endpoint::Metrics,
            crate::web::LOGIN => Endpoint::WebLogin,
            crate::web::CALLBACK => Endpoint::WebCallback,
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
            Endpoint::Phone | Endpoint::Decrypt => Own::WeChat,
            Endpoint::Sessions | Endpoint::Session => Own::Sessions,
            Endpoint::Jwks | Endpoint::Discovery => Own::WellKnown,
            Endpoint::Healthz | Endpoint::Readyz => Own::Health,
            Endpoint::Metrics => Own::Metrics,
            Endpoint::Verify => Own::Verify,
            Endpoint::WebLogin => Own::WebLogin,
            Endpoint::WebCallback => Own::WebCallback,
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
        Endpoint::Phone => phone(gw, req).await,
        Endpoint::Decrypt => decrypt(gw, req).await,
        Endpoint::Sessions => list_sessions(gw, &req).await,
        Endpoint::Session => end_session(gw, &req).await,
        Endpoint::Jwks => jwks(gw, &req),
        Endpoint::Discovery => discovery(gw, &req),
        Endpoint::Healthz => Ok(healthz()),
        Endpoint::Readyz => Ok(readyz(gw)),
        Endpoint::Metrics => metrics(gw, &req),
        Endpoint::Verify => verify(gw, &req),
        Endpoint::WebLogin => crate::web::login(gw, &req),
        Endpoint::WebCallback => crate::web::callback(gw, &req, client).await,
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
    device_type: Option<String>,
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
    /// The device class named, if any: shaped like one (whether it is
    /// configured is the login's to check).
    pub device_type: Option<String>,
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
    if let Some(t) = &body.device_type {
        if !crate::config::is_class_name(t) {
            return Err(ApiError::InvalidRequest("device_type is not a device type"));
        }
    }
    Ok(LoginRequest {
        code,
        appid: body.appid,
        device_id: body.device_id,
        device_type: body.device_type,
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
    let (device_type, limit) = device_class(gw, body.device_type.as_deref())?;
    let provider = gw.providers.pick(body.appid.as_deref())?;
    let metrics = gw.metrics.exchange(provider.platform);
    // One platform call for concurrent logins with this code.
    let (used, session) = gw
        .codes
        .exchange(&provider.appid, &body.code, || async {
            let started = std::time::Instant::now();
            let exchanged = provider.exchange(&body.login()).await;
            if let Some(m) = metrics {
                m.latency.record(started.elapsed().as_secs_f64());
            }
            exchanged
        })
        .await
        .map_err(|e| {
            if let Some(m) = metrics {
                m.errors.increment(e);
            }
            ApiError::from(e)
        })?;
    let device_id = body.device_id;
    // The pair of the login that begins the session; retries get their own.
    let first_pair = std::sync::Mutex::new(None);
    let (began, mine) = used
        .began(|| async {
            let subject = Subject {
                openid: session.openid.clone(),
                unionid: session.unionid.clone(),
                appid: provider.appid.clone(),
                platform: provider.platform.name().to_owned(),
                device_id: device_id.clone(),
                uid: None,
                roles: Vec::new(),
                ext: BTreeMap::new(),
                device_type,
                session_user: None,
                phone: None,
            };
            let key = session
                .session_key
                .as_ref()
                .map(crate::config::Secret::expose);
            let (subject, sid, pair) = open_session(gw, subject, limit, key).await?;
            if let Ok(mut first) = first_pair.lock() {
                *first = Some(pair);
            }
            Ok::<_, ApiError>(Began {
                subject,
                sid,
                client,
                device_id: device_id.clone(),
            })
        })
        .await?;
    let pair = if mine {
        tracing::info!(appid = %began.subject.appid, sub = %began.subject.openid, sid = %began.sid, "login");
        first_pair
            .into_inner()
            .ok()
            .flatten()
            .ok_or(ApiError::Internal)?
    } else {
        // The code already began a session: only its own client and device
        // may have a pair in it again; to anyone else the code is spent.
        if began.client != client || began.device_id != device_id {
            if let Some(m) = metrics {
                m.errors
                    .increment(crate::providers::ExchangeError::InvalidCode);
            }
            return Err(ApiError::InvalidCode);
        }
        tracing::info!(appid = %began.subject.appid, sid = %began.sid, "login code retried: a new pair in its session");
        new_pair(gw, &began.subject, &began.sid).await?
    };
    let mut pair = pair;
    pair.anonymous_openid = session.anonymous_openid.clone();
    Ok(token_response(&pair))
}

/// A new login session for `subject`, whoever signed in (a mini-program's
/// code, a browser's web sign-in): enrichment (which may refuse the user),
/// the session recorded within its device class's `limit` with the
/// platform's `session_key` if it gave one, and its tokens. Returns the
/// enriched subject, the sid and the pair.
pub(crate) async fn open_session(
    gw: &Gateway,
    subject: Subject,
    limit: u32,
    session_key: Option<&str>,
) -> Result<(Subject, String, TokenPair), ApiError> {
    let sid = random_id()?;
    let subject = identify(gw, subject, Event::Login, &sid).await?;
    let refresh_jti = random_id()?;
    begin_session(gw, &subject, &sid, &refresh_jti, limit, session_key).await?;
    let pair = gw.tokens.issue(&subject, &sid, refresh_jti)?;
    Ok((subject, sid, pair))
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

/// The body of a refresh or logout, and the refresh token of its request:
/// the body's `refresh_token`, else (`[web]`) the refresh cookie, with
/// whether it came from the cookie.
async fn presented_refresh(
    gw: &Gateway,
    req: Request<Incoming>,
) -> Result<(Bytes, String, bool), ApiError> {
    require(&req, Method::POST, "POST")?;
    let (method, headers) = (req.method().clone(), req.headers().clone());
    let body = read_body(gw, req).await?;
    if !has_refresh_token(&body) {
        if let Some(token) = crate::web::refresh_cookie(gw, &method, &headers)? {
            return Ok((body, token, true));
        }
    }
    let token = parse_refresh(&body)?;
    Ok((body, token, false))
}

/// Does a body name a `refresh_token` (as far as a lenient look tells)?
/// One that does not may use the refresh cookie.
fn has_refresh_token(body: &[u8]) -> bool {
    if body.iter().all(u8::is_ascii_whitespace) {
        return false;
    }
    serde_json::from_slice::<RefreshBody>(body).map_or(true, |b| b.refresh_token.is_some())
}

/// `POST /auth/refresh`: a verified refresh token, redeemed once, buys a new
/// pair in the same login session. Sent in the body, the pair is answered
/// as JSON; from the refresh cookie, as new cookies.
pub async fn refresh(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (_, token, by_cookie) = presented_refresh(gw, req).await?;
    let rotated = rotate(gw, &token).await;
    if by_cookie {
        return Ok(crate::web::cookie_answer(rotated));
    }
    rotated.map(|pair| token_response(&pair))
}

/// Verifies and redeems a refresh token: the new pair.
async fn rotate(gw: &Gateway, token: &str) -> Result<TokenPair, ApiError> {
    let old = gw
        .tokens
        .verify_refresh(token)
        .map_err(|e| ApiError::InvalidGrant(e.message()))?;
    // Asked before the token is redeemed: a user service that is down must
    // not cost the client its refresh token.
    let subject = match identify(gw, old.subject.clone(), Event::Refresh, &old.sid).await {
        Err(ApiError::AccessDenied) => {
            // A banned user's session ends here, not at its refresh TTL.
            match gw
                .sessions
                .end(old.subject.user(), Some(&old.sid), gw.tokens.refresh_ttl())
                .await
            {
                Ok(_) => {
                    gw.sessions
                        .announce(&gw.revoked, std::slice::from_ref(&old.sid))
                        .await
                }
                Err(_) => gw.metrics.session_errors.increment(SessionOp::Logout),
            }
            tracing::info!(appid = %old.subject.appid, sid = %old.sid, "refresh refused by the user service: session ended");
            return Err(ApiError::AccessDenied);
        }
        other => other?,
    };
    let next_jti = random_id()?;
    let outcome = gw
        .sessions
        .redeem(
            old.subject.user(),
            &old.sid,
            &old.jti,
            &next_jti,
            gw.tokens.refresh_ttl(),
        )
        .await
        .map_err(|_| store_down(gw, SessionOp::Refresh))?;
    match outcome {
        Redeemed::Rotated => {
            let pair = gw.tokens.issue(&subject, &old.sid, next_jti)?;
            tracing::info!(appid = %old.subject.appid, sub = %old.subject.openid, sid = %old.sid, "refresh");
            Ok(pair)
        }
        Redeemed::Reused => {
            gw.sessions
                .announce(&gw.revoked, std::slice::from_ref(&old.sid))
                .await;
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

/// `POST /auth/logout`: revokes the login session of a valid refresh token,
/// or with `"everywhere": true` every session of its user. Idempotent:
/// logging out of a revoked or forgotten session is still 204.
/// From the refresh cookie (a body without `refresh_token`, which may still
/// say `"everywhere": true`), the answer also clears the session cookies.
pub async fn logout(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (body, token, by_cookie) = presented_refresh(gw, req).await?;
    if by_cookie {
        let everywhere = serde_json::from_slice::<LogoutBody>(&body).is_ok_and(|b| b.everywhere);
        return Ok(crate::web::logged_out(end_by(gw, &token, everywhere).await));
    }
    let (token, everywhere) = parse_logout(&body)?;
    end_by(gw, &token, everywhere).await
}

/// Ends the session of refresh token `token` (or every session of its user).
async fn end_by(gw: &Gateway, token: &str, everywhere: bool) -> Result<Response<Body>, ApiError> {
    let old = gw
        .tokens
        .verify_refresh(token)
        .map_err(|e| ApiError::InvalidGrant(e.message()))?;
    let which = (!everywhere).then_some(old.sid.as_str());
    let mut ended = gw
        .sessions
        .end(old.subject.user(), which, gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Logout))?;
    // This token's session ends whether or not the store still knew it.
    if !ended.contains(&old.sid) {
        ended.push(old.sid.clone());
    }
    gw.sessions.announce(&gw.revoked, &ended).await;
    tracing::info!(appid = %old.subject.appid, sub = %old.subject.openid, sid = %old.sid, sessions = ended.len(), "logout");
    let mut res = full(StatusCode::NO_CONTENT, "application/json", Bytes::new());
    res.headers_mut().remove(http::header::CONTENT_TYPE);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The caller of one of the endpoints that act on its own session, with all
/// its token says of it: a valid access token (checked in full, not from
/// the cache, which keeps only headers) whose session has not ended.
fn caller_subject(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<crate::tokens::Refresh, ApiError> {
    let token = match crate::auth::credentials(req.headers()) {
        crate::auth::Credentials::Bearer(t) => t,
        crate::auth::Credentials::None => return Err(ApiError::MissingToken),
        crate::auth::Credentials::Malformed => {
            return Err(ApiError::InvalidToken(TokenError::MALFORMED))
        }
    };
    let who = gw
        .tokens
        .access_subject(token)
        .map_err(ApiError::InvalidToken)?;
    if gw.revoked.contains(&who.sid) {
        return Err(ApiError::InvalidToken(TokenError::Revoked));
    }
    Ok(who)
}

#[derive(Deserialize)]
struct CodeBody {
    code: Option<String>,
}

/// `POST /auth/phone` `{"code"}`: the phone number the user agreed to share
/// (the `getPhoneNumber` button's code), verified with WeChat, and a new
/// token pair in the same session whose tokens carry it.
pub async fn phone(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    require(&req, Method::POST, "POST")?;
    let who = caller_subject(gw, &req)?;
    let body: CodeBody = from_json(&read_body(gw, req).await?)?;
    let code = body.code.unwrap_or_default();
    if code.is_empty() || code.len() > MAX_CODE {
        return Err(ApiError::InvalidRequest(
            "code is required (at most 256 bytes)",
        ));
    }
    if !gw.wechat.knows(&who.subject.appid) {
        return Err(ApiError::InvalidRequest(
            "phone numbers come from WeChat: this session is not a WeChat app's",
        ));
    }
    let number = crate::wechat::phone::phone_number(&gw.wechat, &who.subject.appid, &code)
        .await
        .map_err(|e| match e {
            // A code of another app is no code of this one.
            PhoneError::WrongWatermark => ApiError::InvalidCode,
            PhoneError::Wx(e) => e.into_api(),
        })?;
    let mut subject = who.subject;
    subject.phone = Some(number.phone_number.clone());
    let pair = new_pair(gw, &subject, &who.sid).await?;
    tracing::info!(appid = %subject.appid, sid = %who.sid, "phone number verified");
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        #[serde(flatten)]
        phone: &'a crate::wechat::phone::Phone,
        #[serde(flatten)]
        pair: &'a TokenPair,
    }
    let mut res = json(
        StatusCode::OK,
        &Answer {
            phone: &number,
            pair: &pair,
        },
    );
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

#[derive(Deserialize)]
struct DecryptBody {
    encrypted_data: Option<String>,
    iv: Option<String>,
}

/// `POST /auth/wechat/decrypt` `{"encrypted_data", "iv"}`: WeChat's legacy
/// encrypted user data, decrypted with the session's `session_key`, which
/// never leaves the gateway.
pub async fn decrypt(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    require(&req, Method::POST, "POST")?;
    let who = caller_subject(gw, &req)?;
    let body: DecryptBody = from_json(&read_body(gw, req).await?)?;
    let (Some(data), Some(iv)) = (body.encrypted_data, body.iv) else {
        return Err(ApiError::InvalidRequest(
            "encrypted_data and iv are required",
        ));
    };
    let key = gw
        .sessions
        .session_key(who.subject.user(), &who.sid)
        .await
        .map_err(|_| store_down(gw, SessionOp::Refresh))?
        .ok_or(ApiError::SessionKeyExpired)?;
    let object = crate::wechat::crypt::decrypt(key.expose(), &data, &iv, &who.subject.appid)
        .map_err(|e| match e {
            DecryptError::Malformed(why) => ApiError::InvalidRequest(why),
            DecryptError::WrongWatermark => {
                ApiError::InvalidRequest("the data's watermark names another app")
            }
            DecryptError::StaleKey => ApiError::SessionKeyExpired,
        })?;
    let mut res = json(StatusCode::OK, &object);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// A new pair in the live session `sid` of `who`, without a refresh token
/// presented: the session's refresh token is replaced by the new one.
async fn new_pair(gw: &Gateway, who: &Subject, sid: &str) -> Result<TokenPair, ApiError> {
    let jti = random_id()?;
    let live = gw
        .sessions
        .reissue(who.user(), sid, &jti, gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Refresh))?;
    if !live {
        return Err(ApiError::InvalidGrant("session revoked"));
    }
    Ok(gw.tokens.issue(who, sid, jti)?)
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
            device_type: &subject.device_type,
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
        // The uid is fixed at login: it is part of the user key the session
        // is kept under, which a refresh must not move.
        if event == Event::Login {
            subject.uid = enriched.uid;
        } else if enriched.uid != subject.uid {
            tracing::warn!(
                sid,
                "the user service gave another uid at refresh; the session keeps its own"
            );
        }
        subject.ext = enriched.claims;
        extra = enriched.roles;
    }
    subject.roles = merge_roles(&gw.grants.load(), subject.user(), &extra);
    Ok(subject)
}

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
    if let Some(id) = &identity {
        for (name, value) in &id.headers {
            res.headers_mut().insert(name.clone(), value.clone());
        }
    }
    // A proxy copies the identity headers it is told to onto the original
    // request, but keeps any other `x-auth-*` the client sent. Envoy removes
    // those named here (its ext_authz HTTP service protocol).
    let spoofed: Vec<&str> = req
        .headers()
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|k| k.starts_with("x-auth-") && !res.headers().contains_key(*k))
        .collect();
    if !spoofed.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&spoofed.join(",")) {
            res.headers_mut().insert(ENVOY_REMOVE, v);
        }
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Envoy's ext_authz response header naming request headers to remove.
const ENVOY_REMOVE: http::HeaderName =
    http::HeaderName::from_static("x-envoy-auth-headers-to-remove");

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
        "revoked_sessions": gw.revoked.len(),
    });
    json(StatusCode::OK, &body)
}

// Device classes and the user's sessions: the login's class and limit,
// recording a session within it, logout's body, and `/auth/sessions`.

/// The login's device class (absent: `phone`) and its limit; a class the
/// config does not name is 400.
pub(crate) fn device_class(gw: &Gateway, named: Option<&str>) -> Result<(String, u32), ApiError> {
    let name = named.unwrap_or(crate::config::defaults::DEVICE_TYPE);
    gw.sessions_config
        .devices
        .get(name)
        .map(|c| (c.name.clone(), c.limit))
        .ok_or(ApiError::InvalidRequest(
            "device_type is not one of the configured device types",
        ))
}

/// Records a new session of `who` within its class's limit: the sessions
/// it evicts end everywhere; a full class under `refuse` is 409.
async fn begin_session(
    gw: &Gateway,
    who: &Subject,
    sid: &str,
    jti: &str,
    limit: u32,
    session_key: Option<&str>,
) -> Result<(), ApiError> {
    let new = NewSession {
        session_key,
        user: who.user(),
        sid,
        jti,
        device_type: &who.device_type,
        device_id: who.device_id.as_deref(),
        limit,
        on_limit: gw.sessions_config.on_limit,
    };
    let begun = gw
        .sessions
        .begin(&new, gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Login))?;
    match begun {
        Begun::Started { evicted } => {
            if !evicted.is_empty() {
                tracing::info!(
                    sid = %sid, device_type = %who.device_type, evicted = evicted.len(),
                    "device limit: oldest session ended"
                );
                gw.sessions.announce(&gw.revoked, &evicted).await;
            }
            Ok(())
        }
        Begun::Refused => Err(ApiError::SessionLimit),
    }
}

#[derive(Deserialize)]
struct LogoutBody {
    refresh_token: Option<String>,
    #[serde(default)]
    everywhere: bool,
}

/// Parses a logout body: the refresh token (not yet verified) and whether
/// to end every session of its user.
pub fn parse_logout(body: &[u8]) -> Result<(String, bool), ApiError> {
    let body: LogoutBody = from_json(body)?;
    let token = body.refresh_token.unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::InvalidRequest("refresh_token is required"));
    }
    Ok((token, body.everywhere))
}

/// The caller of a session endpoint: a valid access token of a session
/// that has not ended.
fn caller(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<std::sync::Arc<crate::tokens::Identity>, ApiError> {
    let id = crate::auth::authenticate_request(
        gw,
        crate::config::AuthMode::Required,
        req.method(),
        req.headers(),
    )?
    .ok_or(ApiError::MissingToken)?;
    gw.revoked.check(&id).map_err(ApiError::InvalidToken)?;
    Ok(id)
}

/// A session as the user sees it: with whether it is the caller's own.
#[derive(serde::Serialize)]
struct Listed {
    #[serde(flatten)]
    info: SessionInfo,
    current: bool,
}

/// `GET /auth/sessions`: the caller's user's live sessions, newest first.
pub async fn list_sessions(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed("GET, HEAD"));
    }
    let id = caller(gw, req)?;
    let list = gw
        .sessions
        .list(&id.user)
        .await
        .map_err(|_| store_down(gw, SessionOp::Sessions))?;
    let sessions: Vec<Listed> = list
        .into_iter()
        .map(|info| Listed {
            current: *info.sid == *id.sid,
            info,
        })
        .collect();
    let mut res = json(StatusCode::OK, &serde_json::json!({ "sessions": sessions }));
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `DELETE /auth/sessions/{sid}`: ends one session of the caller's user
/// (204), everywhere; a sid that is not one is 404.
pub async fn end_session(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    require(req, Method::DELETE, "DELETE")?;
    let id = caller(gw, req)?;
    let sid = req
        .uri()
        .path()
        .strip_prefix(SESSIONS_PREFIX)
        .filter(|s| is_header_safe(s, 128) && !s.contains('/'))
        .ok_or(ApiError::SessionNotFound)?;
    let ended = gw
        .sessions
        .end(&id.user, Some(sid), gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Sessions))?;
    if ended.is_empty() {
        return Err(ApiError::SessionNotFound);
    }
    gw.sessions.announce(&gw.revoked, &ended).await;
    tracing::info!(sid = %sid, by = %id.sid, "session ended by its user");
    Ok(no_content())
}

/// 204 with `Cache-Control: no-store` and no body.
pub fn no_content() -> Response<Body> {
    let mut res = full(StatusCode::NO_CONTENT, "application/json", Bytes::new());
    res.headers_mut().remove(http::header::CONTENT_TYPE);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
