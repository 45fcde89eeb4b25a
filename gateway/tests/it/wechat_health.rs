//! The health of a session's session_key at WeChat and the risk-aware
//! login, against the stand-in WeChat: `checksession` behind
//! `GET /auth/wechat/session_key` and the decrypt endpoint's 409,
//! `resetusersessionkey` behind the admin API (seen by every replica of a
//! Redis or Redis Cluster store), and `getuserriskrank` at login.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeEncrypt as _, KeyIvInit as _};
use serde_json::{json, Value};

use crate::support::*;

/// `plain` encrypted as WeChat does, with `key` (base64).
fn encrypt(key: &str, iv: &[u8; 16], plain: &Value) -> String {
    let key: [u8; 16] = STANDARD.decode(key).unwrap().try_into().unwrap();
    let ct = cbc::Encryptor::<aes::Aes128>::new(&key.into(), iv.into())
        .encrypt_padded_vec::<Pkcs7>(plain.to_string().as_bytes());
    STANDARD.encode(ct)
}

/// `POST /auth/wechat/decrypt` of `data` (iv [7; 16]) with `token`.
async fn decrypt(gw: &Gateway, token: &str, data: String) -> reqwest::Response {
    gw.http
        .post(format!("{}/auth/wechat/decrypt", gw.url))
        .bearer_auth(token)
        .body(json!({"encrypted_data": data, "iv": STANDARD.encode([7u8; 16])}).to_string())
        .send()
        .await
        .unwrap()
}

/// User data for `APPID`, encrypted with `key`.
fn user_data(key: &str) -> String {
    let plain = json!({"nickName": "Kay", "watermark": {"appid": APPID, "timestamp": 1}});
    encrypt(key, &[7u8; 16], &plain)
}

