//! The `minigate` binary: key commands, config errors, dev mode's walkthrough
//! run as pasted, and logs free of secrets.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

fn minigate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_minigate"))
}

#[test]
fn keys_init_list_jwks_rotate_prune() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let d = dir.to_str().unwrap();
    let (code, out, err) = run_cli(&["keys", "init", "--dir", d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("current") && out.contains("next"), "{out}");
    let file = dir.join("keyset.json");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A second init refuses to overwrite.
    let (code, _, err) = run_cli(&["keys", "init", "--dir", d]);
    assert_eq!(code, 2);
    assert!(
        err.contains("keyset.json") && err.lines().count() == 1,
        "{err}"
    );

    let (code, jwks, _) = run_cli(&["keys", "jwks", "--dir", d]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(doc["keys"].as_array().unwrap().len(), 2);
    assert!(!jwks.contains("private_key") && !jwks.contains("\"d\""));

    let set = jwks::KeySet::load(&dir).unwrap();
    let (first, second) = (
        set.entries()[0].key.kid().to_owned(),
        set.entries()[1].key.kid().to_owned(),
    );
    let (code, out, _) = run_cli(&["keys", "rotate", "--dir", d]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("now signing with {second}")), "{out}");
    let (_, list, _) = run_cli(&["keys", "list", "--dir", d]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&first) && l.contains("retired")),
        "{list}"
    );
    assert_eq!(list.lines().count(), 4);
    // Nothing is old enough with the default; everything retired is with 0s.
    let (_, out, _) = run_cli(&["keys", "prune", "--dir", d]);
    assert!(out.contains("pruned 0"), "{out}");
    std::thread::sleep(Duration::from_millis(1100));
    let (_, out, _) = run_cli(&["keys", "prune", "--dir", d, "--older-than", "1s"]);
    assert!(out.contains("pruned 1") && out.contains(&first), "{out}");

    let (code, _, _) = run_cli(&[
        "keys",
        "init",
        "--dir",
        tmp.path().join("ed").to_str().unwrap(),
        "--alg",
        "EdDSA",
    ]);
    assert_eq!(code, 0);
    let (code, _, err) = run_cli(&[
        "keys",
        "init",
        "--dir",
        tmp.path().join("x").to_str().unwrap(),
        "--alg",
        "HS256",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("HS256"));
}

