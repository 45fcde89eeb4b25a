//! The admin listener (`[admin]`): the operators' API, on its own socket.
//!
//! It is never the public listener: nothing of it is routed from the
//! gateway's port, and the public endpoints are not served here. Every call
//! needs `Authorization: Bearer <admin token>`: one of the configured
//! tokens, compared in constant time (both sides hashed first, so neither
//! the content nor the length of a token leaks through timing); a missing
//! or wrong token is 401. Each endpoint needs its [`AdminScope`]; a valid
//! token without it is 403 `insufficient_scope`.
//!
//! | method, path | scope | what |
//! |---|---|---|
//! | `GET /admin/users/{user}/sessions` | `sessions` | the user's live sessions, newest first |
//! | `DELETE /admin/users/{user}/sessions` | `sessions` | ends every session of the user |
//! | `DELETE /admin/users/{user}/sessions/{sid}` | `sessions` | ends one (404 if not the user's) |
//! | `POST /admin/users/{user}/sessions/{sid}/reset_session_key` | `sessions` | WeChat's `resetusersessionkey`; the new key is kept with the session |
//! | `GET /admin/wechat/access_token?appid=...` | `wechat` | the app's WeChat access token |
//!
//! `{user}` is the user key (see [`crate::tokens::Subject::user`]),
//! percent-encoded where it must be. Sessions ended here are revoked on
//! every replica like any other. More admin endpoints join [`Admin::of`],
//! [`Admin::scope`] and [`serve`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{AdminConfig, AdminScope, AdminToken};
use crate::error::ApiError;
use crate::forward::body::{json, Body};
use crate::gateway::Gateway;
use crate::sessions::{EndReason, SessionStore as _};
use crate::telemetry::audit;
use crate::telemetry::metrics::{Own, SessionOp};
use crate::tokens::{Sid, UserKey};

/// The admin API's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// `/admin/users/{user}/sessions`: list (GET) or end all (DELETE).
    UserSessions {
        /// The user key, decoded.
        user: String,
    },
    /// `/admin/users/{user}/sessions/{sid}`: end one (DELETE).
    UserSession {
        /// The user key, decoded.
        user: String,
        /// The session.
        sid: String,
    },
    /// `/admin/wechat/access_token?appid=...`: the app's WeChat access
    /// token, for backend services (GET).
    WeChatAccessToken,
    /// `/admin/users/{user}/sessions/{sid}/reset_session_key`: a new
    /// `session_key` for the session (POST).
    ResetSessionKey {
        /// The user key, decoded.
        user: String,
        /// The session.
        sid: String,
    },
}

impl Admin {
    /// The endpoint at `path`, if any.
    pub fn of(path: &str) -> Option<Admin> {
        if path == "/admin/wechat/access_token" {
            return Some(Admin::WeChatAccessToken);
        }
        let rest = path.strip_prefix("/admin/users/")?;
        let mut parts = rest.split('/');
        let user = percent_decode(parts.next()?)?;
        if user.is_empty() || parts.next()? != "sessions" {
            return None;
        }
        let found = match (parts.next(), parts.next()) {
            (None | Some(""), None) => Admin::UserSessions { user },
            (Some(sid), None) => Admin::UserSession {
                user,
                sid: percent_decode(sid)?,
            },
            (Some(sid), Some("reset_session_key")) if !sid.is_empty() => Admin::ResetSessionKey {
                user,
                sid: percent_decode(sid)?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(found)
    }

    /// The scope a token needs to call this endpoint.
    pub const fn scope(&self) -> AdminScope {
        match self {
            Admin::UserSessions { .. }
            | Admin::UserSession { .. }
            | Admin::ResetSessionKey { .. } => AdminScope::Sessions,
            Admin::WeChatAccessToken => AdminScope::Wechat,
        }
    }
}

/// `%XX` decoded; `None` if malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let well_formed = s.split('%').skip(1).all(|rest| {
        rest.as_bytes()
            .get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8().ok()?;
    well_formed.then(|| decoded.into_owned())
}

/// The admin tokens the listener accepts, as SHA-256 digests (the tokens
/// themselves are not kept here), each with its scopes.
#[derive(Debug)]
pub struct AdminTokens {
    entries: Vec<([u8; 32], Vec<AdminScope>)>,
}

/// SHA-256 of `s`.
fn digest(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, s).as_ref());
    out
}

