//! Wiring: accept connections and send each request down its path.
//!
//! The whole path of a proxied request reads top to bottom in [`handle`]:
//! the gateway's own endpoints first, then route match, authenticate,
//! rewrite and forward, stream back. Everything a request needs is built
//! once at start-up into one [`Gateway`] shared by every connection.
//!
//! The accept loop is where hostile clients are held off: a cap on open
//! connections (a semaphore; beyond it clients wait in the listen backlog),
//! hyper's limits on the request head (431) and a deadline for it
//! (slow-loris). It also owns graceful shutdown: stop accepting, let every
//! in-flight request finish up to a deadline, close idle connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use tracing::Instrument as _;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::auth::authenticate;
use crate::config::{Config, ServerConfig};
use crate::endpoints;
use crate::error::{ApiError, Body};
use crate::keys::{KeyStore, Reload};
use crate::limits::LoginLimiter;
use crate::metrics::{Metrics, ENDPOINTS};
use crate::providers::Providers;
use crate::proxy::{request_id, ClientAddr, Conn, Proxy, REQUEST_ID};
use crate::routes::Routes;
use crate::sessions::Store;
use crate::tls::{Tls, TlsReload};
use crate::tokens::Identity;
use crate::tokens::Tokens;
use crate::tunnel::Lease;

/// Everything the request path needs, built once.
#[derive(Debug)]
pub struct Gateway {
    /// Token issuing and verification.
    pub tokens: Tokens,
    /// Code exchange, by appid.
    pub providers: Providers,
    /// The route table.
    pub routes: Routes,
    /// The upstream client.
    pub proxy: Proxy,
    /// Login-session state, for refresh and logout.
    pub sessions: Store,
    /// Per-client-IP limit on logins.
    pub login_limiter: LoginLimiter,
    /// Connection and request limits.
    pub server: ServerConfig,
    /// Every Prometheus series.
    pub metrics: Metrics,
    /// Inbound TLS, when configured.
    pub tls: Option<Tls>,
}

impl Gateway {
    /// Builds the gateway of `config` around its key store.
    pub fn new(config: &Config, store: KeyStore) -> Result<Gateway, String> {
        let store = Arc::new(store);
        let prefixes: Vec<&str> = config.routes.iter().map(|r| r.prefix.as_str()).collect();
        let mut platforms: Vec<&'static str> =
            config.providers.iter().map(|p| p.platform.name()).collect();
        platforms.dedup();
        let metrics = Metrics::new(&prefixes, &platforms);
        Ok(Gateway {
            tokens: Tokens::new(config.tokens.clone(), store)
                .with_cache_counters(metrics.cache_hits.clone(), metrics.cache_misses.clone()),
            providers: Providers::new(&config.providers)?,
            routes: Routes::new(&config.routes, config.server.upstream_max_connections),
            proxy: Proxy::new(),
            sessions: Store::new(&config.sessions)?,
            login_limiter: LoginLimiter::new(
                config.server.login_per_minute,
                config.server.login_burst,
            ),
            server: config.server.clone(),
            metrics,
            tls: config
                .tls
                .as_ref()
                .map(Tls::new)
                .transpose()
                .map_err(|e| e.to_string())?,
        })
    }

    /// Re-reads the TLS certificate pair if its files changed, and counts
    /// the outcome. Runs on the key set's reload tick and on SIGHUP.
    pub fn reload_tls(&self) -> TlsReload {
        let Some(tls) = &self.tls else {
            return TlsReload::Unchanged;
        };
        let outcome = tls.reload_if_changed();
        match outcome {
            TlsReload::Replaced => self.metrics.tls_reloads[0].increment(1),
            TlsReload::Refused => self.metrics.tls_reloads[1].increment(1),
            TlsReload::Unchanged => {}
        }
        outcome
    }
}

/// Refuses paths with dot segments (`/api/../admin`), plain or
/// percent-encoded: an upstream that normalises them would otherwise be
/// reached under a route whose auth policy was not the one applied.
fn has_dot_segment(path: &str) -> bool {
    if !path.contains('.') && !path.contains('%') {
        return false;
    }
    path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        dots == "." || dots == ".."
    })
}

