//! Authentication of a proxied request: the route's policy applied to the
//! bearer token.
//!
//! The token is read from `Authorization: Bearer …` only (RFC 6750 section
//! 2.1): never from a query parameter, where it would end up in logs and
//! caches. What a route requires decides whether a missing token is an
//! error; a token that is present is always checked, unless the route is
//! public. An `Authorization` header that is there but is not a well-formed
//! `Bearer <token>` is a bad token, never an anonymous request: a service
//! behind an optional route may parse it more loosely than the gateway did
//! (split on any whitespace, say) and believe what it finds.
//!
//! With `[web] cookies = true`, a request that sends no `Authorization` at
//! all is authenticated by the access cookie `__Host-minigate_at` instead
//! ([`authenticate_request`]). A browser sends that cookie by itself, so a
//! request it authenticates with an unsafe method must come from the
//! gateway's own origin ([`crate::signin::web::check_origin`], 403
//! `csrf_rejected`), checked before the token.

use std::sync::Arc;

use http::HeaderMap;

use http::Method;

use crate::config::AuthMode;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::pipeline::routes::{Decision, Route};
use crate::protocol::credentials::{credentials, Presented};
use crate::tokens::AuthFailure;
use crate::tokens::{Identity, Roles, TokenError, Tokens};

/// Applies `mode` to the request's headers: the caller's identity, `None`
/// for an anonymous request that may pass, or the 401 to answer.
#[inline]
pub fn authenticate(
    mode: AuthMode,
    headers: &HeaderMap,
    tokens: &Tokens,
) -> Result<Option<Arc<Identity>>, ApiError> {
    if mode == AuthMode::Public {
        return Ok(None);
    }
    match credentials(headers) {
        Presented::None if mode == AuthMode::Optional => Ok(None),
        Presented::None => Err(ApiError::MissingToken),
        Presented::Malformed => Err(ApiError::InvalidToken(TokenError::MALFORMED)),
        Presented::Bearer(token) => tokens
            .verify_access(token)
            .map(Some)
            .map_err(ApiError::InvalidToken),
    }
}

/// [`authenticate`], and with `[web] cookies = true` the access cookie of
/// a request without `Authorization`: the same verification (and a bad
/// cookie is a bad token), after the origin check of an unsafe method. A
/// cookie sent twice is a malformed token.
#[inline]
pub fn authenticate_request(
    gw: &Gateway,
    mode: AuthMode,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Arc<Identity>>, ApiError> {
    if mode != AuthMode::Public {
        if let Some(web) = gw.web.as_ref().filter(|w| w.cookies()) {
            if credentials(headers) == Presented::None {
                use crate::signin::web::cookies::{find, Found, ACCESS};
                match find(headers, ACCESS) {
                    Found::None => {}
                    Found::Many => {
                        crate::signin::web::check_origin(gw, web, method, headers)?;
                        return Err(ApiError::InvalidToken(TokenError::MALFORMED));
                    }
                    Found::One(token) => {
                        crate::signin::web::check_origin(gw, web, method, headers)?;
                        return gw
                            .tokens
                            .verify_access(token)
                            .map(Some)
                            .map_err(ApiError::InvalidToken);
                    }
                }
            }
        }
    }
    authenticate(mode, headers, &gw.tokens)
}

/// Refuses a verified token whose session has ended: checked after the
/// verified-token cache too, which knows nothing of sessions.
#[inline]
fn not_revoked(
    gw: &Gateway,
    identity: Option<Arc<Identity>>,
) -> Result<Option<Arc<Identity>>, ApiError> {
    if let Some(id) = &identity {
        gw.revoked.check(id).map_err(ApiError::InvalidToken)?;
    }
    Ok(identity)
}

/// Authenticate, then authorize: the route's `auth` applied to the token
/// (and its session, which must not have ended), then its `allow` rules to the caller's roles and the method, each
/// outcome counted. What a proxied request and a forward-auth check share.
#[inline]
pub fn check(
    gw: &Gateway,
    route: &Route,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Arc<Identity>>, ApiError> {
    let identity = authenticate_request(gw, route.auth, method, headers)
        .and_then(|id| not_revoked(gw, id))
        .inspect_err(|e| {
            let reason = match e {
                ApiError::MissingToken => Some(AuthFailure::Missing),
                ApiError::InvalidToken(t) => Some(AuthFailure::of(*t)),
                _ => None,
            };
            if let Some(reason) = reason {
                gw.metrics.auth_failures.increment(reason);
            }
        })?;
    if identity.is_some() {
        gw.metrics.auth_ok.increment(1);
    }
    authorize(gw, route, method, identity.as_deref())?;
    Ok(identity)
}

/// The route's `allow` rules applied to the caller's roles and `method`,
/// the decision counted: 403 `insufficient_scope` unless allowed.
#[inline]
pub fn authorize(
    gw: &Gateway,
    route: &Route,
    method: &Method,
    identity: Option<&Identity>,
) -> Result<(), ApiError> {
    if route.has_rules() {
        // An anonymous caller (on an optional route) holds no roles.
        let roles = identity.map_or(Roles::NONE, Identity::roles);
        let decision = route.decide(method, roles);
        gw.metrics.route(route.index).decisions.increment(decision);
        if decision != Decision::Allowed {
            return Err(ApiError::InsufficientScope);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;

    fn headers(auth: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, http::HeaderValue::from_bytes(auth).unwrap());
        h
    }

    /// The token as verification reads it, `None` if malformed.
    fn token_text(h: &HeaderMap) -> Option<&str> {
        match credentials(h) {
            Presented::Bearer(t) => crate::tokens::b64token(t),
            _ => None,
        }
    }

    #[test]
    fn anything_but_a_well_formed_bearer_is_malformed() {
        // Each refused at the header, or else as a token by verification.
        for (bad, at_header) in [
            (&b"Bearer"[..], true),
            (b"Bearer ", true),
            (b"Bearer\tabc", true),
            (b"Be\xffrer abc", true),
            (b"Bearer,abc", true),
            (b"Basic dXNlcjpw", true),
            (b"Bearer \tabc", false),
            (b"Bearer abc def", false),
            (b"Bearer abc\t", false),
            (b"Bearer ==", false),
            (b"Bearer a=b", false),
            (b"Bearer \xff\xfe", false),
        ] {
            let h = headers(bad);
            assert_eq!(
                credentials(&h) == Presented::Malformed,
                at_header,
                "{bad:?}"
            );
            assert_eq!(token_text(&h), None, "{bad:?}");
        }
        let mut h = headers(b"Bearer abc");
        h.append(AUTHORIZATION, "Bearer def".parse().unwrap());
        assert_eq!(credentials(&h), Presented::Malformed);
        assert_eq!(token_text(&headers(b"Bearer a.b")), Some("a.b"));
    }
}