impl AdminTokens {
    /// The digests of `tokens`.
    pub fn new(tokens: &[AdminToken]) -> AdminTokens {
        AdminTokens {
            entries: tokens
                .iter()
                .map(|t| (digest(t.token.expose().as_bytes()), t.scopes.clone()))
                .collect(),
        }
    }

    /// The scopes of the token `header` (an `Authorization` value, read as
    /// the proxied routes read it: [`crate::protocol::credentials::bearer`])
    /// holds; `None` if it holds none of them. The presented token is hashed and
    /// its digest compared with every token's in constant time, without
    /// stopping at a match: the time taken tells nothing of any token's
    /// content or length.
    pub fn scopes_of(&self, header: Option<&HeaderValue>) -> Option<&[AdminScope]> {
        use subtle::ConstantTimeEq as _;
        let presented = header
            .and_then(|v| crate::protocol::credentials::bearer(v.as_bytes()))
            .unwrap_or_default();
        let presented_digest = digest(presented);
        let mut found = None;
        for (d, scopes) in &self.entries {
            if bool::from(d.ct_eq(&presented_digest)) {
                found = Some(scopes.as_slice());
            }
        }
        found.filter(|_| !presented.is_empty())
    }
}

/// The admin listener, bound.
#[derive(Debug)]
pub struct AdminListener {
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Binds `config.listen` and serves the admin API until `stopped`, each
/// connection with `builder` (the public listener's HTTP/1 settings).
pub async fn start(
    gw: Arc<Gateway>,
    config: &AdminConfig,
    builder: hyper::server::conn::http1::Builder,
    stopped: watch::Receiver<bool>,
) -> std::io::Result<AdminListener> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let tokens = Arc::new(AdminTokens::new(&config.tokens));
    let mut stopping = stopped.clone();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                () = until_stopped(&mut stopping) => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (gw, tokens, builder) = (gw.clone(), tokens.clone(), builder.clone());
            let mut stop = stopped.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let (gw, tokens) = (gw.clone(), tokens.clone());
                    async move { Ok::<_, Infallible>(handle(&gw, &tokens, req, peer.ip()).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = until_stopped(&mut stop) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
    });
    Ok(AdminListener { addr })
}

/// Resolves once the gateway stops (or its stop signal is gone).
async fn until_stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// One admin request: the token, then the endpoint and its scope; an
/// audit event of each, whatever its answer.
async fn handle(
    gw: &Gateway,
    tokens: &AdminTokens,
    req: Request<Incoming>,
    client: std::net::IpAddr,
) -> Response<Body> {
    let scopes = tokens.scopes_of(req.headers().get(AUTHORIZATION));
    let res = match scopes {
        Some(scopes) => serve(gw, scopes, &req)
            .await
            .unwrap_or_else(ApiError::into_response),
        None => ApiError::AdminUnauthorized.into_response(),
    };
    gw.metrics.own(Own::Admin).count(res.status().as_u16());
    gw.audit.emit(audit::Event::Admin {
        method: req.method().as_str(),
        path: req.uri().path(),
        scope: Admin::of(req.uri().path()).map(|a| a.scope().name()),
        token_scopes: scopes.map(|s| s.iter().map(|s| s.name()).collect()),
        status: res.status().as_u16(),
        client,
    });
    res
}

/// The audit events of sessions an operator ended.
fn revoked(gw: &Gateway, user: &str, ended: &[String]) {
    for sid in ended {
        gw.audit.emit(audit::Event::SessionEnded {
            reason: EndReason::Revoked,
            user,
            sid,
            by_sid: None,
        });
    }
}

