//! The listener: accept connections, speak TLS and HTTP/1 or HTTP/2 on
//! them, and drain them at shutdown. Each request is handed to
//! [`crate::pipeline::handle`].
//!
//! The accept loop is where hostile clients are held off: a cap on open
//! connections (a semaphore; beyond it clients wait in the listen backlog),
//! hyper's limits on the request head (431), a deadline for the TLS
//! handshake, and the socket's own deadlines ([`ClientIo`]): one for each
//! request head (slow-loris, idle keep-alive) and one for each write, so a
//! client that stops reading its response is disconnected after
//! `send_timeout`, which frees the upstream slot its response held. It
//! also owns graceful shutdown: stop accepting, let every in-flight request
//! finish up to a deadline, close idle connections.

mod client_io;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::tls::Tls;
use crate::config::{Config, ServerConfig};
use crate::forward::tunnel::Lease;
use crate::gateway::{spawn_tasks, Gateway, StartError};
use crate::pipeline::conn::{ClientAddr, Conn};
use crate::pipeline::handle;
use crate::telemetry::metrics::Refusal;
use crate::tokens::keys::KeyStore;

pub use client_io::{ClientIo, Served};

/// A gateway serving on a socket.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The admin listener's address, when `[admin]` is configured.
    pub admin: Option<SocketAddr>,
    /// The shared state, for inspection.
    pub gateway: Arc<Gateway>,
    stop: watch::Sender<bool>,
    task: JoinHandle<usize>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish for up to
    /// `server.shutdown_timeout`, and returns how many connections were still
    /// busy when the deadline cut them off.
    pub async fn stop(self) -> usize {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}

/// Binds `config.listen`, serves until stopped, and reloads the key set
/// every `keys.reload_interval` and on SIGHUP.
pub async fn start(config: &Config, keys: KeyStore) -> Result<Running, StartError> {
    let gateway = Arc::new(Gateway::new(config, keys)?);
    let bind = |source| StartError::Bind {
        addr: config.listen,
        source,
    };
    let listener = TcpListener::bind(config.listen).await.map_err(bind)?;
    let mut running = serve(listener, gateway, Some(config.keys.reload_interval)).map_err(bind)?;
    if let Some(admin) = &config.admin {
        // Its own socket, never the public one; stopped with it.
        let builder = http1_builder(&running.gateway.server_config);
        let bound = crate::endpoints::admin::start(
            running.gateway.clone(),
            admin,
            builder,
            running.stop.subscribe(),
        )
        .await
        .map_err(|source| StartError::Bind {
            addr: admin.listen,
            source,
        })?;
        running.admin = Some(bound.addr);
    }
    Ok(running)
}

/// The HTTP/1 settings of every client connection (the admin listener's
/// too, which keeps hyper's own head deadline).
fn http1_builder(limits: &ServerConfig) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    b
}

/// The HTTP/2 settings of a TLS connection that chose h2. The flow-control
/// windows, the adaptive window, the frame size and the send buffer are
/// hyper's own: on the traffic a gateway carries (small requests and
/// answers, many streams a connection) none of them, nor a stream limit
/// of 100 instead of 256, changed the CPU a request costs when measured
/// (benches/README.md); neither did turning off the keep-alive pings,
/// which find peers that vanished.
fn http2_builder(limits: &ServerConfig) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

