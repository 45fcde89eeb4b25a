//! Test harness: the real gateway on a real port, with a stand-in WeChat that
//! speaks `jscode2session`'s wire format and a real hyper upstream that
//! reports what reached it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use minigate::config::Config;
use minigate::server::Running;

pub const APPID: &str = "wx0000000000000001";
pub const APPID2: &str = "wx0000000000000002";
pub const SECRET: &str = "APP-SECRET-must-not-leak-7f3a";
pub const SESSION_KEY: &str = "SESSIONKEY-must-not-leak-9c1d";

/// Serves `f` on a fresh loopback port; returns the address.
pub async fn serve<F, Fut, B>(f: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_counting(f, Arc::default()).await
}

/// Like [`serve`], counting accepted connections in `accepted`.
pub async fn serve_counting<F, Fut, B>(
    f: F,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let f = f.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(f(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn plain(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    res
}

/// The stand-in WeChat. Codes choose the answer:
/// `err:N` errcode N; `slow` answers after 3 s; `notjson`; `noopenid`;
/// `http500`; `badopenid`; `union:X` adds unionid X; anything else logs in
/// with an openid derived from the code.
#[derive(Clone)]
pub struct WeChat {
    pub addr: SocketAddr,
    /// Every raw query string received.
    pub queries: Arc<Mutex<Vec<String>>>,
}

pub fn openid_for(code: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    format!(
        "openid-{}",
        d.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

pub async fn wechat() -> WeChat {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let addr = serve(move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            let query = req.uri().query().unwrap_or("").to_owned();
            seen.lock().unwrap().push(query.clone());
            let url = reqwest::Url::parse(&format!("http://x/?{query}")).unwrap();
            let param = |n: &str| {
                url.query_pairs()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.into_owned())
            };
            let json = |v: serde_json::Value| plain(StatusCode::OK, "text/plain", v.to_string());
            if req.method() != http::Method::GET || req.uri().path() != "/sns/jscode2session" {
                return plain(StatusCode::NOT_FOUND, "text/html", "<html>404</html>");
            }
            let app_ok = matches!(param("appid").as_deref(), Some(APPID | APPID2));
            if !app_ok
                || param("secret").as_deref() != Some(SECRET)
                || param("grant_type").as_deref() != Some("authorization_code")
            {
                return json(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
            }
            let code = param("js_code").unwrap_or_default();
            let ok = |unionid: Option<&str>| {
                let mut v =
                    serde_json::json!({"openid": openid_for(&code), "session_key": SESSION_KEY});
                if let Some(u) = unionid {
                    v["unionid"] = u.into();
                }
                json(v)
            };
            match code.as_str() {
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    ok(None)
                }
                "notjson" => plain(StatusCode::OK, "text/html", "<html>system busy</html>"),
                "noopenid" => json(serde_json::json!({"session_key": SESSION_KEY})),
                "http500" => plain(StatusCode::INTERNAL_SERVER_ERROR, "text/html", "oops"),
                "badopenid" => {
                    json(serde_json::json!({"openid": "bad id\u{7f}", "session_key": SESSION_KEY}))
                }
                c if c.starts_with("err:") => {
                    let n: i64 = c[4..].parse().unwrap();
                    json(serde_json::json!({"errcode": n, "errmsg": "stand-in error"}))
                }
                c if c.starts_with("union:") => ok(Some(&c[6..])),
                _ => ok(None),
            }
        }
    })
    .await;
    WeChat { addr, queries }
}

/// What reached the upstream.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A body of `left` zero bytes in 64 KiB chunks, made as it is read.
pub struct Zeros {
    pub left: usize,
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 65536] = [0; 65536];
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK.len());
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }
}

