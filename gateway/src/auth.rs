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
//! gateway's own origin ([`crate::web::check_origin`], 403
//! `csrf_rejected`), checked before the token.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::HeaderMap;

use http::Method;

use crate::config::AuthMode;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::metrics::AuthFailure;
use crate::routes::{Decision, Route};
use crate::tokens::{Identity, Roles, TokenError, Tokens};

/// What a request's `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No `Authorization` header.
    None,
    /// `Bearer <token>`, the token in RFC 6750's `b64token` alphabet.
    Bearer(&'a str),
    /// Anything else: another scheme, a tab or comma for the space, an
    /// empty token, characters outside the alphabet, several headers, a
    /// value that is not visible ASCII.
    Malformed,
}

/// Reads the request's credentials.
#[inline]
pub fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let Some(first) = all.next() else {
        return Credentials::None;
    };
    if all.next().is_some() {
        return Credentials::Malformed;
    }
    // Read as bytes, not `to_str`: the token's alphabet is narrower than
    // visible ASCII, so the one pass of `is_b64token` over it checks both
    // (the token is the longest header of most requests).
    let value = first.as_bytes();
    let Some((scheme, token)) = value
        .iter()
        .position(|&b| b == b' ')
        .map(|at| value.split_at(at))
    else {
        return Credentials::Malformed;
    };
    // Spaces only: a tab there is malformed.
    let token = &token[token.iter().take_while(|&&b| b == b' ').count()..];
    if !scheme.eq_ignore_ascii_case(b"bearer") || !is_b64token(token) {
        return Credentials::Malformed;
    }
    // Every byte of it is ASCII, so this is never an error.
    match std::str::from_utf8(token) {
        Ok(token) => Credentials::Bearer(token),
        Err(_) => Credentials::Malformed,
    }
}

/// RFC 6750 section 2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" /
/// "/" ) *"="`.
///
/// Every byte is looked at, without an early exit and without branches,
/// so the compiler checks a whole vector of them at a time: a token is
/// checked on every request and is hundreds of bytes long (a byte-by-byte
/// loop with branches was about 1 % of a proxied request's CPU).
fn is_b64token(token: &[u8]) -> bool {
    let body = match token.iter().rposition(|&b| b != b'=') {
        Some(last) => &token[..=last],
        None => return false,
    };
    body.iter().fold(true, |ok, &b| ok & is_b64token_byte(b))
}

#[inline(always)]
fn is_b64token_byte(b: u8) -> bool {
    let lower = b | 0x20;
    (lower.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

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
        Credentials::None if mode == AuthMode::Optional => Ok(None),
        Credentials::None => Err(ApiError::MissingToken),
        Credentials::Malformed => Err(ApiError::InvalidToken(TokenError::MALFORMED)),
        Credentials::Bearer(token) => tokens
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
            if credentials(headers) == Credentials::None {
                use crate::web::cookies::{find, Found, ACCESS};
                match find(headers, ACCESS) {
                    Found::None => {}
                    Found::Many => {
                        crate::web::check_origin(gw, web, method, headers)?;
                        return Err(ApiError::InvalidToken(TokenError::MALFORMED));
                    }
                    Found::One(token) => {
                        crate::web::check_origin(gw, web, method, headers)?;
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
                ApiError::InvalidToken(t) => Some(AuthFailure::Token(*t)),
                _ => None,
            };
            if let Some(reason) = reason {
                gw.metrics.auth_failures.increment(reason);
            }
        })?;
    if identity.is_some() {
        gw.metrics.auth_ok.increment(1);
    }
    if route.has_rules() {
        // An anonymous caller (on an optional route) holds no roles.
        let roles = identity.as_deref().map_or(Roles::NONE, Identity::roles);
        let decision = route.decide(method, roles);
        gw.metrics.route(route.index).decisions.increment(decision);
        if decision != Decision::Allowed {
            return Err(ApiError::InsufficientScope);
        }
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, http::HeaderValue::from_bytes(auth).unwrap());
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(
            credentials(&headers(b"Bearer abc")),
            Credentials::Bearer("abc")
        );
        assert_eq!(
            credentials(&headers(b"bEaReR a.b-c_d~e+f/g==")),
            Credentials::Bearer("a.b-c_d~e+f/g==")
        );
        assert_eq!(
            credentials(&headers(b"Bearer  abc")),
            Credentials::Bearer("abc")
        );
        assert_eq!(credentials(&HeaderMap::new()), Credentials::None);
    }

    #[test]
    fn the_branchless_byte_check_is_rfc_6750s_b64token_alphabet() {
        for b in 0..=255u8 {
            let rfc =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_byte(b), rfc, "byte {b:#04x}");
        }
        assert!(is_b64token(b"a.b-c_d~e+f/g=="));
        assert!(!is_b64token(b"a=b"));
        assert!(!is_b64token("é".as_bytes()));
        assert!(!is_b64token(b"==") && !is_b64token(b""));
    }

    #[test]
    fn anything_but_a_well_formed_bearer_is_malformed() {
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer\tabc",
            b"Bearer \tabc",
            b"Be\xffrer abc",
            b"Bearer,abc",
            b"Bearer abc def",
            b"Bearer abc\t",
            b"Bearer ==",
            b"Bearer a=b",
            b"Basic dXNlcjpw",
            b"Bearer \xff\xfe",
        ] {
            assert_eq!(
                credentials(&headers(bad)),
                Credentials::Malformed,
                "{bad:?}"
            );
        }
        let mut h = headers(b"Bearer abc");
        h.append(AUTHORIZATION, "Bearer def".parse().unwrap());
        assert_eq!(credentials(&h), Credentials::Malformed);
    }
}
