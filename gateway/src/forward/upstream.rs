//! Upstream HTTP/1.1 connections, driven by the task of the request that
//! uses them.
//!
//! A pooled client in the usual shape (hyper-util's) runs every connection
//! in a task of its own: each proxied request crosses to that task and its
//! answer crosses back (two wake-ups of two tasks), and one more task is
//! spawned per request to put the connection back once the answer's body
//! is read. On a proxy that is most of what a request costs besides parsing.
//! Here a connection is a plain value instead: the request that takes it
//! polls it beside its own future ([`Upstreams::send`]), the response body
//! keeps polling it while the answer streams ([`Lent::drive`]), and when the
//! body is dropped having been read to its end, the connection goes back to
//! the pool ready for the next request. Nothing is spawned and nothing is
//! woken but the request's own task.
//!
//! Idle connections are kept in shards, one per worker thread in practice,
//! so taking and returning one locks a mutex that no other thread wants. A
//! connection is checked when taken: one poll finds out whether the upstream
//! closed it while it sat idle; one that is closed, stale or not ready is
//! dropped. A request that could not even start on a reused connection (the
//! upstream closed it at that moment) is sent again on a new one; nothing
//! that was sent is ever sent twice.
//!
//! The route's timeout (from the request's arrival to the answer's head)
//! is kept by the connection's own [`Timer`], moved to each request's
//! deadline, rather than a timer made and registered per request. The rare
//! waits before a connection is in hand (a slot, a new connection) are
//! bounded by the same deadline with a timer of their own.
//!
//! WebSocket handshakes take a new connection of their own, run in its own
//! task: after the upgrade it is a tunnel, not an HTTP connection.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::net::{IpAddr, SocketAddr};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::header::{HeaderValue, HOST};
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::forward::timer::Timer;

/// A request body hyper's client can send: the gateway's is
/// [`crate::forward::body::RequestBody`]; this module needs to know no more of it.
pub trait SendBody:
    hyper::body::Body<Data = bytes::Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Unpin
    + 'static
{
}

impl<B> SendBody for B where
    B: hyper::body::Body<
            Data = bytes::Bytes,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Send
        + Unpin
        + 'static
{
}

/// How long a new connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keep-alive probes on upstream connections, so a dead peer is found.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// At most this many idle connections per upstream in each shard.
const MAX_IDLE: usize = 1024;

/// Why a request got no answer from its upstream.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be opened (refused, unreachable, unresolvable,
    /// or not within the connect timeout).
    Connect(std::io::Error),
    /// The exchange failed: the connection broke, the answer was not HTTP,
    /// or the request body failed (see [`crate::forward::body::ClientBodyError`]).
    Http(hyper::Error),
    /// The connection ended without answering.
    Closed,
    /// No answer's head by the deadline.
    TimedOut,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connecting: {e}"),
            UpstreamError::Http(e) => write!(f, "{e}"),
            UpstreamError::Closed => f.write_str("the connection closed without an answer"),
            UpstreamError::TimedOut => f.write_str("no answer within the route's timeout"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Connect(e) => Some(e),
            UpstreamError::Http(e) => Some(e),
            UpstreamError::Closed | UpstreamError::TimedOut => None,
        }
    }
}

/// One HTTP/1.1 connection to an upstream: the handle requests are sent
/// through and the connection itself, which whoever holds it must poll.
struct Pooled<B: SendBody> {
    send: SendRequest<B>,
    io: Connection<TokioIo<TcpStream>, B>,
    /// The connection future finished: polling it again is not allowed.
    done: bool,
    /// The deadline of the request in progress. Pooled, the connection
    /// keeps it set to the last request's deadline with that request's
    /// waker: when it passes, one spurious wake-up, and until then the
    /// task's memory is held (a route's timeout at most, and only while
    /// the connection is not reused).
    timer: Timer,
}

impl<B: SendBody> Pooled<B> {
    /// Lets the connection read and write what it can.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.done && Pin::new(&mut self.io).poll(cx).is_ready() {
            self.done = true;
        }
    }

    /// Drives the connection once without anyone to wake: to learn
    /// whether it is idle and open.
    fn settle(&mut self) {
        self.drive(&mut Context::from_waker(Waker::noop()));
    }

    /// Open, with no request or answer in progress.
    fn reusable(&self) -> bool {
        !self.done && self.send.is_ready()
    }
}

/// An idle connection in the pool.
struct Idle<B: SendBody> {
    conn: Box<Pooled<B>>,
    since: Instant,
}

/// A shard's idle connections by upstream, keyed by the authority's text:
/// `Authority` hashes and compares byte by byte, lowercasing each (it
/// showed in the profile between checkout and return), where a
/// string hashes in bulk. Every lookup uses the route's own authority, so
/// the same upstream always spells its key the same way. (foldhash: the key
/// is ours, not a client's, and SipHash showed in the profile.)
type Shard<B> = HashMap<Box<str>, Vec<Idle<B>>, foldhash::fast::RandomState>;

