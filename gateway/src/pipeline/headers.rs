//! The rewrite phase: the headers an upstream receives.
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
//! Every request leaves with an `X-Request-Id` ([`request_id`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderName, HeaderValue};
use http::HeaderMap;

use crate::config::ServerConfig;
use crate::forward::proxy::remove_hop_by_hop;
use crate::pipeline::conn::ClientAddr;
use crate::tokens::Identity;

/// `X-Request-Id`: kept if the client's is sane, else generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn sane_client_request_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123_x.y:z".parse().unwrap());
        let id = request_id(&h, &RequestIds::new());
        let peer = ClientAddr::new("::1".parse().unwrap());
        rewrite_request_headers(&mut h, None, &peer, None, &id);
        assert_eq!(id, "abc-123_x.y:z");
    }
    fn server(trusted: &[&str]) -> ServerConfig {
        ServerConfig {
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            ..ServerConfig::default()
        }
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
}
