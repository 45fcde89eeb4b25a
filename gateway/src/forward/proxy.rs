//! Forwarding: rewrite the request's headers, send it upstream over a pooled
//! keep-alive connection, and stream the answer back.
//!
//! Upstreams trust the `X-Auth-*` headers, so every incoming header with that
//! prefix is removed on every route before the gateway adds its own, and
//! nothing a client sends can pose as an identity. Servers built on CGI's
//! conventions (WSGI, Rack) read `_` and `-` in a header name as the same
//! character, so a name with `_` is dropped too ([`drop_underscored`]):
//! `X_Auth_Subject` would otherwise reach them as `HTTP_X_AUTH_SUBJECT`.
//! The same goes for what says where a request came from: `X-Forwarded-For`
//! is believed only from `trusted_proxies`, and `X-Real-IP` and `Forwarded`
//! are the gateway's to set. Method override headers
//! ([`METHOD_OVERRIDE`]) go too: Rails, Laravel and Symfony act on the
//! method they name, and a route's `allow` rules judged the request's own.
//!
//! Bodies are never buffered: the request body is handed to the upstream
//! connection as a stream and the upstream's body is handed back to the
//! client the same way, so memory stays flat whatever the size of an upload
//! or download. Both are watched ([`crate::forward::body`]) so that a client that
//! stalls either one frees the upstream slot it holds.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, TryAcquireError};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::forward::body::{Body, ClientBodyError, RequestBody, UpstreamBody};
use crate::forward::tunnel::{self, Lease, TunnelPlace};
use crate::forward::upstream::{UpstreamError, Upstreams};
use crate::listener::conn::ClientAddr;
use crate::ops::metrics::{Counters, Refusal, RouteMetrics};
use crate::pipeline::limits::InFlight;
use crate::pipeline::routes::Route;
use crate::tokens::Identity;

/// `X-Request-Id`: kept if the client's is sane, else generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers by which frameworks let a request name another method than its
/// own: removed from every proxied request, and judged at `/auth/verify`.
pub const METHOD_OVERRIDE: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether the gateway removes a request header of this (lower-case) name
/// before adding its own: identity, client address and method override.
#[inline]
fn spoofable(k: &str) -> bool {
    k.starts_with("x-auth-")
        || k == "x-real-ip"
        || k == "forwarded"
        || (k.starts_with("x-") && METHOD_OVERRIDE.contains(&k))
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Generates request ids: a random per-process prefix and a counter, which
/// is unique without a syscall or a lock per request.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> RequestIds {
        let mut bytes = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        RequestIds {
            prefix: u64::from_ne_bytes(bytes),
            counter: AtomicU64::new(0),
        }
    }

    /// The next id: 32 hex digits.
    pub fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 32];
        hex(self.prefix, &mut buf[..16]);
        hex(n, &mut buf[16..]);
        // Hex digits are always a valid header value.
        HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

fn hex(mut v: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// A client-sent request id is kept only if it is short and plain.
fn sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// Runs twice per proxied request: on the request it almost never finds
/// anything, on an upstream's answer usually `Connection: keep-alive` alone.
/// So one pass over the (few) names present, noting which of the fixed list
/// are there, and a removal of just those; the names `Connection` lists are
/// gathered (in a vector, allocated only if there is one) before it goes.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let present = headers
        .keys()
        .fold(0u16, |seen, k| seen | hop_by_hop_bit(k));
    if present == 0 {
        return;
    }
    let mut listed: Vec<HeaderName> = Vec::new();
    for conn in headers.get_all(header::CONNECTION) {
        for option in conn.to_str().unwrap_or("").split(',') {
            let option = option.trim();
            if option.is_empty()
                || HOP_BY_HOP
                    .iter()
                    .any(|h| option.eq_ignore_ascii_case(h.as_str()))
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(option.as_bytes()) {
                listed.push(name);
            }
        }
    }
    for (at, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << at) != 0 {
            headers.remove(name);
        }
    }
    for name in listed {
        headers.remove(name);
    }
}

