//! The headers an upstream receives and the request heads the gateway
//! accepts: names with `_` (WSGI and Rack read them as `-`), the client
//! address (`X-Forwarded-For` believed only from trusted proxies),
//! ambiguous heads, and HTTP/2's cookie fields, through real sockets, a
//! WSGI service and a real nginx in front.

use serde_json::Value;

use crate::support::*;

/// Headers that a CGI-style server reads as the gateway's own.
const UNDERSCORED: [(&str, &str); 3] = [
    ("x_auth_subject", "admin"),
    ("x_auth_roles", "admin"),
    ("x_forwarded_for", "6.6.6.6"),
];

/// GETs `url` with the underscored spoofs (and `token`); the WSGI environ.
async fn environ(http: &reqwest::Client, url: &str, token: Option<&str>) -> Value {
    let mut req = http.get(url);
    for (k, v) in UNDERSCORED {
        req = req.header(k, v);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    res.json().await.unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn underscored_identity_headers_never_reach_a_wsgi_service() {
    let wsgi = Wsgi::start().await;
    let echo = upstream().await;
    let gw = start(Setup {
        upstream_addr: Some(wsgi.addr),
        routes: vec![Route::optional("/echo/").upstream(echo.addr)],
        ..Setup::default()
    })
    .await;
    let me = openid_for("underscore-user");
    let t = gw.login("underscore-user").await;
    let before = gw.scrape().await;

    // The service is as gullible as the attack needs: asked directly, it
    // joins a header and its underscored twin into one, as CGI-style
    // servers do.
    let res = gw
        .http
        .get(format!("http://{}/direct", wsgi.addr))
        .header("x-auth-subject", "real")
        .header("x_auth_subject", "admin")
        .send()
        .await
        .unwrap();
    let direct: Value = res.json().await.unwrap();
    assert!(
        direct["HTTP_X_AUTH_SUBJECT"]
            .as_str()
            .unwrap()
            .contains("admin"),
        "{direct}"
    );

    // Anonymous, on a public and an optional route: no identity at all.
    for path in ["/public/w", "/maybe/w"] {
        let env = environ(&gw.http, &format!("{}{path}", gw.url), None).await;
        assert!(env.get("HTTP_X_AUTH_SUBJECT").is_none(), "{path}: {env}");
        assert!(env.get("HTTP_X_AUTH_ROLES").is_none(), "{path}: {env}");
        assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{path}: {env}");
        assert_eq!(env["PATH_INFO"], path);
    }
    // With a token, on an optional and a required route: exactly the
    // token's subject, not "admin,<subject>".
    for path in ["/maybe/w", "/api/w"] {
        let env = environ(
            &gw.http,
            &format!("{}{path}", gw.url),
            Some(&t.access_token),
        )
        .await;
        assert_eq!(env["HTTP_X_AUTH_SUBJECT"], me.as_str(), "{path}: {env}");
        assert!(env.get("HTTP_X_AUTH_ROLES").is_none(), "{path}: {env}");
        assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{path}: {env}");
    }
    // Mixed case on the wire, as the attack sent it.
    let (status, _, body) = exchange(
        gw.running.addr,
        &format!(
            "GET /api/raw HTTP/1.1\r\nHost: gw\r\nX_Auth_Subject: admin\r\nX_Auth_Openid: admin\r\n\
             Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
            t.access_token
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let env: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(env["HTTP_X_AUTH_SUBJECT"], me.as_str(), "{env}");
    assert_eq!(env["HTTP_X_AUTH_OPENID"], me.as_str(), "{env}");

    // The hyper upstream sees no name with "_" at all.
    let mut req = gw.http.get(format!("{}/echo/x", gw.url));
    for (k, v) in UNDERSCORED {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    let seen = echo.last();
    assert!(
        seen.headers.keys().all(|k| !k.as_str().contains('_')),
        "{:?}",
        seen.headers
    );
    assert!(seen.headers.get("x-auth-subject").is_none());

    let after = gw.scrape().await;
    // 4 requests of 3 spoofs, 2 on the raw one, 3 to the echo.
    assert_eq!(moved(&before, &after, &refused("header_dropped")), 17.0);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn with_underscores_allowed_only_the_gateways_own_names_are_still_dropped() {
    let wsgi = Wsgi::start().await;
    let echo = upstream().await;
    let gw = start(Setup {
        upstream_addr: Some(echo.addr),
        routes: vec![Route::required("/wsgi/").upstream(wsgi.addr)],
        ..hard(Server::default().underscores_in_headers(true))
    })
    .await;
    let me = openid_for("underscore-allowed");
    let t = gw.login("underscore-allowed").await;
    let before = gw.scrape().await;
    let owned = [
        ("x_auth_subject", "admin"),
        ("X_Auth_Openid", "admin"),
        ("x_request_id", "spoofed-id"),
        ("x_real_ip", "6.6.6.6"),
        ("x_forwarded_for", "6.6.6.6"),
        ("x_forwarded_host", "evil.example"),
        ("x_forwarded_proto", "https"),
    ];
    let send = |path: &str| {
        let mut req = gw
            .http
            .get(format!("{}{path}", gw.url))
            .bearer_auth(&t.access_token)
            .header("My_Header", "kept");
        for (k, v) in owned {
            req = req.header(k, v);
        }
        req.send()
    };
    assert_eq!(send("/api/allowed").await.unwrap().status(), 200);
    let seen = echo.last();
    assert_eq!(seen.headers["my_header"], "kept");
    let underscored: Vec<&str> = seen
        .headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.contains('_'))
        .collect();
    assert_eq!(underscored, ["my_header"], "{:?}", seen.headers);
    assert_eq!(seen.headers["x-auth-subject"], me.as_str());
    assert_ne!(seen.headers["x-request-id"], "spoofed-id");
    assert_eq!(seen.headers["x-real-ip"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");

    let res = send("/wsgi/allowed").await.unwrap();
    assert_eq!(res.status(), 200);
    let env: Value = res.json().await.unwrap();
    assert_eq!(env["HTTP_MY_HEADER"], "kept", "{env}");
    assert_eq!(env["HTTP_X_AUTH_SUBJECT"], me.as_str(), "{env}");
    assert_eq!(env["HTTP_X_AUTH_OPENID"], me.as_str(), "{env}");
    assert_eq!(env["HTTP_X_REAL_IP"], "127.0.0.1", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "http", "{env}");
    assert_ne!(env["HTTP_X_REQUEST_ID"], "spoofed-id", "{env}");

    let after = gw.scrape().await;
    assert_eq!(
        moved(&before, &after, &refused("header_dropped")),
        2.0 * owned.len() as f64
    );
}

/// An HTTP/2 connection to a TLS gateway on `port`.
async fn h2(
    pki: &Pki,
    port: u16,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let tls = tls_connect_alpn(pki, port, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

/// Sends a GET with `headers` over `sender`; the status and the body.
async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, bytes::Bytes) {
    use http_body_util::BodyExt as _;
    let mut req = http::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(http_body_util::Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn underscored_identity_headers_are_dropped_over_http2_too() {
    let wsgi = Wsgi::start().await;
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let gw = tls_gateway_with(&pki, dir.path(), Some(wsgi.addr), Setup::default()).await;
    let port = gw.running.addr.port();
    let base = format!("https://localhost:{port}");
    let tokens = login_at(&pki.client(false), &base, "h2-underscore").await;
    let bearer = format!("Bearer {}", tokens.access_token);
    let mut sender = h2(&pki, port).await;
    for (path, auth) in [
        ("/public/h2", None),
        ("/maybe/h2", None),
        ("/maybe/h2", Some(bearer.as_str())),
        ("/api/h2", Some(bearer.as_str())),
    ] {
        let mut headers = UNDERSCORED.to_vec();
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let url = format!("https://localhost:{port}{path}");
        let (status, body) = h2_get(&mut sender, &url, &headers).await;
        assert_eq!(status, 200, "{path}");
        let env: Value = serde_json::from_slice(&body).unwrap();
        match auth {
            None => assert!(env.get("HTTP_X_AUTH_SUBJECT").is_none(), "{path}: {env}"),
            Some(_) => assert_eq!(
                env["HTTP_X_AUTH_SUBJECT"],
                openid_for("h2-underscore").as_str(),
                "{path}: {env}"
            ),
        }
        assert!(env.get("HTTP_X_AUTH_ROLES").is_none(), "{path}: {env}");
        assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{path}: {env}");
    }
    let (_, metrics) = h2_get(
        &mut sender,
        &format!("https://localhost:{port}/metrics"),
        &[],
    )
    .await;
    let text = String::from_utf8_lossy(&metrics);
    assert_eq!(series(&text, &refused("header_dropped")), 12.0, "{text}");
}

#[tokio::test]
async fn an_untrusted_client_cannot_choose_its_address() {
    let gw = start(hard(Server::default().login_per_minute(1).login_burst(1))).await;
    let res = gw
        .http
        .get(format!("{}/public/fwd", gw.url))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6;proto=https")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(seen.headers["x-real-ip"], "127.0.0.1");
    assert!(seen.headers.get("forwarded").is_none());
    // The login limit keys on the peer, whatever it claims to forward.
    let login = |xff: &'static str| {
        gw.http
            .post(format!("{}/auth/login", gw.url))
            .header("content-type", "application/json")
            .header("x-forwarded-for", xff)
            .body(format!("{{\"code\":\"untrusted-{xff}\"}}"))
            .send()
    };
    assert_eq!(login("198.51.100.1").await.unwrap().status(), 200);
    assert_error(login("198.51.100.2").await.unwrap(), 429, "rate_limited").await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn behind_a_trusted_nginx_the_forwarded_client_is_the_client() {
    let gw = start(hard(
        Server::default()
            .login_per_minute(1)
            .login_burst(2)
            .trusted_proxies(vec!["127.0.0.0/8"]),
    ))
    .await;
    let front = Nginx::start("nginx_front.conf", gw.running.addr).await;
    let http = client();
    let res = http
        .get(format!("{}/public/fwd", front.url()))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", front.errors());
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-real-ip"], "203.0.113.9");
    // nginx appended its peer, the gateway its own.
    assert_eq!(
        seen.headers["x-forwarded-for"],
        "203.0.113.9, 127.0.0.1, 127.0.0.1"
    );
    // Each forwarded address has its own login burst.
    let login = |xff: &'static str, n: u32| {
        http.post(format!("{}/auth/login", front.url()))
            .header("content-type", "application/json")
            .header("x-forwarded-for", xff)
            .body(format!("{{\"code\":\"behind-{xff}-{n}\"}}"))
            .send()
    };
    for xff in ["203.0.113.9", "203.0.113.10"] {
        for n in 0..2 {
            assert_eq!(login(xff, n).await.unwrap().status(), 200, "{xff} #{n}");
        }
        let headers = assert_error(login(xff, 2).await.unwrap(), 429, "rate_limited").await;
        assert!(headers.contains_key("retry-after"));
    }
    assert_eq!(gw.wechat.queries().len(), 4);
}

#[tokio::test]
async fn ambiguous_request_heads_are_400() {
    let gw = start(Setup::default()).await;
    let before = gw.scrape().await;
    let heads = [
        "GET /public/x HTTP/1.1\r\nHost: gw\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        "GET /public/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET http://user:pw@gw/public/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        "GET http://user@gw/public/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    ];
    for head in heads {
        let (status, _, body) = exchange(gw.running.addr, head).await;
        assert_eq!(
            (status, error_of(&body).as_str()),
            (400, "invalid_request"),
            "{head:?}: {body}"
        );
    }
    assert_eq!(gw.upstream.count(), 0);
    // HTTP/1.0 needs no Host.
    let (status, _, body) = exchange(gw.running.addr, "GET /public/old HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 200, "{body}");
    let after = gw.scrape().await;
    assert_eq!(
        moved(&before, &after, &refused("bad_request_head")),
        heads.len() as f64
    );
}

#[tokio::test]
async fn http2_cookie_fields_reach_an_http11_upstream_as_one() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let gw = tls_gateway_with(&pki, dir.path(), None, Setup::default()).await;
    let port = gw.running.addr.port();
    let mut sender = h2(&pki, port).await;
    let (status, _) = h2_get(
        &mut sender,
        &format!("https://localhost:{port}/public/cookies"),
        &[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")],
    )
    .await;
    assert_eq!(status, 200);
    let seen = gw.upstream.last();
    let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2; c=3"], "{:?}", seen.headers);
}
