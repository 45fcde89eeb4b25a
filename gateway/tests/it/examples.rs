//! examples/: the mini-program client under node's test runner, the
//! service examples against a real gateway, and the forward-auth set-ups
//! (nginx's run with a real nginx, Traefik's and Istio's read as YAML).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::*;

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
fn the_miniprogram_client_passes_its_node_tests() {
    let out = Command::new("node")
        .arg("--test")
        .current_dir(examples().join("miniprogram"))
        .output()
        .expect("node is needed for the mini-program client's tests");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without MINIGATE_URL the real-gateway tests skip themselves; the test
    // below runs them.
    assert!(
        text.contains("# pass 23") && text.contains("# fail 0") && text.contains("# skipped 8"),
        "{text}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_miniprogram_client_works_through_a_real_gateway() {
    // Access tokens of two seconds, no leeway: the client meets real 401s.
    // (Two rather than one: a retry right after a refresh must land inside
    // the new token's life even on a machine busy enough to stall a second.)
    let gw = start(Setup {
        access_ttl: "2s",
        leeway: "0s",
        ..Setup::default()
    })
    .await;
    let url = gw.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(["--test", "real-gateway.test.js"])
            .env("MINIGATE_URL", url)
            .current_dir(examples().join("miniprogram"))
            .output()
            .expect("node is needed for the mini-program client's tests")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("# pass 8") && text.contains("# fail 0") && text.contains("# skipped 0"),
        "{text}"
    );
    // Every call the client made reached the upstream as one user, in one
    // login session kept across both refreshes.
    let seen: Vec<Seen> = gw
        .upstream
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.uri.starts_with("/api/node/"))
        .cloned()
        .collect();
    assert_eq!(seen.len(), 8, "{seen:?}");
    for s in &seen {
        assert_eq!(s.headers["x-auth-platform"], "wechat");
        assert_eq!(s.headers["x-auth-openid"], seen[0].headers["x-auth-openid"]);
        assert_eq!(
            s.headers["x-auth-session"],
            seen[0].headers["x-auth-session"]
        );
    }
    let tokens: std::collections::HashSet<_> = seen
        .iter()
        .map(|s| s.headers["x-auth-token-id"].clone())
        .collect();
    assert_eq!(
        tokens.len(),
        3,
        "three access tokens: the login's and two refreshes'"
    );
}

