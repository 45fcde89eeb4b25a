//! OpenTelemetry traces (`[tracing]`, docs/tracing.md) through the real
//! binary, received by an OTLP/HTTP collector stand-in that decodes the
//! protobuf with the official definitions (`opentelemetry-proto`): a
//! proxied request is one trace across the gateway and an upstream that
//! continues it, parent ids right; trace context is believed from trusted
//! proxies only; a parent's sampling decision is followed; a login shows
//! its platform call; no attribute holds a secret; with the collector
//! gone requests go on and the drops are counted.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

use crate::support::*;

/// A span as received, with its service.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| value_text(kv.value.as_ref()?))
    }
}

fn value_text(v: &AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The OTLP/HTTP collector stand-in: `POST /v1/traces` with an
/// `application/x-protobuf` `ExportTraceServiceRequest`.
#[derive(Clone)]
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Got>>>,
}

async fn collector() -> Collector {
    let spans: Arc<Mutex<Vec<Got>>> = Arc::default();
    let kept = spans.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let kept = kept.clone();
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let export = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
            for rs in export.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| value_text(kv.value.as_ref()?))
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        kept.lock().unwrap().push(Got {
                            service: service.clone(),
                            span,
                        });
                    }
                }
            }
            let mut res = Response::new(Full::new(Bytes::from(
                ExportTraceServiceResponse::default().encode_to_vec(),
            )));
            res.headers_mut()
                .insert("content-type", "application/x-protobuf".parse().unwrap());
            res
        }
    })
    .await;
    Collector { addr, spans }
}

impl Collector {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans of trace `trace` (hex) once `done` holds of them.
    async fn trace(&self, trace: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let mut got = Vec::new();
        for _ in 0..400 {
            got = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|g| hex(&g.span.trace_id) == trace)
                .cloned()
                .collect();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("trace {trace} never complete: {got:#?}");
    }

    fn all(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }
}

/// What the continuing upstream saw of the trace context.
#[derive(Clone, Default)]
struct Seen {
    traceparent: Vec<String>,
    tracestate: Vec<String>,
}

