//! A WeChat third-party platform (`wechat_component`) through the real
//! gateway: WeChat's pushes to its callback (the ticket, signed and
//! encrypted as WeChat does, and what an impostor sends), the
//! `component_access_token` fetched only once a ticket is in and shared by
//! the cluster, and logins for the mini-programs that authorized it.

use minigate::ops::dev::standins::{Push, StandIn};
use minigate::wechat::msgcrypt::MsgCrypt;
use serde_json::{json, Value};

use crate::support::*;

/// A login for the mini-program `appid` with a fresh code of `code`'s user.
async fn login_for(gw: &Gateway, appid: &str, code: &str) -> reqwest::Response {
    gw.try_login(json!({"code": fresh(code), "appid": appid}))
        .await
}

/// Posts `push` to the platform's callback on `gw`.
async fn send(gw: &Gateway, push: &Push) -> (u16, String) {
    let (status, body) = push
        .send(&gw.http, &ticket_callback(&gw.url))
        .await
        .unwrap();
    (status.as_u16(), body)
}

/// The stand-in WeChat pushes the platform a new ticket at `gw`, which
/// takes it.
async fn push_ticket(wechat: &StandIn, gw: &Gateway) {
    let (status, body) = wechat
        .push_ticket(&gw.http, COMPONENT_APPID, &ticket_callback(&gw.url))
        .await
        .unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "success"));
}

/// The `component/jscode2session` calls `standin` received.
fn exchanges(standin: &StandIn) -> Vec<minigate::ops::dev::standins::Call> {
    standin
        .calls()
        .into_iter()
        .filter(|c| c.path == "/sns/component/jscode2session")
        .collect()
}

