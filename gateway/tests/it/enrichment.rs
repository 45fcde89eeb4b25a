//! What a user service's answer may make of a token: every answer within
//! the documented limits makes tokens the gateway accepts on a proxied
//! request, and an answer (or static grants) that would make a token past
//! the 8 KiB cap is refused at login and refresh, 503, with no token issued.

use serde_json::{json, Value};

use crate::support::*;

/// `[enrich]` at `users`, and `grants` (`[[roles]]` tables).
fn setup(users: Option<&UserService>, grants: Vec<Role>) -> Setup {
    let setup = Setup {
        roles: grants,
        ..Setup::default()
    };
    match users {
        Some(u) => setup.enrich(enrich(u.url()).timeout(secs(2))),
        None => setup,
    }
}

/// `n` names of `len` characters: `000rrr…`, `001rrr…`.
fn names(n: usize, c: char, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{i:03}{}", c.to_string().repeat(len - 3)))
        .collect()
}

/// Claims: `n` names of 32 characters with values of `len`.
fn claims(n: usize, len: usize) -> Value {
    let map: serde_json::Map<String, Value> = names(n, 'n', 31)
        .into_iter()
        .map(|k| (format!("c{k}"), json!("v".repeat(len))))
        .collect();
    Value::Object(map)
}

/// A login as the user of `code`, with a unionid and a device id of 128
/// characters (the most the gateway takes): the raw response.
async fn login_long(gw: &Gateway, code: &str) -> reqwest::Response {
    let code = fresh(&format!("union:{}", "u".repeat(128 - code.len()) + code));
    gw.try_login(json!({"code": code, "device_id": "d".repeat(128)}))
        .await
}

#[tokio::test]
async fn the_largest_answers_within_the_limits_make_tokens_every_request_accepts() {
    // The roles at their most (32 of 64), the claims sharing the rest of
    // the 3072 characters; then the most claims of 256, a few roles.
    let wide =
        json!({"uid": "w".repeat(128), "roles": names(32, 'r', 64), "claims": claims(16, 32)});
    let deep =
        json!({"uid": "x".repeat(128), "roles": names(3, 'r', 64), "claims": claims(10, 256)});
    let users = user_service(Answer::Json(wide.clone())).await;
    let gw = start(setup(Some(&users), Vec::new())).await;
    for (answer, code) in [(wide, "wide"), (deep, "deep")] {
        users.answer(Answer::Json(answer.clone()));
        let res = login_long(&gw, code).await;
        assert_eq!(res.status(), 200, "{code}: {}", res.text().await.unwrap());
        let t: Tokens = res.json().await.unwrap();
        assert!(t.access_token.len() > 5000, "{}", t.access_token.len());
        // Accepted on a proxied request, with every role and claim.
        assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
        let seen = gw.upstream.last();
        let roles: Vec<&str> = answer["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(seen.headers["x-auth-roles"], roles.join(",").as_str());
        for (name, value) in answer["claims"].as_object().unwrap() {
            let header = format!("x-auth-claim-{name}");
            assert_eq!(seen.headers[header.as_str()], value.as_str().unwrap());
        }
        assert_eq!(seen.headers["x-auth-user"], answer["uid"].as_str().unwrap());
        // And so are the refresh token and the pair it buys.
        let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
        assert_eq!(res.status(), 200, "{code}");
        let next: Tokens = res.json().await.unwrap();
        assert_eq!(
            gw.get("/api/x", Some(&next.access_token)).await.status(),
            200
        );
    }
}

#[tokio::test]
async fn an_answer_that_would_make_a_token_past_the_cap_is_refused_before_any_token() {
    // Issue 27's answer: each part within its own limit, together a token
    // of about 9.8 KB. Login used to answer 200, then every request 401.
    let issue_27 =
        json!({"uid": "u".repeat(128), "roles": names(32, 'r', 64), "claims": claims(16, 256)});
    let users = user_service(Answer::Json(json!({"roles": ["user"]}))).await;
    let gw = start(setup(Some(&users), Vec::new())).await;
    let t = gw.login("cap-alice").await;
    users.answer(Answer::Json(issue_27));
    let headers = assert_error(
        gw.post("/auth/login", r#"{"code":"cap-bob"}"#).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    assert!(headers.contains_key("retry-after"));
    // A refresh asked the same: refused, and the refresh token kept.
    assert_error(
        post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    let m = gw.scrape().await;
    assert_eq!(
        series(&m, "minigate_enrich_failures_total{kind=\"limits\"}"),
        2.0
    );
    users.answer(Answer::Json(json!({"roles": ["user"]})));
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn static_grants_that_would_make_a_token_past_the_cap_are_refused_too() {
    // Within the answer's limits, but static grants add 60 more long roles.
    let grants = names(60, 'g', 64)
        .iter()
        .map(|role| grant(role, vec!["u_many".into()]))
        .collect();
    let answer = json!({"uid": "u_many", "roles": names(32, 'r', 64), "claims": claims(16, 32)});
    let users = user_service(Answer::Json(answer)).await;
    let gw = start(setup(Some(&users), grants)).await;
    assert_error(
        gw.post("/auth/login", r#"{"code":"grant-carol"}"#).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    let m = gw.scrape().await;
    assert_eq!(
        series(&m, "minigate_enrich_failures_total{kind=\"limits\"}"),
        1.0
    );

    // Without a user service: static grants alone.
    let grants = names(120, 'g', 64)
        .iter()
        .map(|role| grant(role, vec![openid_for("grant-dave")]))
        .collect();
    let gw = start(setup(None, grants)).await;
    assert_error(
        gw.post("/auth/login", r#"{"code":"grant-dave"}"#).await,
        503,
        "temporarily_unavailable",
    )
    .await;
    // Anyone else still signs in.
    let t = gw.login("grant-erin").await;
    assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
}