/// An upstream service that continues the trace: for each request with a
/// `traceparent` it exports a server span of its own (service `orders`),
/// the child of the span that header names, to `collector`.
async fn continuing_upstream(collector: &Collector) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let (url, kept) = (format!("{}/v1/traces", collector.url()), seen.clone());
    let addr = serve(move |req: Request<Incoming>| {
        let (url, kept) = (url.clone(), kept.clone());
        async move {
            let parent = req
                .headers()
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_owned());
            {
                let mut seen = kept.lock().unwrap();
                seen.traceparent.push(parent.clone().unwrap_or_default());
                if let Some(state) = req.headers().get("tracestate") {
                    seen.tracestate.push(state.to_str().unwrap().to_owned());
                }
            }
            if let Some(parent) = parent.filter(|p| p.ends_with("-01")) {
                let parts: Vec<&str> = parent.split('-').collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64;
                let span = Span {
                    trace_id: unhex(parts[1]),
                    span_id: rand_bytes(),
                    parent_span_id: unhex(parts[2]),
                    name: "GET /orders".into(),
                    kind: SpanKind::Server as i32,
                    start_time_unix_nano: now,
                    end_time_unix_nano: now + 1000,
                    ..Default::default()
                };
                let export = ExportTraceServiceRequest {
                    resource_spans: vec![ResourceSpans {
                        resource: Some(Resource {
                            attributes: vec![KeyValue {
                                key: "service.name".into(),
                                value: Some(AnyValue {
                                    value: Some(any_value::Value::StringValue("orders".into())),
                                }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                        scope_spans: vec![ScopeSpans {
                            spans: vec![span],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                let res = client()
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(export.encode_to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    })
    .await;
    (addr, seen)
}

fn rand_bytes() -> Vec<u8> {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    b.to_vec()
}

/// A gateway tracing into `collector` at `ratio`, in front of `upstream`
/// (a second WeChat app, `APPID2`, asks risk ranks at login);
/// `trusted`: 127.0.0.1 is a trusted proxy.
async fn traced(
    collector: &str,
    ratio: &str,
    trusted: bool,
    upstream: SocketAddr,
) -> (Process, WeChat) {
    let wechat = wechat().await;
    let risky = Provider::new("wechat", APPID2, "TEST_WECHAT_SECRET")
        .base_url(wechat.url())
        .risk_scene(0);
    let mut setup = Setup::default().provider(risky).tracing(
        Tracing::default()
            .otlp_endpoint(collector.to_owned())
            .sample_ratio(ratio.parse().unwrap())
            .service_name("edge-gw"),
    );
    if trusted {
        setup = setup.server(Server::default().trusted_proxies(vec!["127.0.0.1"]));
    }
    let gw = spawn_binary_with(&setup, wechat.addr, upstream, "info").await;
    (gw, wechat)
}

async fn login(gw: &Process, code: &str) -> (Tokens, String) {
    let code = fresh(code);
    let res = client()
        .post(format!("{}/auth/login", gw.url))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "code": code, "appid": APPID }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    (res.json().await.unwrap(), code)
}

async fn get(gw: &Process, path: &str, token: &str, context: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(format!("{}{path}", gw.url)).bearer_auth(token);
    for (k, v) in context {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn one<'a>(spans: &'a [Got], service: &str, name: &str) -> &'a Got {
    let found: Vec<&Got> = spans
        .iter()
        .filter(|g| g.service == service && g.span.name == name)
        .collect();
    assert_eq!(found.len(), 1, "{service} {name}: {spans:#?}");
    found[0]
}

/// From a trusted proxy, a sampled request continues the proxy's trace:
/// proxy → gateway server span → upstream client span → the upstream's own
/// span, one trace id, each the child of the one before. A login shows its
/// platform call and session store under its server span. No attribute
/// holds a token, a code, a secret or a session key.
#[tokio::test]
async fn a_request_is_one_trace_across_the_gateway_and_its_upstream() {
    let collector = collector().await;
    let (up, seen) = continuing_upstream(&collector).await;
    let (gw, _wechat) = traced(&collector.url(), "1.0", true, up).await;
    let (t, code) = login(&gw, "trace-ann").await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let proxy_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{proxy_span}-01");
    let res = get(
        &gw,
        "/api/orders",
        &t.access_token,
        &[("traceparent", &traceparent), ("tracestate", "edge=1")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let spans = collector
        .trace(trace, |s| {
            s.iter().any(|g| g.service == "orders") && s.iter().any(|g| g.span.name == "GET /api/")
        })
        .await;
    let server = one(&spans, "edge-gw", "GET /api/");
    let call = one(&spans, "edge-gw", "upstream");
    let orders = one(&spans, "orders", "GET /orders");
    assert_eq!(hex(&server.span.parent_span_id), proxy_span);
    assert_eq!(server.span.kind, SpanKind::Server as i32);
    assert_eq!(call.span.parent_span_id, server.span.span_id);
    assert_eq!(call.span.kind, SpanKind::Client as i32);
    assert_eq!(orders.span.parent_span_id, call.span.span_id);
    // The upstream got the gateway's call span, sampled, and the proxy's
    // tracestate.
    assert_eq!(
        seen.lock().unwrap().traceparent.last().unwrap(),
        &format!("00-{trace}-{}-01", hex(&call.span.span_id))
    );
    assert_eq!(seen.lock().unwrap().tracestate.last().unwrap(), "edge=1");
    for (key, value) in [
        ("http.request.method", "GET"),
        ("http.route", "/api/"),
        ("http.response.status_code", "200"),
        ("server.address", "127.0.0.1"),
        ("client.address", "127.0.0.1"),
        ("minigate.request_id", request_id.as_str()),
    ] {
        assert_eq!(
            server.attr(key).as_deref(),
            Some(value),
            "{key}: {server:#?}"
        );
    }
    assert_eq!(
        call.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(call.attr("http.route").as_deref(), Some("/api/"));

    // The login: a trace of its own, with the platform call and the store.
    let logins: Vec<Got> = collector
        .all()
        .into_iter()
        .filter(|g| g.span.name == "POST /auth/login")
        .collect();
    assert_eq!(logins.len(), 1, "{logins:#?}");
    let login_trace = hex(&logins[0].span.trace_id);
    let spans = collector.trace(&login_trace, |s| s.len() >= 3).await;
    let server = one(&spans, "edge-gw", "POST /auth/login");
    assert!(
        server.span.parent_span_id.is_empty(),
        "a new trace: {server:#?}"
    );
    assert_eq!(server.attr("minigate.platform").as_deref(), Some("wechat"));
    assert_eq!(
        server.attr("minigate.device_type").as_deref(),
        Some("phone")
    );
    for step in ["platform code exchange", "session store"] {
        let s = one(&spans, "edge-gw", step);
        assert_eq!(s.span.parent_span_id, server.span.span_id, "{step}");
        assert_eq!(s.span.kind, SpanKind::Client as i32);
    }
    assert_eq!(
        one(&spans, "edge-gw", "platform code exchange")
            .attr("minigate.appid")
            .as_deref(),
        Some(APPID)
    );

    // A refresh: the store's check and redemption.
    let res = post_refresh(&client(), &gw.url, "/auth/refresh", &t.refresh_token).await;
    assert_eq!(res.status(), 200);
    let next: Tokens = res.json().await.unwrap();
    let refresh = loop {
        let found = collector
            .all()
            .into_iter()
            .find(|g| g.span.name == "POST /auth/refresh");
        if let Some(found) = found {
            break found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let spans = collector
        .trace(&hex(&refresh.span.trace_id), |s| s.len() >= 3)
        .await;
    let ops: Vec<String> = spans
        .iter()
        .filter(|g| g.span.name == "session store")
        .map(|g| g.attr("db.operation.name").unwrap())
        .collect();
    assert_eq!(ops, ["check", "redeem"], "{spans:#?}");

    // WeChat's phone number: its call under the request's span; and a
    // forward-auth decision.
    let res = client()
        .post(format!("{}/auth/phone", gw.url))
        .bearer_auth(&next.access_token)
        .header("content-type", "application/json")
        .body(r#"{"code":"phone:13800002222"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = get(&gw, "/auth/verify/api/x", &next.access_token, &[]).await;
    assert_eq!(res.status(), 200);
    let named = |name: &'static str| {
        let collector = collector.clone();
        async move {
            for _ in 0..400 {
                let found = collector.all().into_iter().find(|g| g.span.name == name);
                if let Some(found) = found {
                    return found;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            panic!("no span {name}: {:#?}", collector.all());
        }
    };
    let phone = named("POST /auth/wechat").await;
    let spans = collector
        .trace(&hex(&phone.span.trace_id), |s| s.len() >= 2)
        .await;
    let call = one(&spans, "edge-gw", "wechat phone number");
    assert_eq!(call.span.parent_span_id, phone.span.span_id);
    assert_eq!(call.attr("minigate.appid").as_deref(), Some(APPID));
    let verify = named("GET /auth/verify").await;
    assert_eq!(verify.attr("http.route").as_deref(), Some("/auth/verify"));
    assert_eq!(
        verify.attr("http.response.status_code").as_deref(),
        Some("200")
    );

    // WeChat's checksession, under its request's span.
    let res = get(&gw, "/auth/wechat/session_key", &next.access_token, &[]).await;
    assert_eq!(res.status(), 200);
    let health = named("GET /auth/wechat").await;
    let spans = collector
        .trace(&hex(&health.span.trace_id), |s| s.len() >= 2)
        .await;
    let call = one(&spans, "edge-gw", "wechat checksession");
    assert_eq!(call.span.parent_span_id, health.span.span_id);
    assert_eq!(call.span.kind, SpanKind::Client as i32);
    assert_eq!(call.attr("minigate.appid").as_deref(), Some(APPID));
    // A risk-ranked login: the risk call under the login's span.
    let res = client()
        .post(format!("{}/auth/login", gw.url))
        .body(serde_json::json!({"code": fresh("trace-risk"), "appid": APPID2}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let risk = named("wechat risk rank").await;
    let spans = collector
        .trace(&hex(&risk.span.trace_id), |s| s.len() >= 4)
        .await;
    let login_span = one(&spans, "edge-gw", "POST /auth/login");
    assert_eq!(risk.span.parent_span_id, login_span.span.span_id);
    assert_eq!(risk.attr("minigate.appid").as_deref(), Some(APPID2));
    assert_eq!(risk.attr("minigate.risk_rank").as_deref(), Some("0"));

    // Nothing secret in any attribute of any span.
    let secrets = [
        t.access_token.as_str(),
        &t.refresh_token,
        &next.access_token,
        &next.refresh_token,
        &code,
        SECRET,
        SESSION_KEY,
        "13800002222",
        "phone:",
    ];
    for g in collector.all() {
        for kv in &g.span.attributes {
            let text = kv.value.as_ref().and_then(value_text).unwrap_or_default();
            for s in secrets {
                assert!(!text.contains(s), "{} holds a secret: {g:#?}", kv.key);
            }
        }
    }
}

/// From a client that is no trusted proxy, trace context is dropped: a new
/// trace begins, and the client's tracestate never reaches the upstream.
/// At ratio 0 nothing new is sampled, yet the upstream still gets a
/// traceparent (not sampled); a trusted parent's sampled decision is
/// followed all the same.
#[tokio::test]
async fn trace_context_is_believed_from_trusted_proxies_and_sampling_follows_the_parent() {
    let collector = collector().await;
    let (up, seen) = continuing_upstream(&collector).await;
    let (gw, _wechat) = traced(&collector.url(), "1.0", false, up).await;
    let (t, _) = login(&gw, "trace-bob").await;
    let trace = "11111111111111111111111111111111";
    let res = get(
        &gw,
        "/api/x",
        &t.access_token,
        &[
            ("traceparent", &format!("00-{trace}-2222222222222222-01")),
            ("tracestate", "spoof=1"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let sent = seen.lock().unwrap().traceparent.last().unwrap().clone();
    assert!(sent.starts_with("00-") && sent.ends_with("-01"), "{sent}");
    assert!(!sent.contains(trace), "{sent}");
    assert!(seen.lock().unwrap().tracestate.is_empty());
    let new_trace = &sent[3..35];
    let spans = collector
        .trace(new_trace, |s| s.iter().any(|g| g.span.name == "GET /api/"))
        .await;
    assert!(one(&spans, "edge-gw", "GET /api/")
        .span
        .parent_span_id
        .is_empty());

    // Ratio 0 behind a trusted proxy.
    let collector = collector_again().await;
    let (up, seen) = continuing_upstream(&collector).await;
    let (gw, _wechat) = traced(&collector.url(), "0", true, up).await;
    let (t, _) = login(&gw, "trace-cy").await;
    let res = get(&gw, "/api/x", &t.access_token, &[]).await;
    assert_eq!(res.status(), 200);
    let unsampled = seen.lock().unwrap().traceparent.last().unwrap().clone();
    assert!(
        unsampled.starts_with("00-") && unsampled.ends_with("-00") && unsampled.len() == 55,
        "{unsampled}"
    );
    let sampled = "33333333333333333333333333333333";
    let res = get(
        &gw,
        "/api/x",
        &t.access_token,
        &[("traceparent", &format!("00-{sampled}-4444444444444444-01"))],
    )
    .await;
    assert_eq!(res.status(), 200);
    let spans = collector
        .trace(sampled, |s| {
            s.iter().any(|g| g.service == "orders") && s.iter().any(|g| g.span.name == "GET /api/")
        })
        .await;
    assert_eq!(
        hex(&one(&spans, "edge-gw", "GET /api/").span.parent_span_id),
        "4444444444444444"
    );
    // Nothing of the unsampled trace, nor of the login, was exported.
    assert!(
        collector
            .all()
            .iter()
            .all(|g| hex(&g.span.trace_id) == sampled),
        "{:#?}",
        collector.all()
    );
}

async fn collector_again() -> Collector {
    collector().await
}

/// With the collector gone, requests are answered as ever and the spans
/// that could not be exported are counted.
#[tokio::test]
async fn a_dead_collector_costs_requests_nothing_and_drops_are_counted() {
    let (_closed, dead) = closed_port();
    let upstream = upstream().await;
    let (gw, _wechat) = traced(&format!("http://{dead}"), "1.0", false, upstream.addr).await;
    let (t, _) = login(&gw, "trace-dee").await;
    for _ in 0..20 {
        assert_eq!(get(&gw, "/api/x", &t.access_token, &[]).await.status(), 200);
    }
    let dropped = gw
        .series_once("minigate_trace_spans_dropped_total", |v| v >= 41.0)
        .await;
    // The login's spans and each request's two.
    assert!(dropped >= 41.0, "{dropped}");
}
