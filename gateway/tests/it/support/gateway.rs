//! The real gateway, in process on a real port, with its neighbours; and the
//! client-side helpers that talk to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use minigate::config::Config;
use minigate::listener::Running;

use super::{
    upstream, wechat, Admin, Audit, Enrich, Log, Provider, Role, Route, Server, Sessions, Tls,
    ToToml, Tracing, Upstream, WeChat, Web, APPID, APPID2, SECRET,
};

/// How to set a gateway up: the harness's own config (one WeChat app,
/// four routes to the harness upstream) with these values and pieces.
#[derive(Clone)]
pub struct Setup {
    pub issuer: String,
    pub audience: Vec<&'static str>,
    pub alg: jwks::Alg,
    pub access_ttl: &'static str,
    pub wechat_timeout: &'static str,
    pub upstream_timeout: &'static str,
    /// `[tokens] leeway`.
    pub leeway: &'static str,
    pub reload_interval: &'static str,
    pub two_providers: bool,
    /// Share an existing key directory instead of making one.
    pub keys_dir: Option<PathBuf>,
    /// Point routes here instead of at the harness upstream.
    pub upstream_addr: Option<SocketAddr>,
    pub wechat_addr: Option<SocketAddr>,
    /// `[server]`. Login rate limiting is off by default here: tests log
    /// in far faster than any one client should.
    pub server: Server,
    /// More `[[routes]]`, after the harness's own four.
    pub routes: Vec<Route>,
    /// `[[roles]]`.
    pub roles: Vec<Role>,
    /// More `[[providers]]`, after the harness's WeChat app(s).
    pub providers: Vec<Provider>,
    pub sessions: Option<Sessions>,
    pub admin: Option<Admin>,
    pub enrich: Option<Enrich>,
    pub web: Option<Web>,
    pub log: Option<Log>,
    pub tls: Option<Tls>,
    pub audit: Option<Audit>,
    pub tracing: Option<Tracing>,
    /// Where the gateway listens (a port chosen up front when the config
    /// must name it, as `[web] public_url` does).
    pub listen: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            issuer: "https://auth.test".into(),
            audience: vec!["api"],
            alg: jwks::Alg::ES256,
            access_ttl: "15m",
            wechat_timeout: "1s",
            upstream_timeout: "1s",
            leeway: "5s",
            reload_interval: "10s",
            two_providers: false,
            keys_dir: None,
            upstream_addr: None,
            wechat_addr: None,
            server: Server::default().login_per_minute(0),
            routes: Vec::new(),
            roles: Vec::new(),
            providers: Vec::new(),
            sessions: None,
            admin: None,
            enrich: None,
            web: None,
            log: None,
            tls: None,
            audit: None,
            tracing: None,
            listen: "127.0.0.1:0".into(),
        }
    }
}

/// A setter of `Setup` for each optional section named.
macro_rules! sections {
    ($($name:ident: $ty:ty),*) => {
        $(
            pub fn $name(mut self, $name: $ty) -> Setup {
                self.$name = Some($name);
                self
            }
        )*
    };
}

impl Setup {
    /// These `[server]` keys too (over the harness's).
    pub fn server(mut self, server: Server) -> Setup {
        self.server.0.extend(server.0);
        self
    }

    /// One more route.
    pub fn route(mut self, route: Route) -> Setup {
        self.routes.push(route);
        self
    }

    /// One more provider.
    pub fn provider(mut self, provider: Provider) -> Setup {
        self.providers.push(provider);
        self
    }

    // One setter per optional section: `.sessions(..)`, `.admin(..)`...
    sections!(
        sessions: Sessions,
        admin: Admin,
        enrich: Enrich,
        web: Web,
        log: Log,
        tls: Tls,
        audit: Audit,
        tracing: Tracing
    );
}

/// A running gateway with its neighbours.
pub struct Gateway {
    pub running: Running,
    pub url: String,
    /// The harness's stand-in WeChat (called by nobody when the setup
    /// names a `wechat_addr`).
    pub wechat: WeChat,
    pub upstream: Upstream,
    pub keys_dir: PathBuf,
    pub http: reqwest::Client,
    _tmp: Option<tempfile::TempDir>,
}

