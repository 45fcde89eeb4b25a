//! The admin listener's scoped tokens: each endpoint needs a token holding
//! its scope, through the real listener and the `minigate` binary; and the
//! CLI printing what an admin server says inert.

use std::path::Path;

use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// A token holding only `wechat`: what a backend service is given.
const BROKER: &str = "test-broker-token-wechat-only-5c1e";
/// A token holding only `sessions`: what the support desk's CLI is given.
const SUPPORT: &str = "test-support-token-sessions-only-9d2a";

/// `[admin]` with the test token of every scope (`TEST_ADMIN_TOKEN`) and
/// the two scoped tokens, from files in `dir` (mode 0600).
fn scoped_admin(dir: &Path) -> Admin {
    use std::os::unix::fs::PermissionsExt as _;
    let file = |name: &str, token: &str, scope: &'static str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        AdminToken::default().file(&path).scopes(vec![scope])
    };
    Admin::test().tokens(vec![
        file("broker", BROKER, "wechat"),
        file("support", SUPPORT, "sessions"),
    ])
}

async fn call(gw: &Gateway, method: Method, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = gw.http.request(method, format!("{}{path}", gw.admin_url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn challenge(scope: &str) -> String {
    format!("Bearer realm=\"minigate-admin\", error=\"insufficient_scope\", scope=\"{scope}\"")
}

#[tokio::test]
async fn each_admin_endpoint_needs_a_token_holding_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(Setup {
        admin: Some(scoped_admin(dir.path())),
        ..Setup::default()
    })
    .await;
    let t = gw.login("scoped-alice").await;
    let user = openid_for("scoped-alice");
    let sessions = format!("/admin/users/{user}/sessions");
    let claims: Value = {
        use base64::Engine as _;
        let payload = t.access_token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let one = format!("{sessions}/{}", claims["sid"].as_str().unwrap());
    let wechat = format!("/admin/wechat/access_token?appid={APPID}");
    let reset = format!("{one}/reset_session_key");

    // The broker's token: the WeChat access token, and nobody's sessions.
    let res = call(&gw, Method::GET, &wechat, Some(BROKER)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["access_token"], format!("AT-{APPID}-1"));
    for (method, path) in [
        (Method::GET, &sessions),
        (Method::DELETE, &sessions),
        (Method::DELETE, &one),
        (Method::POST, &reset),
    ] {
        let res = call(&gw, method.clone(), path, Some(BROKER)).await;
        let headers = assert_error(res, 403, "insufficient_scope").await;
        assert_eq!(
            headers["www-authenticate"],
            challenge("sessions").as_str(),
            "{method} {path}"
        );
    }
    assert_eq!(
        gw.get("/api/x", Some(&t.access_token)).await.status(),
        200,
        "the broker's token ended nothing"
    );

    // The support desk's token: the sessions, not the WeChat token.
    let res = call(&gw, Method::GET, &sessions, Some(SUPPORT)).await;
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
    let res = call(&gw, Method::GET, &wechat, Some(SUPPORT)).await;
    let headers = assert_error(res, 403, "insufficient_scope").await;
    assert_eq!(headers["www-authenticate"], challenge("wechat").as_str());

    // The token of every scope: both, as before scopes.
    for path in [&sessions, &wechat] {
        let res = call(&gw, Method::GET, path, Some(ADMIN_TOKEN)).await;
        assert_eq!(res.status(), 200, "{path}");
    }

    // A wrong token, a prefix of a scoped one, none: 401 on every endpoint.
    let prefix = &BROKER[..BROKER.len() - 1];
    for token in [None, Some("wrong-token-of-enough-length"), Some(prefix)] {
        for path in [&sessions, &wechat] {
            let res = call(&gw, Method::GET, path, token).await;
            let headers = assert_error(res, 401, "unauthorized").await;
            assert_eq!(
                headers["www-authenticate"],
                "Bearer realm=\"minigate-admin\""
            );
        }
    }

    // What a scope allows, it does in full.
    let res = call(&gw, Method::DELETE, &sessions, Some(SUPPORT)).await;
    assert_eq!(res.status(), 204);
    assert_eq!(gw.get("/api/x", Some(&t.access_token)).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_with_a_sessions_token_and_explains_a_missing_scope() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(Setup {
        admin: Some(scoped_admin(dir.path())),
        ..Setup::default()
    })
    .await;
    gw.login("scoped-bob").await;
    let user = openid_for("scoped-bob");
    let url = gw.admin_url();
    let list = ["sessions", "list", "--user", &user, "--admin", &url];
    let (code, out, err) = admin_cli(&list, Some(SUPPORT)).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 live session(s)"), "{out}");

    let (code, out, err) = admin_cli(&list, Some(BROKER)).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err.trim_end(),
        "minigate: the token in MINIGATE_ADMIN_TOKEN does not hold the sessions scope: \
         use a token with scopes = [\"sessions\"] (or token_env/token_file's, which has every scope)"
    );
    assert!(!err.contains(BROKER) && !out.contains(BROKER));
    let revoke = ["sessions", "revoke", "--user", &user, "--admin", &url];
    let (code, _, err) = admin_cli(&revoke, Some(BROKER)).await;
    assert_eq!(code, 1);
    assert!(err.contains("does not hold the sessions scope"), "{err}");
    let (code, out, err) = admin_cli(&revoke, Some(SUPPORT)).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ended every session"), "{out}");
}

/// An admin server that answers every call with `status` and `body`.
async fn answering(status: u16, body: Value) -> String {
    let addr = serve(move |_req: Request<Incoming>| {
        let body = body.clone();
        async move {
            let mut res = Response::new(Full::new(bytes::Bytes::from(body.to_string())));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            res.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            res
        }
    })
    .await;
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_what_an_admin_server_says_with_control_characters_escaped() {
    // A description that would retitle the terminal, clear it, and print a
    // second, made-up line.
    let hostile = "\u{1b}]0;owned\u{7}\u{1b}[2J\r\nminigate: ended every session of root";
    let url = answering(
        503,
        json!({"error": "temporarily_unavailable", "error_description": hostile}),
    )
    .await;
    let args = ["sessions", "list", "--user", "o_1", "--admin", &url];
    let (code, _, err) = admin_cli(&args, Some("any-token-of-enough-length")).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
    assert_eq!(
        err.trim_end(),
        "minigate: the admin API answered 503: \\u{1b}]0;owned\\u{7}\\u{1b}[2J\\r\\nminigate: ended every session of root"
    );

    // A listing's fields are printed the same way.
    let url = answering(
        200,
        json!({"sessions": [{"sid": "s\u{1b}[31m1", "device_type": "pc", "created_at": 0,
            "refreshed_at": 0, "device_id": "d\n2"}]}),
    )
    .await;
    let args = ["sessions", "list", "--user", "o_1", "--admin", &url];
    let (code, out, err) = admin_cli(&args, Some("any-token-of-enough-length")).await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(
        out.contains("s\\u{1b}[31m1") && out.contains("d\\n2"),
        "{out:?}"
    );
    assert_eq!(out.lines().count(), 3, "{out:?}");
}

#[test]
fn config_check_names_each_admin_token_by_its_source_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let keys = key_dir(jwks::Alg::ES256);
    let setup = Setup {
        admin: Some(scoped_admin(dir.path())),
        ..Setup::default()
    };
    let text = config_text(
        &setup,
        keys.path(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
        "127.0.0.1:0",
    );
    let cfg = dir.path().join("minigate.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(["config", "check", "--config", cfg.to_str().unwrap()])
        .envs(TEST_SECRETS)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let at = |name: &str| dir.path().join(name).display().to_string();
    for says in [
        "admin     127.0.0.1:0 (its own listener)\n".to_owned(),
        "          token from env TEST_ADMIN_TOKEN: every scope (sessions, wechat)\n".to_owned(),
        format!("          token from file {}: wechat\n", at("broker")),
        format!("          token from file {}: sessions\n", at("support")),
    ] {
        assert!(stdout.contains(&says), "{says:?} not in:\n{stdout}");
    }
    for token in [ADMIN_TOKEN, BROKER, SUPPORT] {
        assert!(!stdout.contains(token) && !stderr.contains(token));
    }
}