/// Writes `text` to `cfg` and runs `config check` on it, which must pass;
/// returns what it printed.
fn config_check(cfg: &std::path::Path, text: &str) -> String {
    std::fs::write(cfg, text).unwrap();
    let out = minigate()
        .args(["config", "check", "--config", cfg.to_str().unwrap()])
        .env("TEST_WECHAT_SECRET", SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bad_keys_and_configs_fail_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    std::fs::write(tmp.path().join("keyset.json"), "{garbage").unwrap();
    let (code, _, err) = run_cli(&["keys", "list", "--dir", d]);
    assert_eq!(code, 2);
    assert!(
        err.contains("keyset.json") && err.lines().count() == 1,
        "{err}"
    );

    let keys = key_dir(jwks::Alg::ES256);
    let good = config_text(
        &Setup::default(),
        keys.path(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
        "127.0.0.1:0",
    );
    let cfg = tmp.path().join("c.toml");
    let cases = [
        (
            good.replace("access_ttl = \"15m\"", "access_ttl = \"fifteen\""),
            "tokens.access_ttl",
        ),
        (
            good.replace("auth = \"public\"", "auth = \"sometimes\""),
            "routes[3].auth",
        ),
        (
            good.replace("TEST_WECHAT_SECRET", "UNSET_VARIABLE_X"),
            "providers[0].secret_env",
        ),
        (
            good.replace(keys.path().to_str().unwrap(), "/nonexistent/keys"),
            "keyset.json",
        ),
        ("this is not toml".to_owned(), "line 1"),
        (format!("{good}\n[log]\nformat = \"xml\"\n"), "log.format"),
        (
            format!("{good}\n[sessions]\nredis_url = \"http://x\"\n"),
            "sessions.redis_url",
        ),
        (
            format!("{good}\n[tls]\ncert = \"/nonexistent.crt\"\nkey = \"/k\"\n"),
            "tls.cert",
        ),
    ];
    for (text, key) in cases {
        std::fs::write(&cfg, text).unwrap();
        let out = minigate()
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .env("TEST_WECHAT_SECRET", SECRET)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(key), "{err} should name {key}");
        assert!(!err.contains(SECRET));
    }
    // config check on a good file prints what it means.
    let text = config_check(&cfg, &good);
    assert!(
        text.contains("/api/admin/") && text.contains(APPID) && text.contains("https://auth.test"),
        "{text}"
    );
    assert!(!text.contains(SECRET));
    for says in [
        "listen    127.0.0.1:0 (plain HTTP/1.1)",
        "secret from env TEST_WECHAT_SECRET",
        "sessions  in-process, up to 200000",
        "server    max 10000 connections",
        "log       text lines",
        "audit     JSON lines on stderr (target minigate::audit)\n",
        "tracing   off\n",
    ] {
        assert!(text.contains(says), "{says:?} not in:\n{text}");
    }
    // Redis (its password never shown), TLS and JSON logs.
    let pki_dir = tempfile::tempdir().unwrap();
    let (crt, key) = (pki_dir.path().join("c.pem"), pki_dir.path().join("k.pem"));
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let more = config_text(
        &Setup::default()
            .sessions(Sessions::default().redis_url("redis://:hunter2-pass@10.0.0.7:6379/1".into()))
            .tls(Tls::default().cert(&crt).key(&key))
            .log(Log::default().format("json")),
        keys.path(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
        "127.0.0.1:0",
    );
    // [audit] and [tracing] as an operator writes them.
    let more = format!(
        "{more}\n[audit]\nredis_stream = \"audit:events\"\nstream_maxlen = 5000\n\
         [tracing]\notlp_endpoint = \"http://otel:4318/\"\nsample_ratio = 0.25\n"
    );
    let text = config_check(&cfg, &more);
    for says in [
        "(TLS; HTTP/2 and HTTP/1.1 by ALPN)",
        "sessions  Redis at redis://[credentials redacted]@10.0.0.7:6379/1",
        "log       JSON lines",
        "tracing   OTLP/HTTP to http://otel:4318/v1/traces as minigate, sampling 0.25 of new traces (a parent's decision is followed)",
        "audit     JSON lines on stderr (target minigate::audit), and the stream audit:events of the session store's Redis (MAXLEN ~ 5000)",
    ] {
        assert!(text.contains(says), "{says:?} not in:\n{text}");
    }
    assert!(!text.contains("hunter2"), "{text}");
    // serve with neither --config nor --dev explains itself.
    let (code, _, err) = run_cli(&["serve"]);
    assert_eq!(code, 2);
    assert!(err.contains("--config") && err.contains("--dev"), "{err}");
}

#[test]
fn help_exists_on_every_command() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["keys", "--help"],
        &["keys", "init", "--help"],
        &["keys", "rotate", "--help"],
        &["keys", "list", "--help"],
        &["keys", "prune", "--help"],
        &["keys", "jwks", "--help"],
        &["config", "check", "--help"],
    ] {
        let (code, out, _) = run_cli(args);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage: minigate"), "{args:?}: {out}");
    }
}

/// Starts `minigate serve --dev` on a free port and returns the child with
/// its printed walkthrough; stderr goes to `log`.
fn dev_mode(log: &std::path::Path, more: &[&str]) -> (std::process::Child, String) {
    let mut child = minigate()
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .args(more)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut script = String::new();
    let mut inside = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        match line.as_str() {
            "### walkthrough" => inside = true,
            "### end" => break,
            _ if inside => {
                script.push_str(&line);
                script.push('\n');
            }
            _ => {}
        }
    }
    // Keep reading, as a terminal would, until the gateway exits.
    std::thread::spawn(move || lines.for_each(drop));
    (child, script)
}

