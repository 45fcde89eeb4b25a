//! Refresh-token rotation with reuse detection, and logout: on the
//! in-process store and on a real Redis shared by two gateway processes.

use std::time::Duration;

use crate::support::*;

async fn refresh_ok(http: &reqwest::Client, base: &str, token: &str) -> Tokens {
    let res = post_refresh(http, base, "/auth/refresh", token).await;
    assert_eq!(res.status(), 200, "refresh at {base}");
    res.json().await.unwrap()
}

async fn refresh_refused(http: &reqwest::Client, base: &str, token: &str) -> String {
    let res = post_refresh(http, base, "/auth/refresh", token).await;
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    body["error_description"].as_str().unwrap().to_owned()
}

/// Fires 16 refreshes of one token at once, spread over `bases`; returns
/// how many got 200. The others get 400, or 429 when they reached the store
/// after the session's refreshes per minute were spent.
async fn race(http: &reqwest::Client, bases: &[&str], token: &str) -> usize {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (http, base, token, barrier) = (
                http.clone(),
                bases[i % bases.len()].to_owned(),
                token.to_owned(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                post_refresh(&http, &base, "/auth/refresh", &token)
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            400 | 429 => {}
            other => panic!("a racing refresh got {other}"),
        }
    }
    ok
}

/// The full reuse-detection story against one or two gateways.
async fn reuse_story(http: &reqwest::Client, a: &str, b: &str) {
    let t0 = login_at(http, a, "reuse").await;
    let t1 = refresh_ok(http, b, &t0.refresh_token).await;
    assert_ne!(t1.refresh_token, t0.refresh_token);
    let t2 = refresh_ok(http, a, &t1.refresh_token).await;
    // t0 again: a replay. The session is revoked for everyone...
    assert_eq!(
        refresh_refused(http, a, &t0.refresh_token).await,
        "refresh token already used"
    );
    // ...so the legitimate holder of t2 is cut off too.
    assert_eq!(
        refresh_refused(http, b, &t2.refresh_token).await,
        "session revoked"
    );
    // Another login session is untouched.
    let other = login_at(http, b, "reuse-other").await;
    refresh_ok(http, a, &other.refresh_token).await;
}

async fn logout_story(http: &reqwest::Client, a: &str, b: &str) {
    let t0 = login_at(http, a, "logout").await;
    let t1 = refresh_ok(http, a, &t0.refresh_token).await;
    let res = post_refresh(http, b, "/auth/logout", &t1.refresh_token).await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.bytes().await.unwrap().is_empty());
    assert_eq!(
        refresh_refused(http, a, &t1.refresh_token).await,
        "session revoked"
    );
    // Idempotent: logging out again, even with an older token, is fine.
    for t in [&t1.refresh_token, &t0.refresh_token] {
        assert_eq!(post_refresh(http, a, "/auth/logout", t).await.status(), 204);
    }
    // An access token is not a refresh token, here either.
    let res = post_refresh(http, a, "/auth/logout", &t1.access_token).await;
    assert_error(res, 400, "invalid_grant").await;
}

#[tokio::test]
async fn reuse_revokes_the_session_in_process() {
    let gw = start(Setup::default()).await;
    reuse_story(&gw.http, &gw.url, &gw.url).await;
}

