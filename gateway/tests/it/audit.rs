//! Audit events (docs/audit.md) through the real binary: every event is
//! made to happen, and its line on stderr is checked field by field; no
//! line carries a token, a code, a key, a secret or a whole phone number;
//! with `[audit] redis_stream` the events also reach a real Redis Stream,
//! and an event Redis cannot take is counted while the request goes on.

use serde_json::{json, Map, Value};

use crate::support::*;

/// The audit lines in `logs`, parsed; each is checked for the envelope.
fn audit_lines(logs: &str) -> Vec<Map<String, Value>> {
    logs.lines()
        .filter(|l| l.starts_with(r#"{"target":"minigate::audit""#))
        .map(|l| {
            let line: Map<String, Value> =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_eq!(line["v"], 1, "{l}");
            let ts = line["ts"].as_str().unwrap();
            assert!(
                humantime::parse_rfc3339(ts).is_ok() && ts.ends_with('Z'),
                "ts is RFC 3339 in UTC: {l}"
            );
            line
        })
        .collect()
}

/// Waits until the gateway has written the audit line `want` (every member
/// but `ts`, `target` and `v`: the event's whole set of fields); fails the
/// test with every audit line so far if it never does.
async fn expect(gw: &Process, want: Value) {
    let mut want = want.as_object().unwrap().clone();
    want.insert("target".into(), json!("minigate::audit"));
    want.insert("v".into(), json!(1));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = audit_lines(&gw.logs()).into_iter().any(|mut line| {
            line.remove("ts");
            line == want
        });
        if found {
            return;
        }
        if std::time::Instant::now() > deadline {
            let lines: Vec<String> = audit_lines(&gw.logs())
                .iter()
                .map(|l| Value::Object(l.clone()).to_string())
                .collect();
            panic!(
                "no audit line {}\namong:\n{}",
                Value::Object(want),
                lines.join("\n")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// How many audit lines of `event` the gateway wrote so far.
fn count(gw: &Process, event: &str) -> usize {
    audit_lines(&gw.logs())
        .iter()
        .filter(|l| l["event"] == event)
        .count()
}

/// Fails the test if any audit line holds one of `secrets`.
fn assert_clean(gw: &Process, secrets: &[&str]) {
    let logs = gw.logs();
    for line in logs
        .lines()
        .filter(|l| l.starts_with(r#"{"target":"minigate::audit""#))
    {
        for s in secrets {
            assert!(!line.contains(s), "an audit line holds {s:?}: {line}");
        }
    }
}

fn sid(t: &Tokens) -> String {
    claims(&t.access_token)["sid"].as_str().unwrap().to_owned()
}

async fn login(gw: &Process, code: &str, device_type: Option<&str>) -> Tokens {
    let res = client()
        .post(format!("{}/auth/login", gw.url))
        .header("content-type", "application/json")
        .body(login_body(code, device_type).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// A login, its retry, a device limit, a refresh, a reused refresh token,
/// a logout, a logout everywhere and a session ended by its user: each
/// with its event and every field.
#[tokio::test]
async fn a_session_life_is_audited_event_by_event() {
    let wechat = wechat().await;
    let upstream = upstream().await;
    let setup =
        Setup::default().sessions(Sessions::default().devices(Devices::default().phone(1).pc(0)));
    let gw = spawn_binary_with(&setup, wechat.addr, upstream.addr, "warn").await;
    let http = client();
    let user = openid_for("audit-ann");
    let mut secrets: Vec<String> = vec![SECRET.into(), SESSION_KEY.into()];

    // A login, then the same code again from the same client: a retry.
    let code = fresh("audit-ann");
    let first = login_at(&http, &gw.url, &code).await;
    let first_sid = sid(&first);
    let login_event = |sid: &str, device_type: &str, retried: bool| {
        json!({"event": "login", "platform": "wechat", "appid": APPID, "device_type": device_type,
               "user": user, "sid": sid, "client": "127.0.0.1", "retried": retried})
    };
    let ended = |reason: &str, sid: &str, by: Option<&str>| {
        json!({"event": "session_ended", "reason": reason, "user": user, "sid": sid,
               "by_sid": by})
    };
    expect(&gw, login_event(&first_sid, "phone", false)).await;
    let again = login_at(&http, &gw.url, &code).await;
    assert_eq!(sid(&again), first_sid);
    expect(&gw, login_event(&first_sid, "phone", true)).await;
    secrets.push(code);

    // One phone at a time: the next phone login replaces the first.
    let second = login(&gw, "audit-ann", Some("phone")).await;
    let second_sid = sid(&second);
    expect(&gw, login_event(&second_sid, "phone", false)).await;
    expect(&gw, ended("replaced", &first_sid, Some(&second_sid))).await;

    // A refresh; then its spent token again: reuse, the session ends.
    let res = post_refresh(&http, &gw.url, "/auth/refresh", &second.refresh_token).await;
    assert_eq!(res.status(), 200);
    let refreshed: Tokens = res.json().await.unwrap();
    expect(
        &gw,
        json!({"event": "refresh", "platform": "wechat", "appid": APPID, "device_type": "phone",
               "user": user, "sid": second_sid}),
    )
    .await;
    let res = post_refresh(&http, &gw.url, "/auth/refresh", &second.refresh_token).await;
    assert_error(res, 400, "invalid_grant").await;
    expect(
        &gw,
        json!({"event": "refresh_reused", "appid": APPID, "user": user, "sid": second_sid}),
    )
    .await;
    expect(&gw, ended("reused", &second_sid, None)).await;

    // A logout of one session.
    let third = login(&gw, "audit-ann", Some("phone")).await;
    let third_sid = sid(&third);
    let res = post_refresh(&http, &gw.url, "/auth/logout", &third.refresh_token).await;
    assert_eq!(res.status(), 204);
    expect(
        &gw,
        json!({"event": "logout", "appid": APPID, "user": user, "sid": third_sid,
               "everywhere": false, "ended": 1}),
    )
    .await;
    expect(&gw, ended("logged_out", &third_sid, Some(&third_sid))).await;

    // Three sessions; the user ends one from another, then logs out
    // everywhere from the phone.
    let phone = login(&gw, "audit-ann", Some("phone")).await;
    let pc = login(&gw, "audit-ann", Some("pc")).await;
    let pc2 = login(&gw, "audit-ann", Some("pc")).await;
    expect(&gw, login_event(&sid(&pc), "pc", false)).await;
    let res = http
        .delete(format!("{}/auth/sessions/{}", gw.url, sid(&pc2)))
        .bearer_auth(&pc.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    expect(&gw, ended("logged_out", &sid(&pc2), Some(&sid(&pc)))).await;
    let res = http
        .post(format!("{}/auth/logout", gw.url))
        .header("content-type", "application/json")
        .body(json!({"refresh_token": phone.refresh_token, "everywhere": true}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    expect(
        &gw,
        json!({"event": "logout", "appid": APPID, "user": user, "sid": sid(&phone),
               "everywhere": true, "ended": 2}),
    )
    .await;
    for gone in [sid(&phone), sid(&pc)] {
        expect(&gw, ended("logged_out", &gone, Some(&sid(&phone)))).await;
    }

    for t in [
        &first, &again, &second, &refreshed, &third, &phone, &pc, &pc2,
    ] {
        secrets.push(t.access_token.clone());
        secrets.push(t.refresh_token.clone());
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_clean(&gw, &secrets);
    // The access log and the rest stay apart: at `warn`, no access line,
    // and no audit line is written as an ordinary log line.
    let logs = gw.stop();
    assert!(!logs.contains("minigate::access"), "{logs}");
    for line in logs.lines().filter(|l| l.contains("minigate::audit")) {
        assert!(line.starts_with(r#"{"target":"minigate::audit""#), "{line}");
    }
}

/// The user service bans a user at a refresh and at a login; the platform
/// refuses a risky user; a phone number is bound, shown by its last four
/// digits only.
#[tokio::test]
async fn bans_risky_users_and_phone_numbers_are_audited() {
    let wechat = wechat().await;
    let upstream = upstream().await;
    let users = user_service(Answer::Json(json!({"roles": ["user"]}))).await;
    let setup = Setup::default().enrich(enrich(users.url()));
    let gw = spawn_binary_with(&setup, wechat.addr, upstream.addr, "info").await;
    let http = client();
    let user = openid_for("audit-bob");

    let t = login(&gw, "audit-bob", None).await;
    let res = http
        .post(format!("{}/auth/phone", gw.url))
        .bearer_auth(&t.access_token)
        .header("content-type", "application/json")
        .body(r#"{"code":"phone:13800001111"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    expect(
        &gw,
        json!({"event": "phone_bound", "appid": APPID, "user": user, "sid": sid(&t),
               "phone_last4": "1111", "country_code": "86"}),
    )
    .await;

    users.answer(Answer::Status(403));
    let res = post_refresh(&http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    assert_error(res, 403, "access_denied").await;
    expect(
        &gw,
        json!({"event": "user_banned", "at": "refresh", "appid": APPID, "user": user,
               "sid": sid(&t)}),
    )
    .await;
    expect(
        &gw,
        json!({"event": "session_ended", "reason": "banned", "user": user, "sid": sid(&t),
               "by_sid": null}),
    )
    .await;
    let res = http
        .post(format!("{}/auth/login", gw.url))
        .header("content-type", "application/json")
        .body(login_body("audit-bob", None).to_string())
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "access_denied").await;
    expect(
        &gw,
        json!({"event": "user_banned", "at": "login", "appid": APPID, "user": user,
               "sid": null}),
    )
    .await;
    assert_eq!(count(&gw, "login"), 1, "a banned login is no login");

    let res = http
        .post(format!("{}/auth/login", gw.url))
        .header("content-type", "application/json")
        .body(json!({"code": fresh("err:40226")}).to_string())
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "risky_user").await;
    expect(
        &gw,
        json!({"event": "risky_user_refused", "platform": "wechat", "appid": APPID,
               "client": "127.0.0.1"}),
    )
    .await;
    assert_clean(
        &gw,
        &[
            "13800001111",
            &t.access_token,
            &t.refresh_token,
            SECRET,
            SESSION_KEY,
        ],
    );
}

/// Every call of the admin listener, with the scope it needs and the
/// token's; sessions an operator ends.
#[tokio::test]
async fn admin_calls_are_audited_with_their_scopes() {
    use std::os::unix::fs::PermissionsExt as _;
    const BROKER: &str = "audit-broker-token-wechat-only-77aa";
    let wechat = wechat().await;
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = dir.path().join("broker");
    std::fs::write(&broker, BROKER).unwrap();
    std::fs::set_permissions(&broker, std::fs::Permissions::from_mode(0o600)).unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let setup = Setup::default().admin(
        Admin::default()
            .listen(admin.parse().unwrap())
            .token_env("TEST_ADMIN_TOKEN")
            .tokens(vec![AdminToken::default()
                .file(&broker)
                .scopes(vec!["wechat"])]),
    );
    let gw = spawn_binary_with(&setup, wechat.addr, upstream.addr, "info").await;
    let http = client();
    let user = openid_for("audit-cy");
    let t = login(&gw, "audit-cy", None).await;
    let path = format!("/admin/users/{user}/sessions");
    let one = format!("{path}/{}", sid(&t));
    let every = json!(["sessions", "wechat"]);
    // (method, path, token, status, the endpoint's scope, the token's)
    let calls = [
        (
            "GET",
            &path,
            Some(ADMIN_TOKEN),
            200,
            json!("sessions"),
            every.clone(),
        ),
        (
            "GET",
            &path,
            Some(BROKER),
            403,
            json!("sessions"),
            json!(["wechat"]),
        ),
        (
            "GET",
            &path,
            Some("not-a-token-at-all-0000"),
            401,
            json!("sessions"),
            Value::Null,
        ),
        (
            "GET",
            &"/admin/nothing".to_owned(),
            None,
            401,
            Value::Null,
            Value::Null,
        ),
        (
            "DELETE",
            &one,
            Some(ADMIN_TOKEN),
            204,
            json!("sessions"),
            every,
        ),
    ];
    for (method, path, token, status, scope, token_scopes) in calls {
        let mut req = http.request(method.parse().unwrap(), format!("http://{admin}{path}"));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            status,
            "{method} {path}"
        );
        expect(
            &gw,
            json!({"event": "admin", "method": method, "path": path, "scope": scope,
                   "token_scopes": token_scopes, "status": status, "client": "127.0.0.1"}),
        )
        .await;
    }
    expect(
        &gw,
        json!({"event": "session_ended", "reason": "revoked", "user": user, "sid": sid(&t),
               "by_sid": null}),
    )
    .await;
    assert_clean(&gw, &[ADMIN_TOKEN, BROKER, "not-a-token-at-all-0000"]);
}

/// A rotation picked up on SIGHUP, then a broken key set refused (once,
/// however many reloads see it).
#[tokio::test]
async fn key_reloads_and_rotations_are_audited() {
    let wechat = wechat().await;
    let upstream = upstream().await;
    let gw = spawn_binary(wechat.addr, upstream.addr, "info").await;
    let dir = gw.keys.path().display().to_string();
    let before = jwks::KeySet::load(gw.keys.path()).unwrap();
    let old_current = before.current().kid().to_owned();
    cli_ok(&["keys", "rotate", "--dir", &dir]);
    let after = jwks::KeySet::load(gw.keys.path()).unwrap();
    let kid = |state: jwks::KeyState| {
        after
            .entries()
            .iter()
            .find(|e| e.state == state)
            .map(|e| e.key.kid().to_owned())
    };
    let current = after.current().kid().to_owned();
    assert_ne!(current, old_current);
    gw.hangup();
    expect(
        &gw,
        json!({"event": "keys_reloaded", "outcome": "replaced", "current": current,
               "next": kid(jwks::KeyState::Next), "keys": after.entries().len(),
               "rotated": true, "reason": null}),
    )
    .await;

    std::fs::write(gw.keys.path().join(jwks::KEYSET_FILE), "{ not a key set").unwrap();
    gw.hangup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let found = audit_lines(&gw.logs())
            .into_iter()
            .find(|l| l["event"] == "keys_reloaded" && l["outcome"] == "refused");
        if let Some(line) = found {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    // The set still serving is named; the reason is readiness's.
    assert_eq!(refused["current"], json!(current), "{refused:?}");
    assert_eq!(refused["rotated"], false);
    assert_eq!(refused["keys"], json!(after.entries().len()));
    let ready = ready(&client(), &gw.url).await;
    assert_eq!(refused["reason"], ready["last_reload_error"], "{ready}");
    assert_eq!(count(&gw, "keys_reloaded"), 2);
}

/// With `[audit] redis_stream`, each event is also an entry of a real
/// Redis Stream (fields `event` and `line`); with Redis gone, the event is
/// counted as dropped, its log line still written, and the call answered.
#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs redis-server; ./test installs it"
)]
async fn events_reach_a_redis_stream_and_drops_are_counted() {
    let mut redis = Redis::start().await;
    let wechat = wechat().await;
    let upstream = upstream().await;
    let admin = format!("127.0.0.1:{}", free_port());
    let setup = Setup::default()
        .sessions(redis.sessions())
        .audit(
            Audit::default()
                .redis_stream("minigate:audit:test")
                .stream_maxlen(1000),
        )
        .admin(
            Admin::default()
                .listen(admin.parse().unwrap())
                .token_env("TEST_ADMIN_TOKEN"),
        );
    let gw = spawn_binary_with(&setup, wechat.addr, upstream.addr, "info").await;
    let t = login(&gw, "audit-dee", None).await;
    let xrange = || async {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "--json"])
            .args(["XRANGE", "minigate:audit:test", "-", "+"])
            .output()
            .await
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let mut entries = String::new();
    for _ in 0..400 {
        entries = xrange().await;
        if entries.contains("login") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    // [[id, [field, value, ...]], ...]
    let parsed: Value = serde_json::from_str(&entries).unwrap_or_else(|e| panic!("{e}: {entries}"));
    let first = &parsed[0][1];
    assert_eq!(first[0], "event", "{entries}");
    assert_eq!(first[1], "login", "{entries}");
    assert_eq!(first[2], "line", "{entries}");
    let line: Value = serde_json::from_str(first[3].as_str().unwrap()).unwrap();
    assert_eq!(line["sid"], json!(sid(&t)));
    assert_eq!(line["user"], json!(openid_for("audit-dee")));
    let logged = audit_lines(&gw.logs());
    assert_eq!(
        Value::Object(logged[0].clone()),
        line,
        "the stream's line is the log's"
    );

    redis.kill();
    let res = client()
        .get(format!("http://{admin}/admin/users/u/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "an admin call needs no Redis to be refused"
    );
    expect(
        &gw,
        json!({"event": "admin", "method": "GET", "path": "/admin/users/u/sessions",
               "scope": "sessions", "token_scopes": null, "status": 401,
               "client": "127.0.0.1"}),
    )
    .await;
    let dropped = gw
        .series_once("minigate_audit_stream_dropped_total", |v| v >= 1.0)
        .await;
    assert_eq!(dropped, 1.0);
}