/// The upstream: records each request and answers `{"seen": true}`, except
/// `/…/big?mib=N` (N MiB streamed), `/…/slow` (3 s), `/…/status/NNN`.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Bytes received by `/…/sink`, which reads bodies without keeping them.
    pub sunk: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("nothing reached the upstream")
    }
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub async fn upstream() -> Upstream {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sunk = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let log = seen.clone();
    let sink = sunk.clone();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let addr = serve_counting(
        move |req: Request<Incoming>| {
            let log = log.clone();
            let sink = sink.clone();
            async move {
                let (parts, mut body) = req.into_parts();
                let path = parts.uri.path().to_owned();
                if path.ends_with("/sink") {
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Some(d) = frame.data_ref() {
                            sink.fetch_add(d.len(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    return Response::new(Either::Right(Full::new(Bytes::from_static(b"sunk"))));
                }
                if path.ends_with("/big") {
                    let mib: usize = parts
                        .uri
                        .query()
                        .and_then(|q| q.strip_prefix("mib="))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1);
                    return Response::new(Either::Left(Zeros { left: mib << 20 }));
                }
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                log.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers.clone(),
                    body: body.clone(),
                });
                if path.ends_with("/slow") {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                let status = path
                    .rsplit_once("/status/")
                    .and_then(|(_, s)| s.parse().ok())
                    .unwrap_or(200);
                let mut res = Response::new(Either::Right(Full::new(Bytes::from(format!(
                    "{{\"seen\":true,\"body_len\":{}}}",
                    body.len()
                )))));
                *res.status_mut() = StatusCode::from_u16(status).unwrap();
                res.headers_mut()
                    .insert("x-upstream", "yes".parse().unwrap());
                res.headers_mut()
                    .insert("connection", "keep-alive, x-hop".parse().unwrap());
                res.headers_mut()
                    .insert("x-hop", "must-not-pass".parse().unwrap());
                res
            }
        },
        connections.clone(),
    )
    .await;
    Upstream {
        addr,
        seen,
        sunk,
        connections,
    }
}

/// How to set a gateway up.
#[derive(Clone)]
pub struct Setup {
    pub issuer: String,
    pub audience: String,
    pub alg: jwks::Alg,
    pub access_ttl: &'static str,
    pub wechat_timeout: &'static str,
    pub upstream_timeout: &'static str,
    pub reload_interval: &'static str,
    pub two_providers: bool,
    /// Share an existing key directory instead of making one.
    pub keys_dir: Option<PathBuf>,
    /// Point routes here instead of at the harness upstream.
    pub upstream_addr: Option<SocketAddr>,
    pub wechat_addr: Option<SocketAddr>,
    /// The body of the `[server]` section. Login rate limiting is off by
    /// default here: tests log in far faster than any one client should.
    pub server: String,
    /// Appended to the config, e.g. a `[sessions]` section.
    pub extra: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            issuer: "https://auth.test".into(),
            audience: "\"api\"".into(),
            alg: jwks::Alg::ES256,
            access_ttl: "15m",
            wechat_timeout: "1s",
            upstream_timeout: "1s",
            reload_interval: "10s",
            two_providers: false,
            keys_dir: None,
            upstream_addr: None,
            wechat_addr: None,
            server: "login_per_minute = 0\n".into(),
            extra: String::new(),
        }
    }
}

/// A running gateway with its neighbours.
pub struct Gateway {
    pub running: Running,
    pub url: String,
    pub wechat: WeChat,
    pub upstream: Upstream,
    pub keys_dir: PathBuf,
    pub config_text: String,
    pub http: reqwest::Client,
    _tmp: Option<tempfile::TempDir>,
}

pub fn client() -> reqwest::Client {
    minigate::tls::install_crypto_provider();
    reqwest::Client::builder().build().unwrap()
}

/// The config TOML for a gateway with these neighbours.
pub fn config_text(
    setup: &Setup,
    keys_dir: &Path,
    wechat: SocketAddr,
    upstream: SocketAddr,
    listen: &str,
) -> String {
    let second = if setup.two_providers {
        format!(
            "[[providers]]\nplatform = \"wechat\"\nappid = \"{APPID2}\"\nsecret_env = \"TEST_WECHAT_SECRET\"\nbase_url = \"http://{wechat}\"\ntimeout = \"{}\"\n",
            setup.wechat_timeout
        )
    } else {
        String::new()
    };
    format!(
        r#"listen = "{listen}"

[tokens]
issuer = "{issuer}"
audience = {audience}
access_ttl = "{access_ttl}"
refresh_ttl = "30d"
leeway = "5s"

[keys]
dir = "{keys}"
reload_interval = "{ri}"

[[providers]]
platform = "wechat"
appid = "{APPID}"
secret_env = "TEST_WECHAT_SECRET"
base_url = "http://{wechat}"
timeout = "{wt}"

{second}
[[routes]]
prefix = "/api/"
upstream = "http://{upstream}"
auth = "required"
timeout = "{ut}"

[[routes]]
prefix = "/api/admin/"
upstream = "http://{upstream}"
auth = "required"
timeout = "{ut}"

[[routes]]
prefix = "/maybe/"
upstream = "http://{upstream}"
auth = "optional"
timeout = "{ut}"

[[routes]]
prefix = "/public/"
upstream = "http://{upstream}"
auth = "public"
timeout = "{ut}"

[server]
{server}
{extra}
"#,
        server = setup.server,
        extra = setup.extra,
        issuer = setup.issuer,
        audience = setup.audience,
        access_ttl = setup.access_ttl,
        keys = keys_dir.display(),
        wt = setup.wechat_timeout,
        ut = setup.upstream_timeout,
        ri = setup.reload_interval,
    )
}

