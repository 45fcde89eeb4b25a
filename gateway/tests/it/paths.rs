//! One path for the decision and the upstream (the third hardening round,
//! issue 27, findings 1 and 6): a path spelt so that an upstream reads it as
//! another (`%61dmin`, `//admin`, `admin;x`) is judged by the route of the
//! path the upstream reads, and the upstream is sent exactly that path.
//! Replayed through real parts: an nginx application that routes by the
//! decoded, slash-merged path (as Go's `ServeMux`, Spring and Jetty do), a
//! WSGI service (Python's wsgiref, whose `PATH_INFO` is decoded), and the
//! shipped nginx forward-auth example in front of that application.

use std::net::SocketAddr;

use serde_json::Value;

use std::time::Duration;

use crate::support::*;

/// The `[[roles]]` granting `admin` to the user of `code`.
fn admin_grant(code: &str) -> Vec<Role> {
    vec![grant("admin", vec![openid_for(code)])]
}

/// `/app/` open to any signed-in user, `/app/admin/` to `admin` only, both
/// on `app`: the attack run's configuration.
fn routes(app: SocketAddr) -> Vec<Route> {
    vec![
        Route::required("/app/").upstream(app),
        Route::required("/app/admin/")
            .upstream(app)
            .allow(vec![roles(["admin"])]),
    ]
}

/// Sends `METHOD target` with `headers` on a fresh connection (raw bytes:
/// no client library tidies the target); the status and the body.
async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let res = raw(addr, &req).await;
    let status = res
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no response to {target}: {res:?}"));
    let body = res.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// The admin page, spelt as each upstream in the attack run read it.
