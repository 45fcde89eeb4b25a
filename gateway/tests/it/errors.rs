//! Every row of the contract's error table that login, refresh and the proxy
//! can produce, against the real gateway and a stand-in WeChat.

use crate::support::*;

fn code(c: &str) -> String {
    serde_json::json!({ "code": c }).to_string()
}

#[tokio::test]
async fn malformed_login_bodies_are_invalid_request() {
    let gw = start(Setup::default()).await;
    for body in [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"code":""}"#,
        r#"{"code":123}"#,
        r#"{"code":null}"#,
        r#"{"code":"ok","device_id":"has space"}"#,
        r#"{"code":"ok","device_id":""}"#,
        &code(&"x".repeat(257)),
    ] {
        assert_error(gw.post("/auth/login", body).await, 400, "invalid_request").await;
    }
    // 256 bytes is still a code.
    assert_eq!(
        gw.post("/auth/login", &code(&"x".repeat(256)))
            .await
            .status(),
        200
    );
    assert_eq!(
        gw.wechat.queries().len(),
        1,
        "bad bodies never reach the provider"
    );
}

#[tokio::test]
async fn bodies_over_16k_are_413() {
    let gw = start(Setup::default()).await;
    let big = format!(r#"{{"code":"ok","pad":"{}"}}"#, "p".repeat(16 * 1024));
    assert_error(gw.post("/auth/login", &big).await, 413, "invalid_request").await;
    assert_error(gw.post("/auth/refresh", &big).await, 413, "invalid_request").await;
    // Chunked, with no Content-Length to refuse up front.
    let stream = futures_like_stream(big.clone().into_bytes());
    let res = gw
        .http
        .post(format!("{}/auth/login", gw.url))
        .body(reqwest::Body::wrap(stream))
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "invalid_request").await;
}

/// A body in 1 KiB chunks sent without a Content-Length.
fn futures_like_stream(
    data: Vec<u8>,
) -> impl http_body::Body<Data = bytes::Bytes, Error = std::io::Error> + Send + Sync + 'static {
    use http_body::Frame;
    struct Chunks(Vec<u8>, usize);
    impl http_body::Body for Chunks {
        type Data = bytes::Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<bytes::Bytes>, std::io::Error>>> {
            let (start, len) = (self.1, self.0.len());
            if start >= len {
                return std::task::Poll::Ready(None);
            }
            let end = (start + 1024).min(len);
            self.1 = end;
            std::task::Poll::Ready(Some(Ok(Frame::data(bytes::Bytes::copy_from_slice(
                &self.0[start..end],
            )))))
        }
    }
    Chunks(data, 0)
}

#[tokio::test]
async fn provider_errcodes_map_to_the_table() {
    let gw = start(Setup::default()).await;
    let cases: [(&str, u16, &str); 9] = [
        ("err:40029", 400, "invalid_code"),
        ("err:40163", 400, "invalid_code"),
        ("err:45011", 429, "rate_limited"),
        ("err:40226", 403, "risky_user"),
        ("err:-1", 503, "provider_unavailable"),
        ("err:40013", 502, "provider_error"),
        ("notjson", 502, "provider_error"),
        ("noopenid", 502, "provider_error"),
        ("badopenid", 502, "provider_error"),
    ];
    for (c, status, error) in cases {
        let headers = assert_error(gw.post("/auth/login", &code(c)).await, status, error).await;
        if status == 429 {
            let secs: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(secs > 0);
        }
    }
    assert_error(
        gw.post("/auth/login", &code("http500")).await,
        503,
        "provider_unavailable",
    )
    .await;
}