/// Serves one admin request of a valid token holding `scopes`: 403
/// `insufficient_scope` if the endpoint's scope is not among them.
pub async fn serve(
    gw: &Gateway,
    scopes: &[AdminScope],
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let Some(endpoint) = Admin::of(req.uri().path()) else {
        return Err(ApiError::NotFound);
    };
    if !scopes.contains(&endpoint.scope()) {
        return Err(ApiError::AdminScope(endpoint.scope()));
    }
    let ttl = gw.tokens.refresh_ttl();
    let down = |_| {
        gw.metrics.session_errors.increment(SessionOp::Sessions);
        ApiError::SessionsUnavailable
    };
    match (endpoint, req.method()) {
        (Admin::UserSessions { user }, &Method::GET) => {
            let list = gw.sessions.list(UserKey(&user)).await.map_err(down)?;
            let mut res = json(StatusCode::OK, &serde_json::json!({ "sessions": list }));
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(res)
        }
        (Admin::UserSessions { user }, &Method::DELETE) => {
            let ended = gw
                .sessions
                .end(UserKey(&user), None, EndReason::Revoked, ttl)
                .await
                .map_err(down)?;
            gw.sessions
                .announce(&gw.revoked, &ended, EndReason::Revoked)
                .await;
            tracing::info!(user = %user, sessions = ended.len(), "admin: every session ended");
            revoked(gw, &user, &ended);
            Ok(crate::endpoints::no_content())
        }
        (Admin::UserSession { user, sid }, &Method::DELETE) => {
            let ended = gw
                .sessions
                .end(UserKey(&user), Some(Sid(&sid)), EndReason::Revoked, ttl)
                .await
                .map_err(down)?;
            if ended.is_empty() {
                return Err(ApiError::SessionNotFound);
            }
            gw.sessions
                .announce(&gw.revoked, &ended, EndReason::Revoked)
                .await;
            tracing::info!(user = %user, sid = %sid, "admin: session ended");
            revoked(gw, &user, &ended);
            Ok(crate::endpoints::no_content())
        }
        (Admin::WeChatAccessToken, &Method::GET) => wechat_access_token(gw, req).await,
        (Admin::ResetSessionKey { user, sid }, &Method::POST) => {
            reset_session_key(gw, &user, &sid).await
        }
        (Admin::ResetSessionKey { .. }, _) => Err(ApiError::MethodNotAllowed("POST")),
        (Admin::UserSessions { .. }, _) => Err(ApiError::MethodNotAllowed("GET, DELETE")),
        (Admin::UserSession { .. }, _) => Err(ApiError::MethodNotAllowed("DELETE")),
        (Admin::WeChatAccessToken, _) => Err(ApiError::MethodNotAllowed("GET")),
    }
}

