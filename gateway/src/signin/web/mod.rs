//! Browser sign-in and cookie sessions: WeChat web authorization
//! (`wechat_web`, H5 pages inside WeChat) and QR-code login (`wechat_pc`),
//! for the same users and backends as the mini-program.
//!
//! ```text
//! browser                      minigate                          WeChat
//!   |- GET /auth/web/login ----->|                                  |
//!   |    ?appid&redirect=/app/   |  state = random; state cookie =  |
//!   |                            |  signed {state, appid, redirect} |
//!   |<- 302 authorize page ------|  Set-Cookie: __Host-minigate_state
//!   |- GET /connect/oauth2/authorize?appid&redirect_uri&...&state ->|
//!   |<- 302 {public_url}/auth/web/callback?code&state --------------|
//!   |- GET /auth/web/callback -->|  cookie verifies, state matches, |
//!   |    (state cookie)          |  state claimed once              |
//!   |                            |- GET /sns/oauth2/access_token -->|
//!   |                            |<- {openid, unionid?} ------------|
//!   |                            |  a session (device web or pc),   |
//!   |                            |  enrichment, tokens              |
//!   |<- 302 /app/ ---------------|  Set-Cookie: __Host-minigate_at, |
//!   |                            |  __Secure-minigate_rt; state gone|
//!   |- GET /app/ (cookie) ------>|- GET /app/ + X-Auth-* --> upstream
//! ```
//!
//! From there the browser holds its tokens only as `HttpOnly` cookies
//! ([`cookies`]): with `[web] cookies = true` the access cookie
//! authenticates proxied requests that send no `Authorization`
//! (the pipeline's `auth` phase), an unsafe one only from the gateway's own origin
//! ([`check_origin`]); `POST /auth/refresh` and `POST /auth/logout` without
//! a `refresh_token` use the refresh cookie and answer with new or cleared
//! cookies ([`cookie_answer`], [`logged_out`]). Sessions are made exactly as
//! a mini-program login makes them (`signin::open_session`):
//! same tokens, enrichment, device limits and session list.

pub mod cookies;
pub mod setup;
pub mod state;
pub mod wechat;

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, LOCATION, ORIGIN, REFERER, SET_COOKIE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::error::ApiError;
use crate::forward::body::{full, json, Body};
use crate::gateway::Gateway;
use crate::protocol::path::canonical;
use crate::signin::{device_class, open_session, MAX_CODE};
use crate::telemetry::metrics::{Csrf, SessionOp, WebLogin};
use crate::tokens::{DeviceClass, Subject, TokenPair};

use cookies::Found;
pub use setup::{Web, CALLBACK, LOGIN};
use state::{BadState, State, STATE_TTL};

/// The longest `redirect` accepted.
const MAX_REDIRECT: usize = 2048;

/// GET, HEAD and OPTIONS: the methods a cross-site page can make a browser
/// send with its cookies without the gateway's origin check.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF rule for a request authenticated by minigate's cookies: an
/// unsafe method must come with an `Origin` of `public_url`'s origin, or,
/// with no `Origin`, a `Referer` on it. `Origin: null` (a sandboxed frame, a
/// `data:` page, some redirects) is no origin. A WebSocket handshake is a
/// GET, but opens a channel both ways: any request asking for an `Upgrade`
/// is held to the rule too (cross-site WebSocket hijacking), and so is a
/// forward-auth check of one: a proxy does not pass the hop-by-hop `Upgrade`
/// to its check, so it says so in `X-Forwarded-Upgrade` or
/// `X-Original-Upgrade`. Refusals are counted.
pub fn check_origin(
    gw: &Gateway,
    web: &Web,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if is_safe(method) && !asks_upgrade(headers) {
        return Ok(());
    }
    let verdict = match (one(headers, ORIGIN), one(headers, REFERER)) {
        (Some(origin), _) if origin != "null" => {
            if origin.eq_ignore_ascii_case(web.public_url()) {
                Ok(())
            } else {
                Err(Csrf::ForeignOrigin)
            }
        }
        (Some(_), _) => Err(Csrf::NoOrigin),
        (None, Some(referer)) => match reqwest::Url::parse(referer) {
            Ok(url) if url.origin().ascii_serialization() == web.public_url() => Ok(()),
            Ok(url) if url.origin().is_tuple() => Err(Csrf::ForeignOrigin),
            _ => Err(Csrf::NoOrigin),
        },
        (None, None) => Err(Csrf::NoOrigin),
    };
    verdict.map_err(|why| {
        gw.metrics.csrf.increment(why);
        tracing::info!(
            reason = crate::telemetry::metrics::Label::label(why),
            "cookie-authenticated request from another origin refused"
        );
        ApiError::CsrfRejected
    })
}

