//! The shared state of a running gateway, built once from the config.
//!
//! Everything a request needs (tokens, routes, providers, the session
//! store, limits, metrics) hangs off one [`Gateway`], shared by every
//! connection behind an `Arc`. What changes while it runs (the key set,
//! the TLS pair) is swapped atomically inside its owner and re-read by the
//! reloader here, on a tick and on SIGHUP.

pub mod metrics;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use tokio::sync::watch;

use crate::config::tls::{Tls, TlsReload};
use crate::config::{Config, ConfigError, Platform, ServerConfig, SessionsConfig};
use crate::forward::occupancy::Occupancy;
use crate::forward::proxy::Proxy;
use crate::outbound::kept::Share;
use crate::pipeline::headers::RequestIds;
use crate::pipeline::limits::{LoginLimiter, UserLimiter};
use crate::pipeline::routes::Routes;
use crate::sessions::revoked::RevokedSet;
use crate::sessions::{self, Store};
use crate::signin::enrich::{Enricher, Grants};
use crate::signin::providers::{self, Providers};
use crate::telemetry::audit::{Audit, Event, KeysOutcome, Queued};
use crate::tokens::keys::{KeyStore, Reload};
use crate::tokens::Tokens;
use crate::wechat::token::{AccessTokens, AppConfig, TokenKind, TokenMetrics};
use crate::wechat::WxClient;
use metrics::Metrics;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A provider's client could not be built.
    #[error(transparent)]
    Providers(#[from] providers::ProviderSetupError),
    /// The session store could not be set up.
    #[error(transparent)]
    Sessions(#[from] sessions::StoreSetupError),
    /// The TLS pair did not load.
    #[error(transparent)]
    Tls(#[from] ConfigError),
    /// The trace exporter could not be built.
    #[error(transparent)]
    Tracing(#[from] crate::telemetry::traces::TracingSetupError),
    /// The listen address could not be bound.
    #[error("listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The config file static grants are re-read from, and when it last changed.
#[derive(Debug)]
struct GrantsSource {
    path: PathBuf,
    stamp: Mutex<Option<SystemTime>>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Everything the request path needs, built once.
#[derive(Debug)]
pub struct Gateway {
    /// Token issuing and verification.
    pub tokens: Tokens,
    /// Code exchange, by appid.
    pub providers: Providers,
    /// The user service, when `[enrich]` is configured.
    pub enricher: Option<Enricher>,
    /// Static role grants, replaced when the config file's change.
    pub grants: ArcSwap<Grants>,
    /// The WeChat access token of each WeChat app.
    pub wechat: AccessTokens,
    /// Login codes of the last minute: one exchange each, retries.
    pub codes: crate::signin::codes::Codes,
    grants_source: Option<GrantsSource>,
    /// The route table.
    pub routes: Routes,
    /// The upstream client.
    pub proxy: Proxy,
    /// Every request's `X-Request-Id`, when the client sent no sane one.
    pub request_ids: RequestIds,
    /// Login-session state, for refresh and logout.
    pub sessions: Store,
    /// Sessions ended while their access tokens may live: checked on every
    /// authenticated request.
    pub revoked: Arc<RevokedSet>,
    /// `[sessions]` as configured: device classes, limits.
    pub sessions_config: SessionsConfig,
    /// Per-client-IP limit on logins.
    pub login_limiter: LoginLimiter,
    /// Per-user limit on `/auth/sessions` and `/auth/sessions/{sid}`.
    pub sessions_limiter: UserLimiter,
    /// Calls of WeChat's services on a session, per user
    /// (`/auth/phone`, `/auth/wechat/*`).
    pub wechat_limiter: UserLimiter,
    /// Requests in flight per client address.
    pub in_flight: Occupancy<IpAddr>,
    /// Open WebSocket tunnels per user (or anonymous client address).
    pub tunnels: Occupancy<Box<str>>,
    /// Connection and request limits.
    pub server_config: ServerConfig,
    /// Every Prometheus series.
    pub metrics: Metrics,
    /// Inbound TLS, when configured.
    pub tls: Option<Tls>,
    /// `[web]`: browser sign-in and cookie sessions, when configured.
    pub web: Option<crate::signin::web::setup::Web>,
    /// Where audit events go.
    pub audit: Audit,
    /// OpenTelemetry traces, when `[tracing]` is configured; `None` costs
    /// the request path nothing more than the test.
    pub tracing: Option<crate::telemetry::traces::Tracing>,
    /// `[audit]`, and the queue of events for its stream, until the stream
    /// writer takes it.
    audit_stream: (
        crate::config::AuditConfig,
        Mutex<Option<tokio::sync::mpsc::Receiver<Queued>>>,
    ),
}

impl Gateway {
    /// Builds the gateway of `config` around its key store.
    pub fn new(config: &Config, store: KeyStore) -> Result<Gateway, StartError> {
        let store = Arc::new(store);
        let mut metrics = Metrics::new(config);
        // App access tokens are shared through the session store's Redis,
        // when there is one.
        let share = config
            .sessions
            .redis_url
            .as_ref()
            .and_then(|url| Share::new(url.expose()));
        let wechat = wechat_tokens(
            config,
            std::mem::take(&mut metrics.wechat_tokens),
            share.clone(),
        )?;
        let server = &config.server;
        let (audit, queue) = match config.audit.redis_stream {
            Some(_) => {
                let (audit, queue) = Audit::with_stream(metrics.audit_dropped.clone());
                (audit, Some(queue))
            }
            None => (Audit::log_only(), None),
        };
        let tracing = match &config.tracing {
            Some(t) => Some(crate::telemetry::traces::Tracing::new(
                t,
                providers::outbound_client()?,
                metrics.spans_dropped.clone(),
            )?),
            None => None,
        };
        Ok(Gateway {
            tracing,
            audit,
            audit_stream: (config.audit.clone(), Mutex::new(queue)),
            tokens: Tokens::new(config.tokens.clone(), store)
                .with_cache_counters(metrics.cache_hits.clone(), metrics.cache_misses.clone()),
            providers: Providers::new(&config.providers)?.sharing(share),
            enricher: match &config.enrich {
                Some(e) => Some(Enricher::new(e.clone(), providers::outbound_client()?)),
                None => None,
            },
            grants: ArcSwap::from_pointee(Grants::new(&config.roles)),
            wechat,
            codes: crate::signin::codes::Codes::new(),
            grants_source: config.source.clone().map(|path| GrantsSource {
                stamp: Mutex::new(modified(&path)),
                path,
            }),
            routes: Routes::new(&config.routes, server.upstream_max_connections),
            proxy: Proxy::new(),
            request_ids: RequestIds::new(),
            sessions: Store::new(&config.sessions)?,
            revoked: Arc::new(RevokedSet::new(
                config.tokens.access_ttl + config.tokens.leeway,
                metrics.revoked.clone(),
            )),
            sessions_config: config.sessions.clone(),
            login_limiter: LoginLimiter::new(server.login_per_minute, server.login_burst),
            sessions_limiter: UserLimiter::default(),
            wechat_limiter: UserLimiter::new(
                crate::pipeline::limits::WECHAT_PER_MINUTE,
                crate::pipeline::limits::WECHAT_BURST,
            ),
            in_flight: Occupancy::new(server.max_requests_per_ip),
            tunnels: Occupancy::new(server.max_tunnels_per_user),
            server_config: server.clone(),
            metrics,
            tls: config.tls.as_ref().map(Tls::new).transpose()?,
            web: config
                .web
                .as_ref()
                .map(|w| crate::signin::web::setup::Web::new(w, &config.providers))
                .transpose()?,
        })
    }

    /// Re-reads the TLS certificate pair if its files changed, and counts
    /// the outcome. Runs on the key set's reload tick and on SIGHUP.
    pub fn reload_tls(&self) -> TlsReload {
        let Some(tls) = &self.tls else {
            return TlsReload::Unchanged;
        };
        let outcome = tls.reload_if_changed();
        self.metrics.tls_reloads.increment(outcome);
        outcome
    }

    /// Re-reads the static role grants if the config file changed. A file
    /// that does not parse is refused whole and logged; the grants in force
    /// stay. Returns whether the grants were replaced.
    pub fn reload_grants(&self) -> bool {
        let Some(source) = &self.grants_source else {
            return false;
        };
        let now = modified(&source.path);
        let Ok(mut stamp) = source.stamp.lock() else {
            return false;
        };
        if *stamp == now {
            return false;
        }
        *stamp = now;
        match crate::config::grants_of(&source.path) {
            Ok(grants) => {
                self.grants.store(Arc::new(Grants::new(&grants)));
                tracing::info!(grants = grants.len(), "static role grants reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "static role grants refused; the previous ones stay");
                false
            }
        }
    }

    /// One reload: the key set (dropping verifications of a replaced set),
    /// idle login- and sessions-limiter entries, the TLS pair, the static
    /// role grants.
    fn reload(&self) {
        let keys = self.tokens.keys();
        let before = keys.load().set.current().kid().to_owned();
        let refused_before = keys
            .stats
            .refused
            .load(std::sync::atomic::Ordering::Relaxed);
        let outcome = keys.reload();
        if outcome == Reload::Replaced {
            self.tokens.clear_cache();
        }
        // Refusals of the same broken file are reported once, as counted.
        let reported = match &outcome {
            Reload::Replaced => Some((KeysOutcome::Replaced, None)),
            Reload::Refused(reason)
                if keys
                    .stats
                    .refused
                    .load(std::sync::atomic::Ordering::Relaxed)
                    != refused_before =>
            {
                Some((KeysOutcome::Refused, Some(reason.as_str())))
            }
            _ => None,
        };
        if let Some((outcome, reason)) = reported {
            let loaded = keys.load();
            let kid_of = |state: jwks::KeyState| {
                loaded
                    .set
                    .entries()
                    .iter()
                    .find(|e| e.state == state)
                    .map(|e| e.key.kid())
            };
            let current = kid_of(jwks::KeyState::Current);
            self.audit.emit(Event::KeysReloaded {
                outcome,
                current,
                next: kid_of(jwks::KeyState::Next),
                keys: loaded.set.entries().len(),
                rotated: current != Some(before.as_str()),
                reason,
            });
        }
        self.login_limiter.forget_idle();
        self.sessions_limiter.forget_idle();
        self.wechat_limiter.forget_idle();
        self.revoked.sweep();
        self.reload_tls();
        self.reload_grants();
    }
}

impl crate::sessions::redis::Synced for Gateway {
    fn store(&self) -> &Store {
        &self.sessions
    }

    fn revoked(&self) -> &crate::sessions::revoked::RevokedSet {
        &self.revoked
    }
}

/// The token keeper of every WeChat app and third-party platform, sharing
/// through `share` (the session store's Redis, when there is one).
fn wechat_tokens(
    config: &Config,
    mut metrics: Vec<(String, TokenMetrics)>,
    share: Option<Share>,
) -> Result<AccessTokens, StartError> {
    let apps = config
        .providers
        .iter()
        .filter_map(|p| {
            let kind = match p.component {
                Some(_) => TokenKind::Component,
                None if p.platform == Platform::wechat() => TokenKind::Stable,
                None => return None,
            };
            let i = metrics.iter().position(|(appid, _)| *appid == p.appid)?;
            let (_, m) = metrics.swap_remove(i);
            let app = AppConfig {
                appid: &p.appid,
                kind,
                secret: p.secret()?,
                base_url: &p.base_url,
                timeout: p.timeout,
            };
            Some((app, m))
        })
        .collect();
    Ok(AccessTokens::new(
        apps,
        WxClient::new(providers::outbound_client()?),
        share,
    ))
}

/// Starts every background task of a running gateway, each ended when
/// `stopped` turns true: the revoked set kept in step with the other
/// replicas (with Redis), and, given a `reload` interval, the reloader. A
/// new background task starts here.
pub fn spawn_tasks(gw: &Arc<Gateway>, reload: Option<Duration>, stopped: &watch::Sender<bool>) {
    crate::sessions::redis::spawn_sync(gw.clone(), stopped.subscribe());
    spawn_audit_stream(gw.clone(), stopped.subscribe());
    if let Some(tracing) = &gw.tracing {
        tracing.spawn_export(stopped.subscribe());
    }
    if let Some(every) = reload {
        spawn_reloader(gw.clone(), every, stopped.subscribe());
    }
}

/// Appends the queued audit events to `[audit] redis_stream`, one `XADD`
/// each (fields `event` and `line`), until `stopped` turns true. An event
/// Redis does not take is dropped and counted: the log line has it.
fn spawn_audit_stream(gw: Arc<Gateway>, mut stopped: watch::Receiver<bool>) {
    let (config, queue) = &gw.audit_stream;
    let Some(stream) = config.redis_stream.clone() else {
        return;
    };
    let maxlen = config.stream_maxlen;
    let Some(mut queue) = queue.lock().ok().and_then(|mut q| q.take()) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let (event, line) = tokio::select! {
                _ = stopped.changed() => break,
                next = queue.recv() => match next {
                    Some(queued) => queued,
                    None => break,
                },
            };
            let appended = match &gw.sessions {
                Store::Redis(redis) => {
                    redis
                        .append(&stream, maxlen, &[("event", event), ("line", &line)])
                        .await
                }
                Store::Memory(_) => Err(crate::sessions::Unavailable),
            };
            if appended.is_err() {
                gw.metrics.audit_dropped.increment(1);
            }
        }
    });
}

/// Re-reads the key set every `every` and at once on SIGHUP, until
/// `stopped` turns true; closes stale idle upstream connections and renews
/// the app access tokens (WeChat's, its third-party platforms', Feishu's)
/// that are due on the way.
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
            gw.reload();
            gw.proxy.upstreams().sweep();
            gw.wechat.renew_due().await;
            gw.providers.renew_due().await;
        }
    });
}
