//! `POST /auth/refresh` and `POST /auth/logout`: a refresh token (from the
//! body, or with `[web]` the refresh cookie) redeemed once, or its session
//! (or every session of its user) ended.

use super::*;
use crate::sessions::EndedAll;
use crate::telemetry::audit;

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
        if let Some(token) = crate::signin::web::refresh_cookie(gw, &method, &headers)? {
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
        return Ok(crate::signin::web::cookie_answer(rotated));
    }
    rotated.map(|pair| token_response(&pair))
}

/// Verifies and redeems a refresh token: the new pair.
async fn rotate(gw: &Gateway, token: &str) -> Result<TokenPair, ApiError> {
    let old = gw
        .tokens
        .verify_refresh(token)
        .map_err(|e| ApiError::InvalidGrant(e.message()))?;
    // The session first: a spent, revoked or unknown refresh token costs no
    // call of the user service, and a session refreshes at most
    // REFRESHES_PER_WINDOW times a window.
    let step = crate::signin::store_step(gw, "check");
    let checked = gw
        .sessions
        .check(old.session(), old.jti(), gw.tokens.refresh_ttl())
        .await;
    if checked.is_err() {
        step.fail("temporarily_unavailable");
    }
    drop(step);
    let checked = checked.map_err(|_| store_down(gw, SessionOp::Refresh))?;
    match checked {
        Checked::Live => {}
        Checked::TooSoon(wait) => {
            gw.metrics.refusals.increment(Refusal::RefreshRate);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::TooOften(
                "too many refreshes of this session, retry later",
                secs.max(1),
            ));
        }
        Checked::Reused => return Err(reused(gw, &old).await),
        Checked::Revoked(why) => return Err(ApiError::SessionEnded(why)),
        Checked::Unknown => return Err(ApiError::InvalidGrant("unknown or expired session")),
    }
    // Asked before the token is redeemed: a user service that is down must
    // not cost the client its refresh token.
    let mut subject = match identify(gw, old.subject.clone(), Event::Refresh, &old.sid).await {
        Err(ApiError::AccessDenied) => {
            // A banned user's session ends here, not at its refresh TTL.
            match gw
                .sessions
                .end(
                    old.subject.user_key(),
                    Some(old.session().sid),
                    EndReason::Banned,
                    gw.tokens.refresh_ttl(),
                )
                .await
            {
                Ok(_) => {
                    gw.sessions
                        .announce(
                            &gw.revoked,
                            std::slice::from_ref(&old.sid),
                            EndReason::Banned,
                        )
                        .await
                }
                Err(_) => gw.metrics.session_errors.increment(SessionOp::Logout),
            }
            tracing::info!(appid = %old.subject.appid, sid = %old.sid, "refresh refused by the user service: session ended");
            gw.audit.emit(audit::Event::SessionEnded {
                reason: EndReason::Banned,
                user: old.subject.user(),
                sid: &old.sid,
                by_sid: None,
            });
            return Err(ApiError::AccessDenied);
        }
        other => other?,
    };
    let next_jti = random_id()?;
    let step = crate::signin::store_step(gw, "redeem");
    let outcome = gw
        .sessions
        .redeem(
            old.session(),
            Rotation {
                spent: old.jti(),
                next: Jti(&next_jti),
            },
            gw.tokens.refresh_ttl(),
        )
        .await;
    if outcome.is_err() {
        step.fail("temporarily_unavailable");
    }
    drop(step);
    let outcome = outcome.map_err(|_| store_down(gw, SessionOp::Refresh))?;
    match outcome {
        Redeemed::Rotated { phone } => {
            // The number verified at /auth/phone is kept with the session.
            if phone.is_some() {
                subject.phone = phone;
            }
            let pair = gw.tokens.issue(&subject, &old.sid, next_jti)?;
            tracing::info!(appid = %old.subject.appid, sub = %old.subject.openid, sid = %old.sid, "refresh");
            gw.audit.emit(audit::Event::Refresh {
                platform: old.subject.platform.name(),
                appid: &old.subject.appid,
                device_type: &old.subject.device_type,
                user: old.subject.user(),
                sid: &old.sid,
            });
            Ok(pair)
        }
        Redeemed::Reused => Err(reused(gw, &old).await),
        Redeemed::Revoked(why) => Err(ApiError::SessionEnded(why)),
        Redeemed::Unknown => Err(ApiError::InvalidGrant("unknown or expired session")),
    }
}

