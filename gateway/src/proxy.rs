//! Forwarding: rewrite the request's headers, send it upstream over a pooled
//! keep-alive connection, and stream the answer back.
//!
//! Upstreams trust the `X-Auth-*` headers, so every incoming header with that
//! prefix is removed on every route before the gateway adds its own, and
//! nothing a client sends can pose as an identity. Bodies are never buffered:
//! the request body is handed to the upstream connection as a stream and the
//! upstream's body is handed back to the client the same way, so memory stays
//! flat whatever the size of an upload or download.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::{ApiError, Body};
use crate::metrics::RouteMetrics;
use crate::routes::Route;
use crate::tokens::Identity;
use crate::tunnel::{self, Lease};

/// `X-Request-Id`: kept if the client's is sane, else generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

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
/// Runs twice per proxied request, and almost never finds anything: so one
/// pass over the (few) names present, comparing against the fixed list,
/// before any removal; not one hashed lookup per hop-by-hop name.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Usually just `Connection: keep-alive`: remove what is there, and the
    // fields `Connection` names, without a lookup per listed name.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_hop_by_hop(k))
        .cloned()
        .collect();
    if let Some(conn) = headers.get(header::CONNECTION) {
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
                doomed.push(name);
            }
        }
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// Is `name` one of [`HOP_BY_HOP`]? A `match` on the name: a length switch
/// and a compare, with no `HeaderName` built.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The client's address, with its `X-Forwarded-For` form made once per
/// connection rather than formatted on every request.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    /// The TCP peer's IP.
    pub ip: IpAddr,
    /// The same, as a header value.
    pub header: HeaderValue,
    /// `http` or `https`: the connection's scheme, for `X-Forwarded-Proto`.
    pub proto: HeaderValue,
}

impl ClientAddr {
    /// The address of a new plain-HTTP connection's peer.
    pub fn new(ip: IpAddr) -> ClientAddr {
        let header =
            HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        ClientAddr {
            ip,
            header,
            proto: HeaderValue::from_static("http"),
        }
    }

    /// The same, for a connection that came over TLS.
    pub fn over_tls(self) -> ClientAddr {
        ClientAddr {
            proto: HeaderValue::from_static("https"),
            ..self
        }
    }
}

/// One client connection, as each of its requests sees it.
#[derive(Debug)]
pub struct Conn {
    /// Who is at the other end.
    pub addr: ClientAddr,
    /// Its connection slot, handed on to any tunnel it opens.
    pub lease: Arc<Lease>,
    /// Requests started on it so far: an HTTP/2 connection on which this
    /// stops moving is idle.
    pub requests: AtomicU64,
}

impl Conn {
    /// A new connection from `addr` holding `lease`.
    pub fn new(addr: ClientAddr, lease: Arc<Lease>) -> Conn {
        Conn {
            addr,
            lease,
            requests: AtomicU64::new(0),
        }
    }
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

/// Rewrites a request's headers for the upstream: drops hop-by-hop and every
/// `x-auth-*` header, adds the identity, `X-Request-Id` and `X-Forwarded-*`.
pub fn rewrite_request_headers(
    headers: &mut HeaderMap,
    identity: Option<&Identity>,
    client: &ClientAddr,
    request_id: &HeaderValue,
) {
    remove_hop_by_hop(headers);
    if headers.keys().any(|k| k.as_str().starts_with("x-auth-")) {
        let spoofed: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-auth-"))
            .cloned()
            .collect();
        for name in spoofed {
            headers.remove(name);
        }
    }
    if let Some(id) = identity {
        for (name, value) in &id.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers.insert(REQUEST_ID, request_id.clone());
    let forwarded_for = match headers.get(FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.is_empty() => {
            HeaderValue::from_str(&format!("{prior}, {}", client.ip)).ok()
        }
        _ => Some(client.header.clone()),
    };
    if let Some(v) = forwarded_for {
        headers.insert(FORWARDED_FOR, v);
    }
    headers.insert(FORWARDED_PROTO, client.proto.clone());
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert(FORWARDED_HOST, host);
        }
        None => {
            headers.remove(FORWARDED_HOST);
        }
    }
}

/// An upstream's response body, streamed to the client as it comes. It
/// holds one of its upstream's connection slots until hyper drops it (read
/// to the end, or abandoned by a client that went away): the upstream
/// connection is busy until then.
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    _slot: Option<OwnedSemaphorePermit>,
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The upstream client: pooled keep-alive HTTP/1.1 connections.
#[derive(Debug)]
pub struct Proxy {
    client: Client<HttpConnector, Incoming>,
    ids: RequestIds,
}