#[test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
fn the_miniprogram_client_packs_and_installs_as_a_package() {
    let tmp = tempfile::tempdir().unwrap();
    let npm = |dir: &std::path::Path, args: &[&str]| {
        let out = Command::new("npm")
            .args(args)
            .current_dir(dir)
            .env("npm_config_cache", tmp.path().join("npm-cache"))
            .env("npm_config_update_notifier", "false")
            .output()
            .expect("npm is needed to pack the mini-program client");
        assert!(
            out.status.success(),
            "npm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let packs = tmp.path().join("packs");
    std::fs::create_dir(&packs).unwrap();
    let listing = npm(
        &examples().join("miniprogram"),
        &[
            "pack",
            "--json",
            "--pack-destination",
            packs.to_str().unwrap(),
        ],
    );
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let pack = &listing[0];
    assert_eq!(pack["name"], "minigate-client");
    let mut files: Vec<&str> = pack["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "README.md",
            "minigate.d.ts",
            "minigate.js",
            "minigate.mjs",
            "package.json"
        ],
        "only the client, its types and its README are shipped"
    );
    let tarball = packs.join(pack["filename"].as_str().unwrap());

    // Installed (offline: it depends on nothing) into an app, both entry
    // points load, and a client made from each works.
    let app = tmp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("package.json"), r#"{"name":"app","private":true}"#).unwrap();
    npm(
        &app,
        &[
            "install",
            "--offline",
            "--no-audit",
            "--no-fund",
            tarball.to_str().unwrap(),
        ],
    );
    let installed = app.join("node_modules/minigate-client");
    assert!(installed.join("minigate.d.ts").exists());
    let stub = "{ login: (o) => o.success({ code: 'c' }), request: (o) => o.success({ statusCode: 200, data: { access_token: 'a', refresh_token: 'r', openid: 'o', expires_in: 60 } }), getStorageSync: (k) => store.get(k) || '', setStorageSync: (k, v) => store.set(k, v), removeStorageSync: (k) => store.delete(k) }";
    for (flag, script) in [
        (
            "--input-type=commonjs",
            format!("const store = new Map(); const {{ createClient }} = require('minigate-client'); createClient({{ baseUrl: 'https://gw', api: {stub} }}).login().then((t) => console.log('cjs', typeof createClient, t.openid));"),
        ),
        (
            "--input-type=module",
            format!("import {{ createClient }} from 'minigate-client'; import whole from 'minigate-client'; const store = new Map(); const t = await createClient({{ baseUrl: 'https://gw', api: {stub} }}).login(); console.log('esm', typeof createClient, whole.createClient === createClient, t.openid);"),
        ),
    ] {
        let out = Command::new("node")
            .args([flag, "-e", &script])
            .current_dir(&app)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.ends_with("function o\n") || said.ends_with("function true o\n"), "{said}");
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_header_trusting_service_sees_the_identity() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut service = Command::new("python3")
        .arg(examples().join("services/trust_headers.py"))
        .arg(format!("127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    let gw = start(Setup {
        upstream_addr: Some(format!("127.0.0.1:{port}").parse().unwrap()),
        ..Setup::default()
    })
    .await;
    let t = gw.login("example-user").await;
    let mut body = serde_json::Value::Null;
    for _ in 0..100 {
        let res = gw.get("/api/me", Some(&t.access_token)).await;
        if res.status() == 200 {
            body = res.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body["hello"], openid_for("example-user").as_str(), "{body}");
    assert_eq!(body["appid"], APPID);
    // A spoofed header on a public route does not reach it.
    let res = gw
        .http
        .get(format!("{}/public/me", gw.url))
        .header("x-auth-subject", "admin")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["hello"], "anonymous");
    let _ = service.kill();
    let _ = service.wait();
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_jwks_verifying_service_accepts_exactly_the_gateways_tokens() {
    let gw = start(Setup::default()).await;
    let t = gw.login("jwks-user").await;
    // One character of the signature changed.
    let mut forged = t.access_token.clone().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let jwks = format!("{}/.well-known/jwks.json", gw.url);
    let input = format!("{}\n{}\n{}\n", t.access_token, t.refresh_token, forged);
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("python3")
            .arg(examples().join("services/verify_jwks.py"))
            .args(["https://auth.test", "api", &jwks])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        lines[0].starts_with(&format!("ok {}", openid_for("jwks-user"))),
        "{text}"
    );
    assert!(
        lines[1].starts_with("refused"),
        "a refresh token passed: {text}"
    );
    assert!(
        lines[2].starts_with("refused"),
        "a forged token passed: {text}"
    );
}

#[test]
fn every_config_example_is_valid() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = |name: &str| Some(format!("secret-of-{name}"));
    let dir = examples().join("config");
    // Key files of the Alipay example, from the TEST-ONLY fixtures.
    let keys = tempfile::tempdir().unwrap();
    let private = keys.path().join("app.pem");
    std::fs::copy(alipay_fixtures().join("app.pk8.pem"), &private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = alipay_fixtures().join("alipay.spki.pem");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // secret_file and key paths do not exist here: swap them for an env
        // secret and the fixtures.
        let text = text
            .replace(
                "secret_file = \"/run/secrets/games-app-secret\"",
                "secret_env = \"GAMES_APP_SECRET\"",
            )
            .replace(
                "/run/secrets/alipay/app-private-key.pem",
                private.to_str().unwrap(),
            )
            .replace(
                "/etc/minigate/alipay-public-key.pem",
                public.to_str().unwrap(),
            );
        if let Err(e) = minigate::config::Config::from_toml(&text, &env) {
            panic!("{}: {e}", path.display());
        }
        n += 1;
    }
    assert_eq!(n, 5);
}

/// One of `examples/services/*.py`, serving on a free loopback port;
/// killed when dropped.
struct PyService {
    addr: SocketAddr,
    child: std::process::Child,
}

impl PyService {
    async fn start(script: &str) -> PyService {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new("python3")
            .arg(examples().join("services").join(script))
            .arg(addr.to_string())
            .spawn()
            .expect("python3 is needed for the service examples");
        let mut service = PyService { addr, child };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return service;
            }
            if let Some(status) = service.child.try_wait().unwrap() {
                panic!("{script} exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{script} did not listen on {addr}");
    }
}