/// A refresh token already used: its session is revoked in the store by
/// now; every replica is told.
async fn reused(gw: &Gateway, old: &crate::tokens::Refresh) -> ApiError {
    gw.sessions
        .announce(
            &gw.revoked,
            std::slice::from_ref(&old.sid),
            EndReason::Reused,
        )
        .await;
    tracing::warn!(
        appid = %old.subject.appid, sub = %old.subject.openid, sid = %old.sid,
        "refresh token reused: session revoked"
    );
    gw.audit.emit(audit::Event::RefreshReused {
        appid: &old.subject.appid,
        user: old.subject.user(),
        sid: &old.sid,
    });
    gw.audit.emit(audit::Event::SessionEnded {
        reason: EndReason::Reused,
        user: old.subject.user(),
        sid: &old.sid,
        by_sid: None,
    });
    ApiError::RefreshReused
}

/// `POST /auth/logout`: revokes the login session of a valid refresh token,
/// or with `"everywhere": true` every session of its user. Idempotent for
/// one session: logging out of a revoked or forgotten session is still 204.
/// Everywhere needs the redeemable token of a live session (its current
/// one, or within `reuse_grace` the one redeemed last): a spent, revoked or
/// unknown one is 400 `invalid_grant` and ends nothing, or whoever once saw
/// a refresh token could sign its user out again and again.
/// From the refresh cookie (a body without `refresh_token`, which may still
/// say `"everywhere": true`), the answer also clears the session cookies.
pub async fn logout(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (body, token, by_cookie) = presented_refresh(gw, req).await?;
    if by_cookie {
        let everywhere = serde_json::from_slice::<LogoutBody>(&body).is_ok_and(|b| b.everywhere);
        return Ok(crate::signin::web::logged_out(
            end_by(gw, &token, everywhere).await,
        ));
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
    let ttl = gw.tokens.refresh_ttl();
    let mut ended = if everywhere {
        match gw
            .sessions
            .end_everywhere(old.session(), old.jti(), ttl)
            .await
            .map_err(|_| store_down(gw, SessionOp::Logout))?
        {
            EndedAll::Ended(sids) => sids,
            // A token of an ended session: told why, as a refresh is.
            EndedAll::Refused(Some(why)) => return Err(ApiError::SessionEnded(why)),
            EndedAll::Refused(None) => {
                return Err(ApiError::InvalidGrant(
                    "logging out everywhere needs the current refresh token of a live session",
                ))
            }
        }
    } else {
        gw.sessions
            .end(
                old.subject.user_key(),
                Some(old.session().sid),
                EndReason::LoggedOut,
                ttl,
            )
            .await
            .map_err(|_| store_down(gw, SessionOp::Logout))?
    };
    // This token's session ends whether or not the store still knew it
    // (had it ended another way, every replica keeps the graver reason).
    if !ended.contains(&old.sid) {
        ended.push(old.sid.clone());
    }
    gw.sessions
        .announce(&gw.revoked, &ended, EndReason::LoggedOut)
        .await;
    tracing::info!(appid = %old.subject.appid, sub = %old.subject.openid, sid = %old.sid, sessions = ended.len(), "logout");
    let user = old.subject.user();
    gw.audit.emit(audit::Event::Logout {
        appid: &old.subject.appid,
        user,
        sid: &old.sid,
        everywhere,
        ended: ended.len(),
    });
    for sid in &ended {
        gw.audit.emit(audit::Event::SessionEnded {
            reason: EndReason::LoggedOut,
            user,
            sid,
            by_sid: Some(&old.sid),
        });
    }
    let mut res = full(StatusCode::NO_CONTENT, "application/json", Bytes::new());
    res.headers_mut().remove(http::header::CONTENT_TYPE);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
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
