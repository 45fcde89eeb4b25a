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
mod component;
mod documents;
mod login;
mod refresh;
mod sessions;
mod verify;
mod wechat;

use crate::signin::{device_class, identify, new_pair, open_session, store_down, MAX_CODE};
pub use component::{is_ticket_path, ticket, COMPONENT_PREFIX};
pub use documents::{discovery, healthz, jwks, metrics, readyz};
pub use login::{login, parse_login, LoginRequest};
pub use refresh::{logout, parse_logout, parse_refresh, refresh};
pub use sessions::{end_session, list_sessions};
pub use verify::{verify, VERIFY};
pub use wechat::{decrypt, phone, session_key};

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
use crate::protocol::path::canonical;
use crate::sessions::{Checked, EndReason, Redeemed, Rotation, SessionInfo, SessionStore as _};
use crate::signin::codes::CodeSession;
use crate::signin::enrich::Event;
use crate::signin::providers::Login;
use crate::telemetry::metrics::{Own, Refusal, SessionOp};
use crate::tokens::TokenError;
use crate::tokens::{random_id, DeviceClass, Jti, Sid, Subject, TokenPair, UserKey};
use crate::wechat::crypt::DecryptError;
use crate::wechat::phone::PhoneError;

/// The largest body accepted on `/auth/*`.
pub const MAX_BODY: usize = 16 * 1024;
/// `max-age` of the JWKS document: verifiers re-fetch at least this often.
pub const JWKS_MAX_AGE: u64 = 300;
/// `DELETE /auth/sessions/{sid}` is this followed by the sid.
pub const SESSIONS_PREFIX: &str = "/auth/sessions/";

/// Declares the gateway's endpoints as one table: each row names the
/// variant, the paths it answers (a pattern, with an optional guard), what
/// its responses are counted under and the call that serves it. The enum,
/// [`Endpoint::of`], [`Endpoint::counted`] and [`serve`] follow from it, so
/// a new endpoint is one row here and its handler in its own file.
macro_rules! endpoints {
    (
        ($gw:ident, $req:ident, $client:ident);
        $(
            $(#[$doc:meta])*
            $variant:ident: $path:pat $(if $guard:expr)? => $own:ident, $serve:expr;
        )+
    ) => {
        /// The gateway's own endpoints, matched by path before any route.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Endpoint {
            $( $(#[$doc])* $variant, )+
        }

        impl Endpoint {
            /// The endpoint answering `path`, if any.
            #[inline]
            pub fn of(path: &str) -> Option<Endpoint> {
                match path {
                    $( $path $(if $guard)? => Some(Endpoint::$variant), )+
                    _ => None,
                }
            }

            /// What its responses are counted under.
            pub fn counted(self) -> Own {
                match self {
                    $( Endpoint::$variant => Own::$own, )+
                }
            }
        }

        /// Serves one of the gateway's own endpoints; `client` is the
        /// request's client address.
        pub async fn serve(
            endpoint: Endpoint,
            $gw: &Gateway,
            $req: Request<Incoming>,
            $client: IpAddr,
        ) -> Result<Response<Body>, ApiError> {
            match endpoint {
                $( Endpoint::$variant => $serve, )+
            }
        }
    };
}

endpoints! {
    (gw, req, client);
    /// `POST /auth/login`.
    Login: "/auth/login" => Login, login(gw, req, client).await;
    /// `POST /auth/refresh`.
    Refresh: "/auth/refresh" => Refresh, refresh(gw, req).await;
    /// `POST /auth/logout`.
    Logout: "/auth/logout" => Logout, logout(gw, req).await;
    /// `POST /auth/phone`: the user's phone number, from WeChat.
    Phone: "/auth/phone" => WeChat, phone(gw, req).await;
    /// `POST /auth/wechat/decrypt`: WeChat's legacy `encryptedData`.
    Decrypt: "/auth/wechat/decrypt" => WeChat, decrypt(gw, req).await;
    /// `GET /auth/wechat/session_key`: whether WeChat still holds the
    /// session's `session_key`.
    SessionKey: "/auth/wechat/session_key" => WeChat, session_key(gw, &req).await;
    /// `POST /auth/wechat/component/{component_appid}/ticket`: WeChat's
    /// pushes to a third-party platform.
    ComponentTicket: p if is_ticket_path(p) => WeChat, ticket(gw, req).await;
    /// `GET /auth/sessions`.
    Sessions: "/auth/sessions" | SESSIONS_PREFIX => Sessions, list_sessions(gw, &req).await;
    /// `DELETE /auth/sessions/{sid}`.
    Session: p if p.starts_with(SESSIONS_PREFIX) => Sessions, end_session(gw, &req).await;
    /// `GET /.well-known/jwks.json`.
    Jwks: "/.well-known/jwks.json" => WellKnown, jwks(gw, &req);
    /// `GET /.well-known/openid-configuration`.
    Discovery: "/.well-known/openid-configuration" => WellKnown, discovery(gw, &req);
    /// `GET /healthz`.
    Healthz: "/healthz" => Health, Ok(healthz());
    /// `GET /readyz`.
    Readyz: "/readyz" => Health, Ok(readyz(gw));
    /// `GET /metrics`.
    Metrics: "/metrics" => Metrics, metrics(gw, &req);
    /// `/auth/verify` and below, any method: forward-auth.
    Verify: p if p == VERIFY || p.starts_with("/auth/verify/") => Verify, verify(gw, &req);
    /// `GET /auth/web/login`: a browser sign-in's start.
    WebLogin: crate::signin::web::LOGIN => WebLogin, crate::signin::web::login(gw, &req);
    /// `GET /auth/web/callback`: its return from the authorize page.
    WebCallback: crate::signin::web::CALLBACK => WebCallback,
        crate::signin::web::callback(gw, &req, client).await;
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
    let body = tokio::time::timeout(gw.server_config.body_timeout, collect)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_answers_its_paths_and_no_other() {
        for (path, want) in [
            ("/auth/login", Some(Endpoint::Login)),
            ("/auth/sessions", Some(Endpoint::Sessions)),
            ("/auth/sessions/", Some(Endpoint::Sessions)),
            ("/auth/sessions/abc", Some(Endpoint::Session)),
            ("/auth/verify", Some(Endpoint::Verify)),
            ("/auth/verify/orders/1", Some(Endpoint::Verify)),
            ("/auth/verifyx", None),
            ("/auth/web/login", Some(Endpoint::WebLogin)),
            ("/auth/web/callback", Some(Endpoint::WebCallback)),
            ("/.well-known/jwks.json", Some(Endpoint::Jwks)),
            ("/healthz", Some(Endpoint::Healthz)),
            ("/auth/login/", None),
            (
                "/auth/wechat/component/wx3rd/ticket",
                Some(Endpoint::ComponentTicket),
            ),
            ("/auth/wechat/component//ticket", None),
            ("/auth/wechat/component/a/b/ticket", None),
            ("/auth/wechat/component/wx3rd", None),
            ("/api/x", None),
        ] {
            assert_eq!(Endpoint::of(path), want, "{path}");
        }
        assert_eq!(Endpoint::Decrypt.counted(), Own::WeChat);
        assert_eq!(Endpoint::Session.counted(), Own::Sessions);
    }
}
