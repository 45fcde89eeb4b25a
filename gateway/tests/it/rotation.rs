//! Key lifecycle against real gateway processes: rotation under load with
//! zero failures, replicas agreeing, pruning, refused broken sets, SIGHUP,
//! Kubernetes' `..data` symlink swap, and concurrent CLI writers.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::time::Instant;

use serde_json::Value;

use crate::support::*;

fn shared_keys() -> tempfile::TempDir {
    key_dir(jwks::Alg::ES256)
}

fn setup(dir: &Path, reload: &'static str) -> Setup {
    Setup {
        keys_dir: Some(dir.to_path_buf()),
        reload_interval: reload,
        ..Setup::default()
    }
}

#[tokio::test]
async fn rotation_under_load_fails_nothing_and_replicas_agree() {
    let wechat = wechat().await;
    let upstream = upstream().await;
    let keys = shared_keys();
    let dir = keys.path().to_str().unwrap().to_owned();
    // Reloads only on SIGHUP, so each step below is deliberate.
    let a = spawn_binary_with(
        &setup(keys.path(), "1h"),
        wechat.addr,
        upstream.addr,
        "info",
    )
    .await;
    let b = spawn_binary_with(
        &setup(keys.path(), "1h"),
        wechat.addr,
        upstream.addr,
        "info",
    )
    .await;
    let http = client();
    let before = login_at(&http, &a.url, "before").await;
    let mut refresh_token = before.refresh_token.clone();

    let tokens = Arc::new(std::sync::Mutex::new(vec![before.access_token.clone()]));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (tokens, failures, done, stop) =
            (tokens.clone(), failures.clone(), done.clone(), stop.clone());
        let urls = [a.url.clone(), b.url.clone()];
        let http = http.clone();
        load.push(tokio::spawn(async move {
            let mut i = worker;
            // Bounded: stops when told, or after 20,000 requests.
            while !stop.load(Ordering::Relaxed) && i < 20_000 {
                let token = {
                    let t = tokens.lock().unwrap();
                    t[i % t.len()].clone()
                };
                let url = &urls[i % 2];
                let res = http
                    .get(format!("{url}/api/x"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                if res.status() != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for round in 0..3 {
        cli_ok(&["keys", "rotate", "--dir", &dir]);
        // Only A reloads at first: it signs with the promoted key, which B
        // already publishes and verifies as `next`.
        a.hangup();
        let current = jwks::KeySet::load(keys.path())
            .unwrap()
            .current()
            .kid()
            .to_owned();
        eventually(
            "A signs with the new key",
            Duration::from_secs(10),
            || async { ready(&http, &a.url).await["current_kid"] == current.as_str() },
        )
        .await;
        let fresh = login_at(&http, &a.url, &format!("round-{round}")).await;
        assert_eq!(
            http.get(format!("{}/api/x", b.url))
                .bearer_auth(&fresh.access_token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        tokens.lock().unwrap().push(fresh.access_token.clone());
        b.hangup();
        eventually("B reloads", Duration::from_secs(10), || async {
            ready(&http, &b.url).await["current_kid"] == current.as_str()
        })
        .await;
        // A refresh token signed before the rotation (by a key now retired)
        // still redeems, at A, whose in-process store holds its session.
        let res = http
            .post(format!("{}/auth/refresh", a.url))
            .body(format!("{{\"refresh_token\":\"{refresh_token}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let next: serde_json::Value = res.json().await.unwrap();
        refresh_token = next["refresh_token"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let (done, failures) = (
        done.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    assert!(done > 100, "only {done} requests ran");
    assert_eq!(
        failures, 0,
        "{failures} of {done} requests failed across rotations"
    );
    assert_eq!(kids(&http, &a.url).await, kids(&http, &b.url).await);
    assert_eq!(kids(&http, &a.url).await.len(), 5);
    a.stop();
    b.stop();
}

#[tokio::test]
async fn tokens_of_a_pruned_key_are_refused_after_the_next_reload() {
    let wechat = wechat().await;
    let upstream = upstream().await;
    let keys = shared_keys();
    let dir = keys.path().to_str().unwrap().to_owned();
    let gw = spawn_binary_with(
        &setup(keys.path(), "1h"),
        wechat.addr,
        upstream.addr,
        "info",
    )
    .await;
    let http = client();
    let old = login_at(&http, &gw.url, "old").await;
    let get = |t: String| {
        let (http, url) = (http.clone(), gw.url.clone());
        async move {
            http.get(format!("{url}/api/x"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(get(old.access_token.clone()).await.status(), 200);
    cli_ok(&["keys", "rotate", "--dir", &dir]);
    gw.hangup();
    eventually("reload", Duration::from_secs(10), || async {
        ready(&http, &gw.url).await["reloads"] == 1
    })
    .await;
    // Retired, not pruned: still good (and it was cached before).
    assert_eq!(get(old.access_token.clone()).await.status(), 200);
    std::thread::sleep(Duration::from_millis(1100));
    let out = cli_ok(&["keys", "prune", "--dir", &dir, "--older-than", "0s"]);
    assert!(out.contains("pruned 1"), "{out}");
    // Until the gateway reloads it keeps its set; then the token is refused.
    assert_eq!(get(old.access_token.clone()).await.status(), 200);
    gw.hangup();
    eventually("reload", Duration::from_secs(10), || async {
        ready(&http, &gw.url).await["reloads"] == 2
    })
    .await;
    let res = get(old.access_token.clone()).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("unknown signing key"));
    let res = http
        .post(format!("{}/auth/refresh", gw.url))
        .body(format!("{{\"refresh_token\":\"{}\"}}", old.refresh_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    gw.stop();
}

#[tokio::test]
async fn a_broken_key_set_changes_nothing_the_gateway_serves() {
    use std::os::unix::fs::PermissionsExt as _;
    let wechat = wechat().await;
    let upstream = upstream().await;
    let keys = shared_keys();
    let file = keys.path().join("keyset.json");
    let good = std::fs::read(&file).unwrap();
    let gw = spawn_binary_with(
        &setup(keys.path(), "1h"),
        wechat.addr,
        upstream.addr,
        "info",
    )
    .await;
    let http = client();
    let t = login_at(&http, &gw.url, "steady").await;
    let jwks_before = kids(&http, &gw.url).await;
    let write = |bytes: &[u8], mode: u32| {
        std::fs::write(&file, bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let mut rotated = jwks::KeySet::from_json(&good).unwrap();
    rotated.rotate(std::time::SystemTime::now()).unwrap();
    let rotated = rotated.to_json().into_bytes();
    type Breakage<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let breakages: Vec<Breakage> = vec![
        (
            "garbage",
            Box::new(|| write(b"\x00\xffnot json at all", 0o600)),
        ),
        (
            "truncated",
            Box::new(|| write(&good[..good.len() / 2], 0o600)),
        ),
        ("empty file", Box::new(|| write(b"", 0o600))),
        ("readable by others", Box::new(|| write(&rotated, 0o644))),
        (
            "no current key",
            Box::new(|| {
                write(
                    &String::from_utf8_lossy(&good)
                        .replace("\"current\"", "\"retired\"")
                        .into_bytes(),
                    0o600,
                )
            }),
        ),
        (
            "empty directory",
            Box::new(|| std::fs::remove_file(&file).unwrap()),
        ),
    ];
    for (n, (what, breakage)) in breakages.iter().enumerate() {
        breakage();
        gw.hangup();
        eventually(what, Duration::from_secs(10), || async {
            ready(&http, &gw.url).await["reload_failures"] == (n as u64 + 1)
        })
        .await;
        assert_eq!(
            kids(&http, &gw.url).await,
            jwks_before,
            "{what}: JWKS changed"
        );
        assert_eq!(
            http.get(format!("{}/api/x", gw.url))
                .bearer_auth(&t.access_token)
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{what}"
        );
        let fresh = login_at(&http, &gw.url, what).await;
        assert_eq!(
            http.get(format!("{}/api/x", gw.url))
                .bearer_auth(&fresh.access_token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // The same breakage seen again is not logged or counted again.
        gw.hangup();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(ready(&http, &gw.url).await["reload_failures"], n as u64 + 1);
    }
    let logs = gw.logs();
    assert_eq!(
        logs.matches("key set reload refused").count(),
        breakages.len(),
        "{logs}"
    );
    assert!(!logs.contains("private_key"));
    // A good set is taken again.
    write(&rotated, 0o600);
    gw.hangup();
    eventually("recovery", Duration::from_secs(10), || async {
        kids(&http, &gw.url).await.len() == 3
    })
    .await;
    let r = ready(&http, &gw.url).await;
    assert_eq!(r["last_reload_error"], serde_json::Value::Null);
    gw.stop();
}

/// Kubernetes updates a Secret volume by writing a new timestamped folder and
/// swapping the `..data` symlink; `keyset.json` is a link through `..data`.
#[tokio::test]
async fn a_secret_volume_swap_is_picked_up_by_the_interval_reload() {
    use std::os::unix::fs::symlink;
    let wechat = wechat().await;
    let upstream = upstream().await;
    let volume = tempfile::tempdir().unwrap();
    let v = volume.path();
    let first = jwks::KeySet::generate(jwks::Alg::ES256, std::time::SystemTime::now()).unwrap();
    first.save(&v.join("..2026_11_24_10_00_00.1")).unwrap();
    symlink("..2026_11_24_10_00_00.1", v.join("..data")).unwrap();
    symlink("..data/keyset.json", v.join("keyset.json")).unwrap();
    let gw = spawn_binary_with(&setup(v, "1s"), wechat.addr, upstream.addr, "info").await;
    let http = client();
    let t = login_at(&http, &gw.url, "k8s").await;
    assert_eq!(kids(&http, &gw.url).await.len(), 2);

    let mut second = jwks::KeySet::load(&v.join("..2026_11_24_10_00_00.1")).unwrap();
    second.rotate(std::time::SystemTime::now()).unwrap();
    second.save(&v.join("..2026_11_24_10_05_00.2")).unwrap();
    symlink("..2026_11_24_10_05_00.2", v.join("..data_tmp")).unwrap();
    std::fs::rename(v.join("..data_tmp"), v.join("..data")).unwrap();
    std::fs::remove_dir_all(v.join("..2026_11_24_10_00_00.1")).unwrap();

    eventually(
        "the interval reload sees the swap",
        Duration::from_secs(10),
        || async { kids(&http, &gw.url).await.len() == 3 },
    )
    .await;
    assert_eq!(
        http.get(format!("{}/api/x", gw.url))
            .bearer_auth(&t.access_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = ready(&http, &gw.url).await;
    assert_eq!(r["current_kid"], second.current().kid());
    assert_eq!(r["reload_failures"], 0);
    gw.stop();
}

#[test]
fn concurrent_cli_writers_serialize_on_the_lock() {
    let keys = shared_keys();
    let dir = keys.path().to_str().unwrap().to_owned();
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
                .args(["keys", "rotate", "--dir", &dir])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    // Every rotation landed: none read a set another was still writing.
    let set = jwks::KeySet::load(keys.path()).unwrap();
    assert_eq!(set.entries().len(), 2 + 8);
    let retired = set
        .entries()
        .iter()
        .filter(|e| e.state == jwks::KeyState::Retired)
        .count();
    assert_eq!(retired, 8);
    assert!(!std::fs::read_dir(keys.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp")));
}

#[tokio::test]
async fn readyz_reports_a_broken_key_file_without_its_path_or_contents() {
    use std::os::unix::fs::PermissionsExt as _;
    let keys = key_dir(jwks::Alg::ES256);
    let file = keys.path().join("keyset.json");
    let good = std::fs::read_to_string(&file).unwrap();
    let private_key = serde_json::from_str::<Value>(&good).unwrap()["keys"][0]["private_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let gw = start(Setup {
        keys_dir: Some(keys.path().to_path_buf()),
        reload_interval: "200ms",
        ..Setup::default()
    })
    .await;
    let write = |text: &str, mode: u32| {
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let marker = "FILE-CONTENTS-MARKER";
    // What is written, and a word of the reason readiness must give.
    type Breakage<'a> = (Box<dyn Fn() + 'a>, &'static str);
    let breakages: Vec<Breakage> = vec![
        (
            Box::new(|| write(&format!("{marker} {private_key}"), 0o600)),
            "not a key set",
        ),
        (
            Box::new(|| write(&good.replace("current", "currnt"), 0o644)),
            "accessible to others",
        ),
        (
            Box::new(|| write(&good.replace(&private_key, &private_key[..40]), 0o600)),
            "key 0",
        ),
        (
            // A hand edit gone wrong: the key pasted into another field.
            Box::new(|| {
                write(
                    &good.replacen("\"current\"", &format!("\"{private_key}\""), 1),
                    0o600,
                )
            }),
            "not a key set",
        ),
        (
            Box::new(|| std::fs::remove_file(&file).unwrap()),
            "No such file",
        ),
    ];
    let dir = keys.path().display().to_string();
    for (n, (breakage, reason)) in breakages.iter().enumerate() {
        breakage();
        let deadline = Instant::now() + Duration::from_secs(5);
        let ready: Value = loop {
            let ready: Value = gw.get("/readyz", None).await.json().await.unwrap();
            if ready["reload_failures"] == n as u64 + 1 {
                break ready;
            }
            assert!(Instant::now() < deadline, "breakage {n} not seen: {ready}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let error = ready["last_reload_error"].as_str().unwrap();
        assert!(error.contains(reason), "{reason:?} not in {error:?}");
        assert!(
            !error.contains(&dir) && !error.contains("keyset.json"),
            "{error}"
        );
        assert!(!error.contains(marker), "{error}");
        assert!(!error.contains(&private_key[..16]), "{error}");
        assert_eq!(ready["status"], "ready");
    }
}