#[test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
fn dev_mode_walkthrough_works_as_pasted() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("stderr.log");
    let (mut child, script) = dev_mode(&log, &[]);
    assert!(script.contains("/auth/login"), "no walkthrough printed");
    // Pasted twice in a row, as a newcomer does: the second run must not
    // rejoin the session the first one revoked.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            Command::new("bash")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap()
        })
        .collect();
    child.kill().unwrap();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&log).unwrap();
    for out in &runs {
        walkthrough_worked(out, &stderr);
    }
}

/// What one run of the dev walkthrough must print.
fn walkthrough_worked(out: &std::process::Output, stderr: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // login answered with tokens, the protected call reached the demo
    // upstream with an identity, the call without a token was refused, the
    // refresh gave new tokens, and the JWKS was served.
    // Login and the refresh; the phone number mints no token.
    assert_eq!(text.matches("\"access_token\"").count(), 2, "{text}");
    assert!(text.contains("\"phone_number\":\"+86 138"), "{text}");
    assert!(text.contains("\"authenticated\": true"), "{text}");
    assert!(text.contains("\"x-auth-openid\": \"dev-openid-"), "{text}");
    assert!(text.contains("HTTP/1.1 401"), "{text}");
    assert!(text.contains("\"keys\":[{"), "{text}");
    // The spent refresh token, presented again, revoked the session.
    assert!(text.contains("refresh token already used"), "{text}");
    // Debug logs of a whole session carry no secret, session_key or token.
    assert!(
        !stderr.contains("dev-mode-app-secret"),
        "app secret in logs"
    );
    assert!(!stderr.contains("session_key"), "session_key in logs");
    assert!(!stderr.contains("eyJ"), "a token in logs");
    assert!(!stderr.contains("js_code"), "the request URL in logs");
}

#[test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
fn dev_mode_logs_in_at_a_stand_in_of_each_platform() {
    // Every mini-program platform of the registry but the default one, so
    // a new platform is tried here too. wechat_component: the stand-in
    // pushes its ticket at start, and the dev mini-program logs in through
    // the third-party platform.
    let runs: Vec<_> = minigate::signin::providers::Platform::all()
        .filter(|p| !p.is_web() && p.name() != "wechat")
        .map(|p| p.name())
        .map(|platform| {
            std::thread::spawn(move || {
                let tmp = tempfile::tempdir().unwrap();
                let log = tmp.path().join("stderr.log");
                let (mut child, script) = dev_mode(&log, &["--platform", platform]);
                let out = Command::new("bash")
                    .arg("-c")
                    .arg(&script)
                    .output()
                    .unwrap();
                child.kill().unwrap();
                let _ = child.wait();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                (platform, text, std::fs::read_to_string(&log).unwrap())
            })
        })
        .collect();
    for run in runs {
        let (platform, text, stderr) = run.join().unwrap();
        assert_eq!(
            text.matches("\"access_token\"").count(),
            2,
            "{platform}: {text}\n{stderr}"
        );
        assert!(
            text.contains(&format!("\"x-auth-platform\": \"{platform}\"")),
            "{platform}: {text}"
        );
        assert!(text.contains("\"x-auth-openid\": \"dev-openid-"), "{text}");
        assert_eq!(
            text.contains("\"x-auth-tenant\": \"dev-tenant\""),
            platform == "feishu",
            "{platform}: {text}"
        );
        assert!(text.contains("HTTP/1.1 401"), "{text}");
        assert!(!stderr.contains("dev-mode-app-secret") && !stderr.contains("eyJ"));
        // Nor a component_verify_ticket or component_access_token.
        assert!(
            !stderr.contains("ticket@@@") && !stderr.contains("CAT-"),
            "{stderr}"
        );
        assert!(!stderr.contains("code exchange failed"), "{stderr}");
    }
    // An unknown platform, or --platform without --dev, is refused.
    let (code, _, err) = run_cli(&["serve", "--dev", "--platform", "line"]);
    assert_eq!(code, 2);
    assert!(err.contains("wechat, qq, douyin, baidu, alipay"), "{err}");
    let (code, _, err) = run_cli(&["serve", "--platform", "qq"]);
    assert_eq!(code, 2);
    assert!(err.contains("--dev"), "{err}");
}