/// Which counters a request is counted under, and what its access line says.
enum Counted<'a> {
    Endpoint(usize),
    Route(&'a crate::routes::Route),
}

/// One request, from route match to response.
pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>, conn: &Conn) -> Response<Body> {
    let peer = &conn.addr;
    let start = Instant::now();
    let request_id = request_id(req.headers(), gw.proxy.ids());
    // The access line's fields, gathered only when it will be written.
    let access = tracing::enabled!(target: "minigate::access", tracing::Level::INFO)
        .then(|| (req.method().clone(), req.uri().path().to_owned()));
    let span = tracing::info_span!("request", id = request_id.to_str().unwrap_or("-"));
    let (mut res, counted, subject) = dispatch(&gw, req, conn, &request_id)
        .instrument(span.clone())
        .await;
    let status = res.status().as_u16();
    let (metrics, label) = match counted {
        Counted::Endpoint(i) => (&gw.metrics.endpoints[i], ENDPOINTS[i]),
        Counted::Route(r) => (&gw.metrics.routes[r.index], r.prefix.as_str()),
    };
    metrics.count(status);
    res.headers_mut().insert(REQUEST_ID, request_id);
    if let Some((method, path)) = access {
        let _entered = span.enter();
        tracing::info!(
            target: "minigate::access",
            %method,
            path,
            route = label,
            status,
            ms = start.elapsed().as_secs_f64() * 1000.0,
            sub = subject.as_ref().map_or("-", |id| id.subject.as_str()),
            client = %peer.ip,
        );
    }
    res
}

/// Routes a request to an endpoint or an upstream; returns the response,
/// what to count it under, and the verified identity if there was one.
async fn dispatch<'g>(
    gw: &'g Gateway,
    req: Request<Incoming>,
    conn: &Conn,
    request_id: &HeaderValue,
) -> (Response<Body>, Counted<'g>, Option<Arc<Identity>>) {
    let own = |i: usize, r: Result<Response<Body>, ApiError>| {
        (
            r.unwrap_or_else(ApiError::into_response),
            Counted::Endpoint(i),
            None,
        )
    };
    match req.uri().path() {
        "/auth/login" => own(0, endpoints::login(gw, req, conn.addr.ip).await),
        "/auth/refresh" => own(1, endpoints::refresh(gw, req).await),
        "/auth/logout" => own(2, endpoints::logout(gw, req).await),
        "/.well-known/jwks.json" => own(3, endpoints::jwks(gw, &req)),
        "/.well-known/openid-configuration" => own(3, endpoints::discovery(gw, &req)),
        "/healthz" => own(4, Ok(endpoints::healthz())),
        "/readyz" => own(4, Ok(endpoints::readyz(gw))),
        "/metrics" => own(5, endpoints::metrics(gw, &req)),
        path if has_dot_segment(path) => own(
            7,
            Err(ApiError::InvalidRequest(
                "dot segments are not allowed in paths",
            )),
        ),
        path => match gw.routes.find(path) {
            None => own(6, Err(ApiError::NotFound)),
            Some(route) => match authenticate(route.auth, req.headers(), &gw.tokens) {
                Err(e) => {
                    gw.metrics.auth_failure(e.description());
                    (e.into_response(), Counted::Route(route), None)
                }
                Ok(identity) => {
                    if identity.is_some() {
                        gw.metrics.auth_ok.increment(1);
                    }
                    let res = gw
                        .proxy
                        .forward(
                            route,
                            req,
                            identity.as_deref(),
                            conn,
                            request_id,
                            &gw.metrics.routes[route.index],
                        )
                        .await;
                    (res, Counted::Route(route), identity)
                }
            },
        },
    }
}

/// A gateway serving on a socket.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
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

