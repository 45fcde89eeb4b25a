//! Prometheus metrics, served at `GET /metrics`.
//!
//! Every series the request path touches is registered once, at start-up,
//! and kept as a handle: counting a request is an atomic add, with no label
//! hashing or registry lookup per request. Each gateway owns its recorder
//! (nothing global), so several gateways in one process, as in the tests,
//! count apart. Key-set state changes shape at every rotation, so it is
//! rendered fresh from the key store at each scrape instead of being kept
//! as series that would go stale.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::keys::KeyStore;

static META: Metadata<'static> = Metadata::new("minigate", Level::INFO, Some("minigate"));

/// Latency buckets, in seconds: from a loopback upstream to a slow one.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why an access token was refused, as a label. The verifier's messages are
/// fixed sentences; each maps to one short reason.
pub const AUTH_REASONS: [(&str, &str); 15] = [
    ("a bearer token is required", "missing"),
    ("token expired", "expired"),
    ("bad signature", "bad_signature"),
    ("wrong audience", "wrong_audience"),
    ("wrong issuer", "wrong_issuer"),
    ("unknown signing key", "unknown_kid"),
    ("algorithm not allowed", "bad_alg"),
    ("malformed token", "malformed"),
    ("wrong token type", "wrong_type"),
    ("unsupported token header", "forbidden_header"),
    ("token too large", "too_large"),
    ("invalid claims", "invalid_claims"),
    ("token not yet valid", "not_yet_valid"),
    ("token issued in the future", "issued_in_future"),
    ("", "other"),
];

/// The gateway's own endpoints, as route labels.
pub const ENDPOINTS: [&str; 8] = [
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
    "/.well-known/*",
    "/healthz+readyz",
    "/metrics",
    "unmatched",
    "refused-path",
];

/// Counters of one route: responses by status class (1xx..5xx), and the
/// upstream's time to response head.
#[derive(Debug)]
pub struct RouteMetrics {
    classes: [Counter; 5],
    /// Upstream time to response head (proxied routes only).
    pub upstream: Histogram,
    /// WebSocket tunnels open now (proxied routes only).
    pub tunnels: Gauge,
}

impl RouteMetrics {
    /// Counts one response of status `status`.
    #[inline]
    pub fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].increment(1);
    }
}

