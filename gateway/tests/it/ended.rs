//! Sessions as users see them: why a session ended (`reason` beside the
//! error of a 401 or a 400 `invalid_grant`, the same on every replica, and
//! from an older replica's revocations), the idle timeout, and the listing's
//! platform, app and device name; in process, on Redis, and across two
//! replicas sharing Redis.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::devices::{redis_cli, refresh_ok, replicas, sessions, sid, WITHIN};
use crate::support::*;

/// An error answer's status, `error` and `reason` (`None`: no member).
async fn answered(res: reqwest::Response) -> (u16, String, Option<String>) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert!(body["error_description"].is_string(), "{body}");
    (
        status,
        body["error"].as_str().unwrap_or("").to_owned(),
        body.get("reason").map(|r| r.as_str().unwrap().to_owned()),
    )
}

/// What `gw` answers an access token of an ended session: 401
/// `invalid_token` and its reason.
async fn access_reason(gw: &Gateway, access: &str) -> Option<String> {
    let (status, error, reason) = answered(gw.get("/api/x", Some(access)).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_token"));
    reason
}

/// What `gw` answers a refresh with a token of an ended session: 400
/// `invalid_grant` and its reason.
async fn refresh_reason(gw: &Gateway, refresh: &str) -> Option<String> {
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", refresh).await;
    let (status, error, reason) = answered(res).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    reason
}

/// Both tokens of `t` are refused at `gw` with `reason`.
async fn ended_as(gw: &Gateway, t: &Tokens, reason: &str) {
    assert_eq!(
        access_reason(gw, &t.access_token).await.as_deref(),
        Some(reason),
        "access token at {}",
        gw.url
    );
    assert_eq!(
        refresh_reason(gw, &t.refresh_token).await.as_deref(),
        Some(reason),
        "refresh token at {}",
        gw.url
    );
}

/// What `gw` answers a logout everywhere with a token of an ended
/// session: 400 `invalid_grant` and its reason.
async fn everywhere(gw: &Gateway, t: &Tokens) -> Option<String> {
    let body = json!({"refresh_token": t.refresh_token, "everywhere": true});
    let (status, error, reason) = answered(gw.post("/auth/logout", &body.to_string()).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    reason
}

/// Polls `gw` until it refuses `access` (within [`WITHIN`]): its reason.
async fn refused_within(gw: &Gateway, access: &str) -> Option<String> {
    let started = Instant::now();
    loop {
        let res = gw.get("/api/x", Some(access)).await;
        if res.status() == 401 {
            let (_, error, reason) = answered(res).await;
            assert_eq!(error, "invalid_token");
            return reason;
        }
        assert_eq!(res.status(), 200);
        assert!(
            started.elapsed() < WITHIN,
            "{} still accepts the token after {:?}",
            gw.url,
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn login_with(gw: &Gateway, body: Value) -> Tokens {
    let res = gw.try_login(body).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn delete(gw: &Gateway, url: String, token: &str) -> u16 {
    gw.http
        .delete(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every way a session ends, each told with its reason, on the store of
/// `store` (a `[sessions]` section).
async fn reasons_story(store: Sessions) {
    let users = user_service(Answer::Json(json!({}))).await;
    let gw = start(
        Setup::default()
            .sessions(store.devices(Devices::default().pc(1)))
            .enrich(enrich(users.url()).timeout(secs(2)))
            .admin(Admin::test()),
    )
    .await;
    // A device limit: the older pc session is replaced.
    let p1 = gw.login_on("ruth", Some("pc")).await;
    let _p2 = gw.login_on("ruth", Some("pc")).await;
    ended_as(&gw, &p1, "replaced").await;
    // Logout, and the user's DELETE.
    let out = gw.login("ruth").await;
    let res = post_refresh(&gw.http, &gw.url, "/auth/logout", &out.refresh_token).await;
    assert_eq!(res.status(), 204);
    ended_as(&gw, &out, "logged_out").await;
    let [mine, other] = [gw.login("ruth").await, gw.login("ruth").await];
    let url = format!("{}/auth/sessions/{}", gw.url, sid(&other));
    assert_eq!(delete(&gw, url, &mine.access_token).await, 204);
    ended_as(&gw, &other, "logged_out").await;
    // An operator, through the admin API.
    let ended = gw.login("ruth").await;
    let user = openid_for("ruth");
    let url = format!(
        "{}/admin/users/{user}/sessions/{}",
        gw.admin_url(),
        sid(&ended)
    );
    assert_eq!(delete(&gw, url, ADMIN_TOKEN).await, 204);
    ended_as(&gw, &ended, "revoked").await;
    // Reuse detection: told at once, and after.
    let r0 = gw.login("ruth").await;
    let r1 = refresh_ok(&gw, &r0.refresh_token).await;
    assert_eq!(
        refresh_reason(&gw, &r0.refresh_token).await.as_deref(),
        Some("reused")
    );
    ended_as(&gw, &r1, "reused").await;
    // Logging out everywhere with it ends nothing, and says why; logging
    // out of it does not change why it ended.
    assert_eq!(everywhere(&gw, &r1).await.as_deref(), Some("reused"));
    let res = post_refresh(&gw.http, &gw.url, "/auth/logout", &r1.refresh_token).await;
    assert_eq!(res.status(), 204);
    ended_as(&gw, &r1, "reused").await;
    // The user service bans the user at a refresh.
    let b = gw.login("ruth").await;
    users.answer(Answer::Status(403));
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &b.refresh_token).await;
    assert_eq!(answered(res).await, (403, "access_denied".into(), None));
    ended_as(&gw, &b, "banned").await;
    users.answer(Answer::Json(json!({})));
    // Logout everywhere ends the rest, each as logged out.
    let (e1, e2) = (gw.login("ruth").await, gw.login("ruth").await);
    let res = gw
        .post(
            "/auth/logout",
            &json!({"refresh_token": e1.refresh_token, "everywhere": true}).to_string(),
        )
        .await;
    assert_eq!(res.status(), 204);
    ended_as(&gw, &e1, "logged_out").await;
    // A spent token of a live session ends nothing, and has no reason.
    let l0 = gw.login("ruth").await;
    let l1 = refresh_ok(&gw, &l0.refresh_token).await;
    assert_eq!(everywhere(&gw, &l0).await, None);
    assert_eq!(gw.get("/api/x", Some(&l1.access_token)).await.status(), 200);
    ended_as(&gw, &e2, "logged_out").await;
    // A token the store does not know as ended has no reason: signed by
    // this gateway's key for a session it never recorded.
    let mut forged = claims(&e1.refresh_token);
    forged["sid"] = "never-recorded-0000000".into();
    let unknown = gw.sign("refresh+jwt", forged);
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &unknown).await;
    let (status, error, reason) = answered(res).await;
    assert_eq!(
        (status, error.as_str(), reason),
        (400, "invalid_grant", None)
    );
    // Nor has a live session's token any reason to be refused.
    let live = gw.login("ruth").await;
    assert_eq!(
        gw.get("/api/x", Some(&live.access_token)).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ending_tells_its_reason_in_process() {
    reasons_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn every_ending_tells_its_reason_on_redis() {
    let redis = Redis::start().await;
    reasons_story(redis.sessions()).await;
}

/// Two replicas sharing Redis: a session ended on one is refused with the
/// same reason by the other, within the contract's 2 seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_other_replica_tells_the_same_reason() {
    let redis = Redis::start().await;
    let (a, b) = replicas(
        Setup::default()
            .sessions(redis.sessions().devices(Devices::default().pc(1)))
            .admin(Admin::test()),
    )
    .await;
    // Replaced by a login at B: A tells it too.
    let p1 = a.login_on("saul", Some("pc")).await;
    assert_eq!(a.get("/api/x", Some(&p1.access_token)).await.status(), 200);
    b.login_on("saul", Some("pc")).await;
    assert_eq!(
        refused_within(&a, &p1.access_token).await.as_deref(),
        Some("replaced")
    );
    ended_as(&a, &p1, "replaced").await;
    // Revoked by an operator at A: B tells it.
    let t = b.login("saul").await;
    assert_eq!(b.get("/api/x", Some(&t.access_token)).await.status(), 200);
    let user = openid_for("saul");
    let url = format!("{}/admin/users/{user}/sessions/{}", a.admin_url(), sid(&t));
    assert_eq!(delete(&a, url, ADMIN_TOKEN).await, 204);
    assert_eq!(
        refused_within(&b, &t.access_token).await.as_deref(),
        Some("revoked")
    );
    ended_as(&b, &t, "revoked").await;
    // Reused at A: B tells it.
    let r0 = b.login("saul").await;
    let r1 = refresh_ok(&b, &r0.refresh_token).await;
    assert_eq!(b.get("/api/x", Some(&r1.access_token)).await.status(), 200);
    assert_eq!(
        refresh_reason(&a, &r0.refresh_token).await.as_deref(),
        Some("reused")
    );
    assert_eq!(
        refused_within(&b, &r1.access_token).await.as_deref(),
        Some("reused")
    );
    // Logged out at B: A tells it.
    let l = a.login("saul").await;
    assert_eq!(a.get("/api/x", Some(&l.access_token)).await.status(), 200);
    let res = post_refresh(&b.http, &b.url, "/auth/logout", &l.refresh_token).await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        refused_within(&a, &l.access_token).await.as_deref(),
        Some("logged_out")
    );
}

/// An older replica's revocations carry no reason: its message on the
/// channel (`AT UNTIL SID...`) and its bare member of the resync set are
/// read as `revoked`, and still refuse the session's tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn an_older_replicas_revocations_read_as_revoked() {
    let redis = Redis::start().await;
    let gw = start(Setup::default().sessions(redis.sessions())).await;
    let t = gw.login("tess").await;
    assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    let at = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let until = at + 600_000;
    // The channel: the subscriber may still be connecting, so the message
    // is sent until it lands.
    let message = format!("{at} {until} {}", sid(&t));
    let started = Instant::now();
    loop {
        redis_cli(&redis, &["PUBLISH", "minigate:revoked", &message]).await;
        let res = gw.get("/api/x", Some(&t.access_token)).await;
        if res.status() == 401 {
            let (_, error, reason) = answered(res).await;
            assert_eq!(
                (error.as_str(), reason.as_deref()),
                ("invalid_token", Some("revoked"))
            );
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the old-format message was not read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The resync set: a replica started after reads a bare member at its
    // first (full) resync.
    let u = gw.login("tess").await;
    let until = until.to_string();
    redis_cli(&redis, &["ZADD", "minigate:revoked", &until, &sid(&u)]).await;
    let late = start(Setup {
        keys_dir: Some(gw.keys_dir.clone()),
        ..Setup::default().sessions(redis.sessions())
    })
    .await;
    assert_eq!(
        refused_within(&late, &u.access_token).await.as_deref(),
        Some("revoked")
    );
}

/// `idle_ttl`: a session not refreshed for that long ends at its next
/// refresh (`idle`) and leaves the listing; one refreshed meanwhile lives.
async fn idle_story(store: Sessions) {
    let gw = start(Setup {
        access_ttl: "1s",
        ..Setup::default().sessions(store.idle_ttl(secs(2)))
    })
    .await;
    let left = gw.login("uma").await;
    let used = gw.login("uma").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let used = refresh_ok(&gw, &used.refresh_token).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let used = refresh_ok(&gw, &used.refresh_token).await;
    let listed: Vec<String> = sessions(&gw, &used.access_token)
        .await
        .iter()
        .map(|s| s["sid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, [sid(&used)]);
    assert_eq!(
        refresh_reason(&gw, &left.refresh_token).await.as_deref(),
        Some("idle")
    );
    // Still idle when asked again; logging out everywhere with its token
    // ends nothing, and says why.
    assert_eq!(
        refresh_reason(&gw, &left.refresh_token).await.as_deref(),
        Some("idle")
    );
    assert_eq!(everywhere(&gw, &left).await.as_deref(), Some("idle"));
    assert_eq!(sessions(&gw, &used.access_token).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_in_process() {
    idle_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn an_idle_session_ends_on_redis() {
    let redis = Redis::start().await;
    idle_story(redis.sessions()).await;
}

/// The listing names each session's platform and app, and the device name
/// a login sent; the admin API and the CLI show them too.
async fn listing_story(store: Sessions) {
    let gw = start(Setup {
        two_providers: true,
        ..Setup::default().sessions(store).admin(Admin::test())
    })
    .await;
    let phone = login_with(
        &gw,
        json!({"code": fresh("vera"), "appid": APPID, "device_name": "iPhone 15 Pro"}),
    )
    .await;
    let other = login_with(&gw, json!({"code": fresh("vera"), "appid": APPID2})).await;
    let listed = sessions(&gw, &phone.access_token).await;
    assert_eq!(listed.len(), 2);
    let of = |t: &Tokens| {
        listed
            .iter()
            .find(|s| s["sid"] == sid(t).as_str())
            .unwrap()
            .clone()
    };
    let (p, o) = (of(&phone), of(&other));
    assert_eq!(
        (&p["platform"], &p["appid"], &p["device_name"]),
        (&json!("wechat"), &json!(APPID), &json!("iPhone 15 Pro"))
    );
    assert_eq!(
        (&o["platform"], &o["appid"]),
        (&json!("wechat"), &json!(APPID2))
    );
    assert!(o.get("device_name").is_none(), "{o}");
    // The admin API lists the same, and the CLI prints it.
    let user = openid_for("vera");
    let res = gw
        .http
        .get(format!("{}/admin/users/{user}/sessions", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let admin = body["sessions"].as_array().unwrap();
    assert!(admin
        .iter()
        .any(|s| s["device_name"] == "iPhone 15 Pro" && s["appid"] == APPID));
    let url = gw.admin_url();
    let (code, out, err) = admin_cli(
        &["sessions", "list", "--user", &user, "--admin", &url],
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.contains(&sid(&phone))).unwrap();
    assert!(
        line.contains(" wechat ") && line.contains(APPID) && line.ends_with(" iPhone 15 Pro"),
        "{out}"
    );
    assert!(out.starts_with("SID") && out.contains("PLATFORM") && out.contains("DEVICE_NAME"));
    // A device name is bounded and printable.
    for bad in [
        json!(""),
        json!(" lead"),
        json!("x".repeat(65)),
        json!("tab\there"),
        json!("手机"),
        json!(7),
    ] {
        let res = gw
            .try_login(json!({"code": fresh("vera"), "device_name": bad}))
            .await;
        assert_error(res, 400, "invalid_request").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_shows_platform_app_and_device_name_in_process() {
    listing_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_listing_shows_platform_app_and_device_name_on_redis() {
    let redis = Redis::start().await;
    listing_story(redis.sessions()).await;
}