const ADMIN_SPELLINGS: [&str; 5] = [
    "/app/%61dmin/users",
    "/app/%61%64%6D%69%6E/users",
    "/app/%61%64%6d%69%6e/users",
    "/app//admin/users",
    "//app///admin/users",
];

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn path_spellings_never_reach_an_admin_handler_of_an_nginx_app() {
    let app = Nginx::start("nginx_app.conf", "127.0.0.1:9".parse().unwrap()).await;
    // The hole is real: nginx routes every spelling to its admin handler.
    for spelling in ADMIN_SPELLINGS {
        let (status, body) = send(app.addr, "GET", spelling, &[]).await;
        assert_eq!(status, 200, "{spelling}");
        assert!(body.starts_with("admin-handler "), "{spelling}: {body}");
    }
    let gw = start(Setup {
        routes: routes(app.addr),
        roles: admin_grant("path-admin"),
        ..Setup::default()
    })
    .await;
    let user = gw.login("path-user").await.access_token;
    let admin = gw.login("path-admin").await.access_token;
    let as_user = format!("Bearer {user}");
    let as_admin = format!("Bearer {admin}");
    let before = gw.scrape().await;

    // A user with no roles: 403 for every spelling that is the admin path,
    // 400 for a spelling some upstream reads as it (an encoded slash).
    for spelling in ADMIN_SPELLINGS {
        let (status, body) = send(
            gw.running.addr,
            "GET",
            spelling,
            &[("authorization", &as_user)],
        )
        .await;
        assert_eq!(
            (status, error_of(&body).as_str()),
            (403, "insufficient_scope"),
            "{spelling}: {body}"
        );
    }
    for refused in [
        "/app/%2f/admin/users",
        "/app/admin;x/users",
        "/app/admin;/users",
        "/app/admin%3bx/users",
        "/app/x/..;/admin/users",
        "/app/x/%2e%2e/admin/users",
        "/app/%zz",
    ] {
        let (status, body) = send(
            gw.running.addr,
            "GET",
            refused,
            &[("authorization", &as_user)],
        )
        .await;
        assert_eq!(
            (status, error_of(&body).as_str()),
            (400, "invalid_request"),
            "{refused}: {body}"
        );
    }
    let after = gw.scrape().await;
    let moved = |name: &str| series(&after, name) - series(&before, name);
    assert_eq!(
        moved("minigate_authz_decisions_total{route=\"/app/admin/\",outcome=\"denied_role\"}"),
        5.0
    );

    // The admin gets the admin handler, sent the canonical path (the query
    // as it was sent).
    for spelling in ADMIN_SPELLINGS {
        let target = format!("{spelling}?q=%61%2F+b");
        let (status, body) = send(
            gw.running.addr,
            "GET",
            &target,
            &[("authorization", &as_admin)],
        )
        .await;
        assert_eq!(status, 200, "{spelling}: {body}");
        assert_eq!(
            body, "admin-handler /app/admin/users?q=%61%2F+b",
            "{spelling}"
        );
    }
    // Ordinary escapes still pass, upper-cased; encoded UTF-8 (a Chinese
    // path) keeps its bytes.
    for (sent, forwarded) in [
        ("/app/a%20b", "/app/a%20b"),
        ("/app/a%2Bb", "/app/a%2Bb"),
        ("/app/a%2bb", "/app/a%2Bb"),
        ("/app/%E5%95%86%E5%93%81/1", "/app/%E5%95%86%E5%93%81/1"),
        ("/app/%e5%95%86%e5%93%81/1", "/app/%E5%95%86%E5%93%81/1"),
        ("/app/v1.2/file.txt", "/app/v1.2/file.txt"),
    ] {
        let (status, body) =
            send(gw.running.addr, "GET", sent, &[("authorization", &as_user)]).await;
        assert_eq!(status, 200, "{sent}: {body}");
        assert_eq!(body, format!("api-handler {forwarded}"), "{sent}");
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_wsgi_service_reads_the_path_that_was_judged() {
    let wsgi = Wsgi::start().await;
    let gw = start(Setup {
        routes: routes(wsgi.addr),
        roles: admin_grant("wsgi-admin"),
        ..Setup::default()
    })
    .await;
    let user = gw.login("wsgi-user").await.access_token;
    let admin = gw.login("wsgi-admin").await.access_token;
    let environ = |body: &str| -> Value { serde_json::from_str(body).unwrap() };
    for (spelling, want) in [
        ("/app/%61dmin/x", 403),
        ("/app//admin/x", 403),
        ("/app/%41DMIN/../admin/x", 400),
    ] {
        let (status, _) = send(
            gw.running.addr,
            "GET",
            spelling,
            &[("authorization", &format!("Bearer {user}"))],
        )
        .await;
        assert_eq!(status, want, "{spelling}");
    }
    for spelling in ["/app/%61dmin/x", "/app//admin/x", "/app/admin/x"] {
        let (status, body) = send(
            gw.running.addr,
            "GET",
            &format!("{spelling}?a=%41"),
            &[("authorization", &format!("Bearer {admin}"))],
        )
        .await;
        assert_eq!(status, 200, "{spelling}: {body}");
        let env = environ(&body);
        assert_eq!(env["PATH_INFO"], "/app/admin/x", "{spelling}");
        assert_eq!(env["QUERY_STRING"], "a=%41", "{spelling}");
    }
    // PEP 3333: PATH_INFO is the decoded bytes, one character each.
    let (status, body) = send(
        gw.running.addr,
        "GET",
        "/app/%e5%95%86%e5%93%81",
        &[("authorization", &format!("Bearer {user}"))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let path_info: Vec<u8> = environ(&body)["PATH_INFO"]
        .as_str()
        .unwrap()
        .chars()
        .map(|c| c as u8)
        .collect();
    assert_eq!(path_info, "/app/商品".as_bytes());
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn method_override_headers_never_reach_the_upstream_and_are_judged_at_verify() {
    let wsgi = Wsgi::start().await;
    let gw = start(Setup {
        routes: vec![Route::new("/orders/")
            .upstream(wsgi.addr)
            .allow(vec![methods(["GET", "POST"])])],
        ..Setup::default()
    })
    .await;
    let token = gw.login("override-user").await.access_token;
    let bearer = format!("Bearer {token}");
    for name in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        let (status, body) = send(
            gw.running.addr,
            "POST",
            "/orders/1",
            &[
                ("authorization", &bearer),
                (name, "DELETE"),
                ("content-length", "0"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
        let env: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(env["REQUEST_METHOD"], "POST");
        let cgi = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        assert!(env.get(&cgi).is_none(), "{name} reached the service: {env}");
    }
    // Asked at /auth/verify (a proxy in front may pass the header on), the
    // method it names must be allowed too.
    let verify = |over: Option<&'static str>| {
        let mut req = gw
            .http
            .get(format!("{}/auth/verify", gw.url))
            .bearer_auth(&token)
            .header("x-original-method", "POST")
            .header("x-original-uri", "/orders/1");
        if let Some(m) = over {
            req = req.header("x-http-method-override", m);
        }
        req.send()
    };
    assert_eq!(verify(None).await.unwrap().status(), 200);
    assert_eq!(verify(Some("GET")).await.unwrap().status(), 200);
    assert_error(
        verify(Some("DELETE")).await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await;
    assert_error(
        verify(Some("BAD METHOD")).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn forward_auth_through_the_nginx_example_judges_the_path_the_app_reads() {
    let app = Nginx::start("nginx_app.conf", "127.0.0.1:9".parse().unwrap()).await;
    let gw = start(Setup {
        routes: routes(app.addr),
        roles: admin_grant("fa-admin"),
        ..Setup::default()
    })
    .await;
    let front = Nginx::start_site(
        &crate::examples::nginx_example(),
        gw.running.addr,
        &[("upstream", app.addr)],
    )
    .await;
    let user = gw.login("fa-user").await.access_token;
    let admin = gw.login("fa-admin").await.access_token;
    let get = |path: &'static str, token: String| {
        let front = front.addr;
        async move {
            send(
                front,
                "GET",
                path,
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await
        }
    };
    let (status, body) = get("/app/orders", user.clone()).await;
    assert_eq!((status, body.as_str()), (200, "api-handler /app/orders"));
    for spelling in ADMIN_SPELLINGS {
        let (status, body) = get(spelling, user.clone()).await;
        assert_eq!(status, 403, "{spelling}: {body}");
        assert!(!body.contains("admin-handler"), "{spelling}: {body}");
    }
    // A refused spelling is minigate's 400, which the example fails closed
    // on (500): never the application.
    let (status, body) = get("/app/admin;x/users", user.clone()).await;
    assert_eq!(status, 500, "{body}");
    let (status, body) = get("/app/%61dmin/users", admin.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("admin-handler "), "{body}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn encoded_separators_never_reach_an_nginx_upstream_that_decodes_them() {
    let echo = upstream().await;
    let nginx = Nginx::start("nginx_upstream.conf", echo.addr).await;
    let gw = start(Setup {
        routes: vec![
            Route::public("/ng/public/").upstream(nginx.addr),
            Route::required("/ng/").upstream(nginx.addr),
        ],
        ..Setup::default()
    })
    .await;

    // The hole is real: asked directly, nginx takes the public-looking
    // path to the secret one.
    let (status, _, _) = exchange(
        nginx.addr,
        "GET /ng/public/..%2fsecret HTTP/1.1\r\nHost: ng\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(echo.last().uri, "/real/secret");
    // The secret path is behind the required route.
    assert_eq!(gw.get("/ng/secret", None).await.status(), 401);
    // A plain public path passes.
    assert_eq!(gw.get("/ng/public/x", None).await.status(), 200);
    assert_eq!(echo.last().uri, "/real/public/x");
    // nginx logs a request once it is done: wait for both lines.
    eventually(
        "nginx logged 2 requests",
        Duration::from_secs(5),
        || async { nginx.access_log("ng_access.log").len() == 2 },
    )
    .await;
    let seen = echo.count();
    let before = gw.scrape().await;

    let attacks = [
        "/ng/public/..%2fsecret",
        "/ng/public/..%2Fsecret",
        "/ng/public/%2e%2e%2fsecret",
        "/ng/public/..%5csecret",
        "/ng/public/..%5Csecret",
        "/ng/public/..\\secret",
        "/ng/public/..;/secret",
        "/ng/public/.;/secret",
        "/ng/public/..;jsessionid=x/secret",
    ];
    for path in attacks {
        let (status, _, body) = exchange(
            gw.running.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(
            (status, error_of(&body).as_str()),
            (400, "invalid_request"),
            "{path}: {body}"
        );
    }
    assert_eq!(nginx.access_log("ng_access.log").len(), 2);
    assert_eq!(echo.count(), seen);
    let after = gw.scrape().await;
    assert_eq!(
        moved(&before, &after, &refused("path_refused")),
        attacks.len() as f64
    );
}
