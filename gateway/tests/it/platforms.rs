//! QQ, Douyin, Baidu and Alipay beside WeChat in one gateway, each against a
//! stand-in speaking its wire format: logins whose tokens and headers name
//! the platform, every platform's answers mapped onto the error table,
//! Alipay's signed calls and signed answers, and secrets and keys kept out
//! of responses, logs and `config check`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;

/// The stand-ins of every platform, and the Alipay key files.
struct Neighbours {
    wechat: WeChat,
    douyin: StandIn,
    baidu: StandIn,
    alipay: StandIn,
    keys: tempfile::TempDir,
}

/// Copies a fixture key to `dir` with mode `mode`.
fn key_file(dir: &Path, fixture: &str, mode: u32) -> PathBuf {
    let path = dir.join(fixture);
    std::fs::copy(alipay_fixtures().join(fixture), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

async fn neighbours() -> Neighbours {
    let keys = tempfile::tempdir().unwrap();
    key_file(keys.path(), "app.pk8.pem", 0o600);
    key_file(keys.path(), "alipay.spki.pem", 0o644);
    Neighbours {
        wechat: wechat().await,
        douyin: douyin().await,
        baidu: baidu().await,
        alipay: alipay().await,
        keys,
    }
}

impl Neighbours {
    /// `[[providers]]` of QQ, Douyin, Baidu and Alipay (the harness adds
    /// WeChat), each with `timeout`; Alipay with these key files.
    fn providers_with(
        &self,
        timeout: Duration,
        private_key: &Path,
        alipay_key: &Path,
    ) -> Vec<Provider> {
        let addrs = [
            self.wechat.addr,
            self.douyin.addr,
            self.baidu.addr,
            self.alipay.addr,
        ];
        providers_at(addrs, timeout, private_key, alipay_key)
    }

    fn providers(&self, timeout: Duration) -> Vec<Provider> {
        self.providers_with(
            timeout,
            &self.keys.path().join("app.pk8.pem"),
            &self.keys.path().join("alipay.spki.pem"),
        )
    }

    fn setup(&self) -> Setup {
        Setup {
            wechat_addr: Some(self.wechat.addr),
            wechat_timeout: "1s",
            providers: self.providers(secs(1)),
            ..Setup::default()
        }
    }
}

/// `[[providers]]` of QQ, Douyin, Baidu and Alipay at the stand-ins
/// (WeChat's serves QQ) at `addrs`, each with `timeout`; Alipay with these
/// key files.
fn providers_at(
    [wechat, douyin, baidu, alipay]: [SocketAddr; 4],
    timeout: Duration,
    private_key: &Path,
    alipay_key: &Path,
) -> Vec<Provider> {
    vec![
        Provider::new("qq", QQ_APPID, "TEST_QQ_SECRET").base_url(format!("http://{wechat}")),
        Provider::new("douyin", DOUYIN_APPID, "TEST_DOUYIN_SECRET")
            .base_url(format!("http://{douyin}")),
        Provider::new("baidu", BAIDU_APPID, "TEST_BAIDU_SECRET")
            .base_url(format!("http://{baidu}/")),
        Provider::default()
            .platform("alipay")
            .appid(ALIPAY_APPID)
            .private_key_file(private_key)
            .alipay_public_key_file(alipay_key)
            .base_url(format!("http://{alipay}/gateway.do")),
    ]
    .into_iter()
    .map(|p| p.timeout(timeout))
    .collect()
}

/// A login's body for the provider `appid`, with `code` as given.
fn app_login(appid: &str, code: &str) -> serde_json::Value {
    serde_json::json!({"code": code, "appid": appid})
}

#[tokio::test]
async fn every_platform_logs_in_and_its_tokens_and_headers_name_it() {
    let n = neighbours().await;
    let gw = start(n.setup()).await;
    // (platform, appid, code, the unionid it gives)
    let cases = [
        ("wechat", APPID, "union:u-wx", Some("u-wx")),
        ("qq", QQ_APPID, "union:u-qq", Some("u-qq")),
        ("douyin", DOUYIN_APPID, "union:u-dy", Some("u-dy")),
        ("baidu", BAIDU_APPID, "baidu-user", None),
        ("alipay", ALIPAY_APPID, "alipay-user", None),
    ];
    for (platform, appid, code, unionid) in cases {
        let res = gw.try_login(app_login(appid, code)).await;
        assert_eq!(res.status(), 200, "{platform}");
        let text = res.text().await.unwrap();
        for secret in [
            SECRET,
            QQ_SECRET,
            DOUYIN_SECRET,
            BAIDU_SECRET,
            SESSION_KEY,
            PLATFORM_SESSION_KEY,
            ALIPAY_ACCESS_TOKEN,
            "refresh-must-not-leak",
        ] {
            assert!(!text.contains(secret), "{platform}: {secret} in {text}");
        }
        let t: Tokens = serde_json::from_str(&text).unwrap();
        assert_eq!(t.openid, openid_for(code), "{platform}");
        assert_eq!(t.unionid.as_deref(), unionid, "{platform}");
        let c = claims(&t.access_token);
        assert_eq!(c["platform"], platform);
        assert_eq!(c["client_id"], appid);
        assert_eq!(c["sub"], t.openid.as_str());
        assert_eq!(c["unionid"].as_str(), unionid);

        let res = gw.get("/api/whoami", Some(&t.access_token)).await;
        assert_eq!(res.status(), 200);
        let seen = gw.upstream.last();
        assert_eq!(seen.headers["x-auth-platform"], platform);
        assert_eq!(seen.headers["x-auth-appid"], appid);
        assert_eq!(seen.headers["x-auth-openid"], t.openid.as_str());
        assert_eq!(
            seen.headers
                .get("x-auth-unionid")
                .map(|v| v.to_str().unwrap()),
            unionid
        );
        // A refresh keeps the platform.
        let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
        let again: Tokens = res.json().await.unwrap();
        assert_eq!(claims(&again.access_token)["platform"], platform);
    }

    // Each platform was called in its own wire format.
    let qq = n.wechat.queries().last().cloned().unwrap();
    assert!(
        qq.contains(&format!("appid={QQ_APPID}")) && qq.contains("js_code=union%3Au-qq"),
        "{qq}"
    );
    let dy = n.douyin.last_call().unwrap();
    assert_eq!(
        (dy.method.as_str(), dy.path.as_str()),
        ("POST", "/api/apps/v2/jscode2session")
    );
    let body: serde_json::Value = serde_json::from_str(&dy.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"appid": DOUYIN_APPID, "secret": DOUYIN_SECRET, "code": "union:u-dy"})
    );
    let bd = n.baidu.last_call().unwrap();
    assert_eq!(
        (bd.method.as_str(), bd.path.as_str()),
        ("POST", "/oauth/jscode2sessionkey")
    );
    assert_eq!(
        bd.params(),
        [
            ("code".to_owned(), "baidu-user".to_owned()),
            ("client_id".to_owned(), BAIDU_APPID.to_owned()),
            ("sk".to_owned(), BAIDU_SECRET.to_owned())
        ]
    );
    let ali = n.alipay.last_call().unwrap();
    assert_eq!(
        (ali.method.as_str(), ali.path.as_str()),
        ("POST", "/gateway.do")
    );
    assert_eq!(ali.param("code").as_deref(), Some("alipay-user"));
    assert!(ali.query.is_empty(), "everything travels in the form body");
    assert_eq!(
        n.alipay.bad_signatures(),
        0,
        "the stand-in verified every call's signature"
    );
}