pub fn test_env(name: &str) -> Option<String> {
    (name == "TEST_WECHAT_SECRET").then(|| SECRET.to_owned())
}

/// Makes a key directory with a fresh set.
pub fn key_dir(alg: jwks::Alg) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    jwks::KeySet::generate(alg, SystemTime::now())
        .unwrap()
        .save(tmp.path())
        .unwrap();
    tmp
}

pub async fn start(setup: Setup) -> Gateway {
    let wechat = match setup.wechat_addr {
        Some(addr) => WeChat {
            addr,
            queries: Default::default(),
        },
        None => wechat().await,
    };
    let upstream = upstream().await;
    let (tmp, keys_dir) = match &setup.keys_dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let tmp = key_dir(setup.alg);
            let dir = tmp.path().to_path_buf();
            (Some(tmp), dir)
        }
    };
    let up = setup.upstream_addr.unwrap_or(upstream.addr);
    let text = config_text(&setup, &keys_dir, wechat.addr, up, "127.0.0.1:0");
    let config = Config::from_toml(&text, &test_env).unwrap();
    let keys = minigate::keys::KeyStore::open(keys_dir.clone(), &config.tokens.issuer).unwrap();
    let running = minigate::server::start(&config, keys).await.unwrap();
    Gateway {
        url: format!("http://{}", running.addr),
        running,
        wechat,
        upstream,
        keys_dir,
        config_text: text,
        http: client(),
        _tmp: tmp,
    }
}

/// The login response.
#[derive(Debug, serde::Deserialize)]
pub struct Tokens {
    pub token_type: String,
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub openid: String,
    pub unionid: Option<String>,
}

impl Gateway {
    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, code: &str) -> Tokens {
        let res = self
            .post("/auth/login", &format!("{{\"code\":\"{code}\"}}"))
            .await;
        assert_eq!(res.status(), 200, "login failed");
        res.json().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Signs arbitrary claims with this gateway's current key.
    pub fn sign(&self, typ: &str, claims: serde_json::Value) -> String {
        jwks::KeySet::load(&self.keys_dir)
            .unwrap()
            .sign(typ, &claims)
            .unwrap()
    }
}

/// Asserts an error response: status and `error` code.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> HeaderMap {
    let got = res.status().as_u16();
    let headers = res.headers().clone();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (got, body["error"].as_str().unwrap_or("")),
        (status, code),
        "{body}"
    );
    assert!(body["error_description"].is_string());
    headers
}

pub fn now() -> u64 {
    minigate::tokens::now_secs()
}

/// Sends raw bytes on a fresh connection and returns what came back until
/// the server closed it (requests should say `Connection: close`).
pub async fn raw(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
        .env("TEST_WECHAT_SECRET", SECRET)
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

/// A real `redis-server`, started by the test on a free port, without
/// persistence, killed when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The `[sessions]` section pointing at this server.
    pub fn sessions_section(&self) -> String {
        format!("[sessions]\nredis_url = \"{}\"\n", self.url())
    }

    /// Starts (again) on the same port, and waits until it answers.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed (apt-get install redis-server; .ci/run does)");
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").await.is_ok()
                    && s.read_exact(&mut buf).await.is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills it outright (SIGKILL): every connection drops.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: a server that hangs without closing anything.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let sig = if paused { "-STOP" } else { "-CONT" };
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.pause(false);
        }
        self.kill();
    }
}

/// Posts `{"refresh_token": token}` to `path` (refresh or logout) at `base`.
pub async fn post_refresh(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
) -> reqwest::Response {
    http.post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(format!("{{\"refresh_token\":\"{token}\"}}"))
        .send()
        .await
        .unwrap()
}

/// A WebSocket upstream (tungstenite) that greets each client, echoes every
/// data frame, closes when told `"bye"`, and keeps each handshake's headers.
pub struct WsEcho {
    pub addr: SocketAddr,
    pub handshakes: Arc<Mutex<Vec<HeaderMap>>>,
}

pub async fn ws_echo() -> WsEcho {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::Message;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let seen = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                // The callback's signature is tungstenite's.
                #[allow(clippy::result_large_err)]
                let record = |req: &Request, res: Response| {
                    seen.lock().unwrap().push(req.headers().clone());
                    Ok(res)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
                    return;
                };
                let _ = ws.send(Message::text("hello from upstream")).await;
                while let Some(Ok(msg)) = ws.next().await {
                    let bye = matches!(&msg, Message::Text(t) if t.as_str() == "bye");
                    let sent = if bye {
                        ws.close(None).await
                    } else if msg.is_text() || msg.is_binary() {
                        ws.send(msg).await
                    } else {
                        Ok(())
                    };
                    if sent.is_err() {
                        break;
                    }
                }
            });
        }
    });
    WsEcho { addr, handshakes }
}