/// The bit of `name`'s place in [`HOP_BY_HOP`], or 0: a `match` on the
/// name (a length switch and a compare), with no `HeaderName` built.
fn hop_by_hop_bit(name: &HeaderName) -> u16 {
    let at = match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return 0,
    };
    1 << at
}

/// The request id of a request: the client's, if it sent a sane one, else a
/// fresh one. Chosen once, at the start of the request, so every log line of
/// the request, the upstream and the response carry the same id.
pub fn request_id(headers: &HeaderMap, ids: &RequestIds) -> HeaderValue {
    match headers.get(REQUEST_ID) {
        Some(v) if sane_request_id(v) => v.clone(),
        _ => ids.next(),
    }
}

/// The client address of a request (the contract's rule): the TCP peer,
/// unless the peer is a trusted proxy; then the right-most address of
/// `X-Forwarded-For` that is not itself trusted. `None` means the peer.
pub fn client_behind(
    peer: &ClientAddr,
    headers: &HeaderMap,
    server: &ServerConfig,
) -> Option<ClientAddr> {
    if !server.is_trusted(peer.ip) {
        return None;
    }
    let mut client = None;
    // Fields are read right to left across every X-Forwarded-For line.
    let lines: Vec<&HeaderValue> = headers.get_all(FORWARDED_FOR).iter().collect();
    for line in lines.into_iter().rev() {
        let Ok(line) = line.to_str() else { break };
        for hop in line.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                // Not an address: the hop to its right is as far as the
                // chain can be believed.
                return client;
            };
            client = Some(peer.forwarded(ip));
            if !server.is_trusted(ip) {
                return client;
            }
        }
    }
    client
}

/// Drops every request header whose name holds `_` (with
/// `underscores_in_headers`, only those that read, `_` as `-`, as a header
/// the gateway owns). Returns how many were dropped.
pub fn drop_underscored(headers: &mut HeaderMap, allow_underscores: bool) -> usize {
    if !headers.keys().any(|k| k.as_str().contains('_')) {
        return 0;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().contains('_') && (!allow_underscores || owned_as_dashed(k.as_str())))
        .cloned()
        .collect();
    let n = doomed.len();
    for name in doomed {
        headers.remove(name);
    }
    n
}

/// Is `name`, read with `_` as `-`, one of the headers the gateway owns?
fn owned_as_dashed(name: &str) -> bool {
    let dashed = name.replace('_', "-");
    dashed.starts_with("x-auth-")
        || dashed.starts_with("x-forwarded-")
        || matches!(dashed.as_str(), "x-request-id" | "x-real-ip" | "forwarded")
}

/// Rewrites a request's headers for the upstream: drops hop-by-hop and every
/// `x-auth-*` header, `X-Real-IP`, `Forwarded`, the method override headers
/// and minigate's own cookies
/// (the `Cookie` header keeps every other cookie); adds the identity,
/// `X-Request-Id`, `X-Forwarded-*` and `X-Real-IP`. `client` is the request's
/// client address, `None` when it is the peer itself.
pub fn rewrite_request_headers(
    headers: &mut HeaderMap,
    identity: Option<&Identity>,
    peer: &ClientAddr,
    client: Option<&ClientAddr>,
    request_id: &HeaderValue,
) {
    // What is added below, in one growth of the map instead of one per
    // power of two passed (a client's map is sized for its own few headers).
    headers.reserve(identity.map_or(0, Identity::header_count) + 5);
    remove_hop_by_hop(headers);
    crate::signin::web::cookies::strip_own(headers);
    if headers.keys().any(|k| spoofable(k.as_str())) {
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| spoofable(k.as_str()))
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(name);
        }
    }
    if let Some(id) = identity {
        for (name, value) in id.headers() {
            headers.insert(name.clone(), value);
        }
    }
    headers.insert(REQUEST_ID, request_id.clone());
    // From a trusted proxy the chain goes on with the peer appended; from
    // anyone else it starts here, with the client alone.
    let forwarded_for = match client {
        Some(_) => {
            let prior: Vec<&str> = headers
                .get_all(FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let chain = format!("{}, {}", prior.join(", "), peer.ip);
            HeaderValue::from_str(&chain).unwrap_or_else(|_| peer.header.clone())
        }
        None => peer.header.clone(),
    };
    headers.insert(FORWARDED_FOR, forwarded_for);
    headers.insert(REAL_IP, client.unwrap_or(peer).header.clone());
    headers.insert(FORWARDED_PROTO, peer.proto.clone());
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert(FORWARDED_HOST, host);
        }
        None => {
            headers.remove(FORWARDED_HOST);
        }
    }
}