/// The idle upstream connections of one gateway, in per-thread shards.
pub struct Upstreams<B: SendBody> {
    shards: Box<[Mutex<Shard<B>>]>,
}

impl<B: SendBody> std::fmt::Debug for Upstreams<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("shards", &self.shards.len())
            .finish()
    }
}

thread_local! {
    /// This thread's shard number, handed out in turn on first use.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

fn this_thread_shard() -> usize {
    SHARD.with(|s| match s.get() {
        Some(n) => n,
        None => {
            let n = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
            s.set(Some(n));
            n
        }
    })
}

/// What a request that went upstream gives back with its answer: the
/// connection, to be driven while the body streams and returned after.
pub struct Lent<B: SendBody> {
    /// Boxed, like every pooled connection: a hyper connection is about
    /// 700 bytes, and this handle moves with the answer (into its body,
    /// through the response's every move, back to the pool), where a box
    /// moves as a pointer.
    conn: Option<Box<Pooled<B>>>,
    home: (Arc<Upstreams<B>>, Authority),
}

impl<B: SendBody> std::fmt::Debug for Lent<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lent").finish_non_exhaustive()
    }
}

impl<B: SendBody> Lent<B> {
    /// Lets the connection move the answer's body along; called each time
    /// the body is polled.
    #[inline]
    pub fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.conn {
            conn.drive(cx);
        }
    }
}

impl<B: SendBody> Drop for Lent<B> {
    /// Back to the pool if the answer was read to its end and the upstream
    /// kept the connection open; otherwise the connection closes here.
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        conn.settle();
        if conn.reusable() {
            let (pool, authority) = &self.home;
            pool.put(authority, conn);
        }
    }
}

impl<B: SendBody> Upstreams<B> {
    /// An empty pool with a shard for each of about `threads` threads.
    pub fn new(threads: usize) -> Upstreams<B> {
        let n = threads.clamp(1, 64) * 2;
        Upstreams {
            shards: (0..n).map(|_| Mutex::new(HashMap::default())).collect(),
        }
    }

    fn shard(&self) -> &Mutex<Shard<B>> {
        &self.shards[this_thread_shard() % self.shards.len()]
    }

    /// Pools `conn`, idle and open, in this thread's shard.
    fn put(&self, authority: &Authority, conn: Box<Pooled<B>>) {
        let Ok(mut shard) = self.shard().lock() else {
            return;
        };
        let idle = match shard.get_mut(authority.as_str()) {
            Some(idle) => idle,
            None => shard.entry(authority.as_str().into()).or_default(),
        };
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// A pooled connection to `authority` that is open and idle: from this
    /// thread's shard if it has one, else from another's, so that
    /// connections returned on one thread are not left idle while another
    /// opens new ones. A new connection is opened only when no idle one is
    /// left anywhere, so there are never more than the requests in flight at
    /// the busiest moment. (One lock at a time, each held for a pop: no
    /// thread waits on another for long, and none can wait on itself.)
    /// Newest first; stale and closed connections found on the way are
    /// dropped.
    fn checkout(&self, authority: &Authority) -> Option<Box<Pooled<B>>> {
        let n = self.shards.len();
        let own = this_thread_shard() % n;
        if let Ok(mut shard) = self.shards[own].lock() {
            if let Some(conn) = take_idle(&mut shard, authority) {
                return Some(conn);
            }
        }
        (1..n).find_map(|i| {
            let mut shard = self.shards[(own + i) % n].lock().ok()?;
            take_idle(&mut shard, authority)
        })
    }

    /// Closes idle connections that have been idle too long or that the
    /// upstream closed, in every shard (called now and then, so that a
    /// quiet thread's connections do not linger).
    pub fn sweep(&self) {
        for shard in self.shards.iter() {
            let Ok(mut shard) = shard.lock() else {
                continue;
            };
            shard.retain(|_, idle| {
                idle.retain_mut(|i| {
                    i.conn.settle();
                    i.since.elapsed() <= IDLE_TIMEOUT && i.conn.reusable()
                });
                !idle.is_empty()
            });
        }
    }

    /// Sends `req` (in origin form) to `authority` and waits for the
    /// answer's head, driving the connection meanwhile, until `deadline`
    /// at most. The connection comes back in [`Lent`], to be driven while
    /// the body streams and pooled when it is done.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        mut req: Request<B>,
        deadline: tokio::time::Instant,
    ) -> Result<(Response<Incoming>, Lent<B>), UpstreamError> {
        set_host(&mut req, authority);
        let mut reused = true;
        let mut conn = match self.checkout(authority) {
            Some(conn) => conn,
            None => {
                reused = false;
                // Boxed: the rare path's state would otherwise make every
                // request's future larger.
                Box::pin(connect(authority, deadline)).await?
            }
        };
        loop {
            match exchange(&mut conn, req, deadline).await {
                Exchange::Answered(res) => {
                    let home = (self.clone(), authority.clone());
                    let conn = Some(conn);
                    return Ok((res, Lent { conn, home }));
                }
                // Not a byte of it went out: safe to send again, once, on a
                // new connection.
                Exchange::NotSent(again, _) if reused => {
                    req = again;
                    reused = false;
                    conn = Box::pin(connect(authority, deadline)).await?;
                }
                Exchange::NotSent(_, e) | Exchange::Failed(e) => return Err(e),
            }
        }
    }

