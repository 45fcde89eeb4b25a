//! The health of a session's `session_key` at WeChat: `checksession` tells
//! whether WeChat still holds it as the user's current key,
//! `resetusersessionkey` replaces it. Both are signed with the key itself
//! (HMAC-SHA256 of the empty string, `sig_method=hmac_sha256`), so the key
//! never travels: only that proof does, with the app's access token.

use serde::Deserialize;

use super::client::WxError;
use super::token::AccessTokens;
use crate::config::Secret;

/// `signature`: the hex HMAC-SHA256 of the empty string keyed by the
/// `session_key` as WeChat handed it out (its base64 text).
pub fn signature(session_key: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, session_key.as_bytes());
    let tag = ring::hmac::sign(&key, b"");
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The user a key belongs to, at the app it was issued for.
#[derive(Debug, Clone, Copy)]
pub struct KeyOf<'a> {
    /// The app.
    pub appid: &'a str,
    /// The user's openid at it.
    pub openid: &'a str,
}

#[derive(Deserialize)]
struct Checked {}

/// `GET /wxa/checksession`: whether `key` is still the user's current
/// `session_key` (errcode 0) or not (87009); any other failure is WeChat's.
pub async fn check(tokens: &AccessTokens, of: KeyOf<'_>, key: &Secret) -> Result<bool, WxError> {
    let signature = signature(key.expose());
    let answer: Result<Checked, WxError> = tokens
        .call_get(
            of.appid,
            "/wxa/checksession",
            &[
                ("openid", of.openid),
                ("signature", &signature),
                ("sig_method", "hmac_sha256"),
            ],
        )
        .await;
    match answer {
        Ok(Checked {}) => Ok(true),
        Err(WxError::StaleSessionKey) => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct Reset {
    openid: String,
    session_key: String,
}

/// `GET /wxa/resetusersessionkey`, signed with the `current` key: the new
/// `session_key`. 87009 ([`WxError::StaleSessionKey`]): `current` is not
/// the user's key any more, so WeChat will not replace it.
pub async fn reset(
    tokens: &AccessTokens,
    of: KeyOf<'_>,
    current: &Secret,
) -> Result<Secret, WxError> {
    let signature = signature(current.expose());
    let answer: Reset = tokens
        .call_get(
            of.appid,
            "/wxa/resetusersessionkey",
            &[
                ("openid", of.openid),
                ("signature", &signature),
                ("sig_method", "hmac_sha256"),
            ],
        )
        .await?;
    if answer.openid != of.openid || answer.session_key.is_empty() {
        tracing::warn!(
            appid = of.appid,
            "resetusersessionkey answered for another user, or without a key"
        );
        return Err(WxError::Unusable);
    }
    Ok(Secret::new(answer.session_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_of_nothing() {
        // Computed independently: Python's
        // `hmac.new(b"key", b"", hashlib.sha256).hexdigest()`.
        assert_eq!(
            signature("key"),
            "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"
        );
        assert_eq!(signature("a").len(), 64);
    }
}
