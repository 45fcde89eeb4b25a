//! WeChat's services on the caller's own session: the phone number
//! (`/auth/phone`), decryption with the session's key
//! (`/auth/wechat/decrypt`) and that key's health at WeChat
//! (`/auth/wechat/session_key`).

use super::*;

/// The caller of one of the endpoints that act on its own session, with all
/// its token says of it: a valid access token (checked in full, not from
/// the cache, which keeps only headers) whose session has not ended.
fn caller_subject(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<crate::tokens::Refresh, ApiError> {
    let token = match crate::protocol::credentials::credentials(req.headers()) {
        crate::protocol::credentials::Presented::Bearer(t) => t,
        crate::protocol::credentials::Presented::None => return Err(ApiError::MissingToken),
        crate::protocol::credentials::Presented::Malformed => {
            return Err(ApiError::InvalidToken(TokenError::MALFORMED))
        }
    };
    let who = gw
        .tokens
        .access_subject(token)
        .map_err(ApiError::InvalidToken)?;
    if let Some(why) = gw.revoked.ended(&who.sid) {
        return Err(ApiError::InvalidToken(TokenError::Revoked(why)));
    }
    Ok(who)
}

/// One more call of WeChat's services for the caller's user, if within its
/// calls per minute (the app's quota at WeChat is every user's: see
/// [`crate::pipeline::limits`]); 429 otherwise.
fn wechat_call(gw: &Gateway, who: &crate::tokens::Refresh) -> Result<(), ApiError> {
    gw.wechat_limiter.check(who.subject.user()).map_err(|secs| {
        gw.metrics.refusals.increment(Refusal::WechatRate);
        ApiError::TooOften(
            "too many calls of WeChat's services for this user, retry later",
            secs,
        )
    })
}

/// The span of a call to WeChat for app `appid`.
fn wechat_step(gw: &Gateway, name: &'static str, appid: &str) -> crate::telemetry::traces::Step {
    crate::telemetry::traces::Step::of(
        gw.tracing.as_ref(),
        name,
        opentelemetry::trace::SpanKind::Client,
        || {
            vec![opentelemetry::KeyValue::new(
                "minigate.appid",
                appid.to_owned(),
            )]
        },
    )
}

#[derive(Deserialize)]
struct CodeBody {
    code: Option<String>,
}

/// `POST /auth/phone` `{"code"}`: the phone number the user agreed to share
/// (the `getPhoneNumber` button's code), verified with WeChat and kept with
/// the caller's session, whose next refresh carries it.
///
/// It mints no token: an access token reaches every upstream, and a phone
/// code is bound to the app, not to the user, so a pair minted here would
/// turn any access token into a refresh token, and would carry roles no
/// refresh computed. The session's refresh token stays as it was.
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
    wechat_call(gw, &who)?;
    let step = wechat_step(gw, "wechat phone number", &who.subject.appid);
    let number = crate::wechat::phone::phone_number(&gw.wechat, &who.subject.appid, &code).await;
    if number.is_err() {
        step.fail("wechat_error");
    }
    drop(step);
    let number = number.map_err(|e| match e {
        // A code of another app is no code of this one.
        PhoneError::WrongWatermark => ApiError::InvalidCode,
        PhoneError::Wx(e) => e.into_api(),
    })?;
    let kept = gw
        .sessions
        .set_phone(who.session(), &number.phone_number)
        .await
        .map_err(|_| store_down(gw, SessionOp::Refresh))?;
    if !kept {
        return Err(ApiError::InvalidGrant("session revoked"));
    }
    tracing::info!(appid = %who.subject.appid, sid = %who.sid, "phone number verified");
    gw.audit.emit(crate::telemetry::audit::Event::PhoneBound {
        appid: &who.subject.appid,
        user: who.subject.user(),
        sid: &who.sid,
        phone_last4: crate::telemetry::audit::last_four(&number.pure_phone_number),
        country_code: &number.country_code,
    });
    let mut res = json(StatusCode::OK, &number);
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
    let kept = kept_key(gw, &who)
        .await?
        .ok_or(ApiError::SessionKeyExpired)?;
    let decrypted =
        crate::wechat::crypt::decrypt(kept.key.expose(), &data, &iv, &who.subject.appid);
    let object = match decrypted {
        Ok(object) => object,
        Err(DecryptError::Malformed(why)) => return Err(ApiError::InvalidRequest(why)),
        Err(DecryptError::WrongWatermark) => {
            return Err(ApiError::InvalidRequest(
                "the data's watermark names another app",
            ))
        }
        // Whose fault: a key WeChat no longer holds (log in again), or data
        // of another key (fetch it again). Unknown if WeChat cannot say.
        Err(DecryptError::StaleKey) => {
            // Over the user's calls of WeChat, the 409 is told without it.
            if wechat_call(gw, &who).is_err() {
                return Err(ApiError::SessionKeyExpired);
            }
            return Err(match checked(gw, &kept).await {
                Some(Ok(valid)) => ApiError::SessionKeyChecked { valid },
                Some(Err(_)) | None => ApiError::SessionKeyExpired,
            });
        }
    };
    let mut res = json(StatusCode::OK, &object);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The platform session key kept with the caller's session.
async fn kept_key(
    gw: &Gateway,
    who: &crate::tokens::Refresh,
) -> Result<Option<crate::sessions::KeptKey>, ApiError> {
    gw.sessions
        .session_key(who.session())
        .await
        .map_err(|_| store_down(gw, SessionOp::Refresh))
}

/// What WeChat's `checksession` says of the kept key: `None` for a key of
/// an app that is not a configured WeChat mini-program (no access token to
/// ask with).
async fn checked(
    gw: &Gateway,
    kept: &crate::sessions::KeptKey,
) -> Option<Result<bool, crate::wechat::WxError>> {
    if !gw.wechat.knows(&kept.appid) || kept.openid.is_empty() {
        return None;
    }
    let of = crate::wechat::session_key::KeyOf {
        appid: &kept.appid,
        openid: &kept.openid,
    };
    let step = wechat_step(gw, "wechat checksession", &kept.appid);
    let valid = crate::wechat::session_key::check(&gw.wechat, of, &kept.key).await;
    if let Err(e) = valid {
        step.fail("wechat_error");
        tracing::warn!(appid = %kept.appid, failure = e.label(), "WeChat checksession failed");
    }
    Some(valid)
}

/// `GET /auth/wechat/session_key`: `{"valid": true|false}`, whether WeChat
/// still holds the session's `session_key` as the user's (`checksession`),
/// so that a client knows before it asks the user for encrypted data. A
/// session that holds no key is not valid; WeChat's failures are the
/// platform's errors.
pub async fn session_key(
    gw: &Gateway,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    require(req, Method::GET, "GET")?;
    let who = caller_subject(gw, req)?;
    if !gw.wechat.knows(&who.subject.appid) {
        return Err(ApiError::InvalidRequest(
            "session_key health is WeChat's: this session is not a WeChat app's",
        ));
    }
    wechat_call(gw, &who)?;
    let kept = kept_key(gw, &who).await?;
    let valid = match kept {
        None => false,
        Some(kept) => checked(gw, &kept)
            .await
            .unwrap_or(Ok(false))
            .map_err(crate::wechat::WxError::into_api)?,
    };
    let mut res = json(StatusCode::OK, &serde_json::json!({ "valid": valid }));
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
