//! The credentials a request presents: what an `Authorization` header
//! holds, read one way by the proxied routes, `/auth/verify`, WeChat's
//! services and the admin listener.
//!
//! The token is read from `Authorization: Bearer …` only (RFC 6750 section
//! 2.1): never from a query parameter, where it would end up in logs and
//! caches. A header that is there but is not a well-formed `Bearer <token>`
//! is [`Presented::Malformed`], never an anonymous request.

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// What a request's `Authorization` header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No `Authorization` header.
    None,
    /// `Bearer <token>`: the token as sent, to be checked by verification
    /// (a token outside RFC 6750's `b64token` alphabet is malformed there).
    Bearer(&'a [u8]),
    /// Anything else: another scheme, a tab or comma for the space, an
    /// empty token, several headers.
    Malformed,
}

/// Reads the request's credentials. The token's characters are left to
/// token verification (`Tokens::verify_access`), which checks them only when the token is not
/// in its cache of tokens already verified.
#[inline]
pub fn credentials(headers: &HeaderMap) -> Presented<'_> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let Some(first) = all.next() else {
        return Presented::None;
    };
    if all.next().is_some() {
        return Presented::Malformed;
    }
    bearer(first.as_bytes()).map_or(Presented::Malformed, Presented::Bearer)
}

/// The token of one `Authorization` value of the form `Bearer <token>`:
/// the scheme in any case, then one or more spaces (a tab or comma there
/// is malformed), then a token that is not empty. The token's characters
/// are the caller's to check. What the proxied routes and the admin
/// listener both read.
#[inline]
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let at = value.iter().position(|&b| b == b' ')?;
    let (scheme, token) = value.split_at(at);
    let token = &token[token.iter().take_while(|&&b| b == b' ').count()..];
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
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
            Presented::Bearer(b"abc")
        );
        assert_eq!(
            credentials(&headers(b"bEaReR a.b-c_d~e+f/g==")),
            Presented::Bearer(b"a.b-c_d~e+f/g==")
        );
        assert_eq!(
            credentials(&headers(b"Bearer  abc")),
            Presented::Bearer(b"abc")
        );
        assert_eq!(credentials(&HeaderMap::new()), Presented::None);
    }
}