    /// Sends a WebSocket handshake on a new connection run in a task of its
    /// own, which lives on as the tunnel's upstream side after a `101`.
    pub async fn send_upgrade(
        authority: &Authority,
        mut req: Request<B>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        set_host(&mut req, authority);
        let (mut send, io) = http1::handshake(TokioIo::new(open(authority).await?))
            .await
            .map_err(UpstreamError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = io.with_upgrades().await {
                tracing::debug!(error = %e, "upstream upgrade connection ended");
            }
        });
        send.send_request(req).await.map_err(UpstreamError::Http)
    }
}

/// The newest open, idle, fresh connection to `authority` in `shard`.
fn take_idle<B: SendBody>(shard: &mut Shard<B>, authority: &Authority) -> Option<Box<Pooled<B>>> {
    let idle = shard.get_mut(authority.as_str())?;
    while let Some(Idle { mut conn, since }) = idle.pop() {
        if since.elapsed() > IDLE_TIMEOUT {
            // Everything below it is older still.
            idle.clear();
            return None;
        }
        conn.settle();
        if conn.reusable() {
            return Some(conn);
        }
    }
    None
}

/// How one attempt at a request ended.
enum Exchange<B> {
    Answered(Response<Incoming>),
    /// The connection was not usable and the request is handed back unsent.
    NotSent(Request<B>, UpstreamError),
    Failed(UpstreamError),
}

/// Sends `req` on `conn` and drives both until the answer's head arrives
/// or `deadline` passes.
async fn exchange<B: SendBody>(
    conn: &mut Pooled<B>,
    req: Request<B>,
    deadline: tokio::time::Instant,
) -> Exchange<B> {
    let mut sent = pin!(conn.send.try_send_request(req));
    poll_fn(|cx| {
        conn.drive(cx);
        match sent.as_mut().poll(cx) {
            Poll::Ready(Ok(res)) => Poll::Ready(Exchange::Answered(res)),
            Poll::Ready(Err(mut e)) => Poll::Ready(match e.take_message() {
                Some(req) => Exchange::NotSent(req, UpstreamError::Http(e.into_error())),
                None => Exchange::Failed(UpstreamError::Http(e.into_error())),
            }),
            // The connection is over and will never answer.
            Poll::Pending if conn.done => Poll::Ready(Exchange::Failed(UpstreamError::Closed)),
            // Checked only while waiting: an answer in hand is never
            // refused for its lateness. A connection timed out mid-request
            // is dropped by the caller, never pooled.
            Poll::Pending => match conn.timer.poll_at(deadline, cx) {
                Poll::Ready(()) => Poll::Ready(Exchange::Failed(UpstreamError::TimedOut)),
                Poll::Pending => Poll::Pending,
            },
        }
    })
    .await
}

/// HTTP/1.1 wants a `Host` header, which an HTTP/2 client does not send:
/// the upstream's own then.
fn set_host<B>(req: &mut Request<B>, authority: &Authority) {
    if !req.headers().contains_key(HOST) {
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(HOST, host);
        }
    }
}

/// A new connection to `authority`, handshaken and ready for a request,
/// by `deadline`.
async fn connect<B: SendBody>(
    authority: &Authority,
    deadline: tokio::time::Instant,
) -> Result<Box<Pooled<B>>, UpstreamError> {
    let opened = tokio::time::timeout_at(deadline, async {
        let io = TokioIo::new(open(authority).await?);
        http1::handshake(io).await.map_err(UpstreamError::Http)
    });
    let (send, io) = opened.await.map_err(|_| UpstreamError::TimedOut)??;
    Ok(Box::new(Pooled {
        send,
        io,
        done: false,
        timer: Timer::new(),
    }))
}

/// A TCP connection to the first of `authority`'s addresses that answers.
async fn open(authority: &Authority) -> Result<TcpStream, UpstreamError> {
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = authority.port_u16().unwrap_or(80);
    let attempt = async {
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port)).await?.collect(),
        };
        let mut last = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the upstream's name has no address",
        );
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| {
            UpstreamError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the upstream did not accept the connection in time",
            ))
        })?
        .map_err(UpstreamError::Connect)?;
    stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    // Keep-alive probes are a nicety: a socket that refuses them still works.
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    Ok(stream)
}