impl Drop for PyService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send(
    http: &reqwest::Client,
    method: &str,
    url: String,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = http.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_example_user_service_gives_uid_roles_and_claims_and_refuses_a_banned_user() {
    let users = PyService::start("user_service.py").await;
    let gw = start(
        Setup::default()
            .route(Route::new("/team/admin/").allow(vec![roles(["admin"])]))
            .route(Route::new("/team/logs").allow(vec![
                roles(["auditor"]).methods(vec!["GET"]),
                roles(["admin"]),
            ]))
            .enrich(enrich(format!("http://{}/minigate/enrich", users.addr)).timeout(secs(2))),
    )
    .await;
    let call = |method: &'static str, path: &'static str, token: String| {
        let url = format!("{}{path}", gw.url);
        let http = gw.http.clone();
        async move { send(&http, method, url, Some(&token), &[]).await }
    };
    // The table's users: by unionid (the stand-in WeChat gives unionid X
    // for the code `union:X`), and one by openid.
    let bob = gw.login("union:unionid-bob").await;
    assert_eq!(
        call("PUT", "/team/admin/x", bob.access_token.clone())
            .await
            .status(),
        200
    );
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-user"], "u_1002");
    assert_eq!(seen.headers["x-auth-roles"], "admin,user");
    assert_eq!(seen.headers["x-auth-claim-tier"], "staff");
    assert_eq!(seen.headers["x-auth-unionid"], "unionid-bob");
    assert_eq!(
        seen.headers["x-auth-subject"],
        openid_for("union:unionid-bob").as_str()
    );

    let alice = gw.login("union:unionid-alice").await;
    assert_error(
        call("GET", "/team/admin/x", alice.access_token.clone()).await,
        403,
        "insufficient_scope",
    )
    .await;
    assert_eq!(
        call("GET", "/api/me", alice.access_token.clone())
            .await
            .status(),
        200
    );
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-user"], "u_1001");
    assert_eq!(seen.headers["x-auth-roles"], "user");
    assert_eq!(seen.headers["x-auth-claim-tier"], "gold");

    let carol = gw.login("carol").await;
    assert_eq!(carol.openid, "openid-4c26d9074c27d89e", "the table's key");
    assert_eq!(
        call("GET", "/team/logs", carol.access_token.clone())
            .await
            .status(),
        200
    );
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-user"], "u_1003");
    assert_eq!(seen.headers["x-auth-roles"], "auditor");
    assert!(seen.headers.get("x-auth-claim-tier").is_none());
    assert_eq!(
        call("DELETE", "/team/logs", carol.access_token.clone())
            .await
            .status(),
        403
    );

    // Someone the table does not know is an ordinary user, without a uid.
    let new = gw.login("someone-new").await;
    assert_eq!(
        call("GET", "/api/me", new.access_token.clone())
            .await
            .status(),
        200
    );
    let seen = gw.upstream.last();
    assert_eq!(seen.headers["x-auth-roles"], "user");
    assert_eq!(seen.headers["x-auth-claim-tier"], "free");
    assert!(seen.headers.get("x-auth-user").is_none());

    // A refresh asks again and gets the same answer.
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &bob.refresh_token).await;
    assert_eq!(res.status(), 200);
    let next: Tokens = res.json().await.unwrap();
    assert_eq!(
        call("DELETE", "/team/logs", next.access_token)
            .await
            .status(),
        200
    );
    assert_eq!(gw.upstream.last().headers["x-auth-user"], "u_1002");

    // A banned user gets no token.
    assert_error(
        gw.post("/auth/login", r#"{"code":"union:unionid-mallory"}"#)
            .await,
        403,
        "access_denied",
    )
    .await;

    // Every answer was within the contract's limits: no failure of any kind.
    let m = gw.scrape().await;
    assert_eq!(series(&m, "minigate_enrich_denied_total"), 1.0);
    let failures: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("minigate_enrich_failures_total{") && !l.ends_with(" 0"))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}

