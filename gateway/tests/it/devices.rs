//! One user, many devices: device classes and limits, the session list,
//! ending sessions (logout, `DELETE`, a limit, reuse detection, the admin
//! API and its CLI) refused on every replica within 2 seconds, reuse grace,
//! a Redis restart, and a real three-node Redis Cluster.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use minigate::config::OnLimit;
use minigate::sessions::{NewSession, Recorded, SessionStore as _};
use minigate::tokens::{Jti, Sid, UserKey};

use crate::support::*;

/// The contract's bound on revocation reaching every replica.
pub(crate) const WITHIN: Duration = Duration::from_secs(2);

pub(crate) fn sid(t: &Tokens) -> String {
    claims(&t.access_token)["sid"].as_str().unwrap().to_owned()
}

/// Two replicas of `setup` sharing keys.
pub(crate) async fn replicas(setup: Setup) -> (Gateway, Gateway) {
    let a = start(setup.clone()).await;
    let b = start(Setup {
        keys_dir: Some(a.keys_dir.clone()),
        ..setup
    })
    .await;
    (a, b)
}

async fn refresh(gw: &Gateway, t: &str) -> reqwest::Response {
    post_refresh(&gw.http, &gw.url, "/auth/refresh", t).await
}

pub(crate) async fn refresh_ok(gw: &Gateway, t: &str) -> Tokens {
    let res = refresh(gw, t).await;
    assert_eq!(res.status(), 200, "refresh at {}", gw.url);
    res.json().await.unwrap()
}

/// A refused refresh: its `error_description`.
async fn refresh_refused(gw: &Gateway, t: &str) -> String {
    let res = refresh(gw, t).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    body["error_description"].as_str().unwrap().to_owned()
}

async fn status(gw: &Gateway, access: &str) -> u16 {
    gw.get("/api/x", Some(access)).await.status().as_u16()
}

/// The token works on every one of `gws` (and is now in their caches).
async fn accepted_everywhere(gws: &[&Gateway], access: &str) {
    for gw in gws {
        assert_eq!(status(gw, access).await, 200, "at {}", gw.url);
        assert_eq!(status(gw, access).await, 200, "cached at {}", gw.url);
    }
}

