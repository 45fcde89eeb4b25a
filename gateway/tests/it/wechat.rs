//! WeChat's services after the login, against the stand-in WeChat: the
//! phone number, the app's access token (shared by replicas, renewed when
//! refused), the session_key kept with its session and the decrypt
//! endpoint, and one exchange per login code.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeEncrypt as _, KeyIvInit as _};
use serde_json::{json, Value};

use crate::support::*;

async fn post_as(gw: &Gateway, path: &str, token: &str, body: Value) -> reqwest::Response {
    gw.http
        .post(format!("{}{path}", gw.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// `/auth/phone` on the store of `store` (a `[sessions]` section), with a
/// user service that first grants `admin`: the number is kept with the
/// session and no token is minted, so an access token (which every
/// upstream sees) never becomes a refresh token, and roles are only ever
/// what a refresh computes.
async fn phone_story(store: Sessions) {
    let users = user_service(Answer::Json(json!({"roles": ["admin"]}))).await;
    let gw = start(Setup::default().sessions(store).enrich(enrich(users.url()))).await;
    let t = gw.login("phone-user").await;
    assert_eq!(claims(&t.access_token)["roles"], json!(["admin"]));
    // The user service demotes the user; the phone call asks it nothing and
    // hands out nothing that would keep the old roles.
    users.answer(Answer::Json(json!({})));
    let res = post_as(
        &gw,
        "/auth/phone",
        &t.access_token,
        json!({"code": "phone:13800001111"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "phone_number": "+86 13800001111",
            "pure_phone_number": "13800001111",
            "country_code": "86",
        })
    );
    // The session's refresh token is as it was: it redeems (no reuse), and
    // the refresh carries the number and the roles it computed.
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    assert_eq!(res.status(), 200);
    let next: Tokens = res.json().await.unwrap();
    let c = claims(&next.access_token);
    assert_eq!(c["phone_number"], "+86 13800001111");
    assert_eq!(c["sid"], claims(&t.access_token)["sid"], "same session");
    assert!(c.get("roles").is_none(), "{c}");
    assert_eq!(
        gw.get("/api/x", Some(&next.access_token)).await.status(),
        200
    );
    assert_eq!(
        gw.upstream.last().headers["x-auth-phone"],
        "+86 13800001111"
    );
    // Later refreshes keep it.
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &next.refresh_token).await;
    assert_eq!(res.status(), 200);
    let later: Tokens = res.json().await.unwrap();
    assert_eq!(
        claims(&later.access_token)["phone_number"],
        "+86 13800001111"
    );
    // A banned user: the next refresh ends the session, and a phone call
    // with a token of it gets nothing.
    users.answer(Answer::Status(403));
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &later.refresh_token).await;
    assert_error(res, 403, "access_denied").await;
    let res = post_as(
        &gw,
        "/auth/phone",
        &later.access_token,
        json!({"code": "phone:13800001111"}),
    )
    .await;
    assert_error(res, 401, "invalid_token").await;
    // The access token was fetched once and reused.
    assert_eq!(gw.wechat.stable_token_calls(), 1);
}

#[tokio::test]
async fn the_phone_endpoint_mints_no_token_and_the_next_refresh_carries_the_number_in_process() {
    phone_story(Sessions::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_phone_endpoint_mints_no_token_and_the_next_refresh_carries_the_number_on_redis() {
    let redis = Redis::start().await;
    phone_story(redis.sessions()).await;
}

#[tokio::test]
async fn phone_errors_map_onto_the_error_table_and_a_refused_token_is_renewed_once() {
    let gw = start(Setup::default()).await;
    let t = gw.login("phone-errors").await.access_token;
    for (code, status, error) in [
        ("nonsense", 400, "invalid_code"),
        ("err:40029", 400, "invalid_code"),
        ("phone-other-app", 400, "invalid_code"),
        ("err:45011", 429, "rate_limited"),
        ("err:-1", 503, "provider_unavailable"),
        ("err:99999", 502, "provider_error"),
    ] {
        let res = post_as(&gw, "/auth/phone", &t, json!({ "code": code })).await;
        assert_error(res, status, error).await;
    }
    assert_error(
        post_as(&gw, "/auth/phone", &t, json!({})).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(
        gw.http
            .post(format!("{}/auth/phone", gw.url))
            .body(r#"{"code":"phone:1"}"#)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let calls = gw.wechat.stable_token_calls();
    // WeChat drops the token (another caller forced a new one): the call
    // is refused with 40001, the token renewed once, the call retried.
    gw.wechat.drop_token();
    let res = post_as(&gw, "/auth/phone", &t, json!({"code": "phone:13900000000"})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(gw.wechat.stable_token_calls(), calls + 1);
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn two_replicas_on_one_redis_share_one_access_token_served_on_the_admin_listener() {
    let redis = Redis::start().await;
    let wechat = wechat().await;
    let setup = Setup {
        wechat_addr: Some(wechat.addr),
        ..Setup::default()
            .sessions(redis.sessions())
            .admin(Admin::test())
    };
    let a = start(setup.clone()).await;
    let b = start(Setup {
        keys_dir: Some(a.keys_dir.clone()),
        ..setup
    })
    .await;
    let get = |gw: &Gateway, token: Option<&str>, appid: &str| {
        let mut req = gw.http.get(format!(
            "{}/admin/wechat/access_token?appid={appid}",
            gw.admin_url()
        ));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let (ra, rb) = tokio::join!(
        get(&a, Some(ADMIN_TOKEN), APPID),
        get(&b, Some(ADMIN_TOKEN), APPID)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
    let (ja, jb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
    assert_eq!(ja["access_token"], jb["access_token"]);
    assert_eq!(ja["access_token"], format!("AT-{APPID}-1"));
    assert!(
        (7000..=7200).contains(&ja["expires_in"].as_u64().unwrap()),
        "{ja}"
    );
    assert_eq!(
        wechat.stable_token_calls(),
        1,
        "one renewal for the whole cluster"
    );
    // Again: served from memory.
    get(&a, Some(ADMIN_TOKEN), APPID).await.unwrap();
    assert_eq!(wechat.stable_token_calls(), 1);
    // The admin token is required, and the app must be a WeChat app.
    assert_eq!(get(&a, None, APPID).await.unwrap().status(), 401);
    assert_eq!(
        get(&a, Some("wrong-token-of-enough-length"), APPID)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get(&a, Some(ADMIN_TOKEN), "wx-unknown")
            .await
            .unwrap()
            .status(),
        400
    );
    // Not on the public port.
    let public = a
        .http
        .get(format!("{}/admin/wechat/access_token?appid={APPID}", a.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let m = a.scrape().await;
    assert!(
        series(
            &m,
            &format!("minigate_wechat_token_expiry_timestamp_seconds{{appid=\"{APPID}\"}}")
        ) > 0.0
    );
}

/// `plain` encrypted as WeChat does, with `key` (base64).
fn encrypt(key: &str, iv: &[u8; 16], plain: &[u8]) -> String {
    let key: [u8; 16] = STANDARD.decode(key).unwrap().try_into().unwrap();
    let ct = cbc::Encryptor::<aes::Aes128>::new(&key.into(), iv.into())
        .encrypt_padded_vec::<Pkcs7>(plain);
    STANDARD.encode(ct)
}

#[tokio::test]
async fn encrypted_data_is_decrypted_with_the_sessions_own_key() {
    let gw = start(Setup::default()).await;
    let code = fresh("aes:dora");
    let res = gw.try_login(json!({ "code": code })).await;
    assert_eq!(res.status(), 200);
    let t: Tokens = res.json().await.unwrap();
    let key = session_key_for(code.split('#').next().unwrap());
    let iv = [3u8; 16];
    let data = |appid: &str| {
        let plain = json!({"openId": openid_for(&code), "nickName": "Dora",
            "watermark": {"appid": appid, "timestamp": 1}});
        encrypt(&key, &iv, plain.to_string().as_bytes())
    };
    let decrypt = |data: String, iv: String| {
        post_as(
            &gw,
            "/auth/wechat/decrypt",
            &t.access_token,
            json!({"encrypted_data": data, "iv": iv}),
        )
    };
    let res = decrypt(data(APPID), STANDARD.encode(iv)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["nickName"], "Dora");
    // Malformed input is 400; another app's watermark too.
    for (d, i) in [
        ("%%%".to_owned(), STANDARD.encode(iv)),
        (data(APPID), STANDARD.encode([0u8; 12])),
        (STANDARD.encode([0u8; 20]), STANDARD.encode(iv)),
        (data("wx-other"), STANDARD.encode(iv)),
    ] {
        assert_error(decrypt(d, i).await, 400, "invalid_request").await;
    }
    // Well-formed data made with another key: the session's key is stale.
    let other = encrypt(&STANDARD.encode([9u8; 16]), &iv, br#"{"a":1}"#);
    assert_error(
        decrypt(other, STANDARD.encode(iv)).await,
        409,
        "session_key_expired",
    )
    .await;
    // A later login is another session with its own key; this session's
    // data still decrypts with this session's key.
    let again = gw.try_login(json!({ "code": fresh("aes:dora") })).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        decrypt(data(APPID), STANDARD.encode(iv)).await.status(),
        200
    );
    // A session without a key (the stand-in's plain codes give a key that
    // is not AES) cannot decrypt: 409.
    let plain = gw.login("no-aes").await;
    let res = post_as(
        &gw,
        "/auth/wechat/decrypt",
        &plain.access_token,
        json!({"encrypted_data": data(APPID), "iv": STANDARD.encode(iv)}),
    )
    .await;
    assert_error(res, 409, "session_key_expired").await;
    // Logged out: the token is refused.
    let res = post_refresh(&gw.http, &gw.url, "/auth/logout", &t.refresh_token).await;
    assert_eq!(res.status(), 204);
    assert_error(
        decrypt(data(APPID), STANDARD.encode(iv)).await,
        401,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn the_session_key_never_leaves_the_gateway() {
    let wechat = wechat().await;
    let up = upstream().await;
    let gw = spawn_binary(wechat.addr, up.addr, "trace").await;
    let http = client();
    let code = fresh("aes:leak-check");
    let res = http
        .post(format!("{}/auth/login", gw.url))
        .body(json!({ "code": code }).to_string())
        .send()
        .await
        .unwrap();
    let headers = format!("{:?}", res.headers());
    let text = res.text().await.unwrap();
    let t: Tokens = serde_json::from_str(&text).unwrap();
    let key = session_key_for(code.split('#').next().unwrap());
    let iv = [1u8; 16];
    let plain = json!({"watermark": {"appid": APPID}});
    let res = http
        .post(format!("{}/auth/wechat/decrypt", gw.url))
        .bearer_auth(&t.access_token)
        .body(json!({"encrypted_data": encrypt(&key, &iv, plain.to_string().as_bytes()), "iv": STANDARD.encode(iv)}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // WeChat's checksession is signed with the key, never sent it.
    let check = http
        .get(format!("{}/auth/wechat/session_key", gw.url))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    let check = check.text().await.unwrap();
    assert!(check.contains("\"valid\":true"), "{check}");
    let bad = http
        .post(format!("{}/auth/wechat/decrypt", gw.url))
        .bearer_auth(&t.access_token)
        .body(
            json!({"encrypted_data": STANDARD.encode([0u8; 32]), "iv": STANDARD.encode(iv)})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let logs = gw.stop();
    for (what, text) in [
        ("login", &text),
        ("headers", &headers),
        ("error", &bad),
        ("checksession", &check),
        ("metrics", &metrics),
        ("logs", &logs),
    ] {
        assert!(!text.contains(&key), "the session_key is in the {what}");
        assert!(
            !text.contains(SESSION_KEY),
            "a session_key is in the {what}"
        );
        assert!(!text.contains(SECRET), "the app secret is in the {what}");
    }
    for claim in [claims(&t.access_token), claims(&t.refresh_token)] {
        assert!(!claim.to_string().contains(&key));
    }
}

#[tokio::test]
async fn one_code_one_exchange_and_a_retry_lands_in_the_same_session() {
    let gw = start(Setup::default()).await;
    let code = fresh("retry-user");
    let calls = || {
        gw.wechat
            .queries()
            .iter()
            .filter(|q| q.contains(&urlencode(&code)))
            .count()
    };
    // 16 concurrent logins with one code: one platform call, one session.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (http, url, code) = (gw.http.clone(), gw.url.clone(), code.clone());
            tokio::spawn(async move {
                http.post(format!("{url}/auth/login"))
                    .body(json!({ "code": code, "device_id": "dev-1" }).to_string())
                    .send()
                    .await
                    .unwrap()
                    .json::<Tokens>()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut sids = Vec::new();
    for t in tasks {
        sids.push(claims(&t.await.unwrap().access_token)["sid"].clone());
    }
    assert_eq!(calls(), 1, "one platform call for concurrent logins");
    assert!(sids.iter().all(|s| *s == sids[0]), "{sids:?}");
    // A retry after success, same client and device: a pair in the session.
    let res = gw
        .try_login(json!({ "code": code, "device_id": "dev-1" }))
        .await;
    assert_eq!(res.status(), 200);
    let retried: Tokens = res.json().await.unwrap();
    assert_eq!(claims(&retried.access_token)["sid"], sids[0]);
    assert_eq!(calls(), 1);
    // Its refresh token is the session's current one.
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &retried.refresh_token).await;
    assert_eq!(res.status(), 200);
    // From another device: the code is spent.
    let res = gw
        .try_login(json!({ "code": code, "device_id": "dev-2" }))
        .await;
    assert_error(res, 400, "invalid_code").await;
    let res = gw.try_login(json!({ "code": code })).await;
    assert_error(res, 400, "invalid_code").await;
    // A failed exchange is not remembered: the platform is asked again.
    let bad = fresh("err:-1");
    for _ in 0..2 {
        assert_error(
            gw.try_login(json!({ "code": bad })).await,
            503,
            "provider_unavailable",
        )
        .await;
    }
}

fn urlencode(s: &str) -> String {
    s.replace('#', "%23").replace(':', "%3A")
}

#[tokio::test]
async fn a_failed_renewal_is_an_error_from_the_table_and_is_counted() {
    // Nothing listens where WeChat should be.
    let (_held, closed) = closed_port();
    let gw = start(Setup {
        wechat_addr: Some(closed),
        ..Setup::default().admin(Admin::test())
    })
    .await;
    let res = gw
        .admin_get(&format!("/admin/wechat/access_token?appid={APPID}"))
        .await;
    assert_error(res, 503, "provider_unavailable").await;
    let m = gw.scrape().await;
    assert_eq!(
        series(
            &m,
            &format!("minigate_wechat_token_failures_total{{appid=\"{APPID}\",kind=\"busy\"}}")
        ),
        1.0
    );
    assert_eq!(
        series(
            &m,
            &format!("minigate_wechat_token_renewals_total{{appid=\"{APPID}\"}}")
        ),
        0.0
    );
}
