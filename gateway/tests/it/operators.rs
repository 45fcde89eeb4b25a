//! What operators see when a neighbour fails. A Redis session store that
//! is down: the log says where the gateway looked (credentials redacted)
//! and the OS's reason, `/readyz` stays ready (the proxy needs no Redis) but
//! shows sign-ins degraded, and `config check` says whether the store
//! answers. A platform that refuses the app: the log says what its code
//! means and what to check, while the client gets the contract's error.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use crate::support::{
    client, closed_port, eventually, login_body, run_cli, serve, spawn_binary, spawn_binary_with,
    upstream, wechat, Redis, Setup,
};

#[tokio::test]
#[cfg_attr(not(feature = "system-tests"), ignore = "needs redis-server")]
async fn a_redis_outage_is_logged_with_where_and_why_and_readyz_shows_sign_in_degraded() {
    let mut redis = Redis::start().await;
    redis.kill();
    let wechat = wechat().await;
    let up = upstream().await;
    let setup = Setup::default().sessions(redis.sessions());
    let gw = spawn_binary_with(&setup, wechat.addr, up.addr, "info").await;
    let http = client();
    let readyz = |http: reqwest::Client, url: String| async move {
        let res = http.get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(res.status(), 200, "a Redis outage must not make it unready");
        res.json::<serde_json::Value>().await.unwrap()
    };

    // The revocation subscriber connects at start: the warning comes
    // before any sign-in is tried.
    let at = redis.url();
    eventually("the store seen down", Duration::from_secs(10), || async {
        readyz(http.clone(), gw.url.clone()).await["session_store"]["state"] == "down"
    })
    .await;
    let doc = readyz(http.clone(), gw.url.clone()).await;
    assert_eq!(doc["status"], "ready", "{doc}");
    let store = &doc["session_store"];
    assert_eq!(store["kind"], "redis", "{doc}");
    assert_eq!(store["at"], at.as_str(), "{doc}");
    assert_eq!(store["sign_in"], "degraded", "{doc}");
    assert!(
        store["error"].as_str().unwrap().contains("os error 111"),
        "{doc}"
    );
    let logs = gw.logs();
    let warning = logs
        .lines()
        .find(|l| l.contains("session store unreachable"))
        .unwrap_or_else(|| panic!("no warning at start: {logs}"));
    assert!(warning.contains(&format!("at={at}")), "{warning}");
    assert!(
        warning.contains("Connection refused (os error 111)"),
        "{warning}"
    );

    // A login fails closed.
    let login = || async {
        http.post(format!("{}/auth/login", gw.url))
            .json(&login_body("readiness-user", None))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(login().await, 503);

    // Redis back: sign-ins work again, without a restart, and it is said.
    redis.restart().await;
    eventually("the store seen up", Duration::from_secs(10), || async {
        readyz(http.clone(), gw.url.clone()).await["session_store"]["state"] == "up"
    })
    .await;
    let doc = readyz(http.clone(), gw.url.clone()).await;
    assert_eq!(doc["session_store"]["sign_in"], "ready", "{doc}");
    assert!(doc["session_store"].get("error").is_none(), "{doc}");
    assert_eq!(login().await, 200);
    let logs = gw.stop();
    assert!(logs.contains("session store reachable again"), "{logs}");
}

#[tokio::test]
#[cfg_attr(not(feature = "system-tests"), ignore = "needs redis-server")]
async fn config_check_says_whether_the_redis_store_answers() {
    let keys = crate::support::key_dir(jwks::Alg::ES256);
    let (_held, closed) = closed_port();
    let redis = Redis::start().await;
    let config = |url: &str| {
        let path = keys.path().join("minigate.toml");
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\n[tokens]\nissuer = \"https://auth.test\"\n\
                 audience = \"api\"\n[keys]\ndir = \"{}\"\n[sessions]\nredis_url = \"{url}\"\n\
                 [[routes]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:9\"\nauth = \"public\"\n",
                keys.path().display()
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_owned()
    };

    let down = config(&format!("redis://:pw-must-not-leak@{closed}/0"));
    let (code, out, err) = run_cli(&["config", "check", "--config", &down]);
    assert_eq!(
        code, 0,
        "an unreachable store leaves the config valid: {err}"
    );
    assert!(
        out.contains(&format!(
            "Redis at redis://[credentials redacted]@{closed}/0"
        )),
        "{out}"
    );
    assert!(
        out.contains("NOT reachable: Connection refused (os error 111)"),
        "{out}"
    );
    assert!(!out.contains("pw-must-not-leak") && !err.contains("pw-must-not-leak"));
    let (_, offline, _) = run_cli(&["config", "check", "--offline", "--config", &down]);
    assert!(!offline.contains("reachable"), "{offline}");

    let up = config(&redis.url());
    let (code, out, err) = run_cli(&["config", "check", "--config", &up]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reachable: PING answered in"), "{out}");
}

#[tokio::test]
async fn a_refused_app_secret_or_appid_is_logged_in_operators_terms() {
    for (errcode, errmsg, says) in [
        (
            40125,
            "invalid appsecret, rid: 6752f0a1-1b2c3d4e",
            "secret_env",
        ),
        (
            40013,
            "invalid appid rid: 6752f0a1-1b2c3d4f",
            "the app's AppID",
        ),
    ] {
        // WeChat's wire: HTTP 200, text/plain, the errcode in the JSON.
        let wechat = serve(move |_req| async move {
            let mut res = Response::new(Full::new(Bytes::from(format!(
                "{{\"errcode\":{errcode},\"errmsg\":\"{errmsg}\"}}"
            ))));
            res.headers_mut()
                .insert("content-type", "text/plain".parse().unwrap());
            res
        })
        .await;
        let up = upstream().await;
        let gw = spawn_binary(wechat, up.addr, "info").await;
        let res = client()
            .post(format!("{}/auth/login", gw.url))
            .json(&login_body("operator-user", None))
            .send()
            .await
            .unwrap();
        // The client gets the contract's error, nothing of the cause.
        assert_eq!(res.status(), 502);
        let body = res.text().await.unwrap();
        assert!(body.contains("provider_error"), "{body}");
        assert!(!body.contains(&errcode.to_string()), "{body}");
        let logs = gw.stop();
        let line = logs
            .lines()
            .find(|l| l.contains("jscode2session refused the code"))
            .unwrap_or_else(|| panic!("{logs}"));
        assert!(line.contains(&format!("errcode={errcode}")), "{line}");
        assert!(line.contains(says), "{line}");
    }
}

#[test]
fn a_missing_key_set_says_how_to_make_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let path = tmp.path().join("minigate.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n[tokens]\nissuer = \"https://auth.test\"\n\
             audience = \"api\"\n[keys]\ndir = \"{}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let (code, _, err) = run_cli(&["config", "check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "make one with `minigate keys init --dir {}`",
            dir.display()
        )),
        "{err}"
    );
}