/// `GET /auth/wechat/session_key`'s `valid`, after checking the answer.
async fn valid(gw: &Gateway, token: &str) -> bool {
    let res = gw.get("/auth/wechat/session_key", Some(token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    body["valid"].as_bool().unwrap()
}

/// A 409 `session_key_expired` with `session_key` member `said` (none:
/// absent).
async fn assert_stale(res: reqwest::Response, said: Option<&str>) {
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "session_key_expired", "{body}");
    assert_eq!(body["session_key"].as_str(), said, "{body}");
}

/// WeChat's signature of `key`, computed here on its own: the hex
/// HMAC-SHA256 of the empty string keyed by the key's text.
fn signature_of(key: &str) -> String {
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
        b"",
    );
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn checksession_tells_a_good_key_from_a_stale_one_and_the_decrypt_409_says_which() {
    let wechat = wechat().await;
    let qq = Provider::new("qq", QQ_APPID, "TEST_QQ_SECRET").base_url(wechat.url());
    let gw = start(Setup {
        wechat_addr: Some(wechat.addr),
        ..Setup::default().provider(qq)
    })
    .await;
    let code = fresh("aes:kay");
    let key = session_key_for("aes:kay");
    let openid = openid_for(&code);
    let t: Tokens = gw
        .try_login(json!({ "code": code, "appid": APPID }))
        .await
        .json()
        .await
        .unwrap();
    assert!(valid(&gw, &t.access_token).await);
    // The call WeChat got: signed with the key, which itself never travels.
    let call = wechat.last_call().unwrap();
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("GET", "/wxa/checksession")
    );
    assert_eq!(call.param("openid").unwrap(), openid);
    assert_eq!(call.param("signature").unwrap(), signature_of(&key));
    assert_eq!(call.param("sig_method").unwrap(), "hmac_sha256");
    assert_eq!(call.param("access_token").unwrap(), format!("AT-{APPID}-1"));
    assert!(!call.query.contains(&key) && !call.query.contains(&STANDARD.encode(key.as_bytes())));
    // Data of another key, while WeChat still holds the session's: the
    // data is the client's mistake (fetch it again), not the session's.
    let other = user_data(&STANDARD.encode([9u8; 16]));
    assert_stale(
        decrypt(&gw, &t.access_token, other.clone()).await,
        Some("valid"),
    )
    .await;
    assert_eq!(
        decrypt(&gw, &t.access_token, user_data(&key))
            .await
            .status(),
        200
    );
    // WeChat drops the key (the user logged in again elsewhere): the client
    // is told before it asks the user for data, and the 409 says why.
    wechat.expire_session_key(APPID, &openid);
    assert!(!valid(&gw, &t.access_token).await);
    assert_stale(decrypt(&gw, &t.access_token, other).await, Some("invalid")).await;
    // A refused access token is renewed once and the call retried.
    let calls = wechat.stable_token_calls();
    wechat.drop_token();
    assert!(!valid(&gw, &t.access_token).await);
    assert_eq!(wechat.stable_token_calls(), calls + 1);
    // A new login gets a key WeChat holds again.
    let again: Tokens = gw
        .try_login(json!({ "code": fresh("aes:kay"), "appid": APPID }))
        .await
        .json()
        .await
        .unwrap();
    assert!(valid(&gw, &again.access_token).await);
    // A bearer token is required, GET only, and only a WeChat app's
    // session has a session_key to check.
    assert_error(
        gw.get("/auth/wechat/session_key", None).await,
        401,
        "unauthorized",
    )
    .await;
    let res = gw
        .http
        .post(format!("{}/auth/wechat/session_key", gw.url))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET");
    assert_error(res, 405, "invalid_request").await;
    let res = gw
        .try_login(json!({"code": fresh("qq-user"), "appid": QQ_APPID}))
        .await;
    assert_eq!(res.status(), 200);
    let qq: Tokens = res.json().await.unwrap();
    let asked = wechat.calls().len();
    assert_error(
        gw.get("/auth/wechat/session_key", Some(&qq.access_token))
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(wechat.calls().len(), asked, "nothing asked of WeChat");
    // Logged out: refused like every endpoint acting on the session.
    post_refresh(&gw.http, &gw.url, "/auth/logout", &t.refresh_token).await;
    assert_error(
        gw.get("/auth/wechat/session_key", Some(&t.access_token))
            .await,
        401,
        "invalid_token",
    )
    .await;
}

/// The app's quota at WeChat is every user's: one user's calls of
/// WeChat's services on a session are bounded (burst 10, then 20 a
/// minute), refused with 429 before WeChat is asked; past the bound the
/// decrypt endpoint still answers its 409, without asking WeChat which;
/// another user is not affected.
#[tokio::test]
async fn one_users_calls_of_wechats_services_are_bounded() {
    let wechat = wechat().await;
    let gw = start(Setup {
        wechat_addr: Some(wechat.addr),
        ..Setup::default()
    })
    .await;
    let login = |user: &'static str| {
        let gw = &gw;
        async move {
            gw.try_login(json!({ "code": fresh(user), "appid": APPID }))
                .await
                .json::<Tokens>()
                .await
                .unwrap()
                .access_token
        }
    };
    let t = login("aes:greedy").await;
    let checks = || {
        wechat
            .calls()
            .iter()
            .filter(|c| c.path == "/wxa/checksession")
            .count()
    };
    let (mut passed, mut refused) = (0, 0);
    for _ in 0..25 {
        let res = gw.get("/auth/wechat/session_key", Some(&t)).await;
        match res.status().as_u16() {
            200 => passed += 1,
            429 => {
                refused += 1;
                let after: u64 = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=3).contains(&after), "Retry-After: {after}");
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["error"], "rate_limited", "{body}");
                assert_eq!(
                    body["error_description"],
                    "too many calls of WeChat's services for this user, retry later"
                );
            }
            other => panic!("status {other}"),
        }
    }
    // The burst, and at most what the rate gave back meanwhile.
    assert!((10..15).contains(&passed), "{passed} passed");
    assert_eq!(passed + refused, 25);
    assert_eq!(checks(), passed, "a refused call never reaches WeChat");
    let m = gw.scrape().await;
    assert_eq!(
        series(&m, "minigate_refused_total{reason=\"wechat_rate\"}"),
        refused as f64
    );
    // Over the bound, a failed decrypt is the plain 409: WeChat not asked.
    let other = user_data(&STANDARD.encode([9u8; 16]));
    let before = checks();
    assert_stale(decrypt(&gw, &t, other).await, None).await;
    assert_eq!(checks(), before);
    // Another user has calls of their own.
    let u = login("aes:modest").await;
    assert!(valid(&gw, &u).await);
}

