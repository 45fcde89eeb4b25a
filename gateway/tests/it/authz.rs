//! Authorization: `allow` rules, static grants, enrichment by a real user
//! service stand-in, the identity headers they give, and forward-auth for
//! another proxy (a real nginx with `auth_request`).

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// The seed's role table as routes, plus grants and an optional user
/// service.
fn setup(grants: Vec<Role>, enrich: Option<&UserService>) -> Setup {
    let mut setup = Setup {
        routes: vec![
            Route::new("/api/profile").allow(vec![roles(["user"]).methods(vec!["GET", "POST"])]),
            Route::new("/api/logs").allow(vec![
                roles(["auditor"]).methods(vec!["GET"]),
                roles(["admin"]),
            ]),
            Route::new("/api/admin/panel/").allow(vec![roles(["admin"])]),
            Route::optional("/maybe/ro/").allow(vec![methods(["GET"])]),
        ],
        roles: grants,
        ..Setup::default()
    };
    if let Some(u) = enrich {
        setup = setup.enrich(crate::support::enrich(u.url()).timeout(ms(300)));
    }
    setup
}

async fn refresh(gw: &Gateway, token: &str) -> reqwest::Response {
    post_refresh(&gw.http, &gw.url, "/auth/refresh", token).await
}

/// The `[[roles]]` granting `role` to the user of `code`.
fn grant_to(role: &str, codes: &[&str]) -> Vec<Role> {
    vec![grant(role, codes.iter().map(|c| openid_for(c)).collect())]
}

