//! The container image, run as a user runs it and as `deploy/base`'s
//! Deployment runs it: `deploy/image/test.sh` builds the image (the
//! Dockerfile's runtime stage) and runs this with `MINIGATE_IMAGE` set.
//! `./test` skips it: it needs that image and podman.
//!
//! The container shares the host's network (the stand-ins and Redis listen
//! on loopback), so the gateway listens on a free loopback port instead of
//! the Deployment's 8080; everything else is the Deployment's: the config
//! at `/etc/minigate/minigate.toml` (read-only), the key set as a Secret
//! volume at `/etc/minigate/keys` (read-only, files 0440 of group 65532),
//! uid and gid 65532, a read-only root file system, no capabilities, no
//! privilege escalation, the image's own command.

use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{client, free_port, login_at, ready, upstream, wechat, Redis, APPID, SECRET};

/// The image under test.
fn image() -> String {
    std::env::var("MINIGATE_IMAGE")
        .expect("MINIGATE_IMAGE names the image: run deploy/image/test.sh, which builds it")
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman").args(args).output().unwrap()
}

/// `podman args`, which must succeed: its stdout.
fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the container and the volume it names, however the test ends.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            let _ = Command::new("podman").args(args).output();
        }
    }
}

/// The shipped edge config (`deploy/base/minigate.toml`) pointed at this
/// test's neighbours: the WeChat stand-in, Redis, the upstream.
fn edge_config(listen: &str, wechat: &str, redis: &str, upstream: &str) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/minigate.toml"),
    )
    .unwrap();
    let replaced = [
        ("0.0.0.0:8080", listen),
        ("redis://minigate-redis:6379/0", redis),
        ("wx0123456789abcdef", APPID),
        (
            "platform = \"wechat\"",
            &format!("platform = \"wechat\"\nbase_url = \"http://{wechat}\""),
        ),
        ("http://orders.default.svc.cluster.local:8080", upstream),
        ("http://catalog.default.svc.cluster.local:8080", upstream),
    ];
    replaced.iter().fold(shipped, |text, (from, to)| {
        assert!(
            text.contains(from),
            "deploy/base/minigate.toml has no {from}"
        );
        text.replace(from, to)
    })
}

#[tokio::test]
#[ignore = "needs podman and the image: deploy/image/test.sh builds it and runs this"]
async fn the_image_runs_as_the_deployment_runs_it() {
    let image = image();
    let name = format!("minigate-image-test-{}", std::process::id());
    let volume = format!("{name}-keys");
    let _cleanup = Cleanup(vec![
        vec![
            "rm".into(),
            "-f".into(),
            "-t".into(),
            "0".into(),
            name.clone(),
        ],
        vec!["volume".into(), "rm".into(), "-f".into(), volume.clone()],
    ]);

    // `--version`, the image's entrypoint being the binary.
    let version = podman_ok(&["run", "--rm", &image, "--version"]);
    assert_eq!(
        version.trim(),
        format!("minigate {}", env!("CARGO_PKG_VERSION"))
    );

    // `keys init` into a volume, as the image's user (`:U` hands the new
    // volume to it).
    podman_ok(&["volume", "create", &volume]);
    let init = podman_ok(&[
        "run",
        "--rm",
        "--read-only",
        "-v",
        &format!("{volume}:/keys:U"),
        &image,
        "keys",
        "init",
        "--dir",
        "/keys",
    ]);
    assert!(init.contains("created /keys/keyset.json"), "{init}");
    let made = podman_ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", &volume]);
    let keyset = std::fs::read(Path::new(made.trim()).join("keyset.json")).unwrap();

    // The Secret volume the kubelet makes of it: a timestamped folder, the
    // ..data link, the file link; root's files, mode 0440, group 65532.
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("keys");
    let data = secret.join("..2026_12_06_00_00_00.1");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("keyset.json"), &keyset).unwrap();
    std::os::unix::fs::chown(data.join("keyset.json"), Some(0), Some(65532)).unwrap();
    std::fs::set_permissions(
        data.join("keyset.json"),
        std::fs::Permissions::from_mode(0o440),
    )
    .unwrap();
    symlink("..2026_12_06_00_00_00.1", secret.join("..data")).unwrap();
    symlink("..data/keyset.json", secret.join("keyset.json")).unwrap();
    for dir in [tmp.path(), &secret, &data] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let wechat = wechat().await;
    let up = upstream().await;
    let redis = Redis::start().await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let config = tmp.path().join("minigate.toml");
    std::fs::write(
        &config,
        edge_config(
            &listen,
            &wechat.addr.to_string(),
            &redis.url(),
            &format!("http://{}", up.addr),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    // `serve`, as the Deployment runs it.
    podman_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--user",
        "65532:65532",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-e",
        "RUST_LOG=info",
        "-e",
        &format!("WECHAT_APP_SECRET={SECRET}"),
        "-v",
        &format!("{}:/etc/minigate/minigate.toml:ro", config.display()),
        "-v",
        &format!("{}:/etc/minigate/keys:ro", secret.display()),
        &image,
        "serve",
        "--config",
        "/etc/minigate/minigate.toml",
    ]);
    let logs = || {
        let out = podman(&["logs", &name]);
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
    };

    // The probes the Deployment uses: /healthz (liveness), /readyz
    // (readiness), on the container's port.
    let http = client();
    let base = format!("http://{listen}");
    let mut up_at = None;
    for _ in 0..400 {
        if let Ok(res) = http.get(format!("{base}/healthz")).send().await {
            up_at = Some(res.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        up_at.map(|s| s.as_u16()),
        Some(200),
        "the container never answered: {}",
        logs()
    );
    let readyz = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 200);
    let doc = ready(&http, &base).await;
    assert_eq!(doc["status"], "ready", "{doc}");
    assert_eq!(doc["sessions"], "redis", "{doc}");
    let kid = doc["current_kid"].as_str().unwrap().to_owned();
    assert!(String::from_utf8_lossy(&keyset).contains(&kid));

    // A login through the WeChat stand-in (a session in Redis), and a
    // proxied request with the access token.
    let tokens = login_at(&http, &base, "image-user-code").await;
    let res = http
        .get(format!("{base}/api/orders/42"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", logs());
    let seen = up.last();
    assert_eq!(seen.uri, "/api/orders/42");
    assert_eq!(
        seen.headers["x-auth-openid"],
        crate::support::openid_for("image-user-code").as_str()
    );

    // SIGTERM while a request is in flight: it completes, and the process
    // exits before the Deployment's grace period, less its preStop
    // sleep, is out (25 s; the config's shutdown_timeout is 20 s).
    let before = up.count();
    let slow = {
        let (http, url, token) = (
            http.clone(),
            format!("{base}/api/orders/slow"),
            tokens.access_token.clone(),
        );
        tokio::spawn(async move { http.get(url).bearer_auth(token).send().await })
    };
    let t0 = Instant::now();
    while up.count() == before {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    podman_ok(&["kill", "--signal", "TERM", &name]);
    let code = tokio::task::spawn_blocking({
        let name = name.clone();
        move || podman_ok(&["wait", &name])
    });
    let res = slow.await.unwrap().expect("the in-flight request failed");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "{\"seen\":true,\"body_len\":0}");
    let code = tokio::time::timeout(Duration::from_secs(25), code)
        .await
        .expect("the container did not exit within 25 s of SIGTERM")
        .unwrap();
    assert_eq!(code.trim(), "0", "{}", logs());
    let logs = logs();
    assert!(!logs.contains(SECRET), "{logs}");
    assert!(!logs.contains(&tokens.access_token), "{logs}");
}
