//! WebSocket through the gateway: the handshake is authenticated like any
//! request on its route, then frames flow both ways until either side
//! closes. The upstream is a real WebSocket server (tungstenite) that
//! reports the handshake headers it got.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use std::time::Instant;

use crate::support::*;

async fn ws_gateway(server: Server) -> (Gateway, WsEcho) {
    let echo = ws_echo().await;
    let gw = start(Setup {
        upstream_addr: Some(echo.addr),
        ..hard(server)
    })
    .await;
    (gw, echo)
}

#[tokio::test]
async fn a_websocket_is_echoed_with_auth_and_refused_without() {
    let (gw, echo) = ws_gateway(Server::default()).await;
    let tokens = gw.login("ws-user").await;
    let bearer = format!("Bearer {}", tokens.access_token);

    // Refused without a token, with a bad one, and with a refresh token:
    // the upstream never hears of them.
    let tampered = format!("Bearer {}x", tokens.access_token);
    let refresh = format!("Bearer {}", tokens.refresh_token);
    for headers in [
        &[][..],
        &[("authorization", tampered.as_str())],
        &[("authorization", refresh.as_str())],
    ] {
        let refused = ws_connect(&gw, "/api/ws", headers).await.unwrap_err();
        assert_eq!(ws_status(refused), 401, "{headers:?}");
    }
    assert!(echo.handshakes.lock().unwrap().is_empty());

    // With a token: the handshake reaches the upstream with the identity
    // (and not the client's spoofed one), and frames flow both ways.
    let mut ws = ws_connect(
        &gw,
        "/api/ws?room=1",
        &[
            ("authorization", &bearer),
            ("x-auth-subject", "admin"),
            ("x-request-id", "ws-handshake-1"),
        ],
    )
    .await
    .unwrap();
    {
        let seen = echo.handshakes.lock().unwrap();
        let h = &seen[0];
        assert_eq!(h["x-auth-subject"], openid_for("ws-user").as_str());
        assert_eq!(h["x-request-id"], "ws-handshake-1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert!(h.get("authorization").is_some());
        assert!(h["upgrade"]
            .to_str()
            .unwrap()
            .eq_ignore_ascii_case("websocket"));
        assert!(h.get("sec-websocket-key").is_some());
    }
    assert_eq!(
        ws_next_data(&mut ws).await,
        Message::text("hello from upstream")
    );
    ws.send(Message::text("ping 1")).await.unwrap();
    assert_eq!(ws_next_data(&mut ws).await, Message::text("ping 1"));
    let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws_next_data(&mut ws).await, Message::binary(big));

    // Counted as one open tunnel on its route while it lives.
    let scrape = gw.get("/metrics", None).await.text().await.unwrap();
    assert!(
        scrape.contains("minigate_websocket_tunnels{route=\"/api/\"} 1"),
        "{scrape}"
    );
    assert!(scrape.contains("minigate_requests_total{route=\"/api/\",class=\"1xx\"} 1"));

    // The upstream closes: the client sees the close frame.
    ws.send(Message::text("bye")).await.unwrap();
    assert!(ws_next_data(&mut ws).await.is_close());
    drop(ws);

    // A second tunnel, closed by the client this time.
    let mut ws = ws_connect(&gw, "/api/ws", &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(
        ws_next_data(&mut ws).await,
        Message::text("hello from upstream")
    );
    ws.close(None).await.unwrap();
    drop(ws);
    let mut open = String::new();
    for _ in 0..100 {
        open = gw.get("/metrics", None).await.text().await.unwrap();
        if open.contains("minigate_websocket_tunnels{route=\"/api/\"} 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        open.contains("minigate_websocket_tunnels{route=\"/api/\"} 0"),
        "tunnels not closed: {open}"
    );

    // A plain request on the route is refused by the WebSocket-only
    // upstream as a bad gateway, not tunnelled: only a handshake upgrades.
    let res = gw.get("/api/plain", Some(&tokens.access_token)).await;
    assert_eq!(res.status(), 502);
}

#[tokio::test]
async fn a_public_route_tunnels_without_a_token_and_never_passes_a_spoofed_identity() {
    let (gw, echo) = ws_gateway(Server::default()).await;
    let mut ws = ws_connect(&gw, "/public/ws", &[("x-auth-subject", "admin")])
        .await
        .unwrap();
    assert_eq!(
        ws_next_data(&mut ws).await,
        Message::text("hello from upstream")
    );
    let seen = echo.handshakes.lock().unwrap();
    assert!(seen[0].keys().all(|k| !k.as_str().starts_with("x-auth-")));
}

#[tokio::test]
async fn open_tunnels_hold_connection_slots_and_are_cut_at_the_shutdown_deadline() {
    let (gw, _echo) = ws_gateway(
        Server::default()
            .max_connections(2)
            .shutdown_timeout(ms(300)),
    )
    .await;
    // A public route: no login, so the test's HTTP client holds no
    // pooled connection, and the tunnels are all there is.
    let mut first = ws_connect(&gw, "/public/ws", &[]).await.unwrap();
    let mut second = ws_connect(&gw, "/public/ws", &[]).await.unwrap();
    assert_eq!(
        ws_next_data(&mut first).await,
        Message::text("hello from upstream")
    );
    assert_eq!(
        ws_next_data(&mut second).await,
        Message::text("hello from upstream")
    );
    // Both slots are held by tunnels: a third connection waits in the
    // backlog.
    let third = tokio::time::timeout(
        Duration::from_millis(300),
        ws_connect(&gw, "/public/ws", &[]),
    )
    .await;
    assert!(
        third.is_err(),
        "a third connection was served at a cap of 2"
    );
    // One tunnel closes: its slot is free again.
    first.close(None).await.unwrap();
    drop(first);
    let mut third =
        tokio::time::timeout(Duration::from_secs(5), ws_connect(&gw, "/public/ws", &[]))
            .await
            .expect("the freed slot was not reused")
            .unwrap();
    assert_eq!(
        ws_next_data(&mut third).await,
        Message::text("hello from upstream")
    );

    // Shutdown: open tunnels get until the deadline, then are cut.
    let Gateway { running, .. } = gw;
    let cut = running.stop().await;
    assert_eq!(cut, 2, "two tunnels were open at the deadline");
    for ws in [&mut second, &mut third] {
        let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the tunnel was not cut");
        assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    }
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_and_a_busy_one_is_kept() {
    let echo = ws_echo().await;
    let gw = start(Setup {
        upstream_addr: Some(echo.addr),
        // Tunnels outlive the head deadline too.
        ..hard(
            Server::default()
                .tunnel_idle_timeout(secs(1))
                .header_timeout(ms(500)),
        )
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
        ..hard(Server::default().max_tunnels_per_user(2))
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
