//! OpenTelemetry traces (`[tracing]`): a server span per request, child
//! spans for its steps (the upstream call, the platform's code exchange,
//! the user service, the session store, WeChat's services), exported over
//! OTLP/HTTP (protobuf) to a collector.
//!
//! Without `[tracing]` the gateway holds no [`Tracing`], and the request
//! path only tests that it is `None`: no span, no context, no header work.
//!
//! With it, trace context (`traceparent`, `tracestate`, W3C Trace Context)
//! is believed only from a trusted proxy (`[server] trusted_proxies`, as
//! `X-Forwarded-For` is); from anyone else it is removed and a new trace
//! begins. New traces are sampled by `sample_ratio` of their trace id; a
//! trusted parent's decision is followed. Every proxied request carries a
//! `traceparent` of the gateway's upstream-call span to the upstream,
//! sampled or not, so the upstream continues the same trace.
//!
//! Ended spans go into a bounded queue ([`QUEUE`]) that one task drains in
//! batches to the exporter: a slow or dead collector never slows a request
//! nor grows memory; a span the queue cannot take, or a batch the collector
//! does not accept, is dropped and counted
//! (`minigate_trace_spans_dropped_total`).
//!
//! No attribute holds a token, a code, a key, a secret or a phone number:
//! spans carry methods, route prefixes, status codes, platforms, appids,
//! device classes, error codes and the request id.

use std::borrow::Cow;
use std::time::Duration;

use http::HeaderMap;
use metrics::Counter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc, watch};

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP base URL; `/v1/traces` is appended.
    pub otlp_endpoint: String,
    /// The share of new traces sampled, 0 to 1; a trusted parent's decision
    /// is followed instead.
    pub sample_ratio: f64,
    /// The `service.name` of the spans.
    pub service_name: String,
}

pub use opentelemetry::trace::FutureExt;

/// Ended spans waiting for export at most; past it they are dropped.
pub const QUEUE: usize = 2048;
/// Most spans in one export.
const BATCH: usize = 512;
/// How long the exporter waits for more spans before sending a batch.
const LINGER: Duration = Duration::from_millis(200);
/// The longest one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The trace context headers.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Why the tracer could not be built.
#[derive(Debug, thiserror::Error)]
#[error("tracing: the OTLP exporter could not be built: {0}")]
pub struct TracingSetupError(String);

/// The gateway's tracer, when `[tracing]` is configured.
pub struct Tracing {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    propagator: TraceContextPropagator,
    /// The exporter and the queue's receiving end, until the export task
    /// takes them.
    export: std::sync::Mutex<Option<(opentelemetry_otlp::SpanExporter, mpsc::Receiver<SpanData>)>>,
    dropped: Counter,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing").finish_non_exhaustive()
    }
}

/// The span processor: ended, sampled spans into the bounded queue.
#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<SpanData>,
    dropped: Counter,
}

