//! Login → call → refresh → call through the real gateway, and the secrets
//! that must never come out of it.

use crate::support::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

fn header(token: &str) -> serde_json::Value {
    serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn login_call_refresh_call() {
    let gw = start(Setup::default()).await;
    let t = gw.login("code-alice").await;
    assert_eq!(t.token_type, "Bearer");
    assert_eq!(t.expires_in, 900);
    assert_eq!(t.refresh_expires_in, 30 * 86400);
    assert_eq!(t.openid, openid_for("code-alice"));
    assert_eq!(t.unionid, None);

    let access = claims(&t.access_token);
    let h = header(&t.access_token);
    let kid = jwks::KeySet::load(&gw.keys_dir)
        .unwrap()
        .current()
        .kid()
        .to_owned();
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["kid"], kid.as_str());
    assert_eq!(access["iss"], "https://auth.test");
    assert_eq!(access["aud"], "api");
    assert_eq!(access["sub"], t.openid.as_str());
    assert_eq!(access["client_id"], APPID);
    assert_eq!(access["platform"], "wechat");
    assert_eq!(
        access["exp"].as_u64().unwrap() - access["iat"].as_u64().unwrap(),
        900
    );
    let refresh = claims(&t.refresh_token);
    assert_eq!(header(&t.refresh_token)["typ"], "refresh+jwt");
    assert_eq!(refresh["aud"], "https://auth.test");
    assert_eq!(refresh["sid"], access["sid"]);
    assert_ne!(refresh["jti"], access["jti"]);

    let res = gw.get("/api/orders?page=2", Some(&t.access_token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-upstream"], "yes");
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/api/orders?page=2");
    assert_eq!(seen.headers["x-auth-subject"], t.openid.as_str());
    assert_eq!(seen.headers["x-auth-openid"], t.openid.as_str());
    assert_eq!(seen.headers["x-auth-appid"], APPID);
    assert_eq!(
        seen.headers["x-auth-session"],
        access["sid"].as_str().unwrap()
    );
    assert_eq!(seen.headers["x-auth-platform"], "wechat");
    assert_eq!(
        seen.headers["x-auth-token-id"],
        access["jti"].as_str().unwrap()
    );
    assert!(seen.headers.get("x-auth-unionid").is_none());
    assert!(seen.headers.get("x-auth-device").is_none());

    let res = gw
        .post(
            "/auth/refresh",
            &format!("{{\"refresh_token\":\"{}\"}}", t.refresh_token),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let t2: Tokens = res.json().await.unwrap();
    assert_ne!(
        t2.refresh_token, t.refresh_token,
        "refresh must rotate the refresh token"
    );
    assert_ne!(t2.access_token, t.access_token);
    assert_eq!(claims(&t2.access_token)["sid"], access["sid"]);
    assert_eq!(t2.openid, t.openid);

    let res = gw.get("/api/orders", Some(&t2.access_token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        gw.upstream.last().headers["x-auth-token-id"],
        claims(&t2.access_token)["jti"].as_str().unwrap()
    );
    gw.running.stop().await;
}

#[tokio::test]
async fn unionid_and_device_id_reach_token_and_upstream() {
    let gw = start(Setup {
        alg: jwks::Alg::EdDSA,
        ..Setup::default()
    })
    .await;
    let res = gw
        .post(
            "/auth/login",
            r#"{"code":"union:u-42","device_id":"iPhone15,2-abc"}"#,
        )
        .await;
    assert_eq!(res.status(), 200);
    let t: Tokens = res.json().await.unwrap();
    assert_eq!(t.unionid.as_deref(), Some("u-42"));
    assert_eq!(header(&t.access_token)["alg"], "EdDSA");
    let c = claims(&t.access_token);
    assert_eq!(
        (c["unionid"].as_str(), c["did"].as_str()),
        (Some("u-42"), Some("iPhone15,2-abc"))
    );
    assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-unionid"], "u-42");
    assert_eq!(seen.headers["x-auth-device"], "iPhone15,2-abc");
    // Refresh keeps them.
    let t2: Tokens = gw
        .post(
            "/auth/refresh",
            &format!("{{\"refresh_token\":\"{}\"}}", t.refresh_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims(&t2.access_token)["did"], "iPhone15,2-abc");
    assert_eq!(t2.unionid.as_deref(), Some("u-42"));
}

#[tokio::test]
async fn code_is_url_encoded_and_secret_never_leaves() {
    let gw = start(Setup::default()).await;
    let code = "a&secret=evil b/+%=ü";
    let res = gw
        .post(
            "/auth/login",
            &serde_json::json!({"code": code}).to_string(),
        )
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let t: Tokens = serde_json::from_str(&text).unwrap();
    // The stand-in saw the exact code as one parameter, and the real secret.
    assert_eq!(t.openid, openid_for(code));
    let query = gw.wechat.queries().last().cloned().unwrap();
    assert_eq!(query.matches("secret=").count(), 1, "{query}");
    // Neither the app secret nor the session_key appear in the response, the
    // tokens (decoded) or anything the upstream receives.
    let mut everything = text.clone();
    everything.push_str(&claims(&t.access_token).to_string());
    everything.push_str(&claims(&t.refresh_token).to_string());
    gw.get("/api/x", Some(&t.access_token)).await;
    let seen = gw.upstream.last();
    for (k, v) in &seen.headers {
        everything.push_str(&format!("{k}: {v:?}\n"));
    }
    for secret in [SECRET, SESSION_KEY] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn several_providers_pick_by_appid() {
    let gw = start(Setup {
        two_providers: true,
        ..Setup::default()
    })
    .await;
    assert_error(
        gw.post("/auth/login", r#"{"code":"c"}"#).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        gw.post("/auth/login", r#"{"code":"c","appid":"wx-unknown"}"#)
            .await,
        400,
        "invalid_request",
    )
    .await;
    let res = gw
        .post(
            "/auth/login",
            &format!(r#"{{"code":"c","appid":"{APPID2}"}}"#),
        )
        .await;
    assert_eq!(res.status(), 200);
    let t: Tokens = res.json().await.unwrap();
    assert_eq!(claims(&t.access_token)["client_id"], APPID2);
    assert!(gw.wechat.queries().last().unwrap().contains(APPID2));
}

#[tokio::test]
async fn well_known_documents_and_health() {
    let gw = start(Setup::default()).await;
    let res = gw.get("/.well-known/jwks.json", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let doc: serde_json::Value = res.json().await.unwrap();
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "current and next are published");
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["kty"], "EC");
        assert!(k["kid"].is_string() && k["x"].is_string() && k["y"].is_string());
        assert!(k.get("d").is_none(), "private member published");
        let members: Vec<&String> = k.as_object().unwrap().keys().collect();
        assert!(
            members
                .iter()
                .all(|m| ["kty", "kid", "use", "alg", "crv", "x", "y"].contains(&m.as_str())),
            "{members:?}"
        );
    }
    let disc: serde_json::Value = gw
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(disc["issuer"], "https://auth.test");
    assert_eq!(disc["jwks_uri"], "https://auth.test/.well-known/jwks.json");
    assert_eq!(
        disc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(gw.get("/healthz", None).await.status(), 200);
    let ready: serde_json::Value = gw.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}
