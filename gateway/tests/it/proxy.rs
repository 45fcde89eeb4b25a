//! The verifying proxy: auth modes, header stripping against spoofing,
//! tampered and confused tokens, a second gateway sharing the keys, and
//! pass-through of everything else.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use serde_json::json;

use crate::support::*;

const SPOOFS: [(&str, &str); 4] = [
    ("X-Auth-Subject", "admin"),
    ("x-auth-openid", "victim"),
    ("X-AUTH-APPID", "wxevil"),
    ("x-auth-made-up", "1"),
];

async fn spoofed_get(gw: &Gateway, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = gw.http.get(format!("{}{path}", gw.url));
    for (k, v) in SPOOFS {
        req = req.header(k, v);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn identity_headers_cannot_be_spoofed_on_any_route() {
    let gw = start(Setup::default()).await;
    let t = gw.login("code-dave").await;
    let openid = openid_for("code-dave");

    // required, with a token: only the gateway's identity arrives.
    assert_eq!(
        spoofed_get(&gw, "/api/x", Some(&t.access_token))
            .await
            .status(),
        200
    );
    let h = gw.upstream.last().headers;
    assert_eq!(
        h.get_all("x-auth-subject").iter().collect::<Vec<_>>(),
        [openid.as_str()]
    );
    assert_eq!(
        h.get_all("x-auth-openid").iter().collect::<Vec<_>>(),
        [openid.as_str()]
    );
    assert_eq!(h["x-auth-appid"], APPID);
    assert!(h.get("x-auth-made-up").is_none());

    // required, without a token: refused, nothing reaches the upstream.
    let before = gw.upstream.count();
    assert_eq!(spoofed_get(&gw, "/api/x", None).await.status(), 401);
    assert_eq!(gw.upstream.count(), before);

    // optional, anonymous: passes with no identity at all.
    assert_eq!(spoofed_get(&gw, "/maybe/x", None).await.status(), 200);
    let h = gw.upstream.last().headers;
    assert!(
        h.keys().all(|k| !k.as_str().starts_with("x-auth-")),
        "{h:?}"
    );

    // optional, with a token: identity.
    assert_eq!(
        spoofed_get(&gw, "/maybe/x", Some(&t.access_token))
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.upstream.last().headers["x-auth-subject"],
        openid.as_str()
    );

    // public: no check, and still no client-made identity, even with a token.
    assert_eq!(spoofed_get(&gw, "/public/x", None).await.status(), 200);
    assert!(gw
        .upstream
        .last()
        .headers
        .keys()
        .all(|k| !k.as_str().starts_with("x-auth-")));
    assert_eq!(
        spoofed_get(&gw, "/public/x", Some(&t.access_token))
            .await
            .status(),
        200
    );
    assert!(gw
        .upstream
        .last()
        .headers
        .keys()
        .all(|k| !k.as_str().starts_with("x-auth-")));
    assert_eq!(
        spoofed_get(&gw, "/public/x", Some("garbage"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn missing_and_bad_tokens_get_rfc6750_challenges() {
    let gw = start(Setup::default()).await;
    let res = gw.get("/api/x", None).await;
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="minigate""#
    );
    assert_error(res, 401, "unauthorized").await;

    let res = gw.get("/api/x", Some("not.a.token")).await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge
            .starts_with(r#"Bearer realm="minigate", error="invalid_token", error_description=""#),
        "{challenge}"
    );
    assert_error(res, 401, "invalid_token").await;

    // Optional routes refuse a bad token too.
    assert_error(
        gw.get("/maybe/x", Some("not.a.token")).await,
        401,
        "invalid_token",
    )
    .await;

    // The scheme is case-insensitive; the token is read from Authorization only.
    let t = gw.login("code-erin").await;
    let res = gw
        .http
        .get(format!("{}/api/x", gw.url))
        .header("authorization", format!("bEaReR {}", t.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = gw
        .http
        .get(format!("{}/api/x?access_token={}", gw.url, t.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = gw
        .http
        .get(format!("{}/api/x", gw.url))
        .header("cookie", format!("token={}", t.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = gw
        .http
        .get(format!("{}/api/x", gw.url))
        .header("authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_token_tampered_in_any_segment_is_refused() {
    let gw = start(Setup::default()).await;
    let t = gw.login("code-frank").await;
    let parts: Vec<&str> = t.access_token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "admin".into();
    let mut header: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    header["kid"] = "someone-elses-key".into();
    let flip = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b[5] = if b[5] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let tampered = [
        format!(
            "{}.{}.{}",
            B64.encode(header.to_string()),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{}", flip(parts[0]), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(claims.to_string()),
            parts[2]
        ),
        format!("{}.{}.{}", parts[0], flip(parts[1]), parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], flip(parts[2])),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}..{}", parts[0], parts[2]),
    ];
    for token in &tampered {
        assert_error(gw.get("/api/x", Some(token)).await, 401, "invalid_token").await;
    }
    // And the genuine token still passes (the cache holds no bad results).
    assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    for token in &tampered {
        assert_eq!(gw.get("/api/x", Some(token)).await.status(), 401);
    }
}

#[tokio::test]
async fn refresh_token_is_not_an_access_token() {
    let gw = start(Setup::default()).await;
    let t = gw.login("code-grace").await;
    let res = gw.get("/api/x", Some(&t.refresh_token)).await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("wrong token type"), "{challenge}");
    assert_error(res, 401, "invalid_token").await;
    let res = gw.get("/maybe/x", Some(&t.refresh_token)).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn claims_are_checked() {
    let gw = start(Setup::default()).await;
    let now = now();
    let base = serde_json::json!({"iss": "https://auth.test", "aud": "api", "sub": "s", "client_id": APPID,
        "iat": now, "exp": now + 600, "jti": "j", "sid": "s", "platform": "wechat"});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        gw.sign("at+jwt", c)
    };
    assert_eq!(
        gw.get("/api/x", Some(&gw.sign("at+jwt", base.clone())))
            .await
            .status(),
        200
    );
    let cases = [
        (with("exp", (now - 10).into()), "token expired"),
        (with("nbf", (now + 120).into()), "token not yet valid"),
        (
            with("iat", (now + 120).into()),
            "token issued in the future",
        ),
        (with("iss", "https://other.test".into()), "wrong issuer"),
        (with("aud", "other".into()), "wrong audience"),
        (with("aud", serde_json::json!(["x", "y"])), "wrong audience"),
        (with("exp", "soon".into()), "invalid claims"),
        (with("sub", serde_json::Value::Null), "invalid claims"),
    ];
    for (token, why) in cases {
        let res = gw.get("/api/x", Some(&token)).await;
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains(why), "{challenge} should say {why}");
        assert_error(res, 401, "invalid_token").await;
    }
    // Within the leeway (5s) an expired token still passes; a list audience with ours passes.
    assert_eq!(
        gw.get("/api/x", Some(&with("exp", (now - 2).into())))
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.get(
            "/api/x",
            Some(&with("aud", serde_json::json!(["x", "api"])))
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn a_gateway_with_another_issuer_or_audience_refuses_our_tokens() {
    let a = start(Setup::default()).await;
    let other_issuer = start(Setup {
        issuer: "https://other.test".into(),
        keys_dir: Some(a.keys_dir.clone()),
        ..Setup::default()
    })
    .await;
    let other_aud = start(Setup {
        audience: vec!["billing"],
        keys_dir: Some(a.keys_dir.clone()),
        ..Setup::default()
    })
    .await;
    let same = start(Setup {
        keys_dir: Some(a.keys_dir.clone()),
        ..Setup::default()
    })
    .await;
    let t = a.login("code-heidi").await;
    for (gw, why) in [
        (&other_issuer, "wrong issuer"),
        (&other_aud, "wrong audience"),
    ] {
        let res = gw.get("/api/x", Some(&t.access_token)).await;
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(why));
        assert_eq!(res.status(), 401);
        let body = format!("{{\"refresh_token\":\"{}\"}}", t.refresh_token);
        if why == "wrong issuer" {
            assert_error(gw.post("/auth/refresh", &body).await, 400, "invalid_grant").await;
        }
    }
    // A replica with the same issuer, audience and keys accepts them.
    assert_eq!(
        same.get("/api/x", Some(&t.access_token)).await.status(),
        200
    );
    let t2 = other_aud.login("code-heidi").await;
    assert_eq!(a.get("/api/x", Some(&t2.access_token)).await.status(), 401);
}

#[tokio::test]
async fn method_path_query_headers_and_body_pass_through() {
    let gw = start(Setup::default()).await;
    let t = gw.login("code-ivan").await;
    let body = vec![b'z'; 300_000];
    let res = gw
        .http
        .put(format!("{}/api/items/7?a=1&b=%20x", gw.url))
        .bearer_auth(&t.access_token)
        .header("x-custom", "kept")
        .header("x-request-id", "client-req-1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-request-id"], "client-req-1");
    assert!(
        res.headers().get("x-hop").is_none(),
        "upstream hop-by-hop header leaked"
    );
    let seen = gw.upstream.last();
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.uri, "/api/items/7?a=1&b=%20x");
    assert_eq!(seen.body.len(), body.len());
    assert_eq!(seen.headers["x-custom"], "kept");
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {}", t.access_token).as_str()
    );
    assert_eq!(seen.headers["x-request-id"], "client-req-1");
    // Not from a trusted proxy: the chain starts here.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-real-ip"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        gw.url.trim_start_matches("http://")
    );
    assert!(seen.headers.get("x-drop-me").is_none());

    // A generated request id when the client's is not sane.
    let res = gw
        .http
        .get(format!("{}/public/x", gw.url))
        .header("x-request-id", "a b")
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(gw.upstream.last().headers["x-request-id"], id.as_str());
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// The real binary streams a 64 MiB download and a 64 MiB upload without
/// holding either: its RSS must not grow by anything near that.
#[tokio::test]
async fn large_bodies_stream_both_ways_without_buffering() {
    let upstream = upstream().await;
    let wechat = wechat().await;
    let gw = spawn_binary(wechat.addr, upstream.addr, "off").await;
    let pid = gw.child.id();
    let http = client();
    // One small body each way first, so that what any first request costs
    // (buffers, the allocator's first pages on each thread, the upstream
    // pool) is not counted against the large ones.
    for _ in 0..2 {
        let res = http
            .get(format!("{}/public/big?mib=1", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.bytes().await.unwrap().len(), 1 << 20);
        let small = Zeros { left: 1 << 20 };
        let res = http
            .post(format!("{}/public/sink", gw.url))
            .body(reqwest::Body::wrap(small))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let sunk_before = upstream.sunk.load(std::sync::atomic::Ordering::Relaxed);
    let before = rss_kib(pid);
    let mut res = http
        .get(format!("{}/public/big?mib=64", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut total = 0usize;
    let mut peak = before;
    while let Some(chunk) = res.chunk().await.unwrap() {
        total += chunk.len();
        if total % (8 << 20) < chunk.len() {
            peak = peak.max(rss_kib(pid));
        }
    }
    assert_eq!(total, 64 << 20);

    let upload = Zeros { left: 64 << 20 };
    let res = http
        .post(format!("{}/public/sink", gw.url))
        .body(reqwest::Body::wrap(upload))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        upstream.sunk.load(std::sync::atomic::Ordering::Relaxed) - sunk_before,
        64 << 20
    );
    peak = peak.max(rss_kib(pid));
    gw.stop();
    assert!(
        peak - before < 16 * 1024,
        "RSS grew by {} KiB for 64 MiB bodies",
        peak - before
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let gw = start(Setup::default()).await;
    let t = gw.login("code-judy").await;
    for _ in 0..20 {
        assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    }
    assert_eq!(gw.upstream.count(), 20);
    assert_eq!(
        gw.upstream
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// An upstream that answers one request per connection as if it kept the
/// connection alive, then closes it (an upstream's idle timeout, at once).
/// Reports each close on `closed`.
async fn upstream_closing_after_each_answer(
    closed: tokio::sync::mpsc::UnboundedSender<()>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                drop(s);
                let _ = closed.send(());
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_connection_closed_while_idle_is_not_reused() {
    let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let upstream = upstream_closing_after_each_answer(tx).await;
    let gw = start(Setup {
        upstream_addr: Some(upstream),
        ..Setup::default()
    })
    .await;
    let t = gw.login("code-ivan").await;
    for _ in 0..5 {
        let res = gw.get("/api/x", Some(&t.access_token)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "ok");
        // The upstream has closed the pooled connection before the next
        // request: the gateway must notice and open another, not answer 502.
        closed.recv().await.unwrap();
    }
}

/// An unsigned token (`alg: none`) claiming to be `sub`.
fn forged_none(sub: &str) -> String {
    let now = now();
    let header = json!({"alg": "none", "typ": "at+jwt"});
    let claims = json!({"iss": "https://auth.test", "aud": "api", "sub": sub, "client_id": APPID,
        "iat": now, "exp": now + 600, "jti": "j", "sid": "s", "platform": "wechat"});
    format!(
        "{}.{}.",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

#[tokio::test]
async fn a_malformed_authorization_on_an_optional_route_is_401_not_anonymous() {
    let gw = start(Setup::default()).await;
    let t = gw.login("optional-user").await;
    let forged = forged_none("admin");
    // Verified once, so in the cache: a variant of it must not hit there.
    assert_eq!(
        gw.get("/maybe/x", Some(&t.access_token)).await.status(),
        200
    );
    let before = gw.upstream.count();
    for authorization in [
        format!("Bearer\t{}", t.access_token),
        format!("Bearer,{}", t.access_token),
        format!("Bearer {}!", t.access_token),
        format!("Bearer \t{}", t.access_token),
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        format!("Bearer\t{forged}"),
        format!("Bearer {forged}"),
        format!("Bearer {} x", t.access_token),
        "Bearer".to_owned(),
    ] {
        let res = gw
            .http
            .get(format!("{}/maybe/x", gw.url))
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert_error(res, 401, "invalid_token").await;
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{authorization:?}: {challenge}"
        );
        assert_eq!(
            gw.upstream.count(),
            before,
            "{authorization:?} reached the upstream"
        );
    }
    // The route still serves the anonymous and the authenticated.
    assert_eq!(gw.get("/maybe/x", None).await.status(), 200);
    assert!(gw.upstream.last().headers.get("x-auth-subject").is_none());
    assert_eq!(
        gw.get("/maybe/x", Some(&t.access_token)).await.status(),
        200
    );
    assert_eq!(
        gw.upstream.last().headers["x-auth-subject"],
        openid_for("optional-user").as_str()
    );
}

#[tokio::test]
async fn a_bad_chunk_size_is_400_and_not_an_upstream_failure() {
    let gw = start(Setup::default()).await;
    let before = gw.scrape().await;
    let (status, _, body) = exchange(
        gw.running.addr,
        "POST /public/chunked HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
    )
    .await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "invalid_request"),
        "{body}"
    );
    // A well-formed chunked body passes.
    let (status, _, body) = exchange(
        gw.running.addr,
        "POST /public/chunked HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(gw
        .upstream
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.body == "hello"));
    let after = gw.scrape().await;
    assert_eq!(
        moved(&before, &after, &requests("/public/", "5xx")),
        0.0,
        "{after}"
    );
    assert_eq!(
        moved(&before, &after, &requests("/public/", "4xx")),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved(&before, &after, &requests("/public/", "2xx")),
        1.0,
        "{after}"
    );
}
