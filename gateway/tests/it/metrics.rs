//! `/metrics`: scraped before and after traffic, every family moves by what
//! the traffic did.

use crate::support::*;

async fn scrape(gw: &Gateway) -> String {
    let res = gw.get("/metrics", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    res.text().await.unwrap()
}

#[tokio::test]
async fn metrics_move_as_requests_flow() {
    let gw = start(Setup::default()).await;
    let before = scrape(&gw).await;
    let t = gw.login("metrics").await;
    for _ in 0..3 {
        assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    }
    assert_eq!(gw.get("/api/x", None).await.status(), 401);
    assert_eq!(gw.get("/api/x", Some("a.b.c")).await.status(), 401);
    let expired = gw.sign(
        "at+jwt",
        serde_json::json!({"iss": "https://auth.test", "aud": "api", "sub": "u", "client_id": APPID,
            "iat": now() - 100, "exp": now() - 60, "jti": "j", "sid": "s", "platform": "wechat"}),
    );
    assert_eq!(gw.get("/api/x", Some(&expired)).await.status(), 401);
    assert_eq!(gw.get("/nowhere", None).await.status(), 404);
    assert_eq!(
        gw.get("/api/status/503", Some(&t.access_token))
            .await
            .status(),
        503
    );
    let res = gw.post("/auth/login", "{\"code\":\"err:40029\"}").await;
    assert_eq!(res.status(), 400);
    let after = scrape(&gw).await;

    let delta = |name: &str| series(&after, name) - series(&before, name);
    let api = |class: &str| format!("minigate_requests_total{{route=\"/api/\",class=\"{class}\"}}");
    assert_eq!(delta(&api("2xx")), 3.0, "{after}");
    assert_eq!(delta(&api("4xx")), 3.0, "{after}");
    assert_eq!(delta(&api("5xx")), 1.0, "{after}");
    let login =
        |class: &str| format!("minigate_requests_total{{route=\"/auth/login\",class=\"{class}\"}}");
    assert_eq!(delta(&login("2xx")), 1.0);
    assert_eq!(delta(&login("4xx")), 1.0);
    assert_eq!(
        delta("minigate_requests_total{route=\"unmatched\",class=\"4xx\"}"),
        1.0
    );
    for (reason, n) in [("missing", 1.0), ("malformed", 1.0), ("expired", 1.0)] {
        let series = format!("minigate_auth_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(delta(&series), n, "{series}\n{after}");
    }
    assert_eq!(delta("minigate_auth_success_total"), 4.0);
    // One miss (the first use of the token), then hits.
    assert_eq!(delta("minigate_token_cache_misses_total"), 1.0 + 2.0);
    assert_eq!(delta("minigate_token_cache_hits_total"), 3.0);
    assert_eq!(
        delta("minigate_upstream_duration_seconds_count{route=\"/api/\"}"),
        4.0,
        "{after}"
    );
    assert_eq!(
        delta("minigate_code_exchange_duration_seconds_count{platform=\"wechat\"}"),
        2.0
    );
    assert_eq!(
        delta("minigate_code_exchange_errors_total{platform=\"wechat\",error=\"invalid_code\"}"),
        1.0
    );
    // The key set, as loaded now.
    let kid = gw
        .running
        .gateway
        .tokens
        .keys()
        .load()
        .set
        .current()
        .kid()
        .to_owned();
    assert!(
        after.contains(&format!(
            "minigate_keyset_key{{kid=\"{kid}\",alg=\"ES256\",state=\"current\"}} 1"
        )),
        "{after}"
    );
    assert!(after.contains("minigate_keyset_reloads_total{outcome=\"refused\"} 0"));
    // Nothing secret in the exposition.
    assert!(!after.contains(SECRET) && !after.contains(SESSION_KEY));
    assert!(!after.contains(&t.access_token[..20]));
}