async fn send(gw: &Gateway, method: &str, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = gw
        .http
        .request(method.parse().unwrap(), format!("{}{path}", gw.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_seeds_role_table_is_enforced_with_403_and_the_challenge() {
    let grants = [
        grant_to("user", &["code-u", "code-a"]),
        grant_to("auditor", &["code-au"]),
        grant_to("admin", &["code-a"]),
    ]
    .concat();
    let gw = start(setup(grants, None)).await;
    let user = gw.login("code-u").await.access_token;
    let auditor = gw.login("code-au").await.access_token;
    let admin = gw.login("code-a").await.access_token;
    let nobody = gw.login("code-n").await.access_token;
    for (method, path, token, status) in [
        ("GET", "/api/profile", &user, 200),
        ("POST", "/api/profile", &user, 200),
        ("DELETE", "/api/profile", &user, 403),
        ("GET", "/api/profile", &nobody, 403),
        ("GET", "/api/logs", &auditor, 200),
        ("POST", "/api/logs", &auditor, 403),
        ("DELETE", "/api/logs", &admin, 200),
        ("GET", "/api/logs", &user, 403),
        ("PUT", "/api/admin/panel/x", &admin, 200),
        ("GET", "/api/admin/panel/x", &auditor, 403),
        ("GET", "/api/other", &nobody, 200),
    ] {
        let before = gw.upstream.count();
        let res = send(&gw, method, path, Some(token)).await;
        assert_eq!(res.status(), status, "{method} {path}");
        if status == 403 {
            assert_eq!(
                res.headers()["www-authenticate"],
                "Bearer realm=\"minigate\", error=\"insufficient_scope\""
            );
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"], "insufficient_scope");
            assert_eq!(
                gw.upstream.count(),
                before,
                "a denied request reached the upstream"
            );
        }
    }
    // Missing token is still 401, not 403.
    assert_eq!(send(&gw, "GET", "/api/logs", None).await.status(), 401);
    // Anonymous on an optional route holds no roles but may GET.
    assert_eq!(send(&gw, "GET", "/maybe/ro/x", None).await.status(), 200);
    assert_error(
        send(&gw, "POST", "/maybe/ro/x", None).await,
        403,
        "insufficient_scope",
    )
    .await;
    // The upstream sees the roles.
    send(&gw, "GET", "/api/profile", Some(&admin)).await;
    assert_eq!(gw.upstream.last().headers["x-auth-roles"], "admin,user");
    let m = gw.scrape().await;
    assert_eq!(
        series(
            &m,
            "minigate_authz_decisions_total{route=\"/api/logs\",outcome=\"denied_method\"}"
        ),
        1.0
    );
    assert_eq!(
        series(
            &m,
            "minigate_authz_decisions_total{route=\"/api/logs\",outcome=\"denied_role\"}"
        ),
        1.0
    );
    assert_eq!(
        series(
            &m,
            "minigate_authz_decisions_total{route=\"/api/logs\",outcome=\"allowed\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn enrichment_gives_uid_roles_and_claims_that_reach_the_upstream() {
    let users = user_service(Answer::Json(json!({
        "uid": "u_1024", "roles": ["admin"], "claims": {"tier": "gold", "org_id": "7"}
    })))
    .await;
    // The static grant keys on the uid once enrichment gives one.
    let gw = start(setup(
        vec![grant("auditor", vec!["u_1024".into()])],
        Some(&users),
    ))
    .await;
    let t = gw.login("code-e").await;
    let asked = users.last();
    assert_eq!(asked["event"], "login");
    assert_eq!(asked["openid"], openid_for("code-e"));
    assert_eq!(asked["appid"], APPID);
    assert_eq!(asked["platform"], "wechat");
    assert_eq!(asked["device_type"], "phone");
    assert!(asked["sid"].as_str().is_some_and(|s| !s.is_empty()));
    let claims = claims(&t.access_token);
    assert_eq!(claims["uid"], "u_1024");
    assert_eq!(claims["roles"], json!(["admin", "auditor"]));
    assert_eq!(claims["ext"], json!({"org_id": "7", "tier": "gold"}));
    assert_eq!(
        send(&gw, "DELETE", "/api/logs", Some(&t.access_token))
            .await
            .status(),
        200
    );
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-user"], "u_1024");
    assert_eq!(seen.headers["x-auth-roles"], "admin,auditor");
    assert_eq!(seen.headers["x-auth-claim-tier"], "gold");
    assert_eq!(seen.headers["x-auth-claim-org_id"], "7");
    assert_eq!(seen.headers["x-auth-subject"], openid_for("code-e"));
}

#[tokio::test]
async fn a_role_change_reaches_the_tokens_at_the_next_refresh_and_a_ban_ends_the_session() {
    let users = user_service(Answer::Json(json!({"roles": ["user"]}))).await;
    let gw = start(setup(Vec::new(), Some(&users))).await;
    let t = gw.login("code-r").await;
    assert_eq!(
        send(&gw, "GET", "/api/admin/panel/x", Some(&t.access_token))
            .await
            .status(),
        403
    );
    users.answer(Answer::Json(json!({"roles": ["admin"]})));
    let res = refresh(&gw, &t.refresh_token).await;
    assert_eq!(res.status(), 200);
    let next: Tokens = res.json().await.unwrap();
    assert_eq!(users.last()["event"], "refresh");
    assert_eq!(
        send(&gw, "GET", "/api/admin/panel/x", Some(&next.access_token))
            .await
            .status(),
        200
    );
    // Banned: the refresh is refused and the session is over, even once
    // the user service changes its mind.
    users.answer(Answer::Status(403));
    assert_error(
        refresh(&gw, &next.refresh_token).await,
        403,
        "access_denied",
    )
    .await;
    users.answer(Answer::Json(json!({})));
    assert_error(
        refresh(&gw, &next.refresh_token).await,
        400,
        "invalid_grant",
    )
    .await;
    // A banned login gets no token at all.
    users.answer(Answer::Status(403));
    assert_error(
        gw.post("/auth/login", r#"{"code":"code-banned"}"#).await,
        403,
        "access_denied",
    )
    .await;
    let m = gw.scrape().await;
    assert_eq!(series(&m, "minigate_enrich_denied_total"), 2.0);
}

#[tokio::test]
async fn enrichment_fails_closed_on_every_kind_of_bad_answer() {
    let users = user_service(Answer::Json(json!({}))).await;
    let gw = start(setup(Vec::new(), Some(&users))).await;
    let t = gw.login("code-ok").await;
    let many: Vec<String> = (0..33).map(|i| format!("r{i}")).collect();
    for (answer, kind) in [
        (Answer::Status(500), "status"),
        (Answer::Status(302), "redirect"),
        (Answer::Slow(Duration::from_secs(2)), "timeout"),
        (Answer::Raw("not json"), "bad_answer"),
        (Answer::Raw(r#"{"roles":"admin"}"#), "bad_answer"),
        (Answer::Json(json!({ "roles": many })), "limits"),
        (Answer::Json(json!({"claims": {"Bad-Name": "x"}})), "limits"),
        (Answer::Json(json!({"uid": "x".repeat(129)})), "limits"),
    ] {
        users.answer(answer.clone());
        let headers = assert_error(
            gw.post("/auth/login", r#"{"code":"code-x"}"#).await,
            503,
            "temporarily_unavailable",
        )
        .await;
        assert!(headers.contains_key("retry-after"), "{answer:?}");
        // A refresh that cannot be enriched keeps its refresh token usable.
        assert_error(
            refresh(&gw, &t.refresh_token).await,
            503,
            "temporarily_unavailable",
        )
        .await;
        let m = gw.scrape().await;
        assert!(
            series(
                &m,
                &format!("minigate_enrich_failures_total{{kind=\"{kind}\"}}")
            ) >= 1.0,
            "{answer:?} not counted as {kind}"
        );
    }
    users.answer(Answer::Json(json!({})));
    assert_eq!(refresh(&gw, &t.refresh_token).await.status(), 200);
    // Unreachable: no token either.
    drop(users);
    let down = start(Setup::default().enrich(enrich("http://127.0.0.1:9/enrich".into()))).await;
    assert_error(
        down.post("/auth/login", r#"{"code":"code-y"}"#).await,
        503,
        "temporarily_unavailable",
    )
    .await;
}

#[tokio::test]
async fn spoofed_role_user_and_claim_headers_never_reach_an_upstream() {
    let users = user_service(Answer::Json(
        json!({"uid": "u_1", "claims": {"tier": "free"}}),
    ))
    .await;
    let gw = start(setup(Vec::new(), Some(&users))).await;
    let t = gw.login("code-s").await;
    for (path, token) in [
        ("/api/x", Some(t.access_token.as_str())),
        ("/maybe/x", None),
        ("/public/x", None),
    ] {
        let mut req = gw
            .http
            .get(format!("{}{path}", gw.url))
            .header("x-auth-roles", "admin")
            .header("x-auth-user", "u_root")
            .header("x-auth-claim-tier", "platinum")
            .header("X-Auth-Claim-Org_Id", "1");
        if let Some(tok) = token {
            req = req.bearer_auth(tok);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "{path}");
        let seen = gw.upstream.last();
        assert!(seen.headers.get("x-auth-roles").is_none(), "{path}");
        assert!(seen.headers.get("x-auth-claim-org_id").is_none(), "{path}");
        match token {
            Some(_) => {
                assert_eq!(seen.headers["x-auth-user"], "u_1");
                assert_eq!(seen.headers["x-auth-claim-tier"], "free");
            }
            None => {
                assert!(seen.headers.get("x-auth-user").is_none(), "{path}");
                assert!(seen.headers.get("x-auth-claim-tier").is_none(), "{path}");
            }
        }
    }
}

#[tokio::test]
async fn static_grants_are_reread_when_the_config_file_changes() {
    let gw = start(setup(grant_to("admin", &["code-g"]), None)).await;
    let t = gw.login("code-g").await;
    assert_eq!(claims(&t.access_token)["roles"], json!(["admin"]));
    // The in-process gateway was not loaded from a file: write one and
    // start a second gateway from it, sharing the keys.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("minigate.toml");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let text = |grants: Vec<Role>| {
        let text = config_text(
            &Setup {
                keys_dir: Some(gw.keys_dir.clone()),
                roles: grants,
                ..Setup::default()
            },
            &gw.keys_dir,
            gw.wechat.addr,
            gw.upstream.addr,
            "127.0.0.1:0",
        );
        text.replace(
            "secret_env = \"TEST_WECHAT_SECRET\"",
            &format!("secret_file = {:?}", secret.display().to_string()),
        )
    };
    std::fs::write(&path, text(grant_to("admin", &["code-g"]))).unwrap();
    let config = minigate::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let keys =
        minigate::tokens::keys::KeyStore::open(gw.keys_dir.clone(), &config.tokens.issuer).unwrap();
    let running = minigate::listener::start(&config, keys).await.unwrap();
    let second = format!("http://{}", running.addr);
    let refresh = |token: String| {
        let url = format!("{second}/auth/refresh");
        let http = gw.http.clone();
        async move {
            let res = http
                .post(url)
                .header("content-type", "application/json")
                .body(json!({ "refresh_token": token }).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Tokens>().await.unwrap()
        }
    };
    // Sessions are in-process: log in at the second gateway itself.
    let login = gw
        .http
        .post(format!("{second}/auth/login"))
        .header("content-type", "application/json")
        .body(r#"{"code":"code-g"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let t = refresh(login.json::<Tokens>().await.unwrap().refresh_token).await;
    assert_eq!(claims(&t.access_token)["roles"], json!(["admin"]));
    // Nothing changed: nothing reloaded.
    assert!(!running.gateway.reload_grants());
    // A broken file is refused whole: the grants stay.
    std::fs::write(&path, text(vec![grant("a,b", vec!["x".into()])])).unwrap();
    bump_mtime(&path);
    assert!(!running.gateway.reload_grants());
    let t = refresh(t.refresh_token).await;
    assert_eq!(claims(&t.access_token)["roles"], json!(["admin"]));
    // Auditor instead of admin, at the next refresh.
    std::fs::write(&path, text(grant_to("auditor", &["code-g"]))).unwrap();
    bump_mtime(&path);
    assert!(running.gateway.reload_grants());
    let t = refresh(t.refresh_token).await;
    assert_eq!(claims(&t.access_token)["roles"], json!(["auditor"]));
    running.stop().await;
}

/// Moves a file's modification time forward, so a rewrite within the
/// same clock tick still reads as a change.
fn bump_mtime(path: &std::path::Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5 + rand_secs());
    f.set_modified(later).unwrap();
}

fn rand_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 1000
}

#[tokio::test]
async fn forward_auth_answers_traefik_nginx_and_envoy_styles() {
    let gw = start(setup(grant_to("auditor", &["code-f"]), None)).await;
    let t = gw.login("code-f").await.access_token;
    let verify =
        |path: &str, method: &str, headers: Vec<(&'static str, &str)>, token: Option<&str>| {
            let mut req = gw
                .http
                .request(method.parse().unwrap(), format!("{}{path}", gw.url));
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(tok) = token {
                req = req.bearer_auth(tok);
            }
            req.send()
        };
    let before = gw.upstream.count();
    // Traefik
    let res = verify(
        "/auth/verify",
        "GET",
        vec![
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/api/logs?page=2"),
        ],
        Some(&t),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-auth-subject"], openid_for("code-f"));
    assert_eq!(res.headers()["x-auth-roles"], "auditor");
    assert!(res
        .headers()
        .get("x-envoy-auth-headers-to-remove")
        .is_none());
    assert!(res.text().await.unwrap().is_empty());
    // Spoofed identity headers the answer does not set are named for
    // removal (Envoy's ext_authz protocol).
    let res = verify(
        "/auth/verify/api/logs",
        "GET",
        vec![
            ("x-auth-user", "u_root"),
            ("x-auth-claim-tier", "gold"),
            ("x-auth-roles", "admin"),
        ],
        Some(&t),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-auth-roles"], "auditor");
    assert_eq!(
        res.headers()["x-envoy-auth-headers-to-remove"],
        "x-auth-user,x-auth-claim-tier"
    );
    let res = verify(
        "/auth/verify",
        "GET",
        vec![
            ("x-forwarded-method", "DELETE"),
            ("x-forwarded-uri", "/api/logs"),
        ],
        Some(&t),
    )
    .await
    .unwrap();
    assert_error(res, 403, "insufficient_scope").await;
    // nginx
    let res = verify(
        "/auth/verify",
        "GET",
        vec![
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/logs"),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"minigate\""
    );
    // Envoy: the path after the prefix, the request's own method.
    let res = verify("/auth/verify/api/logs", "GET", vec![], Some(&t))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = verify("/auth/verify/api/logs", "POST", vec![], Some(&t))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A bad token, a path no route claims, a public route, a refused path.
    let res = verify("/auth/verify/api/logs", "GET", vec![], Some("x.y.z"))
        .await
        .unwrap();
    assert_error(res, 401, "invalid_token").await;
    let res = verify("/auth/verify/nowhere", "GET", vec![], Some(&t))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = verify("/auth/verify/public/x", "GET", vec![], None)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-auth-subject").is_none());
    let res = verify("/auth/verify/public/..%2fapi/logs", "GET", vec![], None)
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = verify("/auth/verify", "GET", vec![], None).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(gw.upstream.count(), before, "forward-auth never proxies");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn nginx_auth_request_uses_the_decision_and_passes_the_identity_on() {
    let gw = start(setup(grant_to("auditor", &["code-n"]), None)).await;
    let t = gw.login("code-n").await.access_token;
    let gateway_addr = gw.running.addr;
    let nginx = Nginx::start_with(
        "nginx_auth_request.conf",
        gateway_addr,
        &[("upstream", gw.upstream.addr)],
    )
    .await;
    let get = |path: &str, method: &str, token: Option<&str>| {
        let mut req = gw
            .http
            .request(method.parse().unwrap(), format!("{}{path}", nginx.url()));
        if let Some(tok) = token {
            req = req.bearer_auth(tok);
        }
        req.send()
    };
    let before = gw.upstream.count();
    let res = get("/api/logs?day=1", "GET", Some(&t)).await.unwrap();
    assert_eq!(res.status(), 200, "{}", nginx.errors());
    assert_eq!(gw.upstream.count(), before + 1);
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/api/logs?day=1");
    assert_eq!(seen.headers["x-auth-subject"], openid_for("code-n"));
    assert_eq!(seen.headers["x-auth-roles"], "auditor");
    assert_eq!(get("/api/logs", "GET", None).await.unwrap().status(), 401);
    assert_eq!(
        get("/api/logs", "DELETE", Some(&t)).await.unwrap().status(),
        403
    );
    assert_eq!(
        get("/api/admin/panel/x", "GET", Some(&t))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        gw.upstream.count(),
        before + 1,
        "a denied request reached the upstream"
    );
}