#[tokio::test]
async fn douyin_trades_the_anonymous_code_too() {
    let n = neighbours().await;
    let gw = start(n.setup()).await;
    let body = serde_json::json!({"code": "dy-user", "anonymous_code": "dy-device", "appid": DOUYIN_APPID});
    let res = gw.post("/auth/login", &body.to_string()).await;
    assert_eq!(res.status(), 200);
    let t: serde_json::Value = res.json().await.unwrap();
    assert_eq!(t["openid"], openid_for("dy-user").as_str());
    assert_eq!(
        t["anonymous_openid"],
        format!("anon-{}", openid_for("dy-device")).as_str()
    );
    let sent: serde_json::Value =
        serde_json::from_str(&n.douyin.last_call().unwrap().body).unwrap();
    assert_eq!(sent["anonymous_code"], "dy-device");
    // Other platforms ignore it; an empty one is a bad request.
    let body = serde_json::json!({"code": "b", "anonymous_code": "x", "appid": BAIDU_APPID});
    let res = gw.post("/auth/login", &body.to_string()).await;
    assert_eq!(res.status(), 200);
    let t: serde_json::Value = res.json().await.unwrap();
    assert!(t.get("anonymous_openid").is_none(), "{t}");
    let body = serde_json::json!({"code": "b", "anonymous_code": "", "appid": DOUYIN_APPID});
    assert_error(
        gw.post("/auth/login", &body.to_string()).await,
        400,
        "invalid_request",
    )
    .await;
    // A bad anonymous code is a bad code.
    let body = serde_json::json!({"code": "badanon", "anonymous_code": "x", "appid": DOUYIN_APPID});
    assert_error(
        gw.post("/auth/login", &body.to_string()).await,
        400,
        "invalid_code",
    )
    .await;
}