/// Whether the request asks for a protocol upgrade, itself or (a
/// forward-auth check) through the proxy that asks.
fn asks_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        || headers.contains_key(FORWARDED_UPGRADE)
        || headers.contains_key(ORIGINAL_UPGRADE)
}

/// How Traefik-style and nginx-style forward-auth name the original
/// request's `Upgrade`.
const FORWARDED_UPGRADE: http::HeaderName = http::HeaderName::from_static("x-forwarded-upgrade");
const ORIGINAL_UPGRADE: http::HeaderName = http::HeaderName::from_static("x-original-upgrade");

/// The value of a header sent exactly once, as text.
fn one(headers: &HeaderMap, name: http::header::HeaderName) -> Option<&str> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return Some("null");
    }
    Some(first.to_str().unwrap_or("null"))
}

/// A `redirect` fit to land on: a path on the gateway's own origin. Refused:
/// anything not starting with one `/` (`//host`, `https:`, `javascript:`),
/// any backslash, anything but visible ASCII (controls, spaces, tabs), a
/// `%` escape of `/`, `\`, `%` (double encoding), a control or DEL, a
/// malformed escape, and every path [`canonical`] refuses (dot segments,
/// `;`). The query and fragment may follow.
pub fn checked_redirect(redirect: &str) -> Result<&str, ApiError> {
    let bad = ApiError::InvalidRequest("redirect must be a path on this site, like /app/");
    let b = redirect.as_bytes();
    if b.is_empty()
        || b.len() > MAX_REDIRECT
        || b[0] != b'/'
        || b.get(1) == Some(&b'/')
        || !b.iter().all(|c| c.is_ascii_graphic() && *c != b'\\')
    {
        return Err(bad);
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(hi), Some(lo)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) else {
                return Err(bad);
            };
            let byte = hi * 16 + lo;
            if byte < 0x20 || matches!(byte, 0x7f | 0x2f | 0x5c | 0x25) {
                return Err(bad);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let path = redirect.split(['?', '#']).next().unwrap_or("");
    if canonical(path).is_err() {
        return Err(bad);
    }
    Ok(redirect)
}

/// The query's parameters by name; one named twice is refused.
fn params(req: &Request<Incoming>) -> Result<Vec<(String, String)>, ApiError> {
    let mut url = reqwest::Url::parse("http://minigate/").map_err(|_| ApiError::Internal)?;
    url.set_query(req.uri().query());
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url.query_pairs() {
        if out.iter().any(|(n, _)| *n == k) {
            return Err(ApiError::InvalidRequest("a query parameter is given twice"));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `[web]` of the gateway, or 404: without it these paths are nobody's.
fn configured(gw: &Gateway) -> Result<&Web, ApiError> {
    gw.web.as_ref().ok_or(ApiError::NotFound)
}

/// A redirect that is never cached and sends no `Referer` onwards.
fn found(location: &str) -> Result<Response<Body>, ApiError> {
    let mut res = full(StatusCode::FOUND, "text/plain", Bytes::new());
    res.headers_mut().remove(http::header::CONTENT_TYPE);
    let location = HeaderValue::from_str(location).map_err(|_| ApiError::Internal)?;
    let headers = res.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    Ok(res)
}

/// `GET /auth/web/login?appid=...&redirect=/path`: 302 to the provider's
/// authorize page with a fresh state, bound to the state cookie set here.
pub fn login(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed("GET, HEAD"));
    }
    let web = configured(gw)?;
    let params = params(req)?;
    let provider = web.pick(param(&params, "appid"))?;
    let to = checked_redirect(param(&params, "redirect").unwrap_or("/"))?;
    let state = State {
        iss: gw.tokens.issuer().to_owned(),
        state: state::fresh()?,
        app: provider.appid.clone(),
        to: to.to_owned(),
        exp: crate::tokens::now_secs() + STATE_TTL.as_secs(),
    };
    let sealed = state::seal(&gw.tokens, &state)?;
    let mut res = found(&provider.authorize_location(&web.callback, &state.state))?;
    res.headers_mut()
        .append(SET_COOKIE, cookies::state(&sealed, STATE_TTL.as_secs()));
    gw.metrics.web_starts.increment(1);
    Ok(res)
}

/// `GET /auth/web/callback?code&state`: the state checked against its
/// cookie and claimed once, the code exchanged, a session made; 302 to the
/// sign-in's `redirect` with the session cookies. Every answer clears the
/// state cookie.
pub async fn callback(
    gw: &Gateway,
    req: &Request<Incoming>,
    client: IpAddr,
) -> Result<Response<Body>, ApiError> {
    if req.method() != Method::GET {
        return Err(ApiError::MethodNotAllowed("GET"));
    }
    let web = configured(gw)?;
    let (outcome, res) = match signed_in(gw, web, req, client).await {
        Ok(res) => (WebLogin::Ok, res),
        Err((outcome, e)) => (outcome, e.into_response()),
    };
    gw.metrics.web_logins.increment(outcome);
    let mut res = res;
    res.headers_mut()
        .append(SET_COOKIE, cookies::cleared_state());
    Ok(res)
}

type CallbackRefusal = (WebLogin, ApiError);

async fn signed_in(
    gw: &Gateway,
    web: &Web,
    req: &Request<Incoming>,
    client: IpAddr,
) -> Result<Response<Body>, CallbackRefusal> {
    let failed = |e: ApiError| (WebLogin::Failed, e);
    let bad = |b: BadState| {
        (
            if b == BadState::Replayed {
                WebLogin::ReplayedState
            } else {
                WebLogin::BadState
            },
            b.error(),
        )
    };
    gw.login_limiter
        .check(client)
        .map_err(|s| failed(ApiError::TooManyLogins(s)))?;
    let params = params(req).map_err(|e| (WebLogin::BadState, e))?;
    let cookie = match cookies::find(req.headers(), cookies::STATE) {
        Found::One(c) => c,
        _ => return Err(bad(BadState::NoCookie)),
    };
    let state =
        state::open(&gw.tokens, cookie, gw.tokens.issuer()).ok_or(bad(BadState::NoCookie))?;
    let sent = param(&params, "state").unwrap_or("");
    if !same(sent.as_bytes(), state.state.as_bytes()) {
        return Err(bad(BadState::Mismatch));
    }
    let fresh = web
        .used
        .claim(&gw.sessions, &state.state)
        .await
        .map_err(|e| {
            gw.metrics.session_errors.increment(SessionOp::Login);
            failed(e)
        })?;
    if !fresh {
        tracing::warn!(appid = %state.app, "a sign-in state came back a second time: refused");
        return Err(bad(BadState::Replayed));
    }
    let Some(code) = param(&params, "code").filter(|c| !c.is_empty()) else {
        return Err((
            WebLogin::Denied,
            ApiError::InvalidRequest("no code: the sign-in was not authorized"),
        ));
    };
    if code.len() > MAX_CODE || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(failed(ApiError::InvalidRequest("code is malformed")));
    }
    let provider = web
        .pick(Some(&state.app))
        .map_err(|_| bad(BadState::NoCookie))?;
    let started = std::time::Instant::now();
    let exchanged = provider.exchange(code).await;
    let metrics = gw.metrics.exchange(provider.platform);
    if let Some(m) = metrics {
        m.latency.record(started.elapsed().as_secs_f64());
    }
    let user = exchanged.map_err(|e| {
        if let Some(m) = metrics {
            m.errors.increment(e);
        }
        if e == crate::signin::providers::ExchangeError::RiskyUser {
            gw.audit
                .emit(crate::telemetry::audit::Event::RiskyUserRefused {
                    platform: provider.platform.name(),
                    appid: &provider.appid,
                    client,
                });
        }
        failed(ApiError::from(e))
    })?;
    let (device_type, limit) = device_class(gw, Some(provider.device_type())).map_err(failed)?;
    let subject = Subject {
        openid: user.openid,
        unionid: user.unionid,
        appid: provider.appid.clone(),
        platform: provider.platform,
        device_id: None,
        uid: None,
        roles: Vec::new(),
        ext: Default::default(),
        device_type: DeviceClass::new(device_type),
        session_user: None,
        phone: None,
        component_appid: None,
        risk_rank: None,
        tenant: None,
    };
    let (subject, sid, pair) = open_session(gw, subject, limit, None, None)
        .await
        .map_err(failed)?;
    tracing::info!(appid = %subject.appid, sub = %subject.openid, sid = %sid, platform = %subject.platform, "web sign-in");
    gw.audit.emit(crate::telemetry::audit::Event::Login {
        platform: subject.platform.name(),
        appid: &subject.appid,
        device_type: &subject.device_type,
        user: subject.user(),
        sid: &sid,
        client,
        retried: false,
    });
    // A redirect without a fragment keeps the one of the URL before it
    // (WeChat's `#wechat_redirect`): an empty one of its own stops that.
    let fragment = if state.to.contains('#') { "" } else { "#" };
    let landing = format!("{}{}{fragment}", web.public_url(), state.to);
    let mut res = found(&landing).map_err(failed)?;
    set_session(&mut res, &pair);
    Ok(res)
}

/// Constant-time equality of two byte strings (of their contents: unequal
/// lengths differ at once).
fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

/// Adds the session cookies of `pair` to `res`.
fn set_session(res: &mut Response<Body>, pair: &TokenPair) {
    if pair.access_token.len() + cookies::ACCESS.len() + 1 > cookies::MAX_COOKIE {
        tracing::warn!(
            bytes = pair.access_token.len(),
            "the access token is larger than browsers keep in a cookie: fewer roles or claims would fit"
        );
    }
    let headers = res.headers_mut();
    headers.append(
        SET_COOKIE,
        cookies::access(&pair.access_token, pair.expires_in),
    );
    headers.append(
        SET_COOKIE,
        cookies::refresh(&pair.refresh_token, pair.refresh_expires_in),
    );
}

/// Adds `Set-Cookie`s that delete the session cookies to `res`.
fn clear_session(res: &mut Response<Body>) {
    for c in cookies::cleared_session() {
        res.headers_mut().append(SET_COOKIE, c);
    }
}

/// The refresh token of a `POST /auth/refresh` or `/auth/logout` that sends
/// none in its body (`has_token` false), from the refresh cookie: `None`
/// when the gateway has no `[web]` or the request no cookie (the body's
/// rules apply then). The origin is checked first.
pub fn refresh_cookie(
    gw: &Gateway,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    let Some(web) = &gw.web else {
        return Ok(None);
    };
    match cookies::find(headers, cookies::REFRESH) {
        Found::None => Ok(None),
        Found::Many => {
            check_origin(gw, web, method, headers)?;
            Err(ApiError::InvalidGrant("the refresh cookie is sent twice"))
        }
        Found::One(token) => {
            check_origin(gw, web, method, headers)?;
            Ok(Some(token.to_owned()))
        }
    }
}

/// The answer to a refresh by cookie: new cookies and, in the body, what a
/// front end may want to know (no token); an invalid or revoked session
/// also clears the cookies, so the front end knows to sign in again.
pub fn cookie_answer(result: Result<TokenPair, ApiError>) -> Response<Body> {
    match result {
        Ok(pair) => {
            let mut body = serde_json::json!({
                "expires_in": pair.expires_in,
                "refresh_expires_in": pair.refresh_expires_in,
                "openid": pair.openid,
            });
            if let Some(u) = &pair.unionid {
                body["unionid"] = u.as_str().into();
            }
            let mut res = json(StatusCode::OK, &body);
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            set_session(&mut res, &pair);
            res
        }
        Err(e) => {
            // Every invalid_grant (a dead refresh token, whatever the
            // reason its session ended) and a ban clear the cookies.
            let ended = e.code() == "invalid_grant" || matches!(e, ApiError::AccessDenied);
            let mut res = e.into_response();
            if ended {
                clear_session(&mut res);
            }
            res
        }
    }
}

/// The answer to a logout by cookie: 204 (or the error) with the session
/// cookies cleared either way.
pub fn logged_out(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    let mut res = result.unwrap_or_else(ApiError::into_response);
    clear_session(&mut res);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_redirects() {
        for good in [
            "/",
            "/app/",
            "/app/orders?id=7&x=%20y#top",
            "/%E4%B8%AD%E6%96%87",
            "/a.b/c..d/",
        ] {
            assert_eq!(checked_redirect(good), Ok(good), "{good}");
        }
        for bad in [
            "",
            "app",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/%2F%2Fevil.example",
            "/%2f%2fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/%09/evil.example",
            "/%0d%0aSet-Cookie:x=1",
            "/\t/evil.example",
            "/ /evil.example",
            "/app/../..//evil.example",
            "/app/%2e%2e/x",
            "/%",
            "/%zz",
            "/\u{7f}",
            "/\u{4e2d}",
        ] {
            assert!(checked_redirect(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(checked_redirect(&format!("/{}", "a".repeat(MAX_REDIRECT))).is_err());
    }

    #[test]
    fn constant_time_equality() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
