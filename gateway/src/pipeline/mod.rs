//! The path of one request, top to bottom:
//!
//! ```text
//! classify -> admit -> authenticate -> authorize -> rewrite -> forward -> log
//! ```
//!
//! - **classify** reads the request head before anything else does: header
//!   names with `_` are dropped, a head that is not HTTP as the contract
//!   wants it (not exactly one `Host`, userinfo in the target) is refused,
//!   the path is put in its canonical form ([`path`]; paths an
//!   upstream could read as another are refused) and the request carries
//!   that form from then on, so the path judged is the path forwarded; what
//!   is left is one of the gateway's own endpoints, a route (the longest
//!   prefix of the path, [`routes`]), or nothing (404);
//! - **admit** holds a place in the client address's count of requests in
//!   flight (`max_requests_per_ip`, [`limits`]), kept until the response
//!   body is done;
//! - **authenticate** applies the route's `auth` to the bearer token and
//!   refuses a token whose session has ended (the revoked-session set);
//!   **authorize** applies its `allow` rules to the caller's roles and the
//!   method (both in [`auth::check`], which forward-auth shares);
//! - **rewrite** makes the upstream's headers ([`headers`]): identity,
//!   client address, request id, no spoofed ones; a WebSocket handshake also
//!   takes a tunnel place here;
//! - **forward** sends it upstream and streams the answer back
//!   ([`crate::forward`]);
//! - **log** counts the response under its route or endpoint and writes the
//!   access line.
//!
//! One `Ctx` per request carries what the phases learn (the client
//! address, the request id, the identity, what to count the response
//! under) to the log phase. The listener's connection handling calls
//! [`handle`]; the shared state it reads is
//! [`crate::gateway::Gateway`].

pub mod auth;
pub mod conn;
pub mod headers;
pub mod limits;
pub mod routes;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use tracing::Instrument as _;

use crate::endpoints::{self, Endpoint};
use crate::error::ApiError;
use crate::forward::body::Body;
use crate::forward::occupancy::InFlight;
use crate::forward::proxy::Forward;
use crate::forward::tunnel::{self, TunnelPlace};
use crate::gateway::Gateway;
use crate::pipeline::auth::check;
use crate::pipeline::conn::{ClientAddr, Conn};
use crate::pipeline::limits::bucket;
use crate::pipeline::routes::Route;
use crate::protocol::path::canonical;
use crate::telemetry::metrics::{Own, Refusal};
use crate::telemetry::traces::{self, FutureExt as _, Step};
use crate::tokens::Identity;
use headers::{client_behind, request_id, REQUEST_ID};
use opentelemetry::trace::SpanKind;

/// What one request has learnt on its way, for the phases after.
struct Ctx<'g> {
    gw: &'g Gateway,
    conn: &'g Conn,
    /// The client address when it is not the TCP peer (a trusted proxy's
    /// `X-Forwarded-For`).
    forwarded: Option<ClientAddr>,
    request_id: HeaderValue,
    counted: Counted<'g>,
    identity: Option<Arc<Identity>>,
}

impl Ctx<'_> {
    /// The request's client address.
    fn client(&self) -> &ClientAddr {
        self.forwarded.as_ref().unwrap_or(&self.conn.addr)
    }
}

/// What the access line needs from the request's start.
struct Access {
    start: Instant,
    method: Method,
    path: String,
}

/// What a response is counted under.
#[derive(Clone, Copy)]
enum Counted<'g> {
    Own(Own),
    Route(&'g Route),
}

/// What classification found a request to be.
enum Target<'g> {
    Endpoint(Endpoint),
    Route(&'g Route),
}