#[tokio::test]
async fn every_platforms_answers_map_onto_the_error_table() {
    let n = neighbours().await;
    let gw = start(n.setup()).await;
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("wechat", APPID, "err:40029", 400, "invalid_code"),
        ("wechat", APPID, "err:45011", 429, "rate_limited"),
        ("wechat", APPID, "err:-1", 503, "provider_unavailable"),
        ("wechat", APPID, "notjson", 502, "provider_error"),
        ("wechat", APPID, "slow", 504, "provider_timeout"),
        ("qq", QQ_APPID, "err:40029", 400, "invalid_code"),
        ("qq", QQ_APPID, "err:40163", 400, "invalid_code"),
        ("qq", QQ_APPID, "err:45011", 429, "rate_limited"),
        ("qq", QQ_APPID, "err:40226", 403, "risky_user"),
        ("qq", QQ_APPID, "err:-1", 503, "provider_unavailable"),
        ("qq", QQ_APPID, "err:40013", 502, "provider_error"),
        ("qq", QQ_APPID, "notjson", 502, "provider_error"),
        ("qq", QQ_APPID, "http500", 503, "provider_unavailable"),
        ("qq", QQ_APPID, "slow", 504, "provider_timeout"),
        ("douyin", DOUYIN_APPID, "bad", 400, "invalid_code"),
        ("douyin", DOUYIN_APPID, "busy", 503, "provider_unavailable"),
        ("douyin", DOUYIN_APPID, "other", 502, "provider_error"),
        ("douyin", DOUYIN_APPID, "garbage", 502, "provider_error"),
        (
            "douyin",
            DOUYIN_APPID,
            "http500",
            503,
            "provider_unavailable",
        ),
        ("douyin", DOUYIN_APPID, "slow", 504, "provider_timeout"),
        ("baidu", BAIDU_APPID, "bad", 400, "invalid_code"),
        ("baidu", BAIDU_APPID, "busy", 503, "provider_unavailable"),
        ("baidu", BAIDU_APPID, "other", 502, "provider_error"),
        ("baidu", BAIDU_APPID, "garbage", 502, "provider_error"),
        ("baidu", BAIDU_APPID, "slow", 504, "provider_timeout"),
        ("alipay", ALIPAY_APPID, "bad", 400, "invalid_code"),
        ("alipay", ALIPAY_APPID, "bad-in-root", 400, "invalid_code"),
        ("alipay", ALIPAY_APPID, "busy", 503, "provider_unavailable"),
        ("alipay", ALIPAY_APPID, "other", 502, "provider_error"),
        ("alipay", ALIPAY_APPID, "garbage", 502, "provider_error"),
        (
            "alipay",
            ALIPAY_APPID,
            "http500",
            503,
            "provider_unavailable",
        ),
        ("alipay", ALIPAY_APPID, "slow", 504, "provider_timeout"),
    ];
    let started = Instant::now();
    let answers = futures_util::future::join_all(
        cases
            .iter()
            .map(|(_, appid, code, _, _)| gw.try_login(app_login(appid, code))),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(2800),
        "the providers' 1s timeout did not cut the 3s answers"
    );
    for (res, (platform, _, code, status, error)) in answers.into_iter().zip(cases) {
        let headers = assert_error(res, *status, error).await;
        if *status == 429 {
            assert_eq!(headers["retry-after"], "60", "{platform} {code}");
        }
    }
    let metrics = gw.scrape().await;
    for (platform, error, count) in [
        ("qq", "invalid_code", 2.0),
        ("douyin", "provider_unavailable", 2.0),
        ("baidu", "provider_timeout", 1.0),
        ("alipay", "invalid_code", 2.0),
        ("alipay", "provider_error", 2.0),
    ] {
        let name = format!(
            "minigate_code_exchange_errors_total{{platform=\"{platform}\",error=\"{error}\"}}"
        );
        assert_eq!(series(&metrics, &name), count, "{name} in\n{metrics}");
    }
    assert!(metrics.contains("minigate_code_exchange_duration_seconds_count{platform=\"baidu\"}"));
}

