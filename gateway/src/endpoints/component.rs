//! `POST /auth/wechat/component/{component_appid}/ticket`: a WeChat
//! third-party platform's authorization-event callback, where WeChat pushes
//! the `component_verify_ticket` every 10 minutes (and the authorization
//! events). The push is opened by WeChat's message crypto
//! ([`crate::wechat::msgcrypt`]): signature first, then decryption, then
//! the appid; its ticket is kept for every replica
//! ([`crate::wechat::component`]), and WeChat is answered `success`, the
//! only answer it takes as received.
//!
//! The body is read within the bound every endpoint has (16 KiB; a push is
//! well under 2 KiB). A push that is not WeChat's is refused without
//! detail: 401 for a signature that does not match, 400 for the rest.

use super::*;
use crate::wechat::component::{receive, Pushed};
use crate::wechat::msgcrypt::{MsgCrypt, PushError, Signed};

/// The callbacks are this, the platform's `component_appid`, and
/// [`TICKET_SUFFIX`].
pub const COMPONENT_PREFIX: &str = "/auth/wechat/component/";
/// See [`COMPONENT_PREFIX`].
pub const TICKET_SUFFIX: &str = "/ticket";

/// Whether `path` is a third-party platform's callback.
pub fn is_ticket_path(path: &str) -> bool {
    component_of(path).is_some()
}

fn component_of(path: &str) -> Option<&str> {
    path.strip_prefix(COMPONENT_PREFIX)?
        .strip_suffix(TICKET_SUFFIX)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// The push's query parameter `name`.
fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// `POST /auth/wechat/component/{component_appid}/ticket`.
pub async fn ticket(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    require(&req, Method::POST, "POST")?;
    let provider = component_of(req.uri().path())
        .and_then(|id| gw.providers.component(id))
        .ok_or(ApiError::NotFound)?;
    let Some(config) = &provider.component else {
        return Err(ApiError::NotFound);
    };
    let query = req.uri().query().unwrap_or_default().to_owned();
    let (Some(timestamp), Some(nonce), Some(msg_signature)) = (
        param(&query, "timestamp"),
        param(&query, "nonce"),
        param(&query, "msg_signature"),
    ) else {
        return Err(ApiError::InvalidRequest(
            "a push carries timestamp, nonce and msg_signature",
        ));
    };
    let body = read_body(gw, req).await?;
    let crypt = MsgCrypt::new(
        &provider.appid,
        config.verify_token.expose(),
        config.encoding_aes_key.expose(),
    )
    // The key was checked with the config.
    .ok_or(ApiError::Internal)?;
    let signed = Signed {
        timestamp: &timestamp,
        nonce: &nonce,
        msg_signature: &msg_signature,
    };
    let appid = provider.appid.as_str();
    match receive(&gw.wechat.tickets, &crypt, appid, &signed, &body).await {
        Ok(Pushed::Ticket) => {
            tracing::info!(component_appid = appid, "component_verify_ticket received");
        }
        Ok(Pushed::Other(info_type)) => {
            tracing::info!(
                component_appid = appid,
                info_type,
                "third-party platform event received"
            );
        }
        Err(e) => {
            tracing::warn!(component_appid = appid, refused = ?e, "a push to the third-party platform's callback was refused");
            return Err(match e {
                PushError::BadSignature => ApiError::PushSignature,
                PushError::Malformed => {
                    ApiError::InvalidRequest("the body is not WeChat's encrypted XML push")
                }
                PushError::Undecryptable => {
                    ApiError::InvalidRequest("the push does not decrypt with the platform's key")
                }
                PushError::WrongApp => {
                    ApiError::InvalidRequest("the push is for another app than this platform")
                }
            });
        }
    }
    Ok(full(
        StatusCode::OK,
        "text/plain",
        Bytes::from_static(b"success"),
    ))
}
