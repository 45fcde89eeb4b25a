//! minigate's cookies: their names and attributes, reading them from a
//! request's `Cookie` header, and taking them out of what an upstream gets.
//!
//! | cookie | holds | attributes |
//! |---|---|---|
//! | `__Host-minigate_at` | the access token | `HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=access_ttl` |
//! | `__Secure-minigate_rt` | the refresh token | `HttpOnly; Secure; SameSite=Strict; Path=/auth/; Max-Age=refresh_ttl` |
//! | `__Host-minigate_state` | a sign-in's signed state | `HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=600` |
//!
//! `HttpOnly` keeps the tokens out of JavaScript's reach (an XSS cannot
//! read them); `Secure` keeps them off plain http; the `__Host-` prefix
//! makes the browser refuse the cookie unless it is `Secure`, host-only
//! (no `Domain`) and `Path=/`, so a sibling subdomain cannot plant its own
//! access or state cookie. The refresh cookie is sent to `/auth/` only, and
//! only on same-site requests (`Strict`); the access cookie is sent on
//! top-level navigations from other sites too (`Lax`), so a link into the
//! app opens signed in, while cross-site subrequests and form posts carry
//! neither (and unsafe requests are checked for their origin anyway, see
//! [`super::check_origin`]).

use http::header::{HeaderValue, COOKIE};
use http::HeaderMap;

/// The access token's cookie.
pub const ACCESS: &str = "__Host-minigate_at";
/// The refresh token's cookie.
pub const REFRESH: &str = "__Secure-minigate_rt";
/// A sign-in's state cookie, from `/auth/web/login` to its callback.
pub const STATE: &str = "__Host-minigate_state";

/// minigate's cookies: what is removed from the `Cookie` header upstreams
/// receive.
const OWN: [&str; 3] = [ACCESS, REFRESH, STATE];

/// The largest cookie (name and value) browsers are sure to keep.
pub const MAX_COOKIE: usize = 4096;

/// A cookie looked for in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// Not sent.
    None,
    /// Sent once, with this value.
    One(&'a str),
    /// Sent more than once (another path's or a planted one beside ours):
    /// which is ours cannot be told, so none is used.
    Many,
}

/// The pairs of every `Cookie` header (HTTP/2 may split it in several).
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.trim(), value.trim()))
        })
}

/// The cookie `name` of a request.
pub fn find<'a>(headers: &'a HeaderMap, name: &str) -> Found<'a> {
    let mut found = Found::None;
    for (n, v) in pairs(headers) {
        if n == name {
            found = match found {
                Found::None => Found::One(v),
                _ => return Found::Many,
            };
        }
    }
    found
}

/// Is `name` one of minigate's cookies (any case: a look-alike is no less
/// a credential)?
fn is_own(name: &str) -> bool {
    OWN.iter().any(|own| name.trim().eq_ignore_ascii_case(own))
}

/// Removes minigate's cookies from the request's `Cookie` header(s), keeping
/// every other cookie in its order; a header left empty is removed. Cheap
/// when there are none: nothing is allocated unless one is there.
pub fn strip_own(headers: &mut HeaderMap) {
    let present = headers.get_all(COOKIE).iter().any(|v| {
        v.as_bytes()
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"minigate_"))
    });
    if !present {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| {
            let Ok(text) = v.to_str() else {
                // Not text: no cookie of ours can be told apart in it.
                return None;
            };
            let rest: Vec<&str> = text
                .split(';')
                .map(str::trim)
                .filter(|pair| {
                    !pair.is_empty() && !is_own(pair.split_once('=').map_or(*pair, |(n, _)| n))
                })
                .collect();
            if rest.is_empty() {
                return None;
            }
            HeaderValue::from_str(&rest.join("; ")).ok()
        })
        .collect();
    headers.remove(COOKIE);
    for v in kept {
        headers.append(COOKIE, v);
    }
}