/// A slot of `route`'s upstream: at once when one is free (no timer for
/// the common case), else waited for until `deadline`. The slots are never
/// closed, so `None` does not happen.
async fn upstream_slot(
    route: &Route,
    deadline: Instant,
) -> Result<Option<OwnedSemaphorePermit>, UpstreamError> {
    match route.upstream_slots.clone().try_acquire_owned() {
        Ok(slot) => Ok(Some(slot)),
        Err(TryAcquireError::Closed) => Ok(None),
        Err(TryAcquireError::NoPermits) => {
            // Boxed: a rare state kept out of every request's future.
            let wait = route.upstream_slots.clone().acquire_owned();
            Box::pin(tokio::time::timeout_at(deadline, wait))
                .await
                .map(Result::ok)
                .map_err(|_| UpstreamError::TimedOut)
        }
    }
}

/// HTTP/2 lets a client split `cookie` into several fields; an HTTP/1.1
/// upstream must get them as one, joined with `; ` (RFC 9113 8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut all = headers.get_all(header::COOKIE).iter();
    if all.next().is_none() || all.next().is_none() {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for v in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// What a proxied request holds besides itself, handed to [`Proxy::forward`].
#[derive(Debug)]
pub struct Forward<'a> {
    /// The route.
    pub route: &'a Route,
    /// The connection's slot, handed on to a tunnel.
    pub lease: &'a Arc<Lease>,
    /// The client's in-flight place, held until the response body is done.
    pub in_flight: Option<InFlight>,
    /// A WebSocket handshake's `Upgrade` value and its tunnel place.
    pub upgrade: Option<(HeaderValue, Option<TunnelPlace>)>,
    /// The route's counters.
    pub metrics: &'a RouteMetrics,
    /// Where a stalled or broken client body is counted.
    pub refusals: &'a Counters<Refusal>,
    /// `proxy_body_timeout`.
    pub body_gap: Duration,
    /// `tunnel_idle_timeout`.
    pub tunnel_idle: Duration,
}

/// The upstream client: pooled keep-alive HTTP/1.1 connections
/// ([`crate::forward::upstream`]).
#[derive(Debug)]
pub struct Proxy {
    upstreams: Arc<Upstreams<RequestBody>>,
    ids: RequestIds,
}

impl Proxy {
    /// A proxy with a fresh connection pool, sharded for the machine's
    /// threads.
    pub fn new() -> Proxy {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Proxy {
            upstreams: Arc::new(Upstreams::new(threads)),
            ids: RequestIds::new(),
        }
    }

    /// The idle upstream connections.
    pub fn upstreams(&self) -> &Upstreams<RequestBody> {
        &self.upstreams
    }

    /// The request-id generator, shared with the gateway's own endpoints.
    pub fn ids(&self) -> &RequestIds {
        &self.ids
    }