/// Re-reads the key set every `every` and at once on SIGHUP, until the
/// gateway stops. Verification results of a replaced set are dropped. The
/// same tick forgets idle clients of the login limiter.
fn spawn_reloader(gw: Arc<Gateway>, every: Duration, mut stopped: watch::Receiver<bool>) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tick.tick() => {}
                _ = hup => tracing::info!("SIGHUP: reloading the key set"),
            }
            if gw.tokens.keys().reload() == Reload::Replaced {
                gw.tokens.clear_cache();
            }
            gw.login_limiter.forget_idle();
            gw.reload_tls();
        }
    });
}

/// Binds `config.listen`, serves until stopped, and reloads the key set
/// every `keys.reload_interval` and on SIGHUP.
pub async fn start(config: &Config, keys: KeyStore) -> Result<Running, String> {
    let gateway = Arc::new(Gateway::new(config, keys)?);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listen {}: {e}", config.listen))?;
    let running = serve(listener, gateway)?;
    spawn_reloader(
        running.gateway.clone(),
        config.keys.reload_interval,
        running.stop.subscribe(),
    );
    Ok(running)
}

/// The HTTP/1 settings of every client connection.
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

/// The HTTP/2 settings of a TLS connection that chose h2.
fn http2_builder(limits: &ServerConfig) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

/// The per-connection service: every request of the connection goes down
/// [`handle`] with the connection's address and lease.
fn service(
    gw: Arc<Gateway>,
    conn: Arc<Conn>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    service_fn(move |req| {
        conn.requests.fetch_add(1, Ordering::Relaxed);
        let (gw, conn) = (gw.clone(), conn.clone());
        async move { Ok::<_, Infallible>(handle(gw, req, &conn).await) }
    })
}

/// Drives one connection to its end. When the gateway stops accepting, the
/// connection is asked to finish gracefully (`drain`: answer what is in
/// flight, then close); when the shutdown deadline passes, it is dropped.
///
/// With `idle`, the connection is also drained once a whole period passes
/// without a new request on it (so after one to two periods of silence).
/// hyper closes idle HTTP/1.1 connections by itself (`header_read_timeout`);
/// an HTTP/2 client that answers pings would otherwise hold its connection
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
            _ = stopping.wait_for(|s| *s), if drain.is_some() => {
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
            () = conn.lease.cut() => break Ok(()),
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
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

/// Serves `gateway` on an already bound listener.
pub fn serve(listener: TcpListener, gateway: Arc<Gateway>) -> Result<Running, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, mut stopped) = watch::channel(false);
    let gw = gateway.clone();
    let task = tokio::spawn(async move {
        let limits = gw.server.clone();
        let builder = http1_builder(&limits);
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
            let lease = Arc::new(Lease::new(slot, cut_rx.clone()));
            let stopping = stopped.clone();
            let builder = builder.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                let addr = ClientAddr::new(peer.ip());
                let Some(tls) = gw.tls.as_ref().map(Tls::acceptor) else {
                    let conn = Arc::new(Conn::new(addr, lease));
                    let served = builder
                        .serve_connection(TokioIo::new(stream), service(gw, conn.clone()))
                        .with_upgrades();
                    return drive(served, |c| c.graceful_shutdown(), stopping, &conn, None).await;
                };
                // The handshake is bounded like a request head.
                let Ok(Ok(stream)) =
                    tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await
                else {
                    return;
                };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let conn = Arc::new(Conn::new(addr.over_tls(), lease));
                let (io, service) = (TokioIo::new(stream), service(gw, conn.clone()));
                if h2 {
                    let served = http2_builder(&limits).serve_connection(io, service);
                    let idle = Some(limits.header_timeout);
                    drive(served, |c| c.graceful_shutdown(), stopping, &conn, idle).await;
                } else {
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
        gateway,
        stop,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments_are_found_plain_and_encoded() {
        for bad in [
            "/api/../admin",
            "/api/./x",
            "/api/%2e%2E/admin",
            "/a/.%2e",
            "/..",
        ] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for ok in ["/api/v1.2/file.txt", "/api/...", "/api/%41", "/"] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }
}
