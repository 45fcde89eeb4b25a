//! Kuaishou and Feishu beside WeChat in one gateway, each against its
//! stand-in: logins in their wire formats, every answer mapped onto the
//! error table, Feishu's `app_access_token` kept, renewed once when refused
//! and shared by two gateways on one Redis, and the tenant of a Feishu user
//! in its tokens, at the upstream and in its user key.

use crate::support::*;
use minigate::ops::dev::standins::Call;
use serde_json::{json, Value};

struct Apps {
    kuaishou: StandIn,
    feishu: StandIn,
}

async fn apps() -> Apps {
    Apps {
        kuaishou: kuaishou().await,
        feishu: feishu().await,
    }
}

impl Apps {
    fn setup(&self) -> Setup {
        Setup {
            providers: vec![
                Provider::new("kuaishou", KUAISHOU_APPID, "TEST_KUAISHOU_SECRET")
                    .base_url(self.kuaishou.url())
                    .timeout(secs(1)),
                Provider::new("feishu", FEISHU_APPID, "TEST_FEISHU_SECRET")
                    .base_url(self.feishu.url())
                    .timeout(secs(1)),
            ],
            ..Setup::default()
        }
    }
}

/// What no response or log line may hold: the app secrets, the session
/// key, Feishu's app token (`t-cli_…`) and the user tokens its answers carry.
const NEVER_SHOWN: [&str; 5] = [
    KUAISHOU_SECRET,
    FEISHU_SECRET,
    PLATFORM_SESSION_KEY,
    "t-cli_",
    "must-not-leak",
];

fn login(appid: &str, code: &str) -> Value {
    json!({"code": code, "appid": appid})
}

