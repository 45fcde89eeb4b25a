//! The registry: every Prometheus series of one gateway, served at
//! `GET /metrics`.
//!
//! Each gateway owns its recorder (nothing global), so several gateways in
//! one process, as in the tests, count apart. The registry builds each
//! layer's series from the config at start-up and hands them out as
//! handles ([`crate::telemetry`]). Key-set state changes shape at every
//! rotation, so it is rendered fresh from the key store at each scrape
//! instead of being kept as series that would go stale.

use metrics::{Counter, Gauge, Histogram, Key, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::config::tls::TlsReload;
use crate::config::{Config, Platform};
use crate::signin::enrich::EnrichMetrics;
use crate::signin::providers::ExchangeMetrics;
use crate::telemetry::metrics::{
    Counters, Csrf, Label, Own, Refusal, RevokedMetrics, RouteMetrics, SessionOp, WebLogin,
};
use crate::tokens::keys::KeyStore;
use crate::tokens::AuthFailure;
use crate::wechat::risk::RiskMetrics;
use crate::wechat::token::TokenMetrics;

static META: Metadata<'static> = Metadata::new("minigate", Level::INFO, Some("minigate"));

/// Latency buckets, in seconds: from a loopback upstream to a slow one.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every series of one gateway.
pub struct Metrics {
    handle: PrometheusHandle,
    /// By proxied route, in the order of the route table's config.
    routes: Vec<RouteMetrics>,
    /// By own endpoint, in the order of [`Own::ALL`].
    endpoints: Vec<RouteMetrics>,
    /// Refused access tokens, by reason.
    pub auth_failures: Counters<AuthFailure>,
    /// What the gateway refused or ended to protect itself.
    pub refusals: Counters<Refusal>,
    /// Requests that passed authentication with a token.
    pub auth_ok: Counter,
    /// Verified-token cache hits.
    pub cache_hits: Counter,
    /// Verified-token cache misses (full verifications).
    pub cache_misses: Counter,
    /// By platform.
    exchanges: Vec<(Platform, ExchangeMetrics)>,
    /// The user service's answers.
    pub enrich: EnrichMetrics,
    /// The WeChat access token of each WeChat app, by appid; taken by the
    /// token keeper when the gateway is built.
    pub wechat_tokens: Vec<(String, TokenMetrics)>,
    /// WeChat's risk rank asked at login, by appid of each provider with
    /// `risk_scene`.
    pub wechat_risk: Vec<(String, RiskMetrics)>,
    /// Session store failures, by operation.
    pub session_errors: Counters<SessionOp>,
    /// TLS certificate reloads, by outcome.
    pub tls_reloads: Counters<TlsReload>,
    /// The revoked-session set.
    pub revoked: RevokedMetrics,
    /// Browser sign-ins begun: redirects to an authorize page.
    pub web_starts: Counter,
    /// Browser sign-ins' returns, by outcome.
    pub web_logins: Counters<WebLogin>,
    /// Cookie-authenticated unsafe requests refused for their origin.
    pub csrf: Counters<Csrf>,
    /// Audit events not appended to the `[audit]` stream.
    pub audit_dropped: Counter,
    /// Trace spans not exported (`[tracing]`).
    pub spans_dropped: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A counter per value of `L`, named `name`, labelled `key` (after `extra`).
fn by<L: Label>(
    counter: impl Fn(&'static str, Vec<metrics::Label>) -> Counter,
    name: &'static str,
    key: &'static str,
    extra: &[metrics::Label],
) -> Counters<L> {
    let by = L::ALL
        .iter()
        .map(|v| {
            let mut labels = extra.to_vec();
            labels.push(metrics::Label::new(key, v.label()));
            counter(name, labels)
        })
        .collect();
    Counters::new(by)
}

impl Metrics {
    /// Registers every series of a gateway with this config.
    pub fn new(config: &Config) -> Metrics {
        let routes = &config.routes;
        let mut platforms: Vec<Platform> = Vec::new();
        for p in &config.providers {
            if !platforms.contains(&p.platform) {
                platforms.push(p.platform);
            }
        }
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let counter = |name: &'static str, labels: Vec<metrics::Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &META)
        };
        let histogram = |name: &'static str, labels: Vec<metrics::Label>| {
            recorder.register_histogram(&Key::from_parts(name, labels), &META)
        };
        let route = |label: &str, proxied: bool, rules: bool| RouteMetrics {
            classes: ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
                counter(
                    "minigate_requests_total",
                    vec![
                        metrics::Label::new("route", label.to_owned()),
                        metrics::Label::new("class", class),
                    ],
                )
            }),
            upstream: if proxied {
                histogram(
                    "minigate_upstream_duration_seconds",
                    vec![metrics::Label::new("route", label.to_owned())],
                )
            } else {
                Histogram::noop()
            },
            tunnels: if proxied {
                recorder.register_gauge(
                    &Key::from_parts(
                        "minigate_websocket_tunnels",
                        vec![metrics::Label::new("route", label.to_owned())],
                    ),
                    &META,
                )
            } else {
                Gauge::noop()
            },
            decisions: if rules {
                by(
                    counter,
                    "minigate_authz_decisions_total",
                    "outcome",
                    &[metrics::Label::new("route", label.to_owned())],
                )
            } else {
                Counters::noop()
            },
        };
        let routes = routes
            .iter()
            .map(|r| route(&r.prefix, true, r.allow.is_some()))
            .collect();
        let endpoints = Own::ALL
            .iter()
            .map(|e| route(e.label(), false, false))
            .collect();
        let enrich = EnrichMetrics {
            latency: histogram("minigate_enrich_duration_seconds", vec![]),
            failures: by(counter, "minigate_enrich_failures_total", "kind", &[]),
            denied: counter("minigate_enrich_denied_total", vec![]),
        };
        let auth_failures = by(counter, "minigate_auth_failures_total", "reason", &[]);
        let refusals = by(counter, "minigate_refused_total", "reason", &[]);
        let wechat_tokens = config
            .providers
            .iter()
            // A third-party platform's component_access_token too.
            .filter(|p| p.platform == Platform::wechat() || p.component.is_some())
            .map(|p| {
                let app = metrics::Label::new("appid", p.appid.clone());
                let m = TokenMetrics {
                    renewals: counter("minigate_wechat_token_renewals_total", vec![app.clone()]),
                    failures: by(
                        counter,
                        "minigate_wechat_token_failures_total",
                        "kind",
                        std::slice::from_ref(&app),
                    ),
                    expiry: recorder.register_gauge(
                        &Key::from_parts(
                            "minigate_wechat_token_expiry_timestamp_seconds",
                            vec![app],
                        ),
                        &META,
                    ),
                };
                (p.appid.clone(), m)
            })
            .collect();
        let wechat_risk = config
            .providers
            .iter()
            .filter(|p| p.risk.is_some())
            .map(|p| {
                let app = metrics::Label::new("appid", p.appid.clone());
                let m = RiskMetrics {
                    failures: by(
                        counter,
                        "minigate_wechat_risk_failures_total",
                        "kind",
                        std::slice::from_ref(&app),
                    ),
                    refused: counter("minigate_wechat_risk_refusals_total", vec![app]),
                };
                (p.appid.clone(), m)
            })
            .collect();
        let exchanges = platforms
            .iter()
            .map(|p| {
                let platform = metrics::Label::new("platform", p.name());
                let m = ExchangeMetrics {
                    latency: histogram(
                        "minigate_code_exchange_duration_seconds",
                        vec![platform.clone()],
                    ),
                    errors: by(
                        counter,
                        "minigate_code_exchange_errors_total",
                        "error",
                        &[platform],
                    ),
                };
                (*p, m)
            })
            .collect();
        let session_errors = by(counter, "minigate_session_store_errors_total", "op", &[]);
        let tls_reloads = by(counter, "minigate_tls_reloads_total", "outcome", &[]);
        let revoked = RevokedMetrics {
            size: recorder.register_gauge(
                &Key::from_parts("minigate_revoked_sessions", Vec::<metrics::Label>::new()),
                &META,
            ),
            lag: histogram("minigate_revocation_lag_seconds", vec![]),
            resyncs: by(counter, "minigate_revoked_resyncs_total", "kind", &[]),
        };
        Metrics {
            web_starts: counter("minigate_web_login_starts_total", vec![]),
            web_logins: by(counter, "minigate_web_logins_total", "outcome", &[]),
            csrf: by(counter, "minigate_csrf_refusals_total", "reason", &[]),
            audit_dropped: counter("minigate_audit_stream_dropped_total", vec![]),
            spans_dropped: counter("minigate_trace_spans_dropped_total", vec![]),
            revoked,
            tls_reloads,
            auth_ok: counter("minigate_auth_success_total", vec![]),
            cache_hits: counter("minigate_token_cache_hits_total", vec![]),
            cache_misses: counter("minigate_token_cache_misses_total", vec![]),
            handle,
            routes,
            endpoints,
            auth_failures,
            refusals,
            exchanges,
            enrich,
            wechat_tokens,
            wechat_risk,
            session_errors,
        }
    }

    /// The risk-rank counters of the app `appid`, if it asks for ranks.
    pub fn risk(&self, appid: &str) -> Option<&RiskMetrics> {
        self.wechat_risk
            .iter()
            .find(|(a, _)| a == appid)
            .map(|(_, m)| m)
    }

    /// The counters of the route at `index` of the route table's config.
    #[inline]
    pub fn route(&self, index: usize) -> &RouteMetrics {
        self.routes
            .get(index)
            .unwrap_or_else(|| self.own(Own::Unmatched))
    }

    /// The counters of one of the gateway's own endpoints.
    #[inline]
    pub fn own(&self, endpoint: Own) -> &RouteMetrics {
        let i = Own::ALL.iter().position(|e| *e == endpoint).unwrap_or(0);
        &self.endpoints[i]
    }

    /// The exchange metrics of `platform`.
    pub fn exchange(&self, platform: Platform) -> Option<&ExchangeMetrics> {
        self.exchanges
            .iter()
            .find(|(p, _)| *p == platform)
            .map(|(_, m)| m)
    }

    /// The whole exposition: every registered series, then the key set as
    /// it is loaded now.
    pub fn render(&self, keys: &KeyStore) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signin::enrich::EnrichFailure;
    use crate::signin::providers::ExchangeError;
    use crate::telemetry::metrics::{Decision, Resync};
    use crate::wechat::client::WxError;

    /// Every value of `L` is named in `doc`, as `` `value` ``.
    fn documented<L: Label + std::fmt::Debug>(doc: &str) -> Vec<String> {
        L::ALL
            .iter()
            .filter(|v| !doc.contains(&format!("`{}`", v.label())))
            .map(|v| format!("{v:?} `{}`", v.label()))
            .collect()
    }

    #[test]
    fn every_label_value_is_in_the_metrics_reference() {
        let doc = include_str!("../../../docs/metrics.md");
        let missing = [
            documented::<Own>(doc),
            documented::<Resync>(doc),
            documented::<AuthFailure>(doc),
            documented::<Refusal>(doc),
            documented::<WebLogin>(doc),
            documented::<Csrf>(doc),
            documented::<SessionOp>(doc),
            documented::<TlsReload>(doc),
            documented::<Decision>(doc),
            documented::<ExchangeError>(doc),
            documented::<EnrichFailure>(doc),
            documented::<WxError>(doc),
        ]
        .concat();
        assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
    }
}