/// Polls every one of `gws` until it refuses `access` as revoked; fails
/// if that takes longer than [`WITHIN`] from the call.
async fn refused_everywhere(gws: &[&Gateway], access: &str, what: &str) -> Duration {
    let started = Instant::now();
    for gw in gws {
        loop {
            let res = gw.get("/api/x", Some(access)).await;
            if res.status() == 401 {
                let challenge = res.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert!(challenge.contains("session revoked"), "{what}: {challenge}");
                assert_error(res, 401, "invalid_token").await;
                break;
            }
            assert_eq!(res.status(), 200);
            assert!(
                started.elapsed() < WITHIN,
                "{what}: {} still accepts the token after {:?}",
                gw.url,
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    started.elapsed()
}

pub(crate) async fn sessions(gw: &Gateway, access: &str) -> Vec<Value> {
    let res = gw.get("/auth/sessions", Some(access)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

async fn delete(gw: &Gateway, path: &str, access: &str) -> reqwest::Response {
    gw.http
        .delete(format!("{}{path}", gw.url))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

async fn admin(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = gw.http.request(method, format!("{}{path}", gw.admin_url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn limits_eviction_logout_and_delete_reach_both_replicas() {
    let redis = Redis::start().await;
    let (a, b) = replicas(
        Setup::default()
            .sessions(redis.sessions())
            .admin(Admin::test()),
    )
    .await;
    let both = [&a, &b];

    // A PC login, then another of the same user on the other replica: the
    // first is evicted (pc = 1), everywhere.
    let pc1 = a.login_on("alice", Some("pc")).await;
    assert_eq!(claims(&pc1.access_token)["dvt"], "pc");
    accepted_everywhere(&both, &pc1.access_token).await;
    assert_eq!(b.upstream.last().headers["x-auth-device-type"], "pc");
    let pc2 = b.login_on("alice", Some("pc")).await;
    let took = refused_everywhere(&both, &pc1.access_token, "eviction").await;
    eprintln!("eviction refused on both replicas after {took:?}");
    assert_eq!(
        refresh_refused(&a, &pc1.refresh_token).await,
        "session revoked"
    );
    accepted_everywhere(&both, &pc2.access_token).await;

    // web = 2: the third web login ends the first, seen from either side.
    let w1 = a.login_on("alice", Some("web")).await;
    let w2 = b.login_on("alice", Some("web")).await;
    let w3 = a.login_on("alice", Some("web")).await;
    refused_everywhere(&both, &w1.access_token, "web eviction").await;
    // Phones have no limit; a login without device_type is a phone.
    let p1 = b.login_on("alice", None).await;
    let p2 = a.login_on("alice", Some("phone")).await;
    assert_eq!(claims(&p1.access_token)["dvt"], "phone");

    // The list, from the other replica: newest first, this one current.
    let list = sessions(&b, &p2.access_token).await;
    let sids: Vec<&str> = list.iter().map(|s| s["sid"].as_str().unwrap()).collect();
    assert_eq!(sids.len(), 5, "{list:?}");
    for t in [&pc2, &w2, &w3, &p1, &p2] {
        assert!(sids.contains(&sid(t).as_str()), "{list:?}");
    }
    assert_eq!(sids[0], sid(&p2));
    assert_eq!(list[0]["current"], true);
    assert!(list[1..].iter().all(|s| s["current"] == false));
    let pcs: Vec<&Value> = list.iter().filter(|s| s["device_type"] == "pc").collect();
    assert_eq!(pcs.len(), 1);
    assert!(pcs[0]["created_at"].as_u64().unwrap() <= now());
    assert!(pcs[0]["refreshed_at"].as_u64().unwrap() >= pcs[0]["created_at"].as_u64().unwrap());

    // Logout on B ends p1 everywhere.
    accepted_everywhere(&both, &p1.access_token).await;
    let res = post_refresh(&b.http, &b.url, "/auth/logout", &p1.refresh_token).await;
    assert_eq!(res.status(), 204);
    refused_everywhere(&both, &p1.access_token, "logout").await;

    // DELETE /auth/sessions/{sid} of another of the user's sessions.
    accepted_everywhere(&both, &w2.access_token).await;
    let res = delete(
        &a,
        &format!("/auth/sessions/{}", sid(&w2)),
        &p2.access_token,
    )
    .await;
    assert_eq!(res.status(), 204);
    refused_everywhere(&both, &w2.access_token, "DELETE").await;
    assert_eq!(
        refresh_refused(&b, &w2.refresh_token).await,
        "session revoked"
    );
    // Not a live session of this user (any more, or ever): 404.
    let res = delete(
        &b,
        &format!("/auth/sessions/{}", sid(&w2)),
        &p2.access_token,
    )
    .await;
    assert_error(res, 404, "not_found").await;
    let bob = b.login_on("bob", None).await;
    let res = delete(
        &a,
        &format!("/auth/sessions/{}", sid(&bob)),
        &p2.access_token,
    )
    .await;
    assert_error(res, 404, "not_found").await;
    accepted_everywhere(&both, &bob.access_token).await;
    // The session endpoints need a live session's access token.
    assert_error(a.get("/auth/sessions", None).await, 401, "unauthorized").await;
    let res = a.get("/auth/sessions", Some(&p1.access_token)).await;
    assert_error(res, 401, "invalid_token").await;
    let res = a.get("/auth/sessions", Some(&p2.refresh_token)).await;
    assert_error(res, 401, "invalid_token").await;
    let res = delete(&a, "/auth/sessions", &p2.access_token).await;
    assert_error(res, 405, "invalid_request").await;

    // What was refused is counted, and the set is bounded by what it holds.
    assert!(
        series(
            &a.scrape().await,
            "minigate_auth_failures_total{reason=\"revoked\"}"
        ) >= 1.0
    );
    assert!(series(&b.scrape().await, "minigate_revoked_sessions") >= 4.0);
    assert!(
        series(
            &b.scrape().await,
            "minigate_revoked_resyncs_total{kind=\"full\"}"
        ) >= 1.0
    );
    assert!(series(&b.scrape().await, "minigate_revocation_lag_seconds_count") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn reuse_detection_logout_everywhere_and_the_admin_api_reach_both_replicas() {
    let redis = Redis::start().await;
    let (a, b) = replicas(
        Setup::default()
            .sessions(redis.sessions())
            .admin(Admin::test()),
    )
    .await;
    let both = [&a, &b];
    let alice = openid_for("alice");

    // Reuse detection: the replayed token revokes the successor everywhere.
    let r0 = a.login_on("alice", None).await;
    let r1 = refresh_ok(&b, &r0.refresh_token).await;
    accepted_everywhere(&both, &r1.access_token).await;
    assert_eq!(
        refresh_refused(&a, &r0.refresh_token).await,
        "refresh token already used"
    );
    refused_everywhere(&both, &r1.access_token, "reuse detection").await;
    refused_everywhere(&both, &r0.access_token, "reuse detection").await;

    // logout with everywhere: every session of the user, every class.
    let e1 = a.login_on("carol", Some("web")).await;
    let e2 = b.login_on("carol", Some("pc")).await;
    accepted_everywhere(&both, &e1.access_token).await;
    accepted_everywhere(&both, &e2.access_token).await;
    let res = b
        .post(
            "/auth/logout",
            &json!({"refresh_token": e1.refresh_token, "everywhere": true}).to_string(),
        )
        .await;
    assert_eq!(res.status(), 204);
    refused_everywhere(&both, &e1.access_token, "logout everywhere").await;
    refused_everywhere(&both, &e2.access_token, "logout everywhere").await;

    // The admin API: a token is needed, compared exactly.
    let path = format!("/admin/users/{alice}/sessions");
    for token in [None, Some("wrong"), Some(&ADMIN_TOKEN[1..])] {
        let res = admin(&a, reqwest::Method::GET, &path, token).await;
        assert_error(res, 401, "unauthorized").await;
    }
    // Never on the public port.
    for gw in both {
        let res = gw
            .http
            .get(format!("{}{path}", gw.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_error(res, 404, "not_found").await;
    }
    let s1 = b.login_on("alice", Some("pc")).await;
    let s2 = a.login_on("alice", None).await;
    accepted_everywhere(&both, &s1.access_token).await;
    let res = admin(&a, reqwest::Method::GET, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let list = list["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["sid"], sid(&s2));
    assert_eq!(list[1]["device_type"], "pc");
    assert!(list[0].get("current").is_none());

    // One session, by the admin API on A: refused on both.
    let one = format!("{path}/{}", sid(&s1));
    let res = admin(&a, reqwest::Method::DELETE, &one, Some(ADMIN_TOKEN)).await;
    assert_eq!(res.status(), 204);
    refused_everywhere(&both, &s1.access_token, "admin DELETE one").await;
    let res = admin(&b, reqwest::Method::DELETE, &one, Some(ADMIN_TOKEN)).await;
    assert_error(res, 404, "not_found").await;
    // Every session of the user, by the admin API on B.
    accepted_everywhere(&both, &s2.access_token).await;
    let res = admin(&b, reqwest::Method::DELETE, &path, Some(ADMIN_TOKEN)).await;
    assert_eq!(res.status(), 204);
    refused_everywhere(&both, &s2.access_token, "admin DELETE all").await;
    let res = admin(&a, reqwest::Method::GET, &path, Some(ADMIN_TOKEN)).await;
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["sessions"], json!([]));
    assert_eq!(
        refresh_refused(&a, &s2.refresh_token).await,
        "session revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn replicas_catch_up_after_a_redis_restart_and_nothing_revoked_comes_back() {
    let mut redis = Redis::start().await;
    let (a, b) = replicas(Setup::default().sessions(redis.sessions())).await;
    let both = [&a, &b];
    let x = a.login_on("dave", None).await;
    let live = b.login_on("dave", None).await;
    accepted_everywhere(&both, &x.access_token).await;
    accepted_everywhere(&both, &live.access_token).await;
    let res = post_refresh(&a.http, &a.url, "/auth/logout", &x.refresh_token).await;
    assert_eq!(res.status(), 204);
    refused_everywhere(&both, &x.access_token, "logout").await;

    // Redis down: the replicas keep what they know; the request path does
    // not need Redis.
    redis.kill();
    for gw in both {
        for _ in 0..5 {
            assert_eq!(status(gw, &x.access_token).await, 401);
            assert_eq!(status(gw, &live.access_token).await, 200);
        }
    }
    // Back, empty (no persistence): the revoked session stays revoked.
    redis.restart().await;
    let z = loop {
        // The command connection reconnects by itself.
        let res = a.try_login(login_body("dave", None)).await;
        if res.status() == 200 {
            break res.json::<Tokens>().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    accepted_everywhere(&both, &z.access_token).await;
    // Ended at once after the restart, maybe before B has subscribed
    // again: B learns it by pub/sub or by its resync after reconnecting.
    let res = delete(&a, &format!("/auth/sessions/{}", sid(&z)), &z.access_token).await;
    assert_eq!(res.status(), 204);
    refused_everywhere(&both, &z.access_token, "after a restart").await;
    // B has resynced in full again since the restart.
    let started = Instant::now();
    while series(
        &b.scrape().await,
        "minigate_revoked_resyncs_total{kind=\"full\"}",
    ) < 2.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no resync after reconnecting"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for gw in both {
        assert_eq!(status(gw, &x.access_token).await, 401, "came back to life");
        assert_eq!(status(gw, &z.access_token).await, 401, "came back to life");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_and_revokes_through_the_admin_listener() {
    let gw = start(Setup::default().admin(Admin::test())).await;
    let user = openid_for("erin");
    let pc = gw.login_on("erin", Some("pc")).await;
    let phone = gw.login_on("erin", None).await;
    let url = gw.admin_url();
    let (code, out, err) = admin_cli(
        &["sessions", "list", "--user", &user, "--admin", &url],
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&sid(&pc)) && out.contains(&sid(&phone)),
        "{out}"
    );
    assert!(
        out.contains(" pc ") && out.contains("2 live session(s)"),
        "{out}"
    );
    // The address from the config's [admin] listen.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("minigate.toml");
    std::fs::write(
        &config,
        format!("[admin]\nlisten = \"{}\"\n", gw.running.admin.unwrap()),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (code, out, _) = admin_cli(
        &["sessions", "list", "--user", &user, "--config", config],
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.contains(&sid(&pc)), "{out}");

    // A sid may start with "-": it is still a value, not a flag.
    let pc_sid = sid(&pc);
    let one = [
        "sessions", "revoke", "--user", &user, "--sid", &pc_sid, "--admin", &url,
    ];
    let (code, out, err) = admin_cli(&one, Some(ADMIN_TOKEN)).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ended session"), "{out}");
    let dashed = [
        "sessions", "revoke", "--user", &user, "--sid", "-x", "--admin", &url,
    ];
    let (code, _, err) = admin_cli(&dashed, Some(ADMIN_TOKEN)).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no live session -x"), "{err}");
    assert_eq!(status(&gw, &pc.access_token).await, 401);
    assert_eq!(status(&gw, &phone.access_token).await, 200);
    let (code, _, err) = admin_cli(&one, Some(ADMIN_TOKEN)).await;
    assert_eq!(code, 1);
    assert!(err.contains("no live session"), "{err}");

    // A wrong token, or none.
    let list = ["sessions", "list", "--user", &user, "--admin", &url];
    let (code, out, err) = admin_cli(&list, Some("not-the-admin-token")).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("refused the token") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!out.contains("not-the-admin-token") && !err.contains("not-the-admin-token"));
    let (code, _, err) = admin_cli(&list, None).await;
    assert_eq!(code, 2);
    assert!(err.contains("MINIGATE_ADMIN_TOKEN"), "{err}");

    let all = ["sessions", "revoke", "--user", &user, "--config", config];
    let (code, out, _) = admin_cli(&all, Some(ADMIN_TOKEN)).await;
    assert_eq!(code, 0);
    assert!(out.contains("ended every session"), "{out}");
    assert_eq!(status(&gw, &phone.access_token).await, 401);
    let (_, out, err) = admin_cli(&list, Some(ADMIN_TOKEN)).await;
    assert!(
        out.contains(&format!("0 live session(s) under the user key {user}")),
        "{out}"
    );
    // An empty list says which key it looked up and which others to try.
    assert!(err.contains("try their unionid or uid"), "{err}");
}

/// `refuse` mode and device classes, on the store of `store` (a
/// `[sessions]` section).
async fn refuse_story(store: Sessions) {
    let devices = Devices::default().web(2).tablet(1);
    let gw = start(Setup::default().sessions(store.on_limit("refuse").devices(devices))).await;
    let w1 = gw.login_on("frank", Some("web")).await;
    let _w2 = gw.login_on("frank", Some("web")).await;
    let res = gw.try_login(login_body("frank", Some("web"))).await;
    assert_error(res, 409, "session_limit").await;
    // The refused login left nothing behind, and others still pass.
    assert_eq!(status(&gw, &w1.access_token).await, 200);
    assert_eq!(sessions(&gw, &w1.access_token).await.len(), 2);
    gw.login_on("frank", Some("tablet")).await;
    assert_error(
        gw.try_login(login_body("frank", Some("tablet"))).await,
        409,
        "session_limit",
    )
    .await;
    gw.login_on("frank", None).await;
    gw.login_on("grace", Some("web")).await;
    for bad in ["fridge", "Web", "w e b", ""] {
        assert_error(
            gw.try_login(login_body("frank", Some(bad))).await,
            400,
            "invalid_request",
        )
        .await;
    }
    // A freed slot can be taken again.
    let res = post_refresh(&gw.http, &gw.url, "/auth/logout", &w1.refresh_token).await;
    assert_eq!(res.status(), 204);
    gw.login_on("frank", Some("web")).await;
}

#[tokio::test]
async fn refuse_mode_in_process() {
    refuse_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn refuse_mode_on_redis() {
    let redis = Redis::start().await;
    refuse_story(redis.sessions()).await;
}

/// Reuse grace of 1 s on the store of `store`.
async fn grace_story(store: Sessions) {
    let gw = start(Setup::default().sessions(store.reuse_grace(secs(1)))).await;
    // The answer to the first refresh was lost: the same token again, in
    // time, gets a new pair; the lost pair stops refreshing.
    let t0 = gw.login_on("heidi", None).await;
    let lost = refresh_ok(&gw, &t0.refresh_token).await;
    let again = refresh_ok(&gw, &t0.refresh_token).await;
    let next = refresh_ok(&gw, &again.refresh_token).await;
    assert_eq!(
        refresh_refused(&gw, &lost.refresh_token).await,
        "refresh token already used"
    );
    assert_eq!(
        refresh_refused(&gw, &next.refresh_token).await,
        "session revoked"
    );
    // Past the grace it is reuse, as before.
    let u0 = gw.login_on("heidi", None).await;
    let u1 = refresh_ok(&gw, &u0.refresh_token).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        refresh_refused(&gw, &u0.refresh_token).await,
        "refresh token already used"
    );
    assert_eq!(
        refresh_refused(&gw, &u1.refresh_token).await,
        "session revoked"
    );
    // Of 16 concurrent refreshes of one token, one or two get 200.
    for round in 0..3 {
        let t = gw.login_on(&format!("race-{round}"), None).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (http, url, token, barrier) = (
                    gw.http.clone(),
                    gw.url.clone(),
                    t.refresh_token.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    post_refresh(&http, &url, "/auth/refresh", &token)
                        .await
                        .status()
                        .as_u16()
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap() == 200 {
                ok += 1;
            }
        }
        assert!((1..=2).contains(&ok), "{ok} refreshes got 200");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_grace_in_process() {
    grace_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn reuse_grace_on_redis() {
    let redis = Redis::start().await;
    grace_story(redis.sessions()).await;
}

/// 32 PC logins of one user at once, spread over `gws`, with pc = 1:
/// exactly one live PC session is left, and exactly one token of the 32
/// still passes.
async fn thirty_two_pc_logins(gws: &[&Gateway]) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let gw = gws[i % gws.len()];
            let (http, url, barrier) = (gw.http.clone(), gw.url.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let res = http
                    .post(format!("{url}/auth/login"))
                    .body(json!({"code": fresh("ivan"), "device_type": "pc"}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                res.json::<Tokens>().await.unwrap()
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }
    // Every session but one is evicted, and refused on every replica,
    // within 2 s.
    let started = Instant::now();
    let survivor = loop {
        let mut passing = Vec::new();
        for t in &all {
            for gw in gws {
                if status(gw, &t.access_token).await == 200 {
                    passing.push(t);
                }
            }
        }
        passing.dedup_by_key(|t| sid(t));
        if passing.len() == 1 {
            break passing[0];
        }
        assert!(
            started.elapsed() < WITHIN,
            "{} sessions still pass",
            passing.len()
        );
    };
    let list = sessions(gws[0], &survivor.access_token).await;
    let pcs: Vec<&Value> = list.iter().filter(|s| s["device_type"] == "pc").collect();
    assert_eq!(pcs.len(), 1, "{list:?}");
    assert_eq!(pcs[0]["sid"], sid(survivor));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_simultaneous_pc_logins_leave_one_in_process() {
    let gw = start(Setup::default()).await;
    thirty_two_pc_logins(&[&gw]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn thirty_two_simultaneous_pc_logins_leave_one_on_redis() {
    let redis = Redis::start().await;
    let (a, b) = replicas(Setup::default().sessions(redis.sessions())).await;
    thirty_two_pc_logins(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn redis_cluster_login_refresh_reuse_limits_and_listing() {
    let cluster = RedisCluster::start().await;
    let (a, b) = replicas(
        Setup::default()
            .sessions(cluster.sessions())
            .admin(Admin::test()),
    )
    .await;
    let both = [&a, &b];
    let ready: Value = a.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["sessions"], "redis-cluster");

    // Login and refresh across replicas, for users on every node's slots.
    for n in 0..12 {
        let t = a.login_on(&format!("user-{n}"), None).await;
        let t = refresh_ok(&b, &t.refresh_token).await;
        refresh_ok(&a, &t.refresh_token).await;
    }
    // Reuse detection.
    let r0 = a.login_on("judy", None).await;
    let r1 = refresh_ok(&b, &r0.refresh_token).await;
    accepted_everywhere(&both, &r1.access_token).await;
    assert_eq!(
        refresh_refused(&a, &r0.refresh_token).await,
        "refresh token already used"
    );
    assert_eq!(
        refresh_refused(&b, &r1.refresh_token).await,
        "session revoked"
    );
    refused_everywhere(&both, &r1.access_token, "cluster reuse").await;

    // Device limits, seen from the other replica.
    let pc1 = a.login_on("judy", Some("pc")).await;
    accepted_everywhere(&both, &pc1.access_token).await;
    let pc2 = b.login_on("judy", Some("pc")).await;
    refused_everywhere(&both, &pc1.access_token, "cluster eviction").await;
    assert_eq!(
        refresh_refused(&a, &pc1.refresh_token).await,
        "session revoked"
    );
    let w = a.login_on("judy", Some("web")).await;

    // Listing, newest first.
    let list = sessions(&b, &pc2.access_token).await;
    let sids: Vec<&str> = list.iter().map(|s| s["sid"].as_str().unwrap()).collect();
    assert_eq!(sids, [sid(&w), sid(&pc2)], "{list:?}");
    assert_eq!(list[1]["current"], true);
    let res = admin(
        &b,
        reqwest::Method::GET,
        &format!("/admin/users/{}/sessions", openid_for("judy")),
        Some(ADMIN_TOKEN),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["sessions"].as_array().unwrap().len(), 2);

    // Every key of the user shares one hash tag, so one slot.
    let tag = format!("minigate:{{u:{}}}", openid_for("judy"));
    let mut slots = Vec::new();
    for key in [
        format!("{tag}:sessions"),
        format!("{tag}:class:pc"),
        format!("{tag}:class:web"),
        format!("{tag}:s:{}", sid(&pc2)),
        format!("{tag}:s:{}", sid(&w)),
    ] {
        assert_eq!(cluster.cli(&["EXISTS", &key]).await.trim(), "1", "{key}");
        slots.push(cluster.cli(&["CLUSTER", "KEYSLOT", &key]).await);
    }
    slots.dedup();
    assert_eq!(slots.len(), 1, "{slots:?}");

    // And the PC race, on the cluster.
    thirty_two_pc_logins(&both).await;
}

/// A PC session that expired does not hold a PC slot, even when another
/// class's login dropped it from the user's index first.
#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn an_expired_session_frees_its_slot_on_redis() {
    let redis = Redis::start().await;
    let store = minigate::sessions::redis::RedisStore::new(&redis.url(), Duration::ZERO).unwrap();
    let new = |sid: &'static str, device_type: &'static str, limit| NewSession {
        user: UserKey("kim"),
        sid: Sid(sid),
        jti: Jti("j"),
        device_type,
        device_id: None,
        platform: "wechat",
        appid: "wx1",
        device_name: None,
        limit,
        max_per_user: 0,
        on_limit: OnLimit::Refuse,
        session_key: None,
        openid: "o",
    };
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(60);
    let started = Recorded::Started { evicted: vec![] };
    assert_eq!(
        store.begin(&new("pc1", "pc", 2), short).await,
        Ok(started.clone())
    );
    assert_eq!(
        store.begin(&new("pc2", "pc", 2), long).await,
        Ok(started.clone())
    );
    assert_eq!(
        store.begin(&new("pc3", "pc", 2), long).await,
        Ok(Recorded::Refused)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A phone login drops pc1 from the index...
    assert_eq!(
        store.begin(&new("ph1", "phone", 0), long).await,
        Ok(started.clone())
    );
    // ...and its PC slot is free.
    assert_eq!(store.begin(&new("pc3", "pc", 2), long).await, Ok(started));
    let sids: Vec<String> = store
        .list(UserKey("kim"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    let mut sids = sids;
    sids.sort();
    assert_eq!(sids, ["pc2", "pc3", "ph1"]);
}

/// `max_per_user = 3` on the store of `store` (a `[sessions]` section):
/// past it the user's oldest session, of any class, ends everywhere; with
/// `refuse` the login is 409 and changes nothing.
async fn ceiling_story(store: Sessions) {
    let gw = start(Setup::default().sessions(store.clone().max_per_user(3))).await;
    let p1 = gw.login_on("olga", None).await;
    let w1 = gw.login_on("olga", Some("web")).await;
    let p2 = gw.login_on("olga", None).await;
    accepted_everywhere(&[&gw], &p1.access_token).await;
    let p3 = gw.login_on("olga", None).await;
    refused_everywhere(&[&gw], &p1.access_token, "ceiling").await;
    assert_eq!(
        refresh_refused(&gw, &p1.refresh_token).await,
        "session revoked"
    );
    let sids: Vec<String> = sessions(&gw, &p3.access_token)
        .await
        .iter()
        .map(|s| s["sid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sids, [sid(&p3), sid(&p2), sid(&w1)]);
    // The oldest of any class: a web login ends the web session w1...
    let w2 = gw.login_on("olga", Some("web")).await;
    refused_everywhere(&[&gw], &w1.access_token, "ceiling, another class").await;
    // ...and the next one the phone session p2.
    let w3 = gw.login_on("olga", Some("web")).await;
    refused_everywhere(&[&gw], &p2.access_token, "ceiling").await;
    // With the web class full (2), its own limit ends its oldest first,
    // which leaves room under the ceiling: p3 lives on.
    let w4 = gw.login_on("olga", Some("web")).await;
    refused_everywhere(&[&gw], &w2.access_token, "class limit").await;
    assert_eq!(status(&gw, &p3.access_token).await, 200);
    let sids: Vec<String> = sessions(&gw, &w4.access_token)
        .await
        .iter()
        .map(|s| s["sid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sids, [sid(&w4), sid(&w3), sid(&p3)]);
    // Other users are not affected.
    for _ in 0..4 {
        gw.login_on("pavel", None).await;
    }
    drop(gw);

    let gw = start(Setup::default().sessions(store.max_per_user(2).on_limit("refuse"))).await;
    let a = gw.login_on("quinn", None).await;
    let b = gw.login_on("quinn", Some("pc")).await;
    let res = gw.try_login(login_body("quinn", Some("web"))).await;
    assert_error(res, 409, "session_limit").await;
    assert_eq!(sessions(&gw, &a.access_token).await.len(), 2);
    for t in [&a, &b] {
        assert_eq!(status(&gw, &t.access_token).await, 200);
    }
    // A freed place can be taken again.
    let res = post_refresh(&gw.http, &gw.url, "/auth/logout", &b.refresh_token).await;
    assert_eq!(res.status(), 204);
    gw.login_on("quinn", Some("web")).await;
}

#[tokio::test]
async fn a_user_holds_at_most_max_per_user_sessions_in_process() {
    ceiling_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_user_holds_at_most_max_per_user_sessions_on_redis() {
    let redis = Redis::start().await;
    ceiling_story(redis.sessions()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_user_holds_at_most_max_per_user_sessions_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    ceiling_story(cluster.sessions()).await;
    // The ceiling's set shares the user's hash tag.
    let tag = format!("minigate:{{u:{}}}", openid_for("olga"));
    let a = cluster
        .cli(&["CLUSTER", "KEYSLOT", &format!("{tag}:all")])
        .await;
    let b = cluster
        .cli(&["CLUSTER", "KEYSLOT", &format!("{tag}:sessions")])
        .await;
    assert_eq!(a, b);
}

/// `redis-cli -p PORT ARGS...` on the test's Redis.
pub(crate) async fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let out = tokio::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .await
        .expect("redis-cli is not installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many times Redis ran `command` (scripts' calls included) since the
/// last `CONFIG RESETSTAT`.
async fn calls_of(redis: &Redis, command: &str) -> u64 {
    let stats = redis_cli(redis, &["INFO", "commandstats"]).await;
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// The default ceiling (100) holds on Redis, and listing a user's sessions
/// reads at most that many, however many the user's index holds (here
/// 3,000 live sessions written straight into Redis, as a version without
/// the ceiling could have left them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_default_ceiling_bounds_a_users_sessions_and_a_listings_work_on_redis() {
    let redis = Redis::start().await;
    let gw = start(Setup::default().sessions(redis.sessions())).await;
    let first = gw.login_on("rosa", None).await;
    let mut last = None;
    for _ in 0..100 {
        last = Some(gw.login_on("rosa", None).await);
    }
    let last = last.unwrap();
    assert_eq!(
        refresh_refused(&gw, &first.refresh_token).await,
        "session revoked"
    );
    assert_eq!(sessions(&gw, &last.access_token).await.len(), 100);

    // Sessions the ceiling never saw.
    let tag = format!("minigate:{{u:{}}}", openid_for("sam"));
    let seed = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000
for i = 1, 3000 do
  local sid = 'old' .. i
  redis.call('ZADD', KEYS[1], now + 3600000, sid)
  redis.call('HSET', ARGV[1] .. sid, 'jti', 'j', 'state', 'live', 'dvt', 'phone', 'did', '',
    'created', (now - 3600000 + i) * 1000, 'refreshed', now)
  redis.call('PEXPIRE', ARGV[1] .. sid, 3600000)
end
return 1
";
    let index = format!("{tag}:sessions");
    let prefix = format!("{tag}:s:");
    let out = redis_cli(&redis, &["EVAL", seed, "1", &index, &prefix]).await;
    assert_eq!(out.trim(), "1", "{out}");
    let sam = gw.login_on("sam", None).await;
    redis_cli(&redis, &["CONFIG", "RESETSTAT"]).await;
    let list = sessions(&gw, &sam.access_token).await;
    assert_eq!(list.len(), 100);
    let read = calls_of(&redis, "hmget").await;
    assert!(read <= 100, "one listing read {read} sessions");
}

/// `GET` and `DELETE /auth/sessions` are limited per user: one user's
/// loop is refused with 429 and `Retry-After`, while another user behind
/// the same address is served.
#[tokio::test]
async fn the_session_endpoints_are_limited_per_user_not_per_address() {
    let gw = start(Setup::default()).await;
    let tom = gw.login_on("tom", None).await;
    let una = gw.login_on("una", None).await;
    let mut refused = None;
    for _ in 0..40 {
        let res = gw.get("/auth/sessions", Some(&tom.access_token)).await;
        if res.status() == 429 {
            refused = Some(res);
            break;
        }
        assert_eq!(res.status(), 200);
    }
    let res = refused.expect("a user listed its sessions 40 times in a row");
    let headers = assert_error(res, 429, "rate_limited").await;
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
    let res = delete(
        &gw,
        &format!("/auth/sessions/{}", sid(&tom)),
        &tom.access_token,
    )
    .await;
    assert_error(res, 429, "rate_limited").await;
    // Same client address, another user: served.
    assert_eq!(sessions(&gw, &una.access_token).await.len(), 1);
    assert!(
        series(
            &gw.scrape().await,
            "minigate_refused_total{reason=\"sessions_rate\"}"
        ) >= 2.0
    );
}