#[tokio::test]
async fn slow_provider_is_504_and_unreachable_is_503() {
    let gw = start(Setup::default()).await;
    let started = std::time::Instant::now();
    assert_error(
        gw.post("/auth/login", &code("slow")).await,
        504,
        "provider_timeout",
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2900),
        "the timeout did not cut the wait"
    );

    // A port with nothing listening.
    let (_held, dead) = closed_port();
    let gw = start(Setup {
        wechat_addr: Some(dead),
        ..Setup::default()
    })
    .await;
    assert_error(
        gw.post("/auth/login", &code("ok")).await,
        503,
        "provider_unavailable",
    )
    .await;
}

#[tokio::test]
async fn bad_refresh_tokens_are_invalid_grant() {
    let gw = start(Setup::default()).await;
    let t = gw.login("code-bob").await;
    let refresh = |tok: &str| format!("{{\"refresh_token\":\"{tok}\"}}");
    assert_error(gw.post("/auth/refresh", "{}").await, 400, "invalid_request").await;
    assert_error(
        gw.post("/auth/refresh", r#"{"refresh_token":""}"#).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        gw.post("/auth/refresh", &refresh("garbage")).await,
        400,
        "invalid_grant",
    )
    .await;
    // An access token is not a refresh token.
    assert_error(
        gw.post("/auth/refresh", &refresh(&t.access_token)).await,
        400,
        "invalid_grant",
    )
    .await;
    // Expired.
    let now = now();
    let expired = gw.sign(
        "refresh+jwt",
        serde_json::json!({"iss": "https://auth.test", "aud": "https://auth.test", "sub": "s", "client_id": APPID,
            "iat": now - 100, "exp": now - 60, "jti": "j", "sid": "s", "platform": "wechat"}),
    );
    assert_error(
        gw.post("/auth/refresh", &refresh(&expired)).await,
        400,
        "invalid_grant",
    )
    .await;
    // Signed by another key set.
    let other = jwks::KeySet::generate(jwks::Alg::ES256, std::time::SystemTime::now()).unwrap();
    let foreign = other
        .sign("refresh+jwt", &serde_json::json!({"iss": "https://auth.test", "aud": "https://auth.test", "sub": "s",
            "client_id": APPID, "iat": now, "exp": now + 60, "jti": "j", "sid": "s", "platform": "wechat"}))
        .unwrap();
    assert_error(
        gw.post("/auth/refresh", &refresh(&foreign)).await,
        400,
        "invalid_grant",
    )
    .await;
    // The genuine one still works.
    assert_eq!(
        gw.post("/auth/refresh", &refresh(&t.refresh_token))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn routing_and_upstream_failures() {
    let gw = start(Setup::default()).await;
    assert_error(gw.get("/nowhere", None).await, 404, "not_found").await;
    assert_error(gw.get("/", None).await, 404, "not_found").await;
    let t = gw.login("code-carol").await;
    assert_error(
        gw.get("/api/slow", Some(&t.access_token)).await,
        504,
        "gateway_timeout",
    )
    .await;
    for path in [
        "/public/../api/admin/x",
        "/public/%2e%2E/api/x",
        "/public/./x",
    ] {
        let answer = raw(
            gw.running.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("invalid_request"));
    }

    let (_held, dead) = closed_port();
    let gw2 = start(Setup {
        upstream_addr: Some(dead),
        keys_dir: Some(gw.keys_dir.clone()),
        ..Setup::default()
    })
    .await;
    assert_error(
        gw2.get("/api/x", Some(&t.access_token)).await,
        502,
        "bad_gateway",
    )
    .await;
    // Upstream errors pass through as they are: they are the service's answer.
    let res = gw.get("/api/status/503", Some(&t.access_token)).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-upstream"], "yes");
}

#[tokio::test]
async fn wrong_methods_on_own_endpoints_are_405() {
    let gw = start(Setup::default()).await;
    let res = gw.get("/auth/login", None).await;
    assert_eq!(res.headers()["allow"], "POST");
    assert_error(res, 405, "invalid_request").await;
    assert_error(
        gw.post("/.well-known/jwks.json", "{}").await,
        405,
        "invalid_request",
    )
    .await;
}