#[tokio::test]
async fn logout_ends_the_session_in_process() {
    let gw = start(Setup::default()).await;
    logout_story(&gw.http, &gw.url, &gw.url).await;
    let bad = [
        ("", 400, "invalid_request"),
        ("{}", 400, "invalid_request"),
        ("{\"refresh_token\":\"\"}", 400, "invalid_request"),
        ("{\"refresh_token\":\"a.b.c\"}", 400, "invalid_grant"),
        ("[1,2]", 400, "invalid_request"),
    ];
    for (body, status, code) in bad {
        assert_error(gw.post("/auth/logout", body).await, status, code).await;
    }
    let res = gw.get("/auth/logout", None).await;
    assert_error(res, 405, "invalid_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_refreshes_one_wins_in_process() {
    let gw = start(Setup::default()).await;
    for round in 0..3 {
        let t = gw.login(&format!("race-{round}")).await;
        assert_eq!(race(&gw.http, &[&gw.url], &t.refresh_token).await, 1);
    }
}

#[tokio::test]
async fn an_unknown_session_fails_closed() {
    // A second gateway on the same keys but its own in-process store: the
    // token verifies, the session is unknown there, so it is refused.
    let a = start(Setup::default()).await;
    let b = start(Setup {
        keys_dir: Some(a.keys_dir.clone()),
        ..Setup::default()
    })
    .await;
    let t = a.login("elsewhere").await;
    assert_eq!(
        refresh_refused(&b.http, &b.url, &t.refresh_token).await,
        "unknown or expired session"
    );
    // And it did not get adopted there: A still has it.
    refresh_ok(&a.http, &a.url, &t.refresh_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn two_processes_share_sessions_through_redis() {
    let redis = Redis::start().await;
    let wechat = wechat().await;
    let upstream = upstream().await;
    let keys = key_dir(jwks::Alg::ES256);
    let setup = Setup {
        keys_dir: Some(keys.path().to_path_buf()),
        ..Setup::default().sessions(redis.sessions())
    };
    let a = spawn_binary_with(&setup, wechat.addr, upstream.addr, "info").await;
    let b = spawn_binary_with(&setup, wechat.addr, upstream.addr, "info").await;
    let http = client();
    reuse_story(&http, &a.url, &b.url).await;
    logout_story(&http, &a.url, &b.url).await;
    for round in 0..3 {
        let t = login_at(&http, &a.url, &format!("race-{round}")).await;
        assert_eq!(race(&http, &[&a.url, &b.url], &t.refresh_token).await, 1);
    }
    let ready = ready(&http, &b.url).await;
    assert_eq!(ready["sessions"], "redis");
    for logs in [a.stop(), b.stop()] {
        assert!(
            logs.contains("sessions=\"redis\"") || logs.contains("sessions=redis"),
            "{logs}"
        );
        assert!(!logs.contains(SECRET) && !logs.contains(SESSION_KEY));
    }
}

async fn eventually_ok(http: &reqwest::Client, base: &str, what: &str) -> Tokens {
    for _ in 0..100 {
        let res = http
            .post(format!("{base}/auth/login"))
            .body("{\"code\":\"after-outage\"}")
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            let t: Tokens = res.json().await.unwrap();
            return refresh_ok(http, base, &t.refresh_token).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: the session store never came back");
}

async fn assert_store_down(gw: &Gateway, t: &Tokens) {
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    let headers = assert_error(res, 503, "temporarily_unavailable").await;
    assert_eq!(headers["retry-after"], "1");
    let res = post_refresh(&gw.http, &gw.url, "/auth/logout", &t.refresh_token).await;
    assert_error(res, 503, "temporarily_unavailable").await;
    // A login cannot record its session, so it fails closed as well.
    let res = gw.post("/auth/login", "{\"code\":\"during\"}").await;
    assert_error(res, 503, "temporarily_unavailable").await;
    // The request path never touches the store.
    for _ in 0..20 {
        assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn redis_down_fails_closed_and_recovers() {
    let mut redis = Redis::start().await;
    let gw = start(Setup::default().sessions(redis.sessions())).await;
    let t = gw.login("before-outage").await;
    let t = refresh_ok(&gw.http, &gw.url, &t.refresh_token).await;

    // Killed: connections refused.
    redis.kill();
    assert_store_down(&gw, &t).await;
    redis.restart().await;
    // Reconnects by itself (until it has, the store is down: wait for a
    // login to pass). The restarted Redis kept nothing (no persistence), so
    // the old session is unknown.
    let fresh = eventually_ok(&gw.http, &gw.url, "after a restart").await;
    refresh_refused(&gw.http, &gw.url, &t.refresh_token).await;
    let t = fresh;

    // Hung: connections stay open, nothing answers. Calls time out.
    redis.pause(true);
    assert_store_down(&gw, &t).await;
    redis.pause(false);
    eventually_ok(&gw.http, &gw.url, "after a hang").await;
    // Every failure was counted, by operation.
    let metrics = gw.get("/metrics", None).await.text().await.unwrap();
    for op in ["login", "refresh", "logout"] {
        let line = format!("minigate_session_store_errors_total{{op=\"{op}\"}} ");
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(n >= 2.0, "{op}: {n}\n{metrics}");
    }
    gw.running.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_gateway_starts_while_redis_is_down() {
    let mut redis = Redis::start().await;
    redis.kill();
    let gw = start(Setup::default().sessions(redis.sessions())).await;
    assert_eq!(gw.get("/readyz", None).await.status(), 200);
    let res = gw.post("/auth/login", "{\"code\":\"x\"}").await;
    assert_error(res, 503, "temporarily_unavailable").await;
    redis.restart().await;
    eventually_ok(&gw.http, &gw.url, "after a late start").await;
}

/// A user service that records its calls, and a gateway asking it, on the
/// store of `store` (a `[sessions]` section).
async fn with_users(store: Sessions) -> (UserService, Gateway) {
    let users = user_service(Answer::Json(serde_json::json!({}))).await;
    let gw = start(Setup::default().sessions(store).enrich(enrich(users.url()))).await;
    (users, gw)
}

/// `token` (a refresh token of `gw`) with its claim `sid` replaced, signed
/// again: a well-signed token of a session no store knows.
fn of_unknown_session(gw: &Gateway, token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"] = "no-such-session-0000000".into();
    gw.sign("refresh+jwt", claims)
}

async fn logout_everywhere(gw: &Gateway, token: &str) -> reqwest::Response {
    gw.post(
        "/auth/logout",
        &serde_json::json!({"refresh_token": token, "everywhere": true}).to_string(),
    )
    .await
}

/// Logout everywhere with a spent, revoked or unknown refresh token is 400
/// `invalid_grant` and ends nothing; with the live one it ends them all.
async fn everywhere_story(store: Sessions) {
    let gw = start(Setup::default().sessions(store)).await;
    let phone = gw.login("erin").await;
    let spent = gw.login("erin").await;
    let live = refresh_ok(&gw.http, &gw.url, &spent.refresh_token).await;
    let ended = gw.login("erin").await;
    let res = gw
        .http
        .delete(format!("{}/auth/sessions/{}", gw.url, sid_of(&ended)))
        .bearer_auth(&phone.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let unknown = of_unknown_session(&gw, &phone.refresh_token);
    for (what, token) in [
        ("spent", &spent.refresh_token),
        ("of an ended session", &ended.refresh_token),
        ("of an unknown session", &unknown),
    ] {
        let res = logout_everywhere(&gw, token).await;
        assert_error(res, 400, "invalid_grant").await;
        // Nothing ended: not the user's other sessions, and not the spent
        // token's own (no reuse detection through this door either).
        for t in [&phone, &live] {
            assert_eq!(
                gw.get("/api/x", Some(&t.access_token)).await.status(),
                200,
                "after logout everywhere with a token {what}"
            );
        }
    }
    let phone = refresh_ok(&gw.http, &gw.url, &phone.refresh_token).await;
    let live = refresh_ok(&gw.http, &gw.url, &live.refresh_token).await;
    // The live token of a live session ends every session of its user.
    assert_eq!(
        logout_everywhere(&gw, &live.refresh_token).await.status(),
        204
    );
    for t in [&phone, &live] {
        assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 401);
        assert_eq!(
            refresh_refused(&gw.http, &gw.url, &t.refresh_token).await,
            "session revoked"
        );
    }
}

fn sid_of(t: &Tokens) -> String {
    use base64::Engine as _;
    let payload = t.access_token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn logout_everywhere_needs_the_live_refresh_token_in_process() {
    everywhere_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn logout_everywhere_needs_the_live_refresh_token_on_redis() {
    let redis = Redis::start().await;
    everywhere_story(redis.sessions()).await;
}

/// A spent, revoked or unknown refresh token costs no call of the user
/// service; a banned user's token ends its session once.
async fn dead_tokens_story(store: Sessions) {
    let (users, gw) = with_users(store).await;
    let asked = || users.asked.lock().unwrap().len();
    let t0 = gw.login("dave").await;
    let t1 = refresh_ok(&gw.http, &gw.url, &t0.refresh_token).await;
    assert_eq!(asked(), 2, "the login and the refresh");
    // Spent: reuse detection still ends the session, asking nobody.
    assert_eq!(
        refresh_refused(&gw.http, &gw.url, &t0.refresh_token).await,
        "refresh token already used"
    );
    assert_eq!(gw.get("/api/x", Some(&t1.access_token)).await.status(), 401);
    // Revoked, and unknown.
    for _ in 0..3 {
        assert_eq!(
            refresh_refused(&gw.http, &gw.url, &t1.refresh_token).await,
            "session revoked"
        );
        let unknown = of_unknown_session(&gw, &t1.refresh_token);
        assert_eq!(
            refresh_refused(&gw.http, &gw.url, &unknown).await,
            "unknown or expired session"
        );
    }
    assert_eq!(asked(), 2, "dead tokens asked the user service");
    // A banned user: the first refresh asks, is refused and ends the
    // session; the token asks nothing again.
    let b0 = gw.login("dave").await;
    users.answer(Answer::Status(403));
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &b0.refresh_token).await;
    assert_error(res, 403, "access_denied").await;
    assert_eq!(asked(), 4);
    for _ in 0..3 {
        assert_eq!(
            refresh_refused(&gw.http, &gw.url, &b0.refresh_token).await,
            "session revoked"
        );
    }
    assert_eq!(asked(), 4, "a banned user's dead token asked again");
}

#[tokio::test]
async fn dead_refresh_tokens_cost_no_user_service_call_in_process() {
    dead_tokens_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn dead_refresh_tokens_cost_no_user_service_call_on_redis() {
    let redis = Redis::start().await;
    dead_tokens_story(redis.sessions()).await;
}

/// At most 10 refreshes a minute per session: the 11th is 429 with
/// `Retry-After`, and costs nothing; other sessions, from the same address,
/// are not affected.
async fn refresh_rate_story(store: Sessions) {
    let (users, gw) = with_users(store).await;
    let mut t = gw.login("rita").await;
    for _ in 0..10 {
        t = refresh_ok(&gw.http, &gw.url, &t.refresh_token).await;
    }
    let asked = users.asked.lock().unwrap().len();
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    let headers = assert_error(res, 429, "rate_limited").await;
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(users.asked.lock().unwrap().len(), asked);
    // The refused refresh spent nothing: the session lives, its token is
    // still the live one (logout everywhere takes it).
    assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    let other = gw.login("rita").await;
    let other = refresh_ok(&gw.http, &gw.url, &other.refresh_token).await;
    assert_eq!(logout_everywhere(&gw, &t.refresh_token).await.status(), 204);
    assert_eq!(
        gw.get("/api/x", Some(&other.access_token)).await.status(),
        401
    );
    let text = gw.scrape().await;
    assert_eq!(
        series(&text, "minigate_refused_total{reason=\"refresh_rate\"}"),
        1.0
    );
}

#[tokio::test]
async fn refreshes_are_limited_per_session_in_process() {
    refresh_rate_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn refreshes_are_limited_per_session_on_redis() {
    let redis = Redis::start().await;
    refresh_rate_story(redis.sessions()).await;
}
