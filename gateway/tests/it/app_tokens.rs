//! The platforms' app access tokens kept by one machinery
//! (`outbound::kept`): a token in use is renewed on the reload tick ahead
//! of its expiry, whoever keeps it (WeChat's `stable_token` for the
//! gateway's own calls and the admin listener, Feishu's `app_access_token`
//! for its logins), so a caller rarely waits for the platform. Sharing
//! through Redis and the renewal after a refusal are in `wechat.rs`,
//! `component.rs` and `superapps.rs`.

use crate::support::*;
use serde_json::{json, Value};

const FEISHU_EXCHANGE_PATH: &str = "/open-apis/mina/v2/tokenLoginValidate";

async fn log_in(gw: &Gateway, code: &str) -> Tokens {
    let res = gw
        .try_login(json!({"code": code, "appid": FEISHU_APPID}))
        .await;
    assert_eq!(res.status(), 200, "{code}");
    res.json().await.unwrap()
}

fn calls_to(standin: &StandIn, path: &str) -> usize {
    standin.calls().iter().filter(|c| c.path == path).count()
}

#[tokio::test]
async fn a_wechat_token_in_use_is_renewed_ahead_of_its_expiry_on_the_reload_tick() {
    let wechat = wechat().await;
    wechat.set_token_lifetime(302);
    let gw = start(Setup {
        wechat_addr: Some(wechat.addr),
        reload_interval: "200ms",
        ..Setup::default().admin(Admin::test())
    })
    .await;
    let token = || async {
        let res = gw
            .admin_get(&format!("/admin/wechat/access_token?appid={APPID}"))
            .await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    };
    assert_eq!(token().await, format!("AT-{APPID}-1"));
    assert_eq!(wechat.stable_token_calls(), 1);
    // Replaced meanwhile: only a fetch brings the new one.
    wechat.drop_token();
    eventually("the reload tick renews the token", secs(10), || async {
        wechat.stable_token_calls() >= 2
    })
    .await;
    assert_eq!(token().await, format!("AT-{APPID}-2"));
    // The second app's token was never asked for: the tick leaves it be.
    let asked: Vec<Value> = wechat
        .calls()
        .iter()
        .filter(|c| c.path == "/cgi-bin/stable_token")
        .map(|c| serde_json::from_str(&c.body).unwrap())
        .collect();
    assert!(asked.iter().all(|a| a["appid"] == APPID), "{asked:?}");
}

#[tokio::test]
async fn a_feishu_token_in_use_is_renewed_ahead_of_its_expiry_without_a_login() {
    let feishu = feishu().await;
    // Two seconds past the renewal margin (5 minutes before expiry): the
    // token falls due almost at once.
    feishu.set_token_lifetime(302);
    let gw = start(Setup {
        reload_interval: "200ms",
        providers: vec![Provider::new("feishu", FEISHU_APPID, "TEST_FEISHU_SECRET")
            .base_url(feishu.url())
            .timeout(secs(1))],
        ..Setup::default()
    })
    .await;
    log_in(&gw, "first").await;
    assert_eq!(feishu.app_token_calls(), 1);
    // Replaced meanwhile: only a fetch brings the new one.
    feishu.drop_token();
    eventually("the reload tick renews the token", secs(10), || async {
        feishu.app_token_calls() >= 2
    })
    .await;
    assert_eq!(
        calls_to(&feishu, FEISHU_EXCHANGE_PATH),
        1,
        "renewed by the tick, not by a login"
    );
    // The next login is made with the renewed token at once, not refused
    // first (10202) and retried.
    let t = log_in(&gw, "second").await;
    assert_eq!(claims(&t.access_token)["platform"], "feishu");
    assert_eq!(
        calls_to(&feishu, FEISHU_EXCHANGE_PATH),
        2,
        "one exchange a login"
    );
    let exchange = feishu
        .calls()
        .into_iter()
        .rfind(|c| c.path == FEISHU_EXCHANGE_PATH)
        .unwrap();
    assert_eq!(exchange.authorization, format!("Bearer t-{FEISHU_APPID}-2"));
}