/// One request, from its head to its access line.
pub async fn handle(gw: Arc<Gateway>, mut req: Request<Incoming>, conn: &Conn) -> Response<Body> {
    // The access line's fields (and its clock), gathered only when it will
    // be written.
    let access =
        tracing::enabled!(target: "minigate::access", tracing::Level::INFO).then(|| Access {
            start: Instant::now(),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
        });
    let mut ctx = Ctx {
        gw: &gw,
        conn,
        forwarded: client_behind(&conn.addr, req.headers(), &gw.server_config),
        request_id: request_id(req.headers(), &gw.request_ids),
        counted: Counted::Own(Own::Unmatched),
        identity: None,
    };
    let span = tracing::info_span!("request", id = ctx.request_id.to_str().unwrap_or("-"));
    // The request's server span, only when the gateway traces.
    let trace = gw.tracing.as_ref().map(|t| {
        let attributes = server_attributes(&ctx, &req);
        let method = req.method().clone();
        let trusted = gw.server_config.is_trusted(conn.addr.ip);
        (
            t.request(req.headers_mut(), trusted, method.as_str(), attributes),
            method,
        )
    });
    let dropped =
        headers::drop_underscored(req.headers_mut(), gw.server_config.underscores_in_headers);
    if let Some(c) = gw.metrics.refusals.get(Refusal::HeaderDropped) {
        c.increment(dropped as u64);
    }
    // Wrapping the request's future in its span moves the whole future (some
    // kilobytes) once more: only done when the span records anything.
    let res = match (&trace, span.is_disabled()) {
        (None, true) => run(&mut ctx, req).await,
        (None, false) => run(&mut ctx, req).instrument(span.clone()).await,
        (Some((cx, _)), true) => run(&mut ctx, req).with_context(cx.clone()).await,
        (Some((cx, _)), false) => {
            run(&mut ctx, req)
                .instrument(span.clone())
                .with_context(cx.clone())
                .await
        }
    };
    log(&ctx, res, access, &span, trace)
}

/// The server span's attributes known from the request head (never its
/// path or query, which may hold what is not the trace's to keep).
fn server_attributes(ctx: &Ctx<'_>, req: &Request<Incoming>) -> Vec<opentelemetry::KeyValue> {
    use opentelemetry::KeyValue;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') {
            h
        } else {
            host
        }
    });
    vec![
        KeyValue::new("http.request.method", req.method().as_str().to_owned()),
        KeyValue::new("server.address", host.to_owned()),
        KeyValue::new("client.address", ctx.client().ip.to_string()),
        KeyValue::new(
            "network.protocol.version",
            match req.version() {
                Version::HTTP_2 => "2",
                Version::HTTP_10 => "1.0",
                _ => "1.1",
            },
        ),
        KeyValue::new(
            "minigate.request_id",
            ctx.request_id.to_str().unwrap_or("-").to_owned(),
        ),
    ]
}

/// The answer of a refusal, its error code on the request's span.
fn refused(gw: &Gateway, e: ApiError) -> Response<Body> {
    traces::annotate(gw.tracing.as_ref(), || {
        opentelemetry::KeyValue::new("error.type", e.code())
    });
    e.into_response()
}

