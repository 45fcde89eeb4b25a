//! The real `minigate` binary, spawned as a child process.

use std::net::SocketAddr;
use std::time::Duration;

use super::{client, config_text, free_port, key_dir, Setup};

/// The real `minigate` binary serving a config for these neighbours.
pub struct Process {
    pub child: std::process::Child,
    pub url: String,
    pub keys: tempfile::TempDir,
}

impl Process {
    /// Sends SIGHUP.
    pub fn hangup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The value of `series` in its `/metrics` once `done` holds of it
    /// (asked every 25 ms for up to 10 s); the last value seen.
    pub async fn series_once(&self, series: &str, done: impl Fn(f64) -> bool) -> f64 {
        let http = client();
        let mut value = f64::NAN;
        for _ in 0..400 {
            let res = http.get(format!("{}/metrics", self.url)).send().await;
            let text = res.unwrap().text().await.unwrap();
            value = super::series(&text, series);
            if done(value) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        value
    }

    /// What it wrote to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.keys.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `within` for the exit; returns the exit
    /// code (None if it did not exit in time, and was then killed) and the
    /// logs.
    pub fn terminate(mut self, within: Duration) -> (Option<i32>, String) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + within;
        let code = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st.code();
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (code, self.stop())
    }

    /// Kills the process and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(self.keys.path().join("stderr.log")).unwrap_or_default()
    }
}

/// Starts the binary with `RUST_LOG=log` and waits until it answers.
pub async fn spawn_binary(wechat: SocketAddr, upstream: SocketAddr, log: &str) -> Process {
    spawn_binary_with(&Setup::default(), wechat, upstream, log).await
}

/// Starts the binary for `setup` (its own key set unless `keys_dir` is set).
pub async fn spawn_binary_with(
    setup: &Setup,
    wechat: SocketAddr,
    upstream: SocketAddr,
    log: &str,
) -> Process {
    let keys = key_dir(setup.alg);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cfg = keys.path().join("minigate.toml");
    let dir = setup
        .keys_dir
        .clone()
        .unwrap_or_else(|| keys.path().to_path_buf());
    std::fs::write(&cfg, config_text(setup, &dir, wechat, upstream, &listen)).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .envs(super::TEST_SECRETS)
        .env("RUST_LOG", log)
        .stdout(std::process::Stdio::null())
        // A file, not a pipe: a full pipe would block the gateway's logging.
        .stderr(std::fs::File::create(keys.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let http = client();
    for _ in 0..200 {
        if http.get(format!("{url}/healthz")).send().await.is_ok() {
            return Process { child, url, keys };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the gateway did not start: {}",
        Process { child, url, keys }.stop()
    );
}

/// Runs the `minigate` binary with `args` (and no `MINIGATE_CONFIG` from
/// the environment): its exit code, stdout and stderr.
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(args)
        .env_remove("MINIGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run_cli`], failing the test unless the command succeeds; its stdout.
pub fn cli_ok(args: &[&str]) -> String {
    let (code, out, err) = run_cli(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// Runs the `minigate` binary with `args` as the admin commands are run:
/// `token` as `MINIGATE_ADMIN_TOKEN` (none: the variable removed), no
/// `MINIGATE_CONFIG`; its exit code, stdout and stderr.
pub async fn admin_cli(args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_minigate"));
    cmd.args(args).env_remove("MINIGATE_CONFIG");
    match token {
        Some(t) => cmd.env("MINIGATE_ADMIN_TOKEN", t),
        None => cmd.env_remove("MINIGATE_ADMIN_TOKEN"),
    };
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