    /// Forwards `req` (its headers already rewritten) to the route's
    /// upstream and streams the answer back.
    pub async fn forward(&self, req: Request<Incoming>, f: Forward<'_>) -> Response<Body> {
        let route = f.route;
        let (mut parts, body) = req.into_parts();
        if let Some((upgrade, _)) = &f.upgrade {
            tunnel::mark_upgrade(&mut parts.headers, upgrade.clone());
        }
        // The upstream is the route's (every upstream is `http`); an
        // HTTP/1.1 request to it names only the path and query.
        match parts.uri.path_and_query().cloned() {
            Some(path) => parts.uri = Uri::from(path),
            None => return ApiError::InvalidRequest("bad request target").into_response(),
        }
        parts.version = Version::HTTP_11;
        let mut req = Request::from_parts(parts, RequestBody::new(body, f.body_gap));
        let client_side = f.upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let start = Instant::now();
        // Waiting for a slot counts against the route's timeout, like the
        // wait for the answer: one deadline, from one reading of the clock.
        let deadline = start + route.timeout;
        let sent = async {
            let slot = upstream_slot(route, deadline).await?;
            if client_side.is_some() {
                // Boxed, as every rare path on the way: a future is as large
                // as its largest state, and every request's is moved about.
                let upgrade = Upstreams::send_upgrade(&route.authority, req);
                Box::pin(tokio::time::timeout_at(deadline, upgrade))
                    .await
                    .map_err(|_| UpstreamError::TimedOut)?
                    .map(|res| (slot, res, None))
            } else {
                let (res, lent) = self.upstreams.send(&route.authority, req, deadline).await?;
                Ok((slot, res, Some(lent)))
            }
        }
        .await;
        let (slot, mut res, lent) = match sent {
            Ok(sent) => sent,
            Err(UpstreamError::TimedOut) => {
                tracing::warn!(upstream = %route.authority, "upstream did not answer in time");
                return ApiError::GatewayTimeout.into_response();
            }
            Err(e) => {
                return match ClientBodyError::find(&e) {
                    Some(ClientBodyError::Stalled) => {
                        f.refusals.increment(Refusal::SlowBody);
                        tracing::info!(upstream = %route.authority, "client stopped sending the request body");
                        ApiError::BodyTimeout.into_response()
                    }
                    Some(ClientBodyError::Broken) => {
                        ApiError::InvalidRequest("the request body is malformed").into_response()
                    }
                    None => {
                        tracing::warn!(upstream = %route.authority, error = %e, "upstream request failed");
                        ApiError::BadGateway.into_response()
                    }
                };
            }
        };
        f.metrics.upstream.record(start.elapsed().as_secs_f64());
        remove_hop_by_hop(res.headers_mut());
        if let (Some(client_side), Some((upgrade, place)), StatusCode::SWITCHING_PROTOCOLS) =
            (client_side, f.upgrade, res.status())
        {
            let upstream_side = hyper::upgrade::on(&mut res);
            tunnel::spawn_relay(tunnel::Relay {
                client: client_side,
                upstream: upstream_side,
                lease: f.lease.clone(),
                open: f.metrics.tunnels.clone(),
                idle: f.tunnel_idle,
                place,
                closed_idle: f.refusals.get(Refusal::TunnelIdle).cloned(),
            });
            tunnel::mark_upgrade(res.headers_mut(), upgrade);
        }
        res.map(|inner| Either::Left(UpstreamBody::new(inner, lent, slot, f.in_flight)))
    }
}