/// `examples/forward-auth/nginx.conf` with its three addresses swapped for
/// the placeholders of [`Nginx::start_site`]; each must be there once.
pub fn nginx_example() -> String {
    let text = std::fs::read_to_string(examples().join("forward-auth/nginx.conf")).unwrap();
    [
        ("listen 80;", "listen 127.0.0.1:{port};"),
        ("server minigate:8080;", "server {target};"),
        ("server app:8080;", "server {upstream};"),
    ]
    .iter()
    .fold(text, |text, (from, to)| {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text.replace(from, to)
    })
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn the_nginx_forward_auth_example_lets_minigate_decide_and_passes_the_identity() {
    let users = user_service(Answer::Json(json!({
        "uid": "u_7", "roles": ["auditor"], "claims": {"tier": "gold"}
    })))
    .await;
    let gw = start(
        Setup::default()
            .route(Route::new("/api/logs").allow(vec![
                roles(["auditor"]).methods(vec!["GET"]),
                roles(["admin"]),
            ]))
            .enrich(enrich(users.url())),
    )
    .await;
    let nginx = Nginx::start_site(
        &nginx_example(),
        gw.running.addr,
        &[("upstream", gw.upstream.addr)],
    )
    .await;
    let http = gw.http.clone();
    let at = |path: &str| format!("{}{path}", nginx.url());
    // Clients log in through nginx, at minigate.
    let login = |code: &'static str| {
        let (http, url) = (http.clone(), at("/auth/login"));
        async move {
            let res = http
                .post(url)
                .header("content-type", "application/json")
                .body(format!("{{\"code\":\"{code}\"}}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Tokens>().await.unwrap()
        }
    };
    let auditor = login("fa-auditor").await.access_token;
    users.answer(Answer::Json(json!({})));
    let plain = login("fa-plain").await.access_token;
    let before = gw.upstream.count();
    let spoofed = [
        ("x-auth-roles", "admin"),
        ("x-auth-user", "u_root"),
        ("x-auth-claim-tier", "platinum"),
    ];

    // Allowed: the identity of minigate's answer reaches the service, the
    // client's own X-Auth-* headers do not.
    let res = send(
        &http,
        "GET",
        at("/api/logs?day=1"),
        Some(&auditor),
        &spoofed,
    )
    .await;
    assert_eq!(res.status(), 200, "{}", nginx.errors());
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/api/logs?day=1");
    assert_eq!(
        seen.headers["x-auth-subject"],
        openid_for("fa-auditor").as_str()
    );
    assert_eq!(seen.headers["x-auth-appid"], APPID);
    assert_eq!(seen.headers["x-auth-roles"], "auditor");
    assert_eq!(seen.headers["x-auth-user"], "u_7");
    assert_eq!(seen.headers["x-auth-claim-tier"], "gold");
    assert!(seen.headers.get("x-auth-session").is_some());
    let res = send(&http, "GET", at("/api/x"), Some(&plain), &spoofed).await;
    assert_eq!(res.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(
        seen.headers["x-auth-subject"],
        openid_for("fa-plain").as_str()
    );
    for (name, _) in spoofed {
        assert!(seen.headers.get(name).is_none(), "{name} passed");
    }

    // 401 with minigate's challenge; 403 for a method or a role the rules
    // refuse.
    let res = send(&http, "GET", at("/api/logs"), None, &[]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"minigate\""
    );
    let res = send(&http, "GET", at("/api/logs"), Some("x.y.z"), &[]).await;
    assert_eq!(res.status(), 401);
    let res = send(&http, "DELETE", at("/api/logs"), Some(&auditor), &[]).await;
    assert_eq!(res.status(), 403);
    let res = send(&http, "GET", at("/api/logs"), Some(&plain), &[]).await;
    assert_eq!(res.status(), 403);

    // A client cannot have minigate judge another request than this one.
    let forged = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/public/x"),
    ];
    let res = send(&http, "GET", at("/api/logs"), None, &forged).await;
    assert_eq!(res.status(), 401);
    let res = send(&http, "DELETE", at("/api/logs"), Some(&auditor), &forged).await;
    assert_eq!(res.status(), 403);

    assert_eq!(
        gw.upstream.count(),
        before + 2,
        "a denied request reached the upstream"
    );
    let m = gw.scrape().await;
    assert_eq!(
        series(
            &m,
            "minigate_requests_total{route=\"/auth/verify\",class=\"2xx\"}"
        ),
        2.0
    );
}

/// Every document of a YAML text, as JSON, read by PyYAML's safe loader.
fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not YAML (or PyYAML is missing: ./test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
fn the_traefik_and_istio_examples_are_yaml_with_the_forward_auth_settings() {
    let read = |name: &str| std::fs::read_to_string(examples().join("forward-auth").join(name));
    let identity = ["x-auth-subject", "x-auth-roles", "x-auth-user"];

    let traefik = yaml_documents(&read("traefik.yml").unwrap());
    assert_eq!(traefik.len(), 1);
    let http = &traefik[0]["http"];
    let auth = &http["middlewares"]["minigate"]["forwardAuth"];
    assert_eq!(auth["address"], "http://minigate:8080/auth/verify");
    assert_eq!(auth["trustForwardHeader"], false);
    let passed: Vec<String> = strings(&auth["authResponseHeaders"])
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for h in identity {
        assert!(passed.iter().any(|p| p == h), "{h}");
    }
    assert_eq!(auth["authResponseHeadersRegex"], "^X-Auth-");
    let api = &http["routers"]["api"];
    assert_eq!(strings(&api["middlewares"]), ["minigate"]);
    let service = api["service"].as_str().unwrap();
    assert!(http["services"][service]["loadBalancer"]["servers"][0]["url"].is_string());
    let own = &http["routers"]["minigate-endpoints"];
    assert!(own["rule"].as_str().unwrap().contains("/auth/"));
    assert!(own.get("middlewares").is_none());

    let istio = yaml_documents(&read("istio.yaml").unwrap());
    assert_eq!(istio.len(), 2);
    assert_eq!(istio[0]["kind"], "ConfigMap");
    let mesh = yaml_documents(istio[0]["data"]["mesh"].as_str().unwrap());
    let provider = &mesh[0]["extensionProviders"][0];
    let ext = &provider["envoyExtAuthzHttp"];
    assert!(ext["service"].as_str().unwrap().starts_with("minigate."));
    assert_eq!(ext["pathPrefix"], "/auth/verify");
    let checked = strings(&ext["includeRequestHeadersInCheck"]);
    assert_eq!(checked[0], "authorization");
    assert!(!checked.iter().any(|h| h.starts_with("x-forwarded-")));
    let upstream = strings(&ext["headersToUpstreamOnAllow"]);
    for h in identity.iter().chain(&["x-auth-claim-*"]) {
        assert!(upstream.contains(h), "{h}");
    }
    let policy = &istio[1];
    assert_eq!(policy["kind"], "AuthorizationPolicy");
    assert_eq!(policy["spec"]["action"], "CUSTOM");
    assert_eq!(policy["spec"]["provider"]["name"], provider["name"]);
}

/// The identity headers minigate can send, lower-case: its fixed names.
fn identity_headers() -> Vec<&'static str> {
    minigate::tokens::header::ALL
        .iter()
        .map(|h| h.as_str())
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
fn the_forward_auth_examples_set_or_clear_every_identity_header_minigate_can_send() {
    let read =
        |name: &str| std::fs::read_to_string(examples().join("forward-auth").join(name)).unwrap();
    let nginx = read("nginx.conf").to_ascii_lowercase();
    // nginx cannot strip by pattern: each header is set from minigate's
    // answer (empty when minigate sent none), so no client's copy passes.
    for h in identity_headers() {
        let var = h.replace('-', "_");
        let set = nginx
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("proxy_set_header {h} ")))
            .unwrap_or_else(|| panic!("nginx.conf does not set {h}"));
        let from = set.split_whitespace().nth(2).unwrap().trim_end_matches(';');
        assert!(
            nginx.contains(&format!("auth_request_set {from} $upstream_http_{var};")),
            "nginx.conf sets {h} from {from}, which is not minigate's {h}"
        );
    }
    // The method override headers are cleared, and the check is told of a
    // WebSocket handshake (nginx passes no Upgrade to a subrequest).
    for h in minigate::pipeline::headers::METHOD_OVERRIDE {
        assert!(
            nginx.contains(&format!("proxy_set_header {h} \"\";")),
            "nginx.conf does not clear {h}"
        );
    }
    assert!(nginx.contains("proxy_set_header x-original-upgrade $http_upgrade;"));

    let traefik = yaml_documents(&read("traefik.yml"));
    let auth = &traefik[0]["http"]["middlewares"]["minigate"]["forwardAuth"];
    let lower = |v: &serde_json::Value| -> Vec<String> {
        strings(v).iter().map(|h| h.to_ascii_lowercase()).collect()
    };
    let passed = lower(&auth["authResponseHeaders"]);
    for h in identity_headers() {
        assert!(
            passed.iter().any(|p| p == h),
            "traefik.yml does not pass {h}"
        );
    }
    assert_eq!(auth["authResponseHeadersRegex"], "^X-Auth-");
    let asked = lower(&auth["authRequestHeaders"]);
    for h in minigate::pipeline::headers::METHOD_OVERRIDE {
        assert!(
            asked.iter().any(|p| p == h),
            "traefik.yml does not ask with {h}"
        );
    }

    let istio = yaml_documents(&read("istio.yaml"));
    let mesh = yaml_documents(istio[0]["data"]["mesh"].as_str().unwrap());
    let ext = &mesh[0]["extensionProviders"][0]["envoyExtAuthzHttp"];
    let upstream = strings(&ext["headersToUpstreamOnAllow"]);
    for h in identity_headers().iter().chain(&["x-auth-claim-*"]) {
        assert!(upstream.contains(h), "istio.yaml does not pass {h}");
    }
    let asked = strings(&ext["includeRequestHeadersInCheck"]);
    for h in minigate::pipeline::headers::METHOD_OVERRIDE {
        assert!(asked.contains(&h), "istio.yaml does not ask with {h}");
    }
}