/// Two replicas on a shared `store` (one gateway on its own store), the
/// admin listener on the first: a reset there is what the second one
/// checks and decrypts with.
async fn reset_story(store: Sessions, shared: bool) {
    let wechat = wechat().await;
    let setup = Setup {
        wechat_addr: Some(wechat.addr),
        ..Setup::default().sessions(store).admin(Admin::test())
    };
    let a = start(setup.clone()).await;
    let second;
    let b = if shared {
        second = start(Setup {
            keys_dir: Some(a.keys_dir.clone()),
            ..setup
        })
        .await;
        &second
    } else {
        &a
    };
    let code = fresh("aes:lee");
    let openid = openid_for(&code);
    let t: Tokens = a
        .try_login(json!({ "code": code }))
        .await
        .json()
        .await
        .unwrap();
    let sid = claims(&t.access_token)["sid"].as_str().unwrap().to_owned();
    let user = openid.clone();
    let old = wechat.session_key(APPID, &openid).unwrap();
    assert!(valid(b, &t.access_token).await);
    // `reset_session_key` of `sid` at `base` (the admin listener's, or
    // not), with `method` and `token`.
    let reset_at = |base: String, method: reqwest::Method, token: Option<&str>, sid: &str| {
        let url = format!("{base}/admin/users/{user}/sessions/{sid}/reset_session_key");
        let mut req = a.http.request(method, url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let reset = |gw: &Gateway, token: Option<&str>, sid: &str| {
        reset_at(gw.admin_url(), reqwest::Method::POST, token, sid)
    };
    let res = reset(&a, Some(ADMIN_TOKEN), &sid).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = res.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"reset": true})
    );
    // WeChat was asked with the old key's signature and handed out a new
    // key, which the store now holds for every replica.
    let call = wechat
        .calls()
        .into_iter()
        .rfind(|c| c.path == "/wxa/resetusersessionkey")
        .unwrap();
    assert_eq!(call.param("signature").unwrap(), signature_of(&old));
    assert_eq!(call.param("sig_method").unwrap(), "hmac_sha256");
    let new = wechat.session_key(APPID, &openid).unwrap();
    assert_ne!(new, old);
    assert!(!body.contains(&new) && !body.contains(&old));
    assert!(
        valid(b, &t.access_token).await,
        "replica b checks the new key"
    );
    assert_eq!(
        decrypt(b, &t.access_token, user_data(&new)).await.status(),
        200
    );
    assert_eq!(
        decrypt(&a, &t.access_token, user_data(&new)).await.status(),
        200
    );
    // Data of the old key: the session's key is good, the data is stale.
    assert_stale(
        decrypt(b, &t.access_token, user_data(&old)).await,
        Some("valid"),
    )
    .await;
    // A key WeChat no longer holds cannot be reset: the user logs in again.
    wechat.expire_session_key(APPID, &openid);
    let res = reset(&a, Some(ADMIN_TOKEN), &sid).await.unwrap();
    assert_stale(res, Some("invalid")).await;
    // Another user's sid, an unknown sid, no admin token, wrong method.
    assert_error(
        reset(&a, Some(ADMIN_TOKEN), "no-such-session")
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_error(reset(&a, None, &sid).await.unwrap(), 401, "unauthorized").await;
    let res = reset_at(a.admin_url(), reqwest::Method::GET, Some(ADMIN_TOKEN), &sid).await;
    assert_error(res.unwrap(), 405, "invalid_request").await;
    // Not on the public port.
    let res = reset_at(
        a.url.clone(),
        reqwest::Method::POST,
        Some(ADMIN_TOKEN),
        &sid,
    )
    .await;
    assert_eq!(res.unwrap().status(), 404);
    // An ended session has no key to reset.
    post_refresh(&a.http, &a.url, "/auth/logout", &t.refresh_token).await;
    assert_error(
        reset(&a, Some(ADMIN_TOKEN), &sid).await.unwrap(),
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_session_key_reset_on_one_replica_is_seen_by_another_on_redis() {
    let redis = Redis::start().await;
    reset_story(redis.sessions(), true).await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_session_key_reset_on_one_replica_is_seen_by_another_on_redis_cluster() {
    let cluster = RedisCluster::start().await;
    reset_story(cluster.sessions(), true).await;
}

#[tokio::test]
async fn a_session_key_reset_in_process() {
    reset_story(Sessions::default(), false).await;
}

/// A gateway whose second WeChat app asks risk ranks (`risk_scene = 1`,
/// ranks from 3 refused), with `risk_required` as given, behind a trusted
/// proxy on loopback.
async fn risky(wechat: &WeChat, required: bool) -> Gateway {
    let mut provider = Provider::new("wechat", APPID2, "TEST_WECHAT_SECRET")
        .base_url(wechat.url())
        .risk_scene(1)
        .refuse_risk_rank(3);
    if required {
        provider = provider.risk_required(true);
    }
    start(Setup {
        wechat_addr: Some(wechat.addr),
        ..Setup::default()
            .provider(provider)
            .server(Server::default().trusted_proxies(vec!["127.0.0.1/32"]))
    })
    .await
}

/// Logs in at `APPID2` from 203.0.113.7 (through the trusted proxy).
async fn login_ranked(gw: &Gateway, code: &str) -> reqwest::Response {
    gw.http
        .post(format!("{}/auth/login", gw.url))
        .header("x-forwarded-for", "203.0.113.7")
        .body(json!({"code": code, "appid": APPID2}).to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_risk_rank_reaches_tokens_and_upstreams_and_a_high_one_is_refused() {
    let wechat = wechat().await;
    let gw = risky(&wechat, false).await;
    let code = fresh("rank-two");
    wechat.set_risk_rank(&openid_for(&code), 2);
    let res = login_ranked(&gw, &code).await;
    assert_eq!(res.status(), 200);
    let t: Tokens = res.json().await.unwrap();
    assert_eq!(claims(&t.access_token)["risk_rank"], 2);
    // WeChat was asked after the exchange, for this user, scene and the
    // client address the gateway derived.
    let call = wechat
        .calls()
        .into_iter()
        .rfind(|c| c.path == "/wxa/getuserriskrank")
        .unwrap();
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.param("access_token").unwrap(),
        format!("AT-{APPID2}-1")
    );
    let ask: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        ask,
        json!({"appid": APPID2, "openid": openid_for(&code), "scene": 1, "client_ip": "203.0.113.7"})
    );
    // Upstreams get the rank, never a client's own copy of the header.
    let res = gw
        .http
        .get(format!("{}/api/x", gw.url))
        .bearer_auth(&t.access_token)
        .header("x-auth-risk-rank", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(gw.upstream.last().headers["x-auth-risk-rank"], "2");
    // So do forward-auth answers.
    let res = gw
        .http
        .get(format!("{}/auth/verify/api/x", gw.url))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-auth-risk-rank"], "2");
    // Refreshes keep the rank of the login.
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    let next: Tokens = res.json().await.unwrap();
    assert_eq!(claims(&next.access_token)["risk_rank"], 2);
    // A rank at the threshold is refused, and counted.
    let code = fresh("rank-three");
    wechat.set_risk_rank(&openid_for(&code), 3);
    let res = login_ranked(&gw, &code).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "risky_user", "{body}");
    assert_eq!(
        body["error_description"],
        "the platform ranks this user's risk at or above what this app accepts"
    );
    let m = gw.scrape().await;
    let refused = format!("minigate_wechat_risk_refusals_total{{appid=\"{APPID2}\"}}");
    assert_eq!(series(&m, &refused), 1.0);
    // WeChat's risk service failing lets the login through without a
    // rank, counted.
    wechat.fail_risk(Some(-1));
    let res = login_ranked(&gw, &fresh("rank-down")).await;
    assert_eq!(res.status(), 200);
    let t: Tokens = res.json().await.unwrap();
    assert!(claims(&t.access_token).get("risk_rank").is_none());
    assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 200);
    assert!(!gw.upstream.last().headers.contains_key("x-auth-risk-rank"));
    let m = gw.scrape().await;
    let failed = format!("minigate_wechat_risk_failures_total{{appid=\"{APPID2}\",kind=\"busy\"}}");
    assert_eq!(series(&m, &failed), 1.0);
    // The app without risk_scene asks nothing.
    let asked = wechat.calls().len();
    let plain: Tokens = gw
        .try_login(json!({ "code": fresh("no-risk"), "appid": APPID }))
        .await
        .json()
        .await
        .unwrap();
    assert!(claims(&plain.access_token).get("risk_rank").is_none());
    assert!(wechat.calls()[asked..]
        .iter()
        .all(|c| c.path != "/wxa/getuserriskrank"));
}

#[tokio::test]
async fn with_risk_required_a_failing_risk_call_fails_the_login() {
    let wechat = wechat().await;
    let gw = risky(&wechat, true).await;
    wechat.fail_risk(Some(-1));
    assert_error(
        login_ranked(&gw, &fresh("busy")).await,
        503,
        "provider_unavailable",
    )
    .await;
    wechat.fail_risk(Some(61010));
    assert_error(
        login_ranked(&gw, &fresh("odd")).await,
        502,
        "provider_error",
    )
    .await;
    wechat.fail_risk(None);
    let res = login_ranked(&gw, &fresh("fine")).await;
    assert_eq!(res.status(), 200);
    let t: Tokens = res.json().await.unwrap();
    assert_eq!(claims(&t.access_token)["risk_rank"], 0);
    let m = gw.scrape().await;
    let failed = |kind: &str| {
        series(
            &m,
            &format!("minigate_wechat_risk_failures_total{{appid=\"{APPID2}\",kind=\"{kind}\"}}"),
        )
    };
    assert_eq!((failed("busy"), failed("unusable")), (1.0, 1.0));
}