/// The per-connection service: every request of the connection goes down
/// [`handle`] with the connection's address and lease. No head is due
/// while its response is made and sent.
fn service(
    gw: Arc<Gateway>,
    conn: Arc<Conn>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Served>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Served>, Infallible>> + Send,
> + Clone {
    service_fn(move |req| {
        conn.requests.fetch_add(1, Ordering::Relaxed);
        conn.head.busy();
        let (gw, conn) = (gw.clone(), conn.clone());
        async move {
            let res = handle(gw, req, &conn).await;
            let upgraded = res.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            Ok::<_, Infallible>(res.map(|body| Served::new(body, conn, upgraded)))
        }
    })
}

/// A request's answer, boxed: what an HTTP/2 stream waits on.
type BoxedAnswer =
    Pin<Box<dyn std::future::Future<Output = Result<Response<Served>, Infallible>> + Send>>;

/// Drives one connection to its end. When the gateway stops accepting, the
/// connection is asked to finish gracefully (`drain`: answer what is in
/// flight, then close); when the shutdown deadline passes, it is dropped.
///
/// With `idle`, the connection is also drained once a whole period passes
/// without a new request on it (so after one to two periods of silence).
/// An idle HTTP/1.1 connection is closed by its socket's head deadline
/// ([`ClientIo`]); an HTTP/2 client that answers pings would otherwise hold its connection
/// slot for ever.
async fn drive<C>(
    served: C,
    drain: impl FnOnce(Pin<&mut C>),
    mut stopping: watch::Receiver<bool>,
    conn: &Conn,
    idle: Option<Duration>,
) where
    C: std::future::Future<Output = Result<(), hyper::Error>>,
{
    let mut served = std::pin::pin!(served);
    let mut drain = Some(drain);
    // Only HTTP/2 connections pay for a timer.
    let mut tick = idle.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
    let mut seen = 0;
    let result = loop {
        tokio::select! {
            result = served.as_mut() => break result,
            // An error is a dropped sender: the gateway is stopping too.
            _ = OnWake::new(stopping.wait_for(|s| *s)), if drain.is_some() => {
                if let Some(drain) = drain.take() {
                    drain(served.as_mut());
                }
            }
            Some(_) = next_tick(&mut tick), if drain.is_some() => {
                let now = conn.requests.load(Ordering::Relaxed);
                if now == seen {
                    if let Some(drain) = drain.take() {
                        tracing::debug!("idle HTTP/2 connection closed");
                        drain(served.as_mut());
                    }
                }
                seen = now;
            }
            () = OnWake::new(conn.lease.cut()) => break Ok(()),
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A future polled only when its own waker fired (and once at first).
///
/// A connection's stop signals wait beside the connection itself, which
/// wakes several times a request; a watch channel's future takes a lock
/// shared by every connection each time it is polled, so polling them on
/// every wake-up cost two shared locks per wake-up for signals that fire
/// once in the gateway's life.
struct OnWake<F> {
    inner: Pin<Box<F>>,
    flag: Arc<WokenFlag>,
}

/// Whether the inner future was woken, and whom to wake then.
struct WokenFlag {
    woken: std::sync::atomic::AtomicBool,
    outer: futures_util::task::AtomicWaker,
}

impl std::task::Wake for WokenFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.outer.wake();
    }
}

impl<F: std::future::Future> OnWake<F> {
    fn new(inner: F) -> Self {
        OnWake {
            inner: Box::pin(inner),
            flag: Arc::new(WokenFlag {
                woken: std::sync::atomic::AtomicBool::new(true),
                outer: futures_util::task::AtomicWaker::new(),
            }),
        }
    }
}

impl<F: std::future::Future> std::future::Future for OnWake<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // First the waker, then the flag: a wake between the two still
        // reaches this task.
        self.flag.outer.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = std::task::Waker::from(self.flag.clone());
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// The next tick of `tick`, or `None` at once when there is no timer.
async fn next_tick(tick: &mut Option<tokio::time::Interval>) -> Option<()> {
    match tick {
        Some(t) => {
            t.tick().await;
            Some(())
        }
        None => None,
    }
}

/// Serves `gateway` on an already bound listener, with its background
/// tasks ([`spawn_tasks`]; the key set reloaded every `reload`, if given).
pub fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    reload: Option<Duration>,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    spawn_tasks(&gateway, reload, &stop);
    let gw = gateway.clone();
    let task = tokio::spawn(async move {
        let limits = gw.server_config.clone();
        let mut builder = http1_builder(&limits);
        // The socket keeps the head deadline instead (`ClientIo`): the
        // same rule without a timer made and dropped per request.
        builder.header_read_timeout(None);
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        // Turns true when the shutdown deadline passes: every connection
        // and tunnel still open is dropped.
        let (cut, cut_rx) = watch::channel(false);
        loop {
            // A slot first: at the cap, clients wait in the kernel's backlog
            // instead of costing a task and buffers each.
            let slot = tokio::select! {
                _ = stopped.changed() => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let gw = gw.clone();
            let cut = cut_rx.clone();
            let stopping = stopped.clone();
            let builder = builder.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                let addr = match gw.tls {
                    Some(_) => ClientAddr::new(peer.ip()).over_tls(),
                    None => ClientAddr::new(peer.ip()),
                };
                let lease = Arc::new(Lease::new(slot, cut));
                let conn = Arc::new(Conn::new(addr, lease, limits.header_timeout));
                let stream = ClientIo::new(
                    stream,
                    conn.clone(),
                    limits.send_timeout,
                    gw.metrics.refusals.get(Refusal::SlowReader).cloned(),
                );
                let Some(tls) = gw.tls.as_ref().map(Tls::acceptor) else {
                    let served = builder
                        .serve_connection(TokioIo::new(stream), service(gw, conn.clone()))
                        .with_upgrades();
                    return drive(served, |c| c.graceful_shutdown(), stopping, &conn, None).await;
                };
                // The handshake is bounded like a request head (the one
                // that is due, which the socket's reads keep too).
                let Ok(Ok(stream)) =
                    tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await
                else {
                    return;
                };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    conn.head.off();
                } else {
                    conn.head.wait_from(tokio::time::Instant::now());
                }
                let io = TokioIo::new(stream);
                if h2 {
                    // Each request's future boxed: hyper spawns a task for
                    // every HTTP/2 stream with the service's future inside
                    // it, and the pipeline's future is several kilobytes,
                    // which were copied as the stream's task was built and
                    // spawned; boxed, a pointer moves, and the task is
                    // small. HTTP/1 keeps its request's future inside the
                    // connection's own, with no spawn.
                    let inner = service(gw, conn.clone());
                    let service = service_fn(move |req| {
                        Box::pin(hyper::service::Service::call(&inner, req)) as BoxedAnswer
                    });
                    let served = http2_builder(&limits).serve_connection(io, service);
                    let idle = Some(limits.header_timeout);
                    drive(served, |c| c.graceful_shutdown(), stopping, &conn, idle).await;
                } else {
                    let service = service(gw, conn.clone());
                    let served = builder.serve_connection(io, service).with_upgrades();
                    drive(served, |c| c.graceful_shutdown(), stopping, &conn, None).await;
                }
            });
        }
        drop(listener);
        let busy = |slots: &Semaphore| {
            limits
                .max_connections
                .saturating_sub(slots.available_permits())
        };
        tracing::info!(connections = busy(&slots), "stopped accepting; draining");
        // Every slot back means every connection and tunnel has ended.
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all)).await;
        let left = match drained {
            Ok(_) => 0,
            Err(_) => {
                let left = busy(&slots);
                tracing::warn!(
                    connections = left,
                    "shutdown deadline passed; closing busy connections"
                );
                left
            }
        };
        let _ = cut.send(true);
        left
    });
    Ok(Running {
        addr,
        admin: None,
        gateway,
        stop,
        task,
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
