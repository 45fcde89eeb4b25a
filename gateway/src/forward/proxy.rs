//! Forwarding: send a request upstream over a pooled keep-alive
//! connection and stream the answer back. The request's headers were made
//! for the upstream by the pipeline's rewrite phase
//! (the pipeline's `headers`); what is left here is HTTP's own rule
//! that hop-by-hop headers stop at each hop, both ways.
//!
//! Bodies are never buffered: the request body is handed to the upstream
//! connection as a stream and the upstream's body is handed back to the
//! client the same way, so memory stays flat whatever the size of an upload
//! or download. Both are watched ([`crate::forward::body`]) so that a client that
//! stalls either one frees the upstream slot it holds.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, TryAcquireError};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::forward::body::{Body, ClientBodyError, RequestBody, UpstreamBody};
use crate::forward::occupancy::InFlight;
use crate::forward::tunnel::{self, Lease, TunnelPlace};
use crate::forward::upstream::{UpstreamError, Upstreams};
use crate::telemetry::metrics::{Counters, Refusal, RouteMetrics};
use http::uri::Authority;
use tokio::sync::Semaphore;

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

/// Where a route sends its requests: all that forwarding needs of it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Upstream `host:port`.
    pub authority: Authority,
    /// How long the upstream may take to answer.
    pub timeout: Duration,
    /// Requests in flight to the upstream, shared by every route to it.
    pub upstream_slots: Arc<Semaphore>,
}

/// A slot of `route`'s upstream: at once when one is free (no timer for
/// the common case), else waited for until `deadline`. The slots are never
/// closed, so `None` does not happen.
async fn upstream_slot(
    route: &Target,
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

/// What a proxied request holds besides itself, handed to [`Proxy::forward`].
#[derive(Debug)]
pub struct Forward<'a> {
    /// Where the route sends it.
    pub target: &'a Target,
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
}

impl Proxy {
    /// A proxy with a fresh connection pool, sharded for the machine's
    /// threads.
    pub fn new() -> Proxy {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Proxy {
            upstreams: Arc::new(Upstreams::new(threads)),
        }
    }

    /// The idle upstream connections.
    pub fn upstreams(&self) -> &Upstreams<RequestBody> {
        &self.upstreams
    }

    /// Forwards `req` (its headers already rewritten) to the route's
    /// upstream and streams the answer back.
    pub async fn forward(&self, req: Request<Incoming>, f: Forward<'_>) -> Response<Body> {
        let route = f.target;
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
}
