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
    assert!(
        text.contains("# pass 7") && text.contains("# fail 0"),
        "{text}"
    );
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
    let env = |name: &str| Some(format!("secret-of-{name}"));
    let dir = examples().join("config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        // secret_file paths do not exist here: swap them for an env secret.
        let text = text.replace(
            "secret_file = \"/run/secrets/games-app-secret\"",
            "secret_env = \"GAMES_APP_SECRET\"",
        );
        if let Err(e) = minigate::config::Config::from_toml(&text, &env) {
            panic!("{}: {e}", path.display());
        }
        n += 1;
    }
    assert_eq!(n, 4);
}