#[tokio::test]
async fn logs_carry_no_secrets_even_at_trace_level() {
    let wechat = wechat().await;
    let upstream = upstream().await;
    let gw = spawn_binary(wechat.addr, upstream.addr, "trace").await;
    let http = client();
    let post = |path: &'static str, body: String| {
        let http = http.clone();
        let url = gw.url.clone();
        async move {
            http.post(format!("{url}{path}"))
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let res = post("/auth/login", r#"{"code":"log-check"}"#.into()).await;
    let tokens: Tokens = res.json().await.unwrap();
    for c in ["err:40029", "notjson", "slow", "err:45011"] {
        post("/auth/login", format!(r#"{{"code":"{c}"}}"#)).await;
    }
    post(
        "/auth/refresh",
        format!(r#"{{"refresh_token":"{}"}}"#, tokens.refresh_token),
    )
    .await;
    let url = gw.url.clone();
    http.get(format!("{url}/api/x"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    http.get(format!("{url}/api/x"))
        .bearer_auth("bad.token.here")
        .send()
        .await
        .unwrap();
    let logs = gw.stop();
    assert!(
        logs.contains("code exchange failed"),
        "expected failure lines in: {logs}"
    );
    for secret in [
        SECRET,
        SESSION_KEY,
        "js_code",
        &tokens.access_token[..40],
        &tokens.refresh_token[..40],
    ] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
    // Not even a token's signature part.
    let sig = tokens.access_token.rsplit('.').next().unwrap();
    assert!(!logs.contains(sig));
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id_on_each() {
    let wechat = wechat().await;
    let upstream = upstream().await;
    let setup = Setup::default().log(Log::default().format("json"));
    let gw = spawn_binary_with(&setup, wechat.addr, upstream.addr, "info").await;
    let http = client();
    let login = |code: &'static str, id: &'static str| {
        http.post(format!("{}/auth/login", gw.url))
            .header("x-request-id", id)
            .body(format!(r#"{{"code":"{code}"}}"#))
            .send()
    };
    let tokens: Tokens = login("json-log", "json-login-1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A failed exchange logs a warning inside the request, then its access line.
    login("err:40029", "json-login-2").await.unwrap();
    http.get(format!("{}/api/x", gw.url))
        .bearer_auth(&tokens.access_token)
        .header("x-request-id", "json-call-1")
        .send()
        .await
        .unwrap();
    let logs = gw.stop();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |id: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["span"]["id"] == id).collect()
    };
    let call = of("json-call-1");
    let access = call
        .iter()
        .find(|l| l["target"] == "minigate::access")
        .unwrap_or_else(|| panic!("no access line for json-call-1 in {logs}"));
    assert_eq!(access["status"], 200);
    assert_eq!(access["route"], "/api/");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["sub"], openid_for("json-log").as_str());
    let failed = of("json-login-2");
    assert!(
        failed.iter().any(|l| l["level"] == "WARN"),
        "the exchange failure is not tagged with its request id: {logs}"
    );
    assert!(failed
        .iter()
        .any(|l| l["target"] == "minigate::access" && l["status"] == 400));
}

#[test]
fn config_check_shows_no_url_credentials() {
    let keys = key_dir(jwks::Alg::ES256);
    let text = config_text(
        &Setup::default()
            .route(Route::public("/creds/").upstream_url("http://svc:routepass@127.0.0.1:9"))
            .sessions(Sessions::default().redis_url("redis://:redispass@127.0.0.1:6379/0".into())),
        keys.path(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:0",
    )
    .replace(
        "base_url = \"http://127.0.0.1:1\"",
        "base_url = \"https://user:hunter2@api.example.com\"",
    );
    assert!(text.contains("hunter2"));
    let cfg = keys.path().join("minigate.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .env("TEST_WECHAT_SECRET", SECRET)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains("api.example.com"), "{all}");
    for secret in ["hunter2", "routepass", "redispass", SECRET] {
        assert!(!all.contains(secret), "{secret} in: {all}");
    }
}