impl SpanProcessor for Queue {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() && self.tx.try_send(span).is_err() {
            self.dropped.increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Tracing {
    /// The tracer of `config`, exporting with `client`; spans it drops
    /// count in `dropped`.
    pub fn new(
        config: &TracingConfig,
        client: reqwest::Client,
        dropped: Counter,
    ) -> Result<Tracing, TracingSetupError> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!(
                "{}/v1/traces",
                config.otlp_endpoint.trim_end_matches('/')
            ))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TracingSetupError(e.to_string()))?;
        // The exporter sends the resource with every batch; the provider
        // would hand it only to processors of its own kind.
        let resource = Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        exporter.set_resource(&resource);
        let (tx, rx) = mpsc::channel(QUEUE);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Queue {
                tx,
                dropped: dropped.clone(),
            })
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(resource)
            .build();
        Ok(Tracing {
            tracer: provider.tracer("minigate"),
            provider,
            propagator: TraceContextPropagator::new(),
            export: std::sync::Mutex::new(Some((exporter, rx))),
            dropped,
        })
    }

    /// Starts the task that exports the queued spans in batches, until
    /// `stopped` turns true (then what is queued is sent once more).
    pub fn spawn_export(&self, mut stopped: watch::Receiver<bool>) {
        let Some((exporter, mut rx)) = self.export.lock().ok().and_then(|mut e| e.take()) else {
            return;
        };
        let dropped = self.dropped.clone();
        tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    _ = stopped.changed() => None,
                    span = rx.recv() => span,
                };
                let Some(first) = first else { break };
                let mut batch = vec![first];
                let linger = tokio::time::sleep(LINGER);
                tokio::pin!(linger);
                while batch.len() < BATCH {
                    tokio::select! {
                        () = &mut linger => break,
                        span = rx.recv() => match span {
                            Some(span) => batch.push(span),
                            None => break,
                        },
                    }
                }
                let n = batch.len() as u64;
                match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await {
                    Ok(Ok(())) => {}
                    _ => dropped.increment(n),
                }
            }
            let rest: Vec<SpanData> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
            if !rest.is_empty() {
                let n = rest.len() as u64;
                if !matches!(
                    tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(rest)).await,
                    Ok(Ok(()))
                ) {
                    dropped.increment(n);
                }
            }
        });
    }

    /// The server span of a request: the child of the trace context in
    /// `headers` when `trusted` (the peer is a trusted proxy), else of
    /// nothing; untrusted trace context is removed from `headers`. The
    /// context holding it, to run the request in.
    pub fn request(
        &self,
        headers: &mut HeaderMap,
        trusted: bool,
        method: &str,
        attributes: Vec<KeyValue>,
    ) -> Context {
        let parent = if trusted {
            self.propagator.extract(&Headers(headers))
        } else {
            headers.remove(TRACEPARENT);
            headers.remove(TRACESTATE);
            Context::new()
        };
        let span = self
            .tracer
            .span_builder(method.to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// A child span of the current context's span: a step of a request.
    pub fn step(&self, name: &'static str, kind: SpanKind, attributes: Vec<KeyValue>) -> Step {
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        Step(Some(parent.with_span(span)))
    }

    /// Sets `traceparent` (and `tracestate`) of the span in `cx` on the
    /// upstream request's `headers`.
    pub fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        self.propagator.inject_context(cx, &mut HeadersMut(headers));
    }

    /// Ends every span and stops the provider (at shutdown).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// A step's span, ended when dropped (or by [`Step::end`]).
#[derive(Debug, Default)]
pub struct Step(Option<Context>);

impl Step {
    /// A step of `tracing` if the gateway traces; else nothing, at no cost.
    pub fn of(
        tracing: Option<&Tracing>,
        name: &'static str,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Step {
        match tracing {
            Some(t) => t.step(name, kind, attributes()),
            None => Step(None),
        }
    }

    /// The context of its span (none if not tracing).
    pub fn context(&self) -> Option<&Context> {
        self.0.as_ref()
    }

    /// Sets one attribute.
    pub fn set(&self, kv: impl FnOnce() -> KeyValue) {
        if let Some(cx) = &self.0 {
            cx.span().set_attribute(kv());
        }
    }

    /// Marks the step failed, with the gateway's error code.
    pub fn fail(&self, code: &'static str) {
        if let Some(cx) = &self.0 {
            let span = cx.span();
            span.set_attribute(KeyValue::new("error.type", code));
            span.set_status(Status::error(code));
        }
    }

    /// Records the answer's status on an HTTP call's span (5xx: failed).
    pub fn answered(&self, status: u16) {
        if let Some(cx) = &self.0 {
            let span = cx.span();
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                span.set_status(Status::error("5xx"));
            }
        }
    }

    /// Ends the span now.
    pub fn end(self) {}
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(cx) = self.0.take() {
            cx.span().end();
        }
    }
}

/// Adds the event `name` (a phase passed) to the current request's span,
/// if tracing.
pub fn mark(tracing: Option<&Tracing>, name: &'static str) {
    if tracing.is_some() {
        Context::current().span().add_event(name, Vec::new());
    }
}

/// Records `kv` on the current request's span, if tracing.
pub fn annotate(tracing: Option<&Tracing>, kv: impl FnOnce() -> KeyValue) {
    if tracing.is_some() {
        Context::current().span().set_attribute(kv());
    }
}

/// The end of a request's server span: named `{method} {route}`, with its
/// route, its status, and the error code of a refusal.
pub fn finish(cx: &Context, method: &str, route: &str, status: u16) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("http.route", route.to_owned()));
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    if status >= 500 {
        span.set_status(Status::error(Cow::Borrowed("5xx")));
    }
    span.update_name(Cow::Owned(format!("{method} {route}")));
    span.end();
}

struct Headers<'h>(&'h HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeadersMut<'h>(&'h mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        // An empty tracestate is no tracestate (RFC: omit it).
        if value.is_empty() {
            self.0.remove(key);
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
