//! The second hardening round (issue 11), one regression test per finding
//! of the outside attack run, each replaying the attack through real parts:
//! real sockets, real hyper upstreams, a real WSGI service (Python's
//! wsgiref), a real nginx behind the gateway and in front of it.
//!
//! The gateway runs with small limits (`proxy_body_timeout`,
//! `send_timeout`, `tunnel_idle_timeout` of 1 s) so that every test ends in
//! a few seconds; waits poll for the state they need rather than sleep.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// The harness's setup with login rate limiting off and `server` added to
/// `[server]`.
fn hard(server: &str) -> Setup {
    Setup {
        server: format!("login_per_minute = 0\n{server}"),
        ..Setup::default()
    }
}

/// `minigate_refused_total{reason="…"}`.
fn refused(reason: &str) -> String {
    format!("minigate_refused_total{{reason=\"{reason}\"}}")
}

/// `minigate_requests_total{route="…",class="…"}`.
fn requests(route: &str, class: &str) -> String {
    format!("minigate_requests_total{{route=\"{route}\",class=\"{class}\"}}")
}

/// How much `series` moved between two scrapes.
fn moved(before: &str, after: &str, name: &str) -> f64 {
    series(after, name) - series(before, name)
}

/// One HTTP/1.1 response read off a raw connection: the status, the head
/// and the body (by `Content-Length`), within 5 s.
async fn read_response(s: &mut (impl AsyncRead + Unpin)) -> (u16, String, String) {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed inside the body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let status = head[9..12].parse().unwrap();
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
        (status, head, body)
    })
    .await
    .expect("no response within 5 s")
}

/// Sends `request` on a fresh connection and reads one response.
async fn exchange(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    read_response(&mut s).await
}

/// The `error` of a JSON error body.
fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["error"].as_str().unwrap_or("").to_owned()
}