async fn logged_in(gw: &Gateway, appid: &str, code: &str) -> Tokens {
    let res = gw.try_login(login(appid, code)).await;
    assert_eq!(res.status(), 200, "{appid} {code}");
    let text = res.text().await.unwrap();
    for secret in NEVER_SHOWN {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    serde_json::from_str(&text).unwrap()
}

/// The calls of `standin` to `path`.
fn calls_to(standin: &StandIn, path: &str) -> Vec<Call> {
    standin
        .calls()
        .into_iter()
        .filter(|c| c.path == path)
        .collect()
}

const FEISHU_TOKEN_PATH: &str = "/open-apis/auth/v3/app_access_token/internal";
const FEISHU_EXCHANGE_PATH: &str = "/open-apis/mina/v2/tokenLoginValidate";

#[tokio::test]
async fn kuaishou_and_feishu_log_in_in_their_wire_formats_and_name_their_platform() {
    let a = apps().await;
    let gw = start(a.setup()).await;

    let t = logged_in(&gw, KUAISHOU_APPID, "ks-user").await;
    assert_eq!(t.openid, openid_for("ks-user"));
    assert_eq!(t.unionid, None);
    let c = claims(&t.access_token);
    assert_eq!(
        (c["platform"].as_str(), c["client_id"].as_str()),
        (Some("kuaishou"), Some(KUAISHOU_APPID))
    );
    assert!(c.get("tenant").is_none(), "{c}");
    let call = a.kuaishou.last_call().unwrap();
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/oauth2/mp/code2session")
    );
    assert!(call
        .content_type
        .starts_with("application/x-www-form-urlencoded"));
    assert!(call.query.is_empty(), "the secret travels in the body");
    assert_eq!(
        call.params(),
        [
            ("app_id".to_owned(), KUAISHOU_APPID.to_owned()),
            ("app_secret".to_owned(), KUAISHOU_SECRET.to_owned()),
            ("js_code".to_owned(), "ks-user".to_owned()),
        ]
    );
    assert_eq!(
        gw.get("/api/whoami", Some(&t.access_token)).await.status(),
        200
    );
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-platform"], "kuaishou");
    assert!(seen.headers.get("x-auth-tenant").is_none());

    // Feishu: the app_access_token first, then the exchange made with it.
    let t = logged_in(&gw, FEISHU_APPID, "fs-user").await;
    assert_eq!(t.openid, openid_for("fs-user"));
    assert_eq!(t.unionid, None, "Feishu's deprecated union_id is not read");
    let c = claims(&t.access_token);
    assert_eq!(c["platform"], "feishu");
    assert_eq!(c["client_id"], FEISHU_APPID);
    assert_eq!(c["tenant"], FEISHU_TENANT);
    let token_calls = calls_to(&a.feishu, FEISHU_TOKEN_PATH);
    assert_eq!(token_calls.len(), 1);
    assert!(token_calls[0].content_type.starts_with("application/json"));
    let ask: Value = serde_json::from_str(&token_calls[0].body).unwrap();
    assert_eq!(
        ask,
        json!({"app_id": FEISHU_APPID, "app_secret": FEISHU_SECRET})
    );
    let exchange = a.feishu.last_call().unwrap();
    assert_eq!(
        (exchange.method.as_str(), exchange.path.as_str()),
        ("POST", FEISHU_EXCHANGE_PATH)
    );
    assert_eq!(exchange.authorization, format!("Bearer t-{FEISHU_APPID}-1"));
    assert_eq!(
        serde_json::from_str::<Value>(&exchange.body).unwrap(),
        json!({"code": "fs-user"})
    );

    // The tenant reaches the upstream; a client's own copy never does.
    let res = gw
        .http
        .get(format!("{}/api/whoami", gw.url))
        .bearer_auth(&t.access_token)
        .header("x-auth-tenant", "forged-tenant")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-platform"], "feishu");
    assert_eq!(seen.headers["x-auth-openid"], t.openid.as_str());
    let tenants: Vec<_> = seen.headers.get_all("x-auth-tenant").iter().collect();
    assert_eq!(tenants, [FEISHU_TENANT]);
    let k = logged_in(&gw, KUAISHOU_APPID, "ks-user-2").await;
    gw.http
        .get(format!("{}/api/whoami", gw.url))
        .bearer_auth(&k.access_token)
        .header("x-auth-tenant", "forged-tenant")
        .send()
        .await
        .unwrap();
    assert!(gw.upstream.last().headers.get("x-auth-tenant").is_none());

    // The token is kept: more logins, no more token calls.
    for code in ["fs-2", "fs-3"] {
        logged_in(&gw, FEISHU_APPID, code).await;
    }
    assert_eq!(a.feishu.app_token_calls(), 1);
    // A refresh keeps the tenant.
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    assert_eq!(res.status(), 200);
    let again: Tokens = res.json().await.unwrap();
    assert_eq!(claims(&again.access_token)["tenant"], FEISHU_TENANT);
}