impl Default for Proxy {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_by_hop_matcher_knows_exactly_the_list() {
        for (at, h) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_bit(h), 1 << at, "{h}");
        }
        for h in [
            "host",
            "x-auth-subject",
            "authorization",
            "content-length",
            "tee",
        ] {
            assert_eq!(hop_by_hop_bit(&HeaderName::from_static(h)), 0, "{h}");
        }
    }

    #[test]
    fn hop_by_hop_removal_reads_every_connection_line() {
        // An upstream's usual answer: just `Connection: keep-alive`.
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert("content-length", "2".parse().unwrap());
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["content-length"], "2");
        // Options spread over two lines, and several fixed names at once.
        let mut h = HeaderMap::new();
        h.append("connection", "x-one".parse().unwrap());
        h.append("connection", "close, X-Two, upgrade".parse().unwrap());
        for n in [
            "x-one",
            "x-two",
            "upgrade",
            "keep-alive",
            "trailer",
            "x-kept",
        ] {
            h.insert(HeaderName::from_static(n), "v".parse().unwrap());
        }
        remove_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn request_ids_are_unique_hex() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(sane_request_id(&a));
    }

    #[test]
    fn rewrite_strips_spoofing_and_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert("x-auth-subject", "admin".parse().unwrap());
        h.insert("X-Auth-Anything", "x".parse().unwrap());
        h.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-request-id", "bad id with spaces".parse().unwrap());
        h.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        h.insert("x-real-ip", "10.0.0.2".parse().unwrap());
        h.insert("forwarded", "for=10.0.0.3".parse().unwrap());
        h.insert("host", "gw.example".parse().unwrap());
        h.insert("accept", "text/plain".parse().unwrap());
        let id = request_id(&h, &RequestIds::new());
        let peer = ClientAddr::new("127.0.0.9".parse().unwrap());
        rewrite_request_headers(&mut h, None, &peer, None, &id);
        assert!(h.keys().all(|k| !k.as_str().starts_with("x-auth-")));
        assert!(h.get("x-secret-hop").is_none() && h.get("te").is_none());
        assert!(h.get("connection").is_none() && h.get("forwarded").is_none());
        assert_eq!(h.get("x-request-id"), Some(&id));
        assert_eq!(id.len(), 32);
        // An untrusted peer's X-Forwarded-For is replaced, not appended to.
        assert_eq!(h["x-forwarded-for"], "127.0.0.9");
        assert_eq!(h["x-real-ip"], "127.0.0.9");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["accept"], "text/plain");
    }

    fn server(trusted: &[&str]) -> ServerConfig {
        ServerConfig {
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn the_client_behind_trusted_proxies_is_the_rightmost_untrusted_hop() {
        let peer = ClientAddr::new("10.0.0.5".parse().unwrap());
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.4".parse().unwrap());
        // Not trusted: the peer, whatever the header says.
        assert!(client_behind(&peer, &h, &server(&[])).is_none());
        let s = server(&["10.0.0.0/8"]);
        let client = client_behind(&peer, &h, &s).unwrap();
        assert_eq!(client.ip.to_string(), "203.0.113.7");
        assert_eq!(client.header, "203.0.113.7");
        let id = request_id(&h, &RequestIds::new());
        rewrite_request_headers(&mut h, None, &peer, Some(&client), &id);
        assert_eq!(
            h["x-forwarded-for"],
            "6.6.6.6, 203.0.113.7, 10.0.0.4, 10.0.0.5"
        );
        assert_eq!(h["x-real-ip"], "203.0.113.7");
        // Garbage stops the walk at the last hop that can be believed.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "junk, 10.0.0.9".parse().unwrap());
        assert_eq!(
            client_behind(&peer, &h, &s).unwrap().ip.to_string(),
            "10.0.0.9"
        );
        // A trusted peer with no header is the client itself.
        assert!(client_behind(&peer, &HeaderMap::new(), &s).is_none());
    }

    #[test]
    fn underscored_names_are_dropped_or_only_the_owned_ones() {
        let make = || {
            let mut h = HeaderMap::new();
            for n in [
                "x_auth_subject",
                "X_Forwarded_For",
                "x_request_id",
                "x_real_ip",
                "my_header",
                "plain",
            ] {
                h.insert(
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    "v".parse().unwrap(),
                );
            }
            h
        };
        let mut h = make();
        assert_eq!(drop_underscored(&mut h, false), 5);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["plain"]);
        let mut h = make();
        assert_eq!(drop_underscored(&mut h, true), 4);
        assert!(h.contains_key("my_header") && h.contains_key("plain"));
    }

    #[test]
    fn h2_cookie_fields_are_joined() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }

    #[test]
    fn sane_client_request_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123_x.y:z".parse().unwrap());
        let id = request_id(&h, &RequestIds::new());
        let peer = ClientAddr::new("::1".parse().unwrap());
        rewrite_request_headers(&mut h, None, &peer, None, &id);
        assert_eq!(id, "abc-123_x.y:z");
    }
}