// ---------------------------------------------------------------------------
// 1. Header names with underscores

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
        routes: format!(
            "[[routes]]\nprefix = \"/echo/\"\nupstream = \"http://{}\"\nauth = \"optional\"\n",
            echo.addr
        ),
        ..hard("")
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
        routes: format!(
            "[[routes]]\nprefix = \"/wsgi/\"\nupstream = \"http://{}\"\nauth = \"required\"\n",
            wsgi.addr
        ),
        ..hard("underscores_in_headers = true\n")
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
    let gw = tls_gateway_with(&pki, dir.path(), Some(wsgi.addr), hard("")).await;
    let port = gw.running.addr.port();
    let tokens: Tokens = pki
        .client(false)
        .post(format!("https://localhost:{port}/auth/login"))
        .header("content-type", "application/json")
        .body("{\"code\":\"h2-underscore\"}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

// ---------------------------------------------------------------------------
// 2. Encoded separators, read by a real nginx upstream

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn encoded_separators_never_reach_an_nginx_upstream_that_decodes_them() {
    let echo = upstream().await;
    let nginx = Nginx::start("nginx_upstream.conf", echo.addr).await;
    let gw = start(Setup {
        routes: format!(
            "[[routes]]\nprefix = \"/ng/public/\"\nupstream = \"http://{0}\"\nauth = \"public\"\n\n\
             [[routes]]\nprefix = \"/ng/\"\nupstream = \"http://{0}\"\nauth = \"required\"\n",
            nginx.addr
        ),
        ..hard("")
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

// ---------------------------------------------------------------------------
// 3. Slow clients

#[tokio::test]
async fn a_stalled_request_body_is_408_and_frees_the_upstream_slot() {
    let gw = start(Setup {
        upstream_timeout: "5s",
        ..hard("upstream_max_connections = 1\nproxy_body_timeout = \"1s\"\n")
    })
    .await;
    let t = gw.login("slow-body").await;
    let before = gw.scrape().await;
    let mut s = TcpStream::connect(gw.running.addr).await.unwrap();
    s.write_all(
        b"POST /public/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    let sent = Instant::now();
    let (status, _, body) = read_response(&mut s).await;
    let waited = sent.elapsed();
    assert_eq!(
        (status, error_of(&body).as_str()),
        (408, "invalid_request"),
        "{body}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "408 after {waited:?}"
    );
    // The only upstream slot is free at once: an authenticated request
    // to the same upstream does not wait for it (held, it would wait out
    // the route's 5 s timeout and get 504).
    let asked = Instant::now();
    assert_eq!(
        gw.get("/api/after", Some(&t.access_token)).await.status(),
        200
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let after = gw.scrape().await;
    assert_eq!(moved(&before, &after, &refused("slow_body")), 1.0);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_frees_the_upstream_slot() {
    let gw = start(Setup {
        upstream_timeout: "5s",
        ..hard("upstream_max_connections = 1\nsend_timeout = \"1s\"\n")
    })
    .await;
    // A small receive window, so the kernel buffers little of the answer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(gw.running.addr).await.unwrap();
    s.write_all(b"GET /public/big?mib=64 HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let asked = Instant::now();
    // It never reads. After send_timeout the gateway gives up on it.
    eventually("slow_reader counted", Duration::from_secs(10), || async {
        series(&gw.scrape().await, &refused("slow_reader")) == 1.0
    })
    .await;
    assert!(asked.elapsed() >= Duration::from_millis(900));
    // The only upstream slot is free: another request passes at once
    // (held, it would wait out the route's 5 s timeout and get 504).
    let again = Instant::now();
    assert_eq!(gw.get("/public/after", None).await.status(), 200);
    assert!(
        again.elapsed() < Duration::from_secs(2),
        "{:?}",
        again.elapsed()
    );
    // And the slow reader's connection was closed, well short of 64 MiB.
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(closed.is_ok(), "the slow reader's connection is still open");
    assert!(got.len() < 32 << 20, "{} bytes were sent", got.len());
}

#[tokio::test]
async fn requests_in_flight_per_client_address_are_capped() {
    let gw = start(Setup {
        upstream_timeout: "5s",
        ..hard("max_requests_per_ip = 2\n")
    })
    .await;
    let before = gw.scrape().await;
    // Two slow requests (3 s at the upstream) from 127.0.0.1.
    let slow = |n: u32| {
        let (http, url) = (gw.http.clone(), format!("{}/public/slow?n={n}", gw.url));
        tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
    };
    let (one, two) = (slow(1), slow(2));
    eventually("both at the upstream", Duration::from_secs(5), || async {
        gw.upstream.count() == 2
    })
    .await;
    // A third from the same address is refused while they are in flight.
    let headers = assert_error(gw.get("/public/third", None).await, 429, "rate_limited").await;
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
    assert_eq!(gw.upstream.count(), 2);
    assert_eq!(one.await.unwrap(), 200);
    assert_eq!(two.await.unwrap(), 200);
    // Once they are done, requests pass again.
    assert_eq!(gw.get("/public/again", None).await.status(), 200);
    let after = gw.scrape().await;
    assert_eq!(moved(&before, &after, &refused("per_ip_cap")), 1.0);
}

// ---------------------------------------------------------------------------
// 4. WebSocket tunnels

#[tokio::test]
async fn an_idle_tunnel_is_closed_and_a_busy_one_is_kept() {
    let echo = ws_echo().await;
    let gw = start(Setup {
        upstream_addr: Some(echo.addr),
        // Tunnels outlive the head deadline too.
        ..hard("tunnel_idle_timeout = \"1s\"\nheader_timeout = \"500ms\"\n")
    })
    .await;
    let t = gw.login("tunnel-idle").await;
    let bearer = format!("Bearer {}", t.access_token);
    let auth = [("authorization", bearer.as_str())];
    let mut idle = ws_connect(&gw, "/api/ws", &auth).await.unwrap();
    let mut busy = ws_connect(&gw, "/api/ws", &auth).await.unwrap();
    for ws in [&mut idle, &mut busy] {
        assert_eq!(ws_next_data(ws).await, Message::text("hello from upstream"));
    }
    let opened = Instant::now();
    // The idle one is watched for its end.
    let idle_end = tokio::spawn(async move {
        loop {
            match idle.next().await {
                Some(Ok(m)) if !m.is_close() => continue,
                _ => return opened.elapsed(),
            }
        }
    });
    // The busy one talks every 250 ms for 2.5 s, more than twice the limit.
    for i in 0..10 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let text = format!("still here {i}");
        busy.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws_next_data(&mut busy).await, Message::text(text));
    }
    let ended = tokio::time::timeout(Duration::from_secs(3), idle_end)
        .await
        .expect("the idle tunnel is still open")
        .unwrap();
    assert!(
        ended >= Duration::from_millis(900) && ended < Duration::from_secs(3),
        "the idle tunnel ended after {ended:?}"
    );
    let text = gw.scrape().await;
    assert_eq!(series(&text, &refused("tunnel_idle")), 1.0, "{text}");
}

#[tokio::test]
async fn open_tunnels_are_capped_per_user_and_per_anonymous_address() {
    let echo = ws_echo().await;
    let gw = start(Setup {
        upstream_addr: Some(echo.addr),
        ..hard("max_tunnels_per_user = 2\n")
    })
    .await;
    let alice = format!("Bearer {}", gw.login("alice").await.access_token);
    let bob = format!("Bearer {}", gw.login("bob").await.access_token);
    let as_alice = [("authorization", alice.as_str())];
    let mut alices = Vec::new();
    for _ in 0..2 {
        let mut ws = ws_connect(&gw, "/api/ws", &as_alice).await.unwrap();
        assert_eq!(
            ws_next_data(&mut ws).await,
            Message::text("hello from upstream")
        );
        alices.push(ws);
    }
    let refused_third = ws_connect(&gw, "/api/ws", &as_alice).await.unwrap_err();
    assert_eq!(ws_status(refused_third), 429);
    // Another user is not affected.
    let mut bobs = ws_connect(&gw, "/api/ws", &[("authorization", bob.as_str())])
        .await
        .unwrap();
    assert_eq!(
        ws_next_data(&mut bobs).await,
        Message::text("hello from upstream")
    );
    // Anonymous tunnels count per client address.
    let mut anon = Vec::new();
    for _ in 0..2 {
        let mut ws = ws_connect(&gw, "/public/ws", &[]).await.unwrap();
        assert_eq!(
            ws_next_data(&mut ws).await,
            Message::text("hello from upstream")
        );
        anon.push(ws);
    }
    let refused_anon = ws_connect(&gw, "/public/ws", &[]).await.unwrap_err();
    assert_eq!(ws_status(refused_anon), 429);
    // Only the handshakes that passed reached the upstream.
    assert_eq!(echo.handshakes.lock().unwrap().len(), 5);
    // When one of alice's tunnels closes, she may open another.
    let mut first = alices.remove(0);
    first.send(Message::text("bye")).await.unwrap();
    assert!(ws_next_data(&mut first).await.is_close());
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        match ws_connect(&gw, "/api/ws", &as_alice).await {
            Ok(ws) => break ws,
            Err(e) => assert_eq!(ws_status(e), 429),
        }
        assert!(
            Instant::now() < deadline,
            "alice's closed tunnel kept its place"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        ws_next_data(&mut again).await,
        Message::text("hello from upstream")
    );
    let text = gw.scrape().await;
    assert!(series(&text, &refused("tunnel_cap")) >= 2.0, "{text}");
}

// ---------------------------------------------------------------------------
// 5. Malformed Authorization on an optional route

/// An unsigned token (`alg: none`) claiming to be `sub`.
fn forged_none(sub: &str) -> String {
    let now = now();
    let header = json!({"alg": "none", "typ": "at+jwt"});
    let claims = json!({"iss": "https://auth.test", "aud": "api", "sub": sub, "client_id": APPID,
        "iat": now, "exp": now + 600, "jti": "j", "sid": "s", "platform": "wechat"});
    format!(
        "{}.{}.",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

#[tokio::test]
async fn a_malformed_authorization_on_an_optional_route_is_401_not_anonymous() {
    let gw = start(hard("")).await;
    let t = gw.login("optional-user").await;
    let forged = forged_none("admin");
    // Verified once, so in the cache: a variant of it must not hit there.
    assert_eq!(
        gw.get("/maybe/x", Some(&t.access_token)).await.status(),
        200
    );
    let before = gw.upstream.count();
    for authorization in [
        format!("Bearer\t{}", t.access_token),
        format!("Bearer,{}", t.access_token),
        format!("Bearer {}!", t.access_token),
        format!("Bearer \t{}", t.access_token),
        "Basic dXNlcjpwYXNzd29yZA==".to_owned(),
        format!("Bearer\t{forged}"),
        format!("Bearer {forged}"),
        format!("Bearer {} x", t.access_token),
        "Bearer".to_owned(),
    ] {
        let res = gw
            .http
            .get(format!("{}/maybe/x", gw.url))
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert_error(res, 401, "invalid_token").await;
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{authorization:?}: {challenge}"
        );
        assert_eq!(
            gw.upstream.count(),
            before,
            "{authorization:?} reached the upstream"
        );
    }
    // The route still serves the anonymous and the authenticated.
    assert_eq!(gw.get("/maybe/x", None).await.status(), 200);
    assert!(gw.upstream.last().headers.get("x-auth-subject").is_none());
    assert_eq!(
        gw.get("/maybe/x", Some(&t.access_token)).await.status(),
        200
    );
    assert_eq!(
        gw.upstream.last().headers["x-auth-subject"],
        openid_for("optional-user").as_str()
    );
}

// ---------------------------------------------------------------------------
// 6. Outbound redirects

#[tokio::test]
async fn a_provider_redirect_is_never_followed() {
    // Where the redirect points: another stand-in that must hear nothing.
    let elsewhere = wechat().await;
    let redirecting = wechat_redirecting(elsewhere.addr).await;
    let gw = start(Setup {
        wechat_addr: Some(redirecting.addr),
        ..hard("")
    })
    .await;
    let statuses = [301, 302, 303, 307, 308];
    for status in statuses {
        let res = gw
            .post(
                "/auth/login",
                &format!("{{\"code\":\"redirect:{status}\"}}"),
            )
            .await;
        assert_eq!(res.status(), 502, "{status}");
        let text = res.text().await.unwrap();
        assert_eq!(error_of(&text), "provider_error", "{status}: {text}");
        assert!(
            !text.contains(SECRET) && !text.contains("location"),
            "{text}"
        );
    }
    // Each login made one call, to the configured platform only; the
    // secret went nowhere else.
    assert_eq!(redirecting.queries.lock().unwrap().len(), statuses.len());
    assert!(elsewhere.queries.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// 7. A broken request body is the client's fault

#[tokio::test]
async fn a_bad_chunk_size_is_400_and_not_an_upstream_failure() {
    let gw = start(hard("")).await;
    let before = gw.scrape().await;
    let (status, _, body) = exchange(
        gw.running.addr,
        "POST /public/chunked HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
    )
    .await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "invalid_request"),
        "{body}"
    );
    // A well-formed chunked body passes.
    let (status, _, body) = exchange(
        gw.running.addr,
        "POST /public/chunked HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(gw
        .upstream
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.body == "hello"));
    let after = gw.scrape().await;
    assert_eq!(
        moved(&before, &after, &requests("/public/", "5xx")),
        0.0,
        "{after}"
    );
    assert_eq!(
        moved(&before, &after, &requests("/public/", "4xx")),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved(&before, &after, &requests("/public/", "2xx")),
        1.0,
        "{after}"
    );
}

// ---------------------------------------------------------------------------
// 8. Forwarding headers and request heads

#[tokio::test]
async fn an_untrusted_client_cannot_choose_its_address() {
    let gw = start(Setup {
        server: "login_per_minute = 1\nlogin_burst = 1\n".into(),
        ..Setup::default()
    })
    .await;
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
    let gw = start(Setup {
        server: "login_per_minute = 1\nlogin_burst = 2\ntrusted_proxies = [\"127.0.0.0/8\"]\n"
            .into(),
        ..Setup::default()
    })
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
    assert_eq!(gw.wechat.queries.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn ambiguous_request_heads_are_400() {
    let gw = start(hard("")).await;
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
    let gw = tls_gateway_with(&pki, dir.path(), None, hard("")).await;
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

// ---------------------------------------------------------------------------
// 9. What operators see

#[test]
fn config_check_shows_no_url_credentials() {
    let keys = key_dir(jwks::Alg::ES256);
    let text = config_text(
        &Setup {
            routes: "[[routes]]\nprefix = \"/creds/\"\nupstream = \"http://svc:routepass@127.0.0.1:9\"\nauth = \"public\"\n"
                .into(),
            extra: "[sessions]\nredis_url = \"redis://:redispass@127.0.0.1:6379/0\"\n".into(),
            ..Setup::default()
        },
        keys.path(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:0",
    )
    .replace(
        "base_url = \"http://127.0.0.1:1\"",
        "base_url = \"https://user:hunter2@api.example.com\"",
    );
    assert!(text.contains("hunter2"));
    let cfg = keys.path().join("minigate.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .env("TEST_WECHAT_SECRET", SECRET)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("api.example.com"), "{all}");
    for secret in ["hunter2", "routepass", "redispass", SECRET] {
        assert!(!all.contains(secret), "{secret} in: {all}");
    }
}

#[tokio::test]
async fn readyz_reports_a_broken_key_file_without_its_path_or_contents() {
    use std::os::unix::fs::PermissionsExt as _;
    let keys = key_dir(jwks::Alg::ES256);
    let file = keys.path().join("keyset.json");
    let good = std::fs::read_to_string(&file).unwrap();
    let private_key = serde_json::from_str::<Value>(&good).unwrap()["keys"][0]["private_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let gw = start(Setup {
        keys_dir: Some(keys.path().to_path_buf()),
        reload_interval: "200ms",
        ..hard("")
    })
    .await;
    let write = |text: &str, mode: u32| {
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let marker = "FILE-CONTENTS-MARKER";
    // What is written, and a word of the reason readiness must give.
    type Breakage<'a> = (Box<dyn Fn() + 'a>, &'static str);
    let breakages: Vec<Breakage> = vec![
        (
            Box::new(|| write(&format!("{marker} {private_key}"), 0o600)),
            "not a key set",
        ),
        (
            Box::new(|| write(&good.replace("current", "currnt"), 0o644)),
            "accessible to others",
        ),
        (
            Box::new(|| write(&good.replace(&private_key, &private_key[..40]), 0o600)),
            "key 0",
        ),
        (
            // A hand edit gone wrong: the key pasted into another field.
            Box::new(|| {
                write(
                    &good.replacen("\"current\"", &format!("\"{private_key}\""), 1),
                    0o600,
                )
            }),
            "not a key set",
        ),
        (
            Box::new(|| std::fs::remove_file(&file).unwrap()),
            "No such file",
        ),
    ];
    let dir = keys.path().display().to_string();
    for (n, (breakage, reason)) in breakages.iter().enumerate() {
        breakage();
        let deadline = Instant::now() + Duration::from_secs(5);
        let ready: Value = loop {
            let ready: Value = gw.get("/readyz", None).await.json().await.unwrap();
            if ready["reload_failures"] == n as u64 + 1 {
                break ready;
            }
            assert!(Instant::now() < deadline, "breakage {n} not seen: {ready}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let error = ready["last_reload_error"].as_str().unwrap();
        assert!(error.contains(reason), "{reason:?} not in {error:?}");
        assert!(
            !error.contains(&dir) && !error.contains("keyset.json"),
            "{error}"
        );
        assert!(!error.contains(marker), "{error}");
        assert!(!error.contains(&private_key[..16]), "{error}");
        assert_eq!(ready["status"], "ready");
    }
}