pub fn client() -> reqwest::Client {
    minigate::crypto::install_crypto_provider();
    reqwest::Client::builder().build().unwrap()
}

/// The config TOML for a gateway with these neighbours: the one place a
/// [`Setup`] becomes text.
pub fn config_text(
    setup: &Setup,
    keys_dir: &Path,
    wechat: SocketAddr,
    upstream: SocketAddr,
    listen: &str,
) -> String {
    let table = |pairs: Vec<(&str, toml::Value)>| {
        toml::Value::Table(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    };
    let wechat_app = |appid: &str| {
        Provider::new("wechat", appid, "TEST_WECHAT_SECRET")
            .base_url(format!("http://{wechat}"))
            .0
            .into_iter()
            .chain([("timeout".to_owned(), setup.wechat_timeout.to_toml())])
            .collect::<toml::Table>()
    };
    let mut providers = vec![toml::Value::Table(wechat_app(APPID))];
    if setup.two_providers {
        providers.push(toml::Value::Table(wechat_app(APPID2)));
    }
    providers.extend(setup.providers.iter().cloned().map(ToToml::to_toml));
    let harness_route = |prefix: &str, auth: &'static str| {
        Route::new(prefix)
            .auth(auth)
            .0
            .into_iter()
            .chain([("timeout".to_owned(), setup.upstream_timeout.to_toml())])
            .collect::<toml::Table>()
    };
    let mut routes: Vec<toml::Value> = [
        ("/api/", "required"),
        ("/api/admin/", "required"),
        ("/maybe/", "optional"),
        ("/public/", "public"),
    ]
    .into_iter()
    .map(|(prefix, auth)| toml::Value::Table(harness_route(prefix, auth)))
    .collect();
    routes.extend(setup.routes.iter().cloned().map(ToToml::to_toml));
    for route in &mut routes {
        if let toml::Value::Table(t) = route {
            t.entry("upstream")
                .or_insert_with(|| format!("http://{upstream}").to_toml());
        }
    }
    let mut doc = toml::Table::new();
    doc.insert("listen".into(), listen.to_toml());
    doc.insert(
        "tokens".into(),
        table(vec![
            ("issuer", setup.issuer.clone().to_toml()),
            ("audience", setup.audience.clone().to_toml()),
            ("access_ttl", setup.access_ttl.to_toml()),
            ("refresh_ttl", "30d".to_toml()),
            ("leeway", setup.leeway.to_toml()),
        ]),
    );
    doc.insert(
        "keys".into(),
        table(vec![
            ("dir", keys_dir.to_toml()),
            ("reload_interval", setup.reload_interval.to_toml()),
        ]),
    );
    doc.insert("providers".into(), toml::Value::Array(providers));
    doc.insert("routes".into(), toml::Value::Array(routes));
    doc.insert("server".into(), setup.server.clone().to_toml());
    if !setup.roles.is_empty() {
        doc.insert("roles".into(), setup.roles.clone().to_toml());
    }
    let sections = [
        ("sessions", setup.sessions.clone().map(ToToml::to_toml)),
        ("admin", setup.admin.clone().map(ToToml::to_toml)),
        ("enrich", setup.enrich.clone().map(ToToml::to_toml)),
        ("web", setup.web.clone().map(ToToml::to_toml)),
        ("log", setup.log.clone().map(ToToml::to_toml)),
        ("tls", setup.tls.clone().map(ToToml::to_toml)),
        ("audit", setup.audit.clone().map(ToToml::to_toml)),
        ("tracing", setup.tracing.clone().map(ToToml::to_toml)),
    ];
    for (name, section) in sections {
        if let Some(section) = section {
            doc.insert(name.into(), section);
        }
    }
    toml::to_string(&doc).unwrap()
}

/// The admin token of gateways whose config has `[admin] token_env =
/// "TEST_ADMIN_TOKEN"`.
pub const ADMIN_TOKEN: &str = "test-admin-token-must-not-leak-41b7";