#[tokio::test]
async fn alipay_answers_are_believed_only_once_their_signature_verifies() {
    let n = neighbours().await;
    let gw = start(n.setup()).await;
    // Every way an answer can fail to be Alipay's own, signed, single
    // answer: refused whole, whatever it says.
    for code in [
        "badsign",
        "nosign",
        "unsigned-bad",
        "wrongkey",
        "tampered",
        "dupe",
    ] {
        assert_error(
            gw.try_login(app_login(ALIPAY_APPID, code)).await,
            502,
            "provider_error",
        )
        .await;
    }
    // open_id is preferred; the legacy user_id is taken when alone.
    let t: Tokens = gw
        .try_login(app_login(ALIPAY_APPID, "both-ids"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t.openid, openid_for("both-ids"));
    let t: Tokens = gw
        .try_login(app_login(ALIPAY_APPID, "userid"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t.openid, openid_for("userid"));

    // A gateway that trusts the wrong Alipay key believes nothing.
    let wrong = n.providers_with(
        secs(1),
        &n.keys.path().join("app.pk8.pem"),
        &alipay_fixtures().join("app.spki.pem"),
    );
    let gw = start(Setup {
        providers: wrong,
        ..n.setup()
    })
    .await;
    assert_error(
        gw.try_login(app_login(ALIPAY_APPID, "someone")).await,
        502,
        "provider_error",
    )
    .await;
}

#[tokio::test]
async fn alipay_calls_are_signed_with_the_apps_key() {
    let n = neighbours().await;
    let gw = start(n.setup()).await;
    assert_eq!(
        gw.try_login(app_login(ALIPAY_APPID, "signed"))
            .await
            .status(),
        200
    );
    let refused = || n.alipay.bad_signatures();
    assert_eq!(refused(), 0);
    // The same key as PKCS#1 signs the same.
    let pkcs1 = key_file(n.keys.path(), "app.pkcs1.pem", 0o600);
    let gw = start(Setup {
        providers: n.providers_with(secs(1), &pkcs1, &n.keys.path().join("alipay.spki.pem")),
        ..n.setup()
    })
    .await;
    assert_eq!(
        gw.try_login(app_login(ALIPAY_APPID, "signed"))
            .await
            .status(),
        200
    );
    assert_eq!(refused(), 0);
    // Another app's key: Alipay refuses the call, so does the gateway.
    let other = key_file(n.keys.path(), "alipay.pk8.pem", 0o600);
    let gw = start(Setup {
        providers: n.providers_with(secs(1), &other, &n.keys.path().join("alipay.spki.pem")),
        ..n.setup()
    })
    .await;
    assert_error(
        gw.try_login(app_login(ALIPAY_APPID, "signed")).await,
        502,
        "provider_error",
    )
    .await;
    assert_eq!(refused(), 1, "the stand-in refused the signature");
}

/// Every secret, session key, token and private key line the platforms or
/// the config hold.
fn never_shown() -> Vec<String> {
    let mut all: Vec<String> = [
        SECRET,
        QQ_SECRET,
        DOUYIN_SECRET,
        BAIDU_SECRET,
        SESSION_KEY,
        PLATFORM_SESSION_KEY,
        ALIPAY_ACCESS_TOKEN,
        "refresh-must-not-leak",
        "js_code",
        "sign=",
    ]
    .map(str::to_owned)
    .to_vec();
    for pem in ["app.pk8.pem", "app.pkcs1.pem", "alipay.pk8.pem"] {
        let text = std::fs::read_to_string(alipay_fixtures().join(pem)).unwrap();
        all.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(|l| l[..24].to_owned()),
        );
    }
    all
}

#[tokio::test]
async fn secrets_and_private_keys_stay_out_of_responses_and_logs() {
    let n = neighbours().await;
    let upstream = upstream().await;
    let setup = Setup {
        providers: n.providers(secs(1)),
        ..n.setup()
    };
    let gw = spawn_binary_with(&setup, n.wechat.addr, upstream.addr, "trace").await;
    let http = client();
    let mut bodies = String::new();
    for (appid, codes) in [
        (APPID, &["ok", "err:40029", "notjson"][..]),
        (QQ_APPID, &["ok", "err:40029", "notjson"]),
        (DOUYIN_APPID, &["ok", "bad", "other", "garbage"]),
        (BAIDU_APPID, &["ok", "bad", "other", "busy"]),
        (
            ALIPAY_APPID,
            &[
                "ok",
                "bad",
                "other",
                "nosign",
                "unsigned-bad",
                "badsign",
                "tampered",
            ],
        ),
    ] {
        for code in codes {
            let res = http
                .post(format!("{}/auth/login", gw.url))
                .body(serde_json::json!({"code": code, "appid": appid}).to_string())
                .send()
                .await
                .unwrap();
            bodies.push_str(&res.text().await.unwrap());
        }
    }
    let logs = gw.stop();
    assert!(logs.contains("code exchange failed"), "{logs}");
    // Operators learn why an Alipay answer was refused, marked unverified.
    assert!(
        logs.contains("unsigned") && logs.contains("unverified_sub_code=\"isv.code-invalid\""),
        "{logs}"
    );
    assert!(logs.contains("does not verify"), "{logs}");
    for secret in never_shown() {
        assert!(!logs.contains(&secret), "{secret} in the logs");
        assert!(!bodies.contains(&secret), "{secret} in a response");
    }
}

#[test]
fn config_check_shows_each_platform_and_where_its_credentials_come_from() {
    let tmp = tempfile::tempdir().unwrap();
    let private = key_file(tmp.path(), "app.pk8.pem", 0o600);
    let public = alipay_fixtures().join("alipay.spki.pem");
    let keys = key_dir(jwks::Alg::ES256);
    let addr = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
    let setup = Setup {
        providers: providers_at(
            [addr(1), addr(2), addr(3), addr(4)],
            secs(2),
            &private,
            &public,
        ),
        ..Setup::default()
    };
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        config_text(&setup, keys.path(), addr(1), addr(5), "127.0.0.1:0"),
    )
    .unwrap();
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
            .args(["config", "check", "--config", cfg.to_str().unwrap()])
            .envs(TEST_SECRETS)
            .output()
            .unwrap()
    };
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for says in [
        format!("provider  wechat {APPID} via http://127.0.0.1:1 (timeout 1s), secret from env TEST_WECHAT_SECRET"),
        format!("provider  qq {QQ_APPID} via http://127.0.0.1:1 (timeout 2s), secret from env TEST_QQ_SECRET"),
        format!("provider  douyin {DOUYIN_APPID} via http://127.0.0.1:2 (timeout 2s), secret from env TEST_DOUYIN_SECRET"),
        format!("provider  baidu {BAIDU_APPID} via http://127.0.0.1:3 (timeout 2s), secret from env TEST_BAIDU_SECRET"),
        format!(
            "provider  alipay {ALIPAY_APPID} via http://127.0.0.1:4/gateway.do (timeout 2s), requests signed RSA2 with the key in {}, answers verified with the platform key in {}",
            private.display(),
            public.display()
        ),
    ] {
        assert!(text.contains(&says), "{says:?} not in:\n{text}");
    }
    for secret in never_shown() {
        assert!(!text.contains(&secret), "{secret} in:\n{text}");
    }
    // A private key others may read stops the check, naming key and file
    // and quoting nothing of it.
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o604)).unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("providers[4].private_key_file")
            && err.contains(&private.display().to_string())
            && err.contains("mode 0604"),
        "{err}"
    );
    for secret in never_shown() {
        assert!(!err.contains(&secret), "{secret} in:\n{err}");
    }
}

#[tokio::test]
async fn a_provider_redirect_is_never_followed() {
    // Where the redirect points: another stand-in that must hear nothing.
    let elsewhere = wechat().await;
    let redirecting = wechat_redirecting(elsewhere.addr).await;
    let gw = start(Setup {
        wechat_addr: Some(redirecting.addr),
        ..Setup::default()
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
    assert_eq!(redirecting.queries().len(), statuses.len());
    assert!(elsewhere.queries().is_empty());
}