/// How a cookie is sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Also on top-level navigations from other sites.
    Lax,
    /// Only on requests from this site.
    Strict,
}

/// A `Set-Cookie` value: `HttpOnly` and `Secure` always.
pub fn set(name: &str, value: &str, path: &str, max_age: u64, same_site: SameSite) -> HeaderValue {
    let same_site = match same_site {
        SameSite::Lax => "Lax",
        SameSite::Strict => "Strict",
    };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite={same_site}"
    );
    // Names are ours and values are JWTs or hex: always a valid header.
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(
        "__Host-minigate_invalid=; Path=/; Max-Age=0; Secure",
    ))
}

/// The access cookie holding `token` for `max_age` seconds.
pub fn access(token: &str, max_age: u64) -> HeaderValue {
    set(ACCESS, token, "/", max_age, SameSite::Lax)
}

/// The refresh cookie holding `token` for `max_age` seconds.
pub fn refresh(token: &str, max_age: u64) -> HeaderValue {
    set(REFRESH, token, "/auth/", max_age, SameSite::Strict)
}

/// The state cookie holding a sign-in's signed state.
pub fn state(value: &str, max_age: u64) -> HeaderValue {
    set(STATE, value, "/", max_age, SameSite::Lax)
}

/// `Set-Cookie` values that delete the access and refresh cookies (same
/// name, path and prefix rules, empty, `Max-Age=0`).
pub fn cleared_session() -> [HeaderValue; 2] {
    [
        set(ACCESS, "", "/", 0, SameSite::Lax),
        set(REFRESH, "", "/auth/", 0, SameSite::Strict),
    ]
}

/// The `Set-Cookie` value that deletes the state cookie.
pub fn cleared_state() -> HeaderValue {
    set(STATE, "", "/", 0, SameSite::Lax)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, c.parse().unwrap());
        }
        h
    }

    #[test]
    fn finds_a_cookie_once_and_refuses_a_doubled_one() {
        let h = with(&["a=1; __Host-minigate_at=tok.en; b=2"]);
        assert_eq!(find(&h, ACCESS), Found::One("tok.en"));
        assert_eq!(find(&h, REFRESH), Found::None);
        let h = with(&["__Host-minigate_at=x", "__Host-minigate_at=y"]);
        assert_eq!(find(&h, ACCESS), Found::Many);
        // A name is matched whole, not as a prefix or suffix.
        let h = with(&["x__Host-minigate_at=1; __Host-minigate_att=2"]);
        assert_eq!(find(&h, ACCESS), Found::None);
    }

    #[test]
    fn strips_only_minigates_cookies() {
        let mut h = with(&[
            "theme=dark; __Host-minigate_at=a.b.c; __Secure-minigate_rt=d.e.f; lang=zh",
            "__host-MINIGATE_state=z",
            "minigate_pref=keep",
        ]);
        strip_own(&mut h);
        let left: Vec<&str> = h
            .get_all(COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["theme=dark; lang=zh", "minigate_pref=keep"]);
        let mut h = with(&["__Host-minigate_at=a.b.c"]);
        strip_own(&mut h);
        assert!(h.get(COOKIE).is_none());
        let mut h = with(&["plain=1"]);
        strip_own(&mut h);
        assert_eq!(h[COOKIE], "plain=1");
    }

    #[test]
    fn set_cookie_attributes() {
        assert_eq!(
            access("t", 900),
            "__Host-minigate_at=t; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(
            refresh("r", 60),
            "__Secure-minigate_rt=r; Path=/auth/; Max-Age=60; HttpOnly; Secure; SameSite=Strict"
        );
        let [a, r] = cleared_session();
        assert!(a
            .to_str()
            .unwrap()
            .starts_with("__Host-minigate_at=; Path=/; Max-Age=0;"));
        assert!(r
            .to_str()
            .unwrap()
            .starts_with("__Secure-minigate_rt=; Path=/auth/; Max-Age=0;"));
    }
}