/// classify → admit → the endpoint, or authenticate → rewrite → forward.
async fn run<'g>(ctx: &mut Ctx<'g>, mut req: Request<Incoming>) -> Response<Body> {
    let gw = ctx.gw;
    let target = match classify(gw, &mut req) {
        Ok(target) => target,
        Err((own, refusal, e)) => {
            ctx.counted = Counted::Own(own);
            if let Some(refusal) = refusal {
                gw.metrics.refusals.increment(refusal);
            }
            return refused(gw, e);
        }
    };
    ctx.counted = match target {
        Target::Endpoint(e) => Counted::Own(e.counted()),
        Target::Route(r) => Counted::Route(r),
    };
    let in_flight = match admit(ctx) {
        Ok(held) => held,
        Err(e) => return refused(gw, e),
    };
    let route = match target {
        Target::Endpoint(e) => {
            let client = ctx.client().ip;
            // Boxed: the endpoints' futures (login's, refresh's) are
            // kilobytes that a proxied request would otherwise carry and
            // copy with every move of its own future.
            let res = Box::pin(endpoints::serve(e, gw, req, client)).await;
            drop(in_flight);
            return res.unwrap_or_else(|e| refused(gw, e));
        }
        Target::Route(route) => route,
    };
    // authenticate, then authorize (the route's `allow` rules).
    ctx.identity = match check(gw, route, req.method(), req.headers()) {
        Ok(identity) => identity,
        Err(e) => return refused(gw, e),
    };
    traces::mark(gw.tracing.as_ref(), "authorized");
    let upgrade = match tunnel_place(ctx, &req) {
        Ok(upgrade) => upgrade,
        Err(e) => return refused(gw, e),
    };
    rewrite(ctx, &mut req);
    // The upstream call's span, whose traceparent the upstream continues.
    let step = Step::of(gw.tracing.as_ref(), "upstream", SpanKind::Client, || {
        upstream_attributes(route, req.method())
    });
    if let (Some(t), Some(cx)) = (&gw.tracing, step.context()) {
        t.inject(cx, req.headers_mut());
    }
    let res = gw
        .proxy
        .forward(
            req,
            Forward {
                target: &route.target,
                lease: &ctx.conn.lease,
                in_flight,
                upgrade,
                metrics: gw.metrics.route(route.index),
                refusals: &gw.metrics.refusals,
                body_gap: gw.server_config.proxy_body_timeout,
                tunnel_idle: gw.server_config.tunnel_idle_timeout,
            },
        )
        .await;
    step.answered(res.status().as_u16());
    res
}

/// The upstream call span's attributes.
fn upstream_attributes(route: &Route, method: &Method) -> Vec<opentelemetry::KeyValue> {
    use opentelemetry::KeyValue;
    vec![
        KeyValue::new("http.request.method", method.as_str().to_owned()),
        KeyValue::new("server.address", route.target.authority.host().to_owned()),
        KeyValue::new("http.route", route.prefix.clone()),
    ]
}

/// A refusal before routing: what to count it under, and the answer.
type Unrouted = (Own, Option<Refusal>, ApiError);

/// Checks the request head, puts its path in the canonical form and finds
/// its target.
fn classify<'g>(gw: &'g Gateway, req: &mut Request<Incoming>) -> Result<Target<'g>, Unrouted> {
    let bad_head = |why| {
        (
            Own::RefusedRequest,
            Some(Refusal::BadRequestHead),
            ApiError::InvalidRequest(why),
        )
    };
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first_host = hosts.next();
    if hosts.next().is_some() {
        return Err(bad_head("a request must have exactly one Host header"));
    }
    if first_host.is_none() && req.version() == Version::HTTP_11 {
        return Err(bad_head("a request must have exactly one Host header"));
    }
    if req
        .uri()
        .authority()
        .is_some_and(|a| a.as_str().contains('@'))
    {
        return Err(bad_head("a request target must not hold credentials"));
    }
    let rewritten = match canonical(req.uri().path()) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(form)) => Some(form),
        Err(bad) => {
            return Err((
                Own::RefusedPath,
                Some(Refusal::PathRefused),
                ApiError::InvalidRequest(bad.message()),
            ))
        }
    };
    if let Some(form) = rewritten {
        *req.uri_mut() = with_path(req.uri(), &form)
            .ok_or_else(|| bad_head("the request path cannot be put in its canonical form"))?;
    }
    let path = req.uri().path();
    if let Some(endpoint) = Endpoint::of(path) {
        return Ok(Target::Endpoint(endpoint));
    }
    match gw.routes.find(path) {
        Some(route) => Ok(Target::Route(route)),
        None => Err((Own::Unmatched, None, ApiError::NotFound)),
    }
}

