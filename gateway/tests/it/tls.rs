//! Inbound TLS: HTTP/2 and HTTP/1.1 by ALPN through the gateway to an
//! upstream, with a certificate authority made by the test, and the
//! certificate replaced on disk while the gateway serves.

use std::time::Duration;

use crate::support::*;
use minigate::config::tls::TlsReload;

#[tokio::test]
async fn https_with_http2_and_http11_reaches_the_upstream() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let gw = tls_gateway(&pki, dir.path()).await;
    let base = format!("https://localhost:{}", gw.running.addr.port());
    for (http1_only, version) in [
        (false, http::Version::HTTP_2),
        (true, http::Version::HTTP_11),
    ] {
        let http = pki.client(http1_only);
        let res = http
            .post(format!("{base}/auth/login"))
            .header("content-type", "application/json")
            .body("{\"code\":\"over-tls\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.version(), version);
        assert_eq!(res.status(), 200);
        let tokens: Tokens = res.json().await.unwrap();
        let res = http
            .get(format!("{base}/api/over-tls?x=1"))
            .bearer_auth(&tokens.access_token)
            .header("x-auth-subject", "spoofed")
            .send()
            .await
            .unwrap();
        assert_eq!((res.version(), res.status().as_u16()), (version, 200));
        let seen = gw.upstream.last();
        assert_eq!(seen.uri, "/api/over-tls?x=1");
        assert_eq!(seen.headers["x-forwarded-proto"], "https");
        assert_eq!(
            seen.headers["x-auth-subject"],
            openid_for("over-tls").as_str()
        );
        assert_eq!(
            seen.headers["host"],
            format!("localhost:{}", gw.running.addr.port()).as_str()
        );
        // Without a token: the same 401 over either protocol.
        let res = http.get(format!("{base}/api/x")).send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
    // Plain HTTP to the TLS port gets nowhere.
    let plain = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/healthz",
            gw.running.addr.port()
        ))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered on the TLS port");
}

/// The leaf certificate a fresh TLS connection is served.
async fn served_leaf(pki: &Pki, port: u16) -> Vec<u8> {
    let tls = tls_connect(pki, port).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_websocket_over_tls_is_authenticated_and_echoed() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::Message;

    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let echo = ws_echo().await;
    let gw = tls_gateway_to(&pki, dir.path(), Some(echo.addr)).await;
    let port = gw.running.addr.port();
    let http = pki.client(false);
    let tokens: Tokens = http
        .post(format!("https://localhost:{port}/auth/login"))
        .header("content-type", "application/json")
        .body("{\"code\":\"wss-user\"}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("wss://localhost:{port}/api/socket");

    // Without a token: 401, over TLS as over plain HTTP.
    let refused =
        tokio_tungstenite::client_async(url.as_str(), tls_connect(&pki, port).await).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }

    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", tokens.access_token).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls_connect(&pki, port).await)
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hello from upstream")
    );
    ws.send(Message::text("over tls")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("over tls"));
    let seen = echo.handshakes.lock().unwrap();
    assert_eq!(seen[0]["x-forwarded-proto"], "https");
    assert_eq!(seen[0]["x-auth-subject"], openid_for("wss-user").as_str());
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_reload_and_a_broken_one_is_refused() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let gw = tls_gateway(&pki, dir.path()).await;
    let port = gw.running.addr.port();
    let gateway = gw.running.gateway.clone();
    let first = served_leaf(&pki, port).await;
    // Renewed on disk (as cert-manager would): new connections get it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = pki.issue(dir.path());
    assert_ne!(first, second);
    assert_eq!(gateway.reload_tls(), TlsReload::Replaced);
    assert_eq!(served_leaf(&pki, port).await, second);
    // A broken write is refused; the renewed pair keeps serving.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.path().join("tls.key"), "not a key").unwrap();
    assert_eq!(gateway.reload_tls(), TlsReload::Refused);
    assert_eq!(served_leaf(&pki, port).await, second);
    assert_eq!(
        gateway.reload_tls(),
        TlsReload::Unchanged,
        "unchanged files are not re-read"
    );
    let text = pki
        .client(false)
        .get(format!("https://localhost:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "minigate_tls_reloads_total{outcome=\"replaced\"} 1",
        "minigate_tls_reloads_total{outcome=\"refused\"} 1",
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
}

#[test]
fn bad_tls_files_stop_the_start_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_dir(jwks::Alg::ES256);
    let base = config_text(
        &Setup::default(),
        keys.path(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:0",
    );
    std::fs::write(dir.path().join("garbage.pem"), "garbage").unwrap();
    let cases = [
        (
            format!("[tls]\nkey = \"{}/k\"\n", dir.path().display()),
            "tls.cert",
        ),
        (
            format!(
                "[tls]\ncert = \"{0}/missing.crt\"\nkey = \"{0}/k\"\n",
                dir.path().display()
            ),
            "tls.cert",
        ),
        (
            format!(
                "[tls]\ncert = \"{0}/garbage.pem\"\nkey = \"{0}/garbage.pem\"\n",
                dir.path().display()
            ),
            "tls.cert",
        ),
    ];
    for (section, key) in cases {
        let e = minigate::config::Config::from_toml(&format!("{base}\n{section}"), &test_env)
            .unwrap_err();
        assert!(e.to_string().starts_with(key), "{e}");
    }
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_and_others_are_served() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let setup = hard(Server::default().header_timeout(ms(500)));
    let gw = tls_gateway_with(&pki, dir.path(), None, setup).await;
    let port = gw.running.addr.port();
    // One says nothing at all; one sends a few bytes of a ClientHello and
    // stops.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut partial = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    // Meanwhile a real client is served.
    let res = pki
        .client(false)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for stalled in [&mut silent, &mut partial] {
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a stalled handshake was kept open");
    }
    // A finished handshake that no request head follows is closed the same.
    let mut quiet = tls_connect_alpn(&pki, port, &[b"http/1.1"]).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), quiet.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a TLS connection with no request was kept open"
    );
    assert!(rest.is_empty());
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_a_busy_one_is_kept() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let setup = hard(Server::default().header_timeout(secs(1)));
    let gw = tls_gateway_with(&pki, dir.path(), None, setup).await;
    let port = gw.running.addr.port();
    let pki = &pki;
    let open = |port| async move {
        let tls = tls_connect_alpn(pki, port, &[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        (sender, tokio::spawn(conn))
    };
    let get = |sender: &mut hyper::client::conn::http2::SendRequest<
        http_body_util::Empty<bytes::Bytes>,
    >| {
        let req = http::Request::get(format!("https://localhost:{port}/public/h2"))
            .body(http_body_util::Empty::new())
            .unwrap();
        sender.send_request(req)
    };
    let (mut idle, idle_conn) = open(port).await;
    let (mut busy, busy_conn) = open(port).await;
    assert_eq!(get(&mut idle).await.unwrap().status(), 200);
    // One keeps asking every 100 ms for 3.2 s (three idle periods); the
    // other says nothing after its first request, and is closed after one
    // to two periods.
    for _ in 0..32 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(get(&mut busy).await.unwrap().status(), 200);
    }
    assert!(
        !busy_conn.is_finished(),
        "the busy HTTP/2 connection was closed"
    );
    assert!(
        idle_conn.is_finished(),
        "the idle HTTP/2 connection is still open"
    );
    // Closed in good order (GOAWAY), not cut off by an HTTP/1 head deadline.
    let ended = idle_conn.await.unwrap();
    assert!(ended.is_ok(), "{ended:?}");
}
