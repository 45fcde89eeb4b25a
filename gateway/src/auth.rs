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
/// scheme with no token, for an `Authorization` value that is not visible
/// ASCII, and for a request with several `Authorization` headers: each is a
/// bad token, not a missing one, so an optional route cannot be passed
/// anonymously with a token the gateway did not understand.
#[inline]
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let first = all.next()?;
    let Some(value) = first.to_str().ok().filter(|_| all.next().is_none()) else {
        return Some("");
    };
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

    #[test]
    fn ambiguous_or_undecodable_authorization_is_a_bad_token() {
        let mut h = headers("Bearer abc");
        h.append(AUTHORIZATION, "Bearer def".parse().unwrap());
        assert_eq!(bearer(&h), Some(""));
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert_eq!(bearer(&h), Some(""));
    }
}