/// `uri` with its path replaced by `path` (already canonical) and its
/// query, scheme and authority as they were.
pub fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(q) => PathAndQuery::try_from(format!("{path}?{q}")),
        None => PathAndQuery::try_from(path),
    }
    .ok()?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).ok()
}

/// A place in the client address's count of requests in flight.
fn admit(ctx: &Ctx<'_>) -> Result<Option<InFlight>, ApiError> {
    ctx.gw
        .in_flight
        .enter(&bucket(ctx.client().ip))
        .map_err(|_| {
            ctx.gw.metrics.refusals.increment(Refusal::PerIpCap);
            ApiError::TooManyInFlight
        })
}

/// For a WebSocket handshake, its `Upgrade` value and a place in its user's
/// (or, anonymous, its client address's) count of open tunnels.
#[allow(clippy::type_complexity)]
fn tunnel_place(
    ctx: &Ctx<'_>,
    req: &Request<Incoming>,
) -> Result<Option<(HeaderValue, Option<TunnelPlace>)>, ApiError> {
    let Some(upgrade) = tunnel::websocket_upgrade(req.version(), req.headers()) else {
        return Ok(None);
    };
    let key: Box<str> = match &ctx.identity {
        Some(id) => format!("user:{}", id.user()).into(),
        None => format!("addr:{}", ctx.client().ip).into(),
    };
    match ctx.gw.tunnels.enter(&key) {
        Ok(place) => Ok(Some((upgrade, place))),
        Err(_) => {
            ctx.gw.metrics.refusals.increment(Refusal::TunnelCap);
            Err(ApiError::TooManyInFlight)
        }
    }
}

/// The upstream's headers: identity, client address, request id.
fn rewrite(ctx: &Ctx<'_>, req: &mut Request<Incoming>) {
    // HTTP/2 carries the host as :authority; the HTTP/1.1 upstream gets it
    // as Host, as a client speaking HTTP/1.1 would have sent.
    if !req.headers().contains_key(header::HOST) {
        if let Some(host) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(header::HOST, host);
        }
    }
    if req.version() == Version::HTTP_2 {
        headers::join_cookies(req.headers_mut());
    }
    headers::rewrite_request_headers(
        req.headers_mut(),
        ctx.identity.as_deref(),
        &ctx.conn.addr,
        ctx.forwarded.as_ref(),
        &ctx.request_id,
    );
}

/// Counts the response, returns the request id with it, and writes the
/// access line.
fn log(
    ctx: &Ctx<'_>,
    mut res: Response<Body>,
    access: Option<Access>,
    span: &tracing::Span,
    trace: Option<(opentelemetry::Context, Method)>,
) -> Response<Body> {
    let status = res.status().as_u16();
    let (metrics, label) = match ctx.counted {
        Counted::Own(own) => (
            ctx.gw.metrics.own(own),
            crate::telemetry::metrics::Label::label(own),
        ),
        Counted::Route(r) => (ctx.gw.metrics.route(r.index), r.prefix.as_str()),
    };
    metrics.count(status);
    if let Some((cx, method)) = trace {
        traces::finish(&cx, method.as_str(), label, status);
    }
    // Marked sensitive for HPACK: an HTTP/2 encoder sends it as a literal
    // never indexed. A value that is new on every response would otherwise
    // go into the connection's dynamic table each time, after a walk down
    // the earlier ids there, evicting what the next responses could reuse,
    // and never be referenced again. HTTP/1 writes it as before.
    let mut id = ctx.request_id.clone();
    id.set_sensitive(true);
    res.headers_mut().insert(REQUEST_ID, id);
    if let Some(Access {
        start,
        method,
        path,
    }) = access
    {
        let _entered = span.enter();
        tracing::info!(
            target: "minigate::access",
            %method,
            path,
            route = label,
            status,
            ms = start.elapsed().as_secs_f64() * 1000.0,
            sub = ctx.identity.as_ref().map_or("-", |id| id.subject()),
            client = %ctx.client().ip,
        );
    }
    res
}
