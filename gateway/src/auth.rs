//! Authentication of a proxied request: the route's policy applied to the
//! bearer token.
//!
//! The token is read from `Authorization: Bearer …` only (RFC 6750 section
//! 2.1): never from a query parameter or a cookie, where it would end up in
//! logs and caches. What a route requires decides whether a missing token is
//! an error; a token that is present is always checked, unless the route is
//! public.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::config::AuthMode;
use crate::error::ApiError;
use crate::tokens::{Identity, Tokens};

/// The bearer token of a request, if it sent one. `Some("")` for a Bearer
/// scheme with no token, which is a bad token, not a missing one.
#[inline]
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
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
    match bearer(headers) {
        None if mode == AuthMode::Optional => Ok(None),
        None => Err(ApiError::MissingToken),
        Some("") => Err(ApiError::InvalidToken("malformed token")),
        Some(token) => tokens
            .verify_access(token)
            .map(Some)
            .map_err(ApiError::InvalidToken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, auth.parse().unwrap());
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_others_are_ignored() {
        assert_eq!(bearer(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&headers("bEaReR abc")), Some("abc"));
        assert_eq!(bearer(&headers("Bearer")), Some(""));
        assert_eq!(bearer(&headers("Basic dXNlcjpw")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