#[tokio::test]
async fn pushes_are_checked_and_the_platform_logs_in_its_mini_programs_once_a_ticket_is_in() {
    let wechat = component_wechat().await;
    // C is listed but never authorized the platform; A and B did.
    let gw = start(Setup::default().provider(component_provider(
        &wechat,
        vec![MERCHANT_A, MERCHANT_B, MERCHANT_C],
    )))
    .await;

    // No ticket yet: no token can be had, and none is asked for.
    assert_error(
        login_for(&gw, MERCHANT_A, "kim").await,
        503,
        "provider_unavailable",
    )
    .await;
    assert_eq!(wechat.component_token_calls(), 0);
    assert!(exchanges(&wechat).is_empty());

    // Pushes that are not WeChat's are refused, and keep no ticket.
    let crypt = component_crypt();
    let genuine = Push::ticket(&crypt, COMPONENT_APPID, "ticket@@@forged");
    let resigned = Push {
        msg_signature: "0".repeat(40),
        ..genuine.clone()
    };
    assert_eq!(send(&gw, &resigned).await.0, 401);
    let replayed_elsewhen = Push {
        timestamp: "1409735669".into(),
        ..genuine.clone()
    };
    assert_eq!(send(&gw, &replayed_elsewhen).await.0, 401);
    // Signed with the platform's token, encrypted with another key.
    let other_key = "b3RoZXIga2V5IG9mIG5vYm9keSwgZm9yIHRlc3RzMDE";
    let wrong_key = MsgCrypt::new(COMPONENT_APPID, COMPONENT_TOKEN, other_key).unwrap();
    let push = Push::ticket(&wrong_key, COMPONENT_APPID, "ticket@@@forged");
    assert_eq!(send(&gw, &push).await.0, 400);
    // The platform's keys, but for another app.
    let other_app =
        MsgCrypt::new("wx3rd-someone-else", COMPONENT_TOKEN, COMPONENT_AES_KEY).unwrap();
    let push = Push::ticket(&other_app, "wx3rd-someone-else", "ticket@@@forged");
    assert_eq!(send(&gw, &push).await.0, 400);
    let push = Push {
        body: push.body.replace("wx3rd-someone-else", COMPONENT_APPID),
        ..push
    };
    assert_eq!(send(&gw, &push).await.0, 400);
    // Not XML; no signature at all; another path; another method.
    let junk = gw
        .http
        .post(format!("{}?{}", ticket_callback(&gw.url), genuine.query()))
        .body("{\"Encrypt\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_error(junk, 400, "invalid_request").await;
    let unsigned = gw
        .http
        .post(ticket_callback(&gw.url))
        .body(genuine.body.clone())
        .send()
        .await
        .unwrap();
    assert_error(unsigned, 400, "invalid_request").await;
    let elsewhere = gw
        .http
        .post(format!(
            "{}/auth/wechat/component/wx3rd-unknown/ticket?{}",
            gw.url,
            genuine.query()
        ))
        .body(genuine.body.clone())
        .send()
        .await
        .unwrap();
    assert_error(elsewhere, 404, "not_found").await;
    let get = gw
        .get(
            &format!("/auth/wechat/component/{COMPONENT_APPID}/ticket"),
            None,
        )
        .await;
    assert_error(get, 405, "invalid_request").await;
    assert_error(
        login_for(&gw, MERCHANT_A, "kim").await,
        503,
        "provider_unavailable",
    )
    .await;
    assert_eq!(wechat.component_token_calls(), 0);

    // WeChat's own push: acknowledged as WeChat expects, and then logins work.
    push_ticket(&wechat, &gw).await;
    // Another event of the platform is acknowledged too.
    let event = "<xml><AppId>wx3rd00000000000001</AppId><CreateTime>1</CreateTime><InfoType>unauthorized</InfoType><AuthorizerAppid>wxz</AuthorizerAppid></xml>";
    assert_eq!(
        send(&gw, &Push::new(&crypt, event)).await,
        (200, "success".into())
    );

    let res = login_for(&gw, MERCHANT_A, "kim").await;
    assert_eq!(res.status(), 200);
    let tokens: Tokens = res.json().await.unwrap();
    assert_eq!(tokens.openid, openid_for("kim"));
    let c = claims(&tokens.access_token);
    assert_eq!(c["client_id"], MERCHANT_A);
    assert_eq!(c["component_appid"], COMPONENT_APPID);
    assert_eq!(c["platform"], "wechat_component");
    assert_eq!(c["sub"], openid_for("kim"));
    // The call was WeChat's component jscode2session, with the token that
    // the ticket bought, and no mini-program secret.
    let call = exchanges(&wechat).pop().unwrap();
    assert_eq!(call.method, "GET");
    assert_eq!(call.param("appid").as_deref(), Some(MERCHANT_A));
    assert_eq!(
        call.param("component_appid").as_deref(),
        Some(COMPONENT_APPID)
    );
    assert_eq!(
        call.param("grant_type").as_deref(),
        Some("authorization_code")
    );
    assert!(call
        .param("component_access_token")
        .unwrap()
        .starts_with("CAT-"));
    assert_eq!(call.param("secret"), None);
    let ask: Value = wechat
        .calls()
        .into_iter()
        .find(|c| c.path == "/cgi-bin/component/api_component_token")
        .map(|c| serde_json::from_str(&c.body).unwrap())
        .unwrap();
    assert_eq!(ask["component_appid"], COMPONENT_APPID);
    assert_eq!(ask["component_appsecret"], COMPONENT_SECRET);
    assert!(ask["component_verify_ticket"]
        .as_str()
        .unwrap()
        .starts_with("ticket@@@"));

    // Upstreams see the mini-program and the platform.
    let res = gw.get("/api/x", Some(&tokens.access_token)).await;
    assert_eq!(res.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-appid"], MERCHANT_A);
    assert_eq!(seen.headers["x-auth-platform"], "wechat_component");
    // A refresh keeps both.
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &tokens.refresh_token).await;
    assert_eq!(res.status(), 200);
    let refreshed: Tokens = res.json().await.unwrap();
    let c = claims(&refreshed.access_token);
    assert_eq!(
        (c["client_id"].as_str(), c["component_appid"].as_str()),
        (Some(MERCHANT_A), Some(COMPONENT_APPID))
    );

    // B too, on the token in hand.
    assert_eq!(login_for(&gw, MERCHANT_B, "lee").await.status(), 200);
    assert_eq!(wechat.component_token_calls(), 1);
    // C is listed here, but WeChat says it never authorized the platform.
    let res = login_for(&gw, MERCHANT_C, "kim").await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("61003"));
    // An appid the config does not list never reaches WeChat; nor does the
    // platform's own appid, which is no mini-program.
    let before = exchanges(&wechat).len();
    for appid in ["wxd0000000000000d4", COMPONENT_APPID] {
        assert_error(login_for(&gw, appid, "kim").await, 400, "invalid_request").await;
    }
    assert_eq!(exchanges(&wechat).len(), before);
    // A bad code is WeChat's 40029, as for any WeChat login.
    assert_error(
        login_for(&gw, MERCHANT_A, "err:40029").await,
        400,
        "invalid_code",
    )
    .await;

    // Nothing secret came back or is counted.
    let m = gw.scrape().await;
    assert_eq!(
        series(
            &m,
            &format!("minigate_wechat_token_renewals_total{{appid=\"{COMPONENT_APPID}\"}}")
        ),
        1.0
    );
    for secret in [
        COMPONENT_SECRET,
        COMPONENT_AES_KEY,
        COMPONENT_TOKEN,
        "CAT-",
        "ticket@@@",
    ] {
        assert!(!m.contains(secret), "{secret} in the metrics");
        assert!(!tokens.access_token.contains(secret));
    }
}

