//! The gateway's own endpoints, matched by exact path before any route
//! ([`Endpoint`]) and served by [`serve`]: one file each for logins
//! (`login`), refresh and logout (`refresh`), a user's sessions
//! (`sessions`), WeChat's services on a session (`wechat`), the
//! forward-auth decision (`verify`) and the documents and probes
//! (`documents`); what they share (bounded body reads, the token answer)
//! is here. The admin listener's are in [`crate::endpoints::admin`], the browser
//! sign-in's in [`crate::signin::web`].
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

pub mod admin;
mod documents;
mod login;
mod refresh;
mod sessions;
mod verify;
mod wechat;

use crate::signin::{device_class, identify, new_pair, open_session, store_down, MAX_CODE};
pub use documents::{discovery, healthz, jwks, metrics, readyz};
pub use login::{login, parse_login, LoginRequest};
pub use refresh::{logout, parse_logout, parse_refresh, refresh};
pub use sessions::{end_session, list_sessions};
pub use verify::{verify, VERIFY};
pub use wechat::{decrypt, phone};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, PRAGMA};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::config::is_header_safe;
use crate::error::ApiError;
use crate::forward::body::{full, json, Body};
use crate::gateway::Gateway;
use crate::ops::metrics::{Own, Refusal, SessionOp};
use crate::pipeline::path::canonical;
use crate::sessions::{Checked, Redeemed, SessionInfo, SessionStore as _};
use crate::signin::codes::Began;
use crate::signin::enrich::Event;
use crate::signin::providers::Login;
use crate::tokens::TokenError;
use crate::tokens::{random_id, Subject, TokenPair};
use crate::wechat::crypt::DecryptError;
use crate::wechat::phone::PhoneError;

/// The largest body accepted on `/auth/*`.
pub const MAX_BODY: usize = 16 * 1024;
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
            crate::signin::web::LOGIN => Endpoint::WebLogin,
            crate::signin::web::CALLBACK => Endpoint::WebCallback,
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
        Endpoint::WebLogin => crate::signin::web::login(gw, &req),
        Endpoint::WebCallback => crate::signin::web::callback(gw, &req, client).await,
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

fn token_response(pair: &TokenPair) -> Response<Body> {
    let mut res = json(StatusCode::OK, pair);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// 204 with `Cache-Control: no-store` and no body.
pub fn no_content() -> Response<Body> {
    let mut res = full(StatusCode::NO_CONTENT, "application/json", Bytes::new());
    res.headers_mut().remove(http::header::CONTENT_TYPE);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