/// `POST /admin/users/{user}/sessions/{sid}/reset_session_key`: WeChat's
/// `resetusersessionkey`, signed with the session's current key; the new
/// key replaces it in the store (every replica reads it there) and never
/// leaves the gateway. 404: no live session of the user holding a key;
/// 409 `session_key_expired`: WeChat no longer holds the current key
/// (87009), so it will not reset it: the user must log in again.
async fn reset_session_key(
    gw: &Gateway,
    user: &str,
    sid: &str,
) -> Result<Response<Body>, ApiError> {
    let at = crate::tokens::SessionRef {
        user: UserKey(user),
        sid: Sid(sid),
    };
    let down = |_| {
        gw.metrics.session_errors.increment(SessionOp::Sessions);
        ApiError::SessionsUnavailable
    };
    let kept = gw
        .sessions
        .session_key(at)
        .await
        .map_err(down)?
        .ok_or(ApiError::SessionNotFound)?;
    if !gw.wechat.knows(&kept.appid) || kept.openid.is_empty() {
        return Err(ApiError::InvalidRequest(
            "this session is not a WeChat mini-program's",
        ));
    }
    let of = crate::wechat::session_key::KeyOf {
        appid: &kept.appid,
        openid: &kept.openid,
    };
    let fresh = crate::wechat::session_key::reset(&gw.wechat, of, &kept.key)
        .await
        .map_err(crate::wechat::WxError::into_api)?;
    if !gw
        .sessions
        .set_session_key(at, &fresh)
        .await
        .map_err(down)?
    {
        return Err(ApiError::SessionNotFound);
    }
    tracing::info!(user = %user, sid = %sid, "admin: session_key reset");
    let mut res = json(StatusCode::OK, &serde_json::json!({ "reset": true }));
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /admin/wechat/access_token?appid=...`: the one access token of the
/// app, shared by the whole cluster, so that backend services sending
/// subscription messages never fetch (and so invalidate) their own.
async fn wechat_access_token(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let appid = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("appid="))
        .and_then(percent_decode)
        .ok_or(ApiError::InvalidRequest("appid is required"))?;
    if !gw.wechat.knows(&appid) {
        return Err(ApiError::InvalidRequest("no WeChat app with that appid"));
    }
    let token = gw
        .wechat
        .get(&appid)
        .await
        .map_err(crate::wechat::WxError::into_api)?;
    let mut res = json(
        StatusCode::OK,
        &serde_json::json!({ "access_token": token.expose(), "expires_in": token.expires_in() }),
    );
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            Admin::of("/admin/users/o_1/sessions"),
            Some(Admin::UserSessions { user: "o_1".into() })
        );
        assert_eq!(
            Admin::of("/admin/users/a%2Fb/sessions/s1"),
            Some(Admin::UserSession {
                user: "a/b".into(),
                sid: "s1".into()
            })
        );
        for bad in [
            "/admin/users//sessions",
            "/admin/users/u/other",
            "/admin/users/u/sessions/s/x",
            "/admin/users/%zz/sessions",
            "/admin/wechat/access_token/x",
            "/admin/users/u/sessions/s/reset_session_key/x",
            "/admin/users/u/sessions//reset_session_key",
        ] {
            assert_eq!(Admin::of(bad), None, "{bad}");
        }
        assert_eq!(
            Admin::of("/admin/wechat/access_token"),
            Some(Admin::WeChatAccessToken)
        );
    }

    fn token(value: &str, source: &str, scopes: &[AdminScope]) -> AdminToken {
        AdminToken {
            token: crate::config::Secret::new(value.into()),
            source: source.into(),
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn the_token_must_match_exactly_and_gives_its_own_scopes() {
        let tokens = AdminTokens::new(&[
            token("0123456789abcdef-admin", "env A", &AdminScope::ALL),
            token("0123456789abcdef-broker", "env B", &[AdminScope::Wechat]),
        ]);
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        let scopes = |v: Option<&str>| tokens.scopes_of(v.map(h).as_ref()).map(<[_]>::to_vec);
        assert_eq!(
            scopes(Some("Bearer 0123456789abcdef-admin")),
            Some(AdminScope::ALL.to_vec())
        );
        assert_eq!(
            scopes(Some("bearer 0123456789abcdef-admin")),
            Some(AdminScope::ALL.to_vec())
        );
        assert_eq!(
            scopes(Some("Bearer 0123456789abcdef-broker")),
            Some(vec![AdminScope::Wechat])
        );
        for wrong in [
            Some("Bearer 0123456789abcdef-admiN"),
            Some("Bearer 0123456789abcdef"),
            Some("Bearer 0123456789abcdef-broker0"),
            Some("Basic 0123456789abcdef-admin"),
            Some("Bearer "),
            None,
        ] {
            assert_eq!(scopes(wrong), None, "{wrong:?}");
        }
        // The digests, not the tokens, are what the listener keeps.
        assert!(!format!("{tokens:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn each_endpoint_has_its_scope() {
        assert_eq!(
            Admin::of("/admin/users/u/sessions").map(|a| a.scope()),
            Some(AdminScope::Sessions)
        );
        assert_eq!(
            Admin::of("/admin/users/u/sessions/s").map(|a| a.scope()),
            Some(AdminScope::Sessions)
        );
        assert_eq!(
            Admin::of("/admin/wechat/access_token").map(|a| a.scope()),
            Some(AdminScope::Wechat)
        );
        assert_eq!(
            Admin::of("/admin/users/u/sessions/s/reset_session_key"),
            Some(Admin::ResetSessionKey {
                user: "u".into(),
                sid: "s".into()
            })
        );
        assert_eq!(
            Admin::of("/admin/users/u/sessions/s/reset_session_key").map(|a| a.scope()),
            Some(AdminScope::Sessions)
        );
    }
}
