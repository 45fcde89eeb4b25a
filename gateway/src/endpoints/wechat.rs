//! WeChat's services on the caller's own session: the phone number
//! (`/auth/phone`) and decryption with the session's key
//! (`/auth/wechat/decrypt`).

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
    let step = crate::telemetry::traces::Step::of(
        gw.tracing.as_ref(),
        "wechat phone number",
        opentelemetry::trace::SpanKind::Client,
        || {
            vec![opentelemetry::KeyValue::new(
                "minigate.appid",
                who.subject.appid.clone(),
            )]
        },
    );
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
    let key = gw
        .sessions
        .session_key(who.session())
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
