//! `GET /auth/sessions` and `DELETE /auth/sessions/{sid}`: a user's own
//! sessions, seen and ended by the user.

use super::*;

/// The caller of a session endpoint: a valid access token of a session
/// that has not ended, whose user is within its calls per minute.
fn caller(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<std::sync::Arc<crate::tokens::Identity>, ApiError> {
    let id = crate::pipeline::auth::authenticate_request(
        gw,
        crate::config::AuthMode::Required,
        req.method(),
        req.headers(),
    )?
    .ok_or(ApiError::MissingToken)?;
    gw.revoked.check(&id).map_err(ApiError::InvalidToken)?;
    gw.sessions_limiter.check(id.user()).map_err(|secs| {
        gw.metrics.refusals.increment(Refusal::SessionsRate);
        ApiError::TooOften(
            "too many calls of the session endpoints for this user, retry later",
            secs,
        )
    })?;
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
        .list(UserKey(id.user()))
        .await
        .map_err(|_| store_down(gw, SessionOp::Sessions))?;
    let sessions: Vec<Listed> = list
        .into_iter()
        .map(|info| Listed {
            current: *info.sid == *id.sid(),
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
        .end(
            UserKey(id.user()),
            Some(Sid(sid)),
            EndReason::LoggedOut,
            gw.tokens.refresh_ttl(),
        )
        .await
        .map_err(|_| store_down(gw, SessionOp::Sessions))?;
    if ended.is_empty() {
        return Err(ApiError::SessionNotFound);
    }
    gw.sessions
        .announce(&gw.revoked, &ended, EndReason::LoggedOut)
        .await;
    tracing::info!(sid = %sid, by = %id.sid(), "session ended by its user");
    gw.audit.emit(crate::telemetry::audit::Event::SessionEnded {
        reason: EndReason::LoggedOut,
        user: id.user(),
        sid,
        by_sid: Some(id.sid()),
    });
    Ok(no_content())
}