impl Proxy {
    /// A proxy with a fresh connection pool.
    pub fn new() -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Proxy {
            client,
            ids: RequestIds::new(),
        }
    }

    /// The request-id generator, shared with the gateway's own endpoints.
    pub fn ids(&self) -> &RequestIds {
        &self.ids
    }

    /// Forwards `req` to `route`'s upstream and streams the answer back.
    pub async fn forward(
        &self,
        route: &Route,
        mut req: Request<Incoming>,
        identity: Option<&Identity>,
        conn: &Conn,
        request_id: &HeaderValue,
        metrics: &RouteMetrics,
    ) -> Response<Body> {
        // HTTP/2 carries the host as :authority; the HTTP/1.1 upstream
        // gets it as Host, as a client speaking HTTP/1.1 would have sent.
        if !req.headers().contains_key(header::HOST) {
            if let Some(host) = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                req.headers_mut().insert(header::HOST, host);
            }
        }
        // Taken before the rewrite drops `Upgrade` as hop-by-hop.
        let upgrade = tunnel::websocket_upgrade(req.version(), req.headers());
        rewrite_request_headers(req.headers_mut(), identity, &conn.addr, request_id);
        let client_side = upgrade.as_ref().map(|upgrade| {
            tunnel::mark_upgrade(req.headers_mut(), upgrade.clone());
            hyper::upgrade::on(&mut req)
        });
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(route.scheme.clone());
        parts.authority = Some(route.authority.clone());
        parts.path_and_query = req.uri().path_and_query().cloned();
        match Uri::from_parts(parts) {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return ApiError::InvalidRequest("bad request target").into_response(),
        }
        *req.version_mut() = Version::HTTP_11;
        let start = std::time::Instant::now();
        // Waiting for a slot counts against the route's timeout, like the
        // wait for the answer. (The slots are never closed: `ok()` is
        // always `Some`.)
        let sent = tokio::time::timeout(route.timeout, async {
            let slot = route.upstream_slots.clone().acquire_owned().await.ok();
            self.client.request(req).await.map(|res| (slot, res))
        })
        .await;
        let (slot, mut res) = match sent {
            Ok(Ok(sent)) => sent,
            Ok(Err(e)) => {
                tracing::warn!(upstream = %route.authority, error = %e, "upstream request failed");
                return ApiError::BadGateway.into_response();
            }
            Err(_) => {
                tracing::warn!(upstream = %route.authority, "upstream did not answer in time");
                return ApiError::GatewayTimeout.into_response();
            }
        };
        metrics.upstream.record(start.elapsed().as_secs_f64());
        remove_hop_by_hop(res.headers_mut());
        if let (Some(client_side), Some(upgrade), StatusCode::SWITCHING_PROTOCOLS) =
            (client_side, upgrade, res.status())
        {
            let upstream_side = hyper::upgrade::on(&mut res);
            tunnel::spawn_relay(
                client_side,
                upstream_side,
                conn.lease.clone(),
                metrics.tunnels.clone(),
            );
            tunnel::mark_upgrade(res.headers_mut(), upgrade);
        }
        res.map(|inner| Either::Left(UpstreamBody { inner, _slot: slot }))
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
        for h in HOP_BY_HOP {
            assert!(is_hop_by_hop(&h), "{h}");
        }
        for h in [
            "host",
            "x-auth-subject",
            "authorization",
            "content-length",
            "tee",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(h)), "{h}");
        }
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
        h.insert("host", "gw.example".parse().unwrap());
        h.insert("accept", "text/plain".parse().unwrap());
        let id = request_id(&h, &RequestIds::new());
        rewrite_request_headers(
            &mut h,
            None,
            &ClientAddr::new("127.0.0.9".parse().unwrap()),
            &id,
        );
        assert!(h.keys().all(|k| !k.as_str().starts_with("x-auth-")));
        assert!(h.get("x-secret-hop").is_none() && h.get("te").is_none());
        assert!(h.get("connection").is_none());
        assert_eq!(h.get("x-request-id"), Some(&id));
        assert_eq!(id.len(), 32);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(h["x-forwarded-host"], "gw.example");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["accept"], "text/plain");
    }

    #[test]
    fn sane_client_request_id_is_kept() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123_x.y:z".parse().unwrap());
        let id = request_id(&h, &RequestIds::new());
        rewrite_request_headers(&mut h, None, &ClientAddr::new("::1".parse().unwrap()), &id);
        assert_eq!(id, "abc-123_x.y:z");
    }
}