/// A `component_access_token` WeChat no longer takes (replaced or revoked
/// before its expiry) costs a login one renewal, not the login: the
/// exchange is made again, once, with a new token, which is kept.
#[tokio::test]
async fn a_refused_component_token_is_renewed_once_at_the_login() {
    let wechat = component_wechat().await;
    let gw = start(Setup::default().provider(component_provider(&wechat, vec![MERCHANT_A]))).await;
    push_ticket(&wechat, &gw).await;
    assert_eq!(login_for(&gw, MERCHANT_A, "kim").await.status(), 200);
    assert_eq!(wechat.component_token_calls(), 1);

    wechat.revoke_component_tokens();
    let before = exchanges(&wechat).len();
    let res = login_for(&gw, MERCHANT_A, "kim").await;
    assert_eq!(res.status(), 200);
    assert_eq!(wechat.component_token_calls(), 2);
    // The refused exchange and the one made again.
    let made = exchanges(&wechat);
    assert_eq!(made.len(), before + 2);
    assert_ne!(
        made[before].param("component_access_token"),
        made[before + 1].param("component_access_token")
    );
    // The new token is the one kept.
    assert_eq!(login_for(&gw, MERCHANT_A, "lee").await.status(), 200);
    assert_eq!(wechat.component_token_calls(), 2);
    assert_eq!(exchanges(&wechat).len(), before + 3);
}

#[tokio::test]
async fn allow_any_authorized_takes_any_appid_and_wechat_still_decides() {
    let wechat = component_wechat().await;
    let gw = start(
        Setup::default().provider(component_provider(&wechat, vec![]).allow_any_authorized(true)),
    )
    .await;
    push_ticket(&wechat, &gw).await;
    // Listed nowhere, authorized at WeChat: in.
    assert_eq!(login_for(&gw, MERCHANT_B, "kim").await.status(), 200);
    // Not authorized at WeChat: 61003.
    let res = login_for(&gw, MERCHANT_C, "kim").await;
    assert_error(res, 400, "invalid_request").await;
    // The harness's own WeChat app stays its own provider.
    let res = gw
        .try_login(json!({"code": fresh("kim"), "appid": APPID}))
        .await;
    assert_eq!(res.status(), 200);
    let c = claims(&res.json::<Tokens>().await.unwrap().access_token);
    assert_eq!(
        (c["platform"].as_str(), c.get("component_appid")),
        (Some("wechat"), None)
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn two_gateways_on_one_redis_share_the_ticket_and_one_component_token() {
    let redis = Redis::start().await;
    let wechat = component_wechat().await;
    let setup = Setup::default()
        .sessions(redis.sessions())
        .provider(component_provider(&wechat, vec![MERCHANT_A, MERCHANT_B]));
    let a = start(setup.clone()).await;
    let b = start(Setup {
        keys_dir: Some(a.keys_dir.clone()),
        ..setup
    })
    .await;
    // WeChat pushes to one replica (whichever the balancer picks)...
    push_ticket(&wechat, &a).await;
    // ...and the other, which never saw it, fetches the token with it...
    assert_eq!(login_for(&b, MERCHANT_B, "lee").await.status(), 200);
    assert_eq!(wechat.component_token_calls(), 1);
    // ...which both then use, together: one token for the whole cluster.
    let (ra, rb) = tokio::join!(
        login_for(&a, MERCHANT_A, "kim"),
        login_for(&b, MERCHANT_B, "lee")
    );
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
    assert_eq!(
        wechat.component_token_calls(),
        1,
        "one renewal for the whole cluster"
    );
    let tokens: Vec<String> = exchanges(&wechat)
        .iter()
        .filter_map(|c| c.param("component_access_token"))
        .collect();
    assert_eq!(tokens.len(), 3);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    // A third replica started later finds the ticket and the token in Redis.
    let c = start(Setup {
        keys_dir: Some(a.keys_dir.clone()),
        ..Setup::default()
            .sessions(redis.sessions())
            .provider(component_provider(&wechat, vec![MERCHANT_A]))
    })
    .await;
    assert_eq!(login_for(&c, MERCHANT_A, "kim").await.status(), 200);
    assert_eq!(wechat.component_token_calls(), 1);
}