/// The secrets the test configs name in `secret_env` or `token_env`.
pub const TEST_SECRETS: [(&str, &str); 11] = [
    ("TEST_WECHAT_SECRET", SECRET),
    ("TEST_QQ_SECRET", super::QQ_SECRET),
    ("TEST_DOUYIN_SECRET", super::DOUYIN_SECRET),
    ("TEST_BAIDU_SECRET", super::BAIDU_SECRET),
    ("TEST_KUAISHOU_SECRET", super::KUAISHOU_SECRET),
    ("TEST_FEISHU_SECRET", super::FEISHU_SECRET),
    ("TEST_ADMIN_TOKEN", ADMIN_TOKEN),
    ("TEST_WEB_SECRET", super::WEB_SECRET),
    ("TEST_COMPONENT_SECRET", super::COMPONENT_SECRET),
    ("TEST_COMPONENT_AES_KEY", super::COMPONENT_AES_KEY),
    ("TEST_COMPONENT_TOKEN", super::COMPONENT_TOKEN),
];

pub fn test_env(name: &str) -> Option<String> {
    TEST_SECRETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| (*s).to_owned())
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
    // With `wechat_addr` the config points elsewhere, and this stand-in
    // is called by nobody.
    let wechat = wechat().await;
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
    let wechat_addr = setup.wechat_addr.unwrap_or(wechat.addr);
    let text = config_text(&setup, &keys_dir, wechat_addr, up, &setup.listen);
    let config = Config::from_toml(&text, &test_env).unwrap();
    let keys =
        minigate::tokens::keys::KeyStore::open(keys_dir.clone(), &config.tokens.issuer).unwrap();
    let running = minigate::listener::start(&config, keys).await.unwrap();
    Gateway {
        url: format!("http://{}", running.addr),
        running,
        wechat,
        upstream,
        keys_dir,
        http: client(),
        _tmp: tmp,
    }
}

/// A code of the same user as `code`, never sent before: login codes are
/// single-use, and the gateway treats a code seen again as a retry of the
/// login that used it.
pub fn fresh(code: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{code}#{n}")
}

/// A login's body: a fresh code of the user of `code`, and the device
/// class if one is named.
pub fn login_body(code: &str, device_type: Option<&str>) -> serde_json::Value {
    match device_type {
        Some(t) => serde_json::json!({"code": fresh(code), "device_type": t}),
        None => serde_json::json!({"code": fresh(code)}),
    }
}

/// Logs in with `code` as sent (not made fresh) at the gateway at `base`.
pub async fn login_at(http: &reqwest::Client, base: &str, code: &str) -> Tokens {
    let res = http
        .post(format!("{base}/auth/login"))
        .header("content-type", "application/json")
        .body(format!("{{\"code\":\"{code}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login at {base}");
    res.json().await.unwrap()
}

/// The key ids of the JWKS the gateway at `base` serves, in its order.
pub async fn kids(http: &reqwest::Client, base: &str) -> Vec<String> {
    let doc: serde_json::Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// The `/readyz` document of the gateway at `base`.
pub async fn ready(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
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

    /// The admin listener's base URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.running.admin.expect("no [admin] section"))
    }

    /// Logs in as the user of `code` (made fresh).
    pub async fn login(&self, code: &str) -> Tokens {
        self.login_on(code, None).await
    }

    /// Logs in as the user of `code` (made fresh) from a device of the
    /// class `device_type` (none: the platform's own).
    pub async fn login_on(&self, code: &str, device_type: Option<&str>) -> Tokens {
        let res = self.try_login(login_body(code, device_type)).await;
        assert_eq!(res.status(), 200, "login {code} {device_type:?}");
        res.json().await.unwrap()
    }

    /// `POST /auth/login` with `body` as given: the raw response.
    pub async fn try_login(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/auth/login", &body.to_string()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// `GET` of `path` on the admin listener with the test's admin token.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.admin_url()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// The `/metrics` exposition now.
    pub async fn scrape(&self) -> String {
        let res = self.get("/metrics", None).await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
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

/// The value of one series (`name{labels}`) in a Prometheus exposition.
/// A series that is not there fails the test: a misspelt name must not
/// read as a counter still at 0.
pub fn series(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| {
            panic!("no series {series} in the exposition (misspelt, or never registered)")
        })
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

/// The claims of a JWT, unverified (what a test reads of a token the
/// gateway issued).
pub fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the payload is base64url");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}

/// Waits up to `within` for `cond`, polling every 25 ms; fails the test
/// with `what` if it never holds.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