/// Code-exchange metrics of one platform.
#[derive(Debug)]
pub struct ExchangeMetrics {
    /// Time of each exchange, whatever its outcome.
    pub latency: Histogram,
    errors: Vec<(&'static str, Counter)>,
}

impl ExchangeMetrics {
    /// Counts a failed exchange by the contract's error code.
    pub fn error(&self, code: &str) {
        if let Some((_, c)) = self.errors.iter().find(|(k, _)| *k == code) {
            c.increment(1);
        }
    }
}

/// Every series of one gateway.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// By proxied route, in the order of the route table's config.
    pub routes: Vec<RouteMetrics>,
    /// By own endpoint, in the order of [`ENDPOINTS`].
    pub endpoints: Vec<RouteMetrics>,
    auth_failures: Vec<Counter>,
    /// Requests that passed authentication with a token.
    pub auth_ok: Counter,
    /// Verified-token cache hits.
    pub cache_hits: Counter,
    /// Verified-token cache misses (full verifications).
    pub cache_misses: Counter,
    /// By platform name.
    pub exchanges: Vec<(&'static str, ExchangeMetrics)>,
    session_errors: [Counter; 3],
    /// TLS certificate reloads: replaced, refused.
    pub tls_reloads: [Counter; 2],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The contract's provider error codes, as exchange error labels.
const EXCHANGE_ERRORS: [&str; 6] = [
    "invalid_code",
    "rate_limited",
    "risky_user",
    "provider_unavailable",
    "provider_timeout",
    "provider_error",
];

impl Metrics {
    /// Registers every series for these route prefixes and platforms.
    pub fn new(route_prefixes: &[&str], platforms: &[&'static str]) -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &META)
        };
        let histogram = |name: &'static str, labels: Vec<Label>| {
            recorder.register_histogram(&Key::from_parts(name, labels), &META)
        };
        let route = |label: &str, proxied: bool| RouteMetrics {
            classes: ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
                counter(
                    "minigate_requests_total",
                    vec![
                        Label::new("route", label.to_owned()),
                        Label::new("class", class),
                    ],
                )
            }),
            upstream: if proxied {
                histogram(
                    "minigate_upstream_duration_seconds",
                    vec![Label::new("route", label.to_owned())],
                )
            } else {
                Histogram::noop()
            },
            tunnels: if proxied {
                recorder.register_gauge(
                    &Key::from_parts(
                        "minigate_websocket_tunnels",
                        vec![Label::new("route", label.to_owned())],
                    ),
                    &META,
                )
            } else {
                Gauge::noop()
            },
        };
        let routes = route_prefixes.iter().map(|p| route(p, true)).collect();
        let endpoints = ENDPOINTS.iter().map(|e| route(e, false)).collect();
        let auth_failures = AUTH_REASONS
            .iter()
            .map(|(_, reason)| {
                counter(
                    "minigate_auth_failures_total",
                    vec![Label::new("reason", *reason)],
                )
            })
            .collect();
        let exchanges = platforms
            .iter()
            .map(|p| {
                let platform = || Label::new("platform", *p);
                let m = ExchangeMetrics {
                    latency: histogram("minigate_code_exchange_duration_seconds", vec![platform()]),
                    errors: EXCHANGE_ERRORS
                        .iter()
                        .map(|e| {
                            let labels = vec![platform(), Label::new("error", *e)];
                            (*e, counter("minigate_code_exchange_errors_total", labels))
                        })
                        .collect(),
                };
                (*p, m)
            })
            .collect();
        let session_errors = ["login", "refresh", "logout"].map(|op| {
            counter(
                "minigate_session_store_errors_total",
                vec![Label::new("op", op)],
            )
        });
        let tls_reloads = ["replaced", "refused"].map(|outcome| {
            counter(
                "minigate_tls_reloads_total",
                vec![Label::new("outcome", outcome)],
            )
        });
        Metrics {
            tls_reloads,
            auth_ok: counter("minigate_auth_success_total", vec![]),
            cache_hits: counter("minigate_token_cache_hits_total", vec![]),
            cache_misses: counter("minigate_token_cache_misses_total", vec![]),
            recorder,
            handle,
            routes,
            endpoints,
            auth_failures,
            exchanges,
            session_errors,
        }
    }

    /// Counts a refused access token by the verifier's message.
    pub fn auth_failure(&self, message: &str) {
        let i = AUTH_REASONS
            .iter()
            .position(|(m, _)| *m == message)
            .unwrap_or(AUTH_REASONS.len() - 1);
        self.auth_failures[i].increment(1);
    }

    /// The exchange metrics of `platform`.
    pub fn exchange(&self, platform: &str) -> Option<&ExchangeMetrics> {
        self.exchanges
            .iter()
            .find(|(p, _)| *p == platform)
            .map(|(_, m)| m)
    }

    /// Counts a session store failure during `op` (login, refresh, logout).
    pub fn session_error(&self, op: &str) {
        let i = match op {
            "login" => 0,
            "refresh" => 1,
            _ => 2,
        };
        self.session_errors[i].increment(1);
    }

    /// The whole exposition: every registered series, then the key set as
    /// it is loaded now.
    pub fn render(&self, keys: &KeyStore) -> String {
        let _ = &self.recorder;
        let mut out = self.handle.render();
        let loaded = keys.load();
        let _ = writeln!(
            out,
            "# HELP minigate_keyset_reloads_total Key set reloads by outcome.\n\
             # TYPE minigate_keyset_reloads_total counter\n\
             minigate_keyset_reloads_total{{outcome=\"replaced\"}} {}\n\
             minigate_keyset_reloads_total{{outcome=\"refused\"}} {}\n\
             # HELP minigate_keyset_key The keys of the loaded set, by kid, algorithm and state.\n\
             # TYPE minigate_keyset_key gauge",
            keys.stats.replaced.load(Relaxed),
            keys.stats.refused.load(Relaxed),
        );
        for e in loaded.set.entries() {
            let _ = writeln!(
                out,
                "minigate_keyset_key{{kid=\"{}\",alg=\"{}\",state=\"{}\"}} 1",
                e.key.kid(),
                e.key.alg().name(),
                e.state
            );
        }
        out
    }
}

/// Seconds, for histograms.
#[inline]
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
