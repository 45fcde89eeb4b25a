//! examples/: the mini-program client under node's test runner, and the two
//! service examples against a real gateway.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
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
        text.contains("# pass 14") && text.contains("# fail 0") && text.contains("# skipped 4"),
        "{text}"
    );
}

#[tokio::test]
async fn the_miniprogram_client_works_through_a_real_gateway() {
    // Access tokens of a second, no leeway: the client meets real 401s.
    let gw = start(Setup {
        access_ttl: "1s",
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
        text.contains("# pass 4") && text.contains("# fail 0") && text.contains("# skipped 0"),
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