#[tokio::test]
async fn kuaishou_and_feishu_answers_map_onto_the_error_table() {
    let a = apps().await;
    let gw = start(a.setup()).await;
    let cases: &[(&str, &str, u16, &str)] = &[
        (KUAISHOU_APPID, "bad", 400, "invalid_code"),
        (KUAISHOU_APPID, "often", 429, "rate_limited"),
        (KUAISHOU_APPID, "busy", 503, "provider_unavailable"),
        (KUAISHOU_APPID, "other", 502, "provider_error"),
        (KUAISHOU_APPID, "garbage", 502, "provider_error"),
        (KUAISHOU_APPID, "http500", 503, "provider_unavailable"),
        (KUAISHOU_APPID, "slow", 504, "provider_timeout"),
        (FEISHU_APPID, "bad", 400, "invalid_code"),
        (FEISHU_APPID, "hidden", 403, "access_denied"),
        (FEISHU_APPID, "often", 429, "rate_limited"),
        (FEISHU_APPID, "other", 502, "provider_error"),
        (FEISHU_APPID, "notenant", 502, "provider_error"),
        (FEISHU_APPID, "garbage", 502, "provider_error"),
        (FEISHU_APPID, "http500", 503, "provider_unavailable"),
        (FEISHU_APPID, "slow", 504, "provider_timeout"),
    ];
    let answers = futures_util::future::join_all(
        cases
            .iter()
            .map(|(appid, code, _, _)| gw.try_login(login(appid, code))),
    )
    .await;
    for (res, (appid, code, status, error)) in answers.into_iter().zip(cases) {
        let headers = assert_error(res, *status, error).await;
        if *status == 429 {
            assert_eq!(headers["retry-after"], "60", "{appid} {code}");
        }
    }
    // One token for all of Feishu's concurrent logins.
    assert_eq!(a.feishu.app_token_calls(), 1);
    let metrics = gw.scrape().await;
    for (platform, error, count) in [
        ("kuaishou", "invalid_code", 1.0),
        ("kuaishou", "provider_unavailable", 2.0),
        ("feishu", "access_denied", 1.0),
        ("feishu", "provider_error", 3.0),
        ("feishu", "provider_timeout", 1.0),
    ] {
        let name = format!(
            "minigate_code_exchange_errors_total{{platform=\"{platform}\",error=\"{error}\"}}"
        );
        assert_eq!(series(&metrics, &name), count, "{name} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_refused_app_access_token_is_renewed_once_and_a_bad_app_secret_is_the_operators() {
    let a = apps().await;
    let gw = start(a.setup()).await;
    logged_in(&gw, FEISHU_APPID, "before").await;
    // Another caller replaced the token: the exchange is refused (10202),
    // the token renewed, the exchange made again.
    a.feishu.drop_token();
    logged_in(&gw, FEISHU_APPID, "after").await;
    assert_eq!(a.feishu.app_token_calls(), 2);
    let exchanges = calls_to(&a.feishu, FEISHU_EXCHANGE_PATH);
    let auth: Vec<&str> = exchanges.iter().map(|c| c.authorization.as_str()).collect();
    let (old, new) = (
        format!("Bearer t-{FEISHU_APPID}-1"),
        format!("Bearer t-{FEISHU_APPID}-2"),
    );
    assert_eq!(auth, [old.as_str(), old.as_str(), new.as_str()]);
    logged_in(&gw, FEISHU_APPID, "later").await;
    assert_eq!(a.feishu.app_token_calls(), 2, "the renewed token is kept");

    // A secret Feishu refuses: no token, no exchange, a 502 for the client
    // (the operator's to fix, not the user's).
    let wrong = start(Setup {
        providers: vec![
            Provider::new("feishu", FEISHU_APPID, "TEST_KUAISHOU_SECRET")
                .base_url(a.feishu.url())
                .timeout(secs(1)),
        ],
        ..Setup::default()
    })
    .await;
    let before = calls_to(&a.feishu, FEISHU_EXCHANGE_PATH).len();
    assert_error(
        wrong.try_login(login(FEISHU_APPID, "x")).await,
        502,
        "provider_error",
    )
    .await;
    assert_eq!(calls_to(&a.feishu, FEISHU_EXCHANGE_PATH).len(), before);
}

#[tokio::test]
async fn secrets_tokens_and_session_keys_stay_out_of_responses_and_logs() {
    let a = apps().await;
    let wechat = wechat().await;
    let upstream = upstream().await;
    let gw = spawn_binary_with(&a.setup(), wechat.addr, upstream.addr, "trace").await;
    let http = client();
    let mut bodies = String::new();
    let send = |appid: &'static str, code: &'static str| {
        let req = http
            .post(format!("{}/auth/login", gw.url))
            .body(login(appid, code).to_string());
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    for (appid, code) in [
        (KUAISHOU_APPID, "ok"),
        (KUAISHOU_APPID, "bad"),
        (KUAISHOU_APPID, "other"),
        (FEISHU_APPID, "ok"),
        (FEISHU_APPID, "bad"),
        (FEISHU_APPID, "hidden"),
    ] {
        bodies.push_str(&send(appid, code).await);
    }
    a.feishu.drop_token();
    bodies.push_str(&send(FEISHU_APPID, "renewed").await);
    assert!(
        bodies.contains("access_denied") && bodies.contains("invalid_code"),
        "{bodies}"
    );
    assert_eq!(a.feishu.app_token_calls(), 2);
    let logs = gw.stop();
    assert!(logs.contains("code exchange failed"), "{logs}");
    assert!(logs.contains("renewing it once"), "{logs}");
    for secret in NEVER_SHOWN.into_iter().chain(["js_code", "Bearer t-"]) {
        assert!(!logs.contains(secret), "{secret} in the logs");
        assert!(!bodies.contains(secret), "{secret} in a response");
    }
}

#[tokio::test]
async fn a_feishu_user_is_keyed_per_tenant() {
    let a = apps().await;
    let gw = start(a.setup()).await;
    // The same open_id in two organisations: two users.
    let one = logged_in(&gw, FEISHU_APPID, "t:tenant-one:same").await;
    let two = logged_in(&gw, FEISHU_APPID, "t:tenant-two:same").await;
    assert_eq!(one.openid, two.openid);
    let user = |t: &Tokens| claims(&t.refresh_token)["usr"].as_str().unwrap().to_owned();
    let openid = openid_for("same");
    assert_eq!(user(&one), format!("tenant-one:{openid}"));
    assert_eq!(user(&two), format!("tenant-two:{openid}"));
    assert_eq!(claims(&two.access_token)["tenant"], "tenant-two");
    for t in [&one, &two] {
        let res = gw.get("/auth/sessions", Some(&t.access_token)).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["sessions"].as_array().unwrap().len(), 1, "{body}");
    }
    // A second login in one organisation is the same user.
    let again = logged_in(&gw, FEISHU_APPID, "t:tenant-one:same#2").await;
    assert_eq!(user(&again), user(&one));
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn two_gateways_on_one_redis_share_one_app_access_token() {
    let redis = Redis::start().await;
    let a = apps().await;
    let setup = a.setup().sessions(redis.sessions());
    let one = start(setup.clone()).await;
    let two = start(Setup {
        keys_dir: Some(one.keys_dir.clone()),
        ..setup
    })
    .await;
    let (x, y) = tokio::join!(
        one.try_login(login(FEISHU_APPID, "on-one")),
        two.try_login(login(FEISHU_APPID, "on-two"))
    );
    assert_eq!((x.status().as_u16(), y.status().as_u16()), (200, 200));
    assert_eq!(a.feishu.app_token_calls(), 1, "one token for the cluster");
    // Replaced: the first gateway to meet the refusal renews, the other
    // finds the renewed token in Redis when its own is refused.
    a.feishu.drop_token();
    logged_in(&one, FEISHU_APPID, "one-again").await;
    logged_in(&two, FEISHU_APPID, "two-again").await;
    assert_eq!(a.feishu.app_token_calls(), 2);
}

#[tokio::test]
async fn the_user_service_is_told_a_feishu_users_tenant_at_login_and_refresh() {
    let a = apps().await;
    let users = user_service(Answer::Json(json!({"roles": ["staff"]}))).await;
    let gw = start(a.setup().enrich(enrich(users.url()))).await;
    let t = logged_in(&gw, FEISHU_APPID, "t:acme:alice").await;
    let told = |ask: &Value| {
        (
            ask["event"].as_str().map(str::to_owned),
            ask["platform"].as_str().map(str::to_owned),
            ask["tenant"].as_str().map(str::to_owned),
        )
    };
    let tenant = |event: &str| {
        (
            Some(event.to_owned()),
            Some("feishu".to_owned()),
            Some("acme".to_owned()),
        )
    };
    assert_eq!(told(&users.last()), tenant("login"));
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    assert_eq!(res.status(), 200);
    let pair: Tokens = res.json().await.unwrap();
    assert_eq!(told(&users.last()), tenant("refresh"));
    // The tenant travels with the session: the refreshed pair keeps it.
    assert_eq!(claims(&pair.access_token)["tenant"], "acme");
    assert_eq!(claims(&pair.access_token)["roles"], json!(["staff"]));
    // A Kuaishou user has no organisation: no tenant member at all.
    logged_in(&gw, KUAISHOU_APPID, "ks-alice").await;
    let ask = users.last();
    assert_eq!(ask["platform"], "kuaishou");
    assert!(ask.get("tenant").is_none(), "{ask}");
}
