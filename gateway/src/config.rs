//! The gateway's configuration: TOML in, validated values out.
//!
//! Parsing happens in two steps so that every error can name the key it is
//! about: first the TOML is read into plain strings and numbers (unknown keys
//! refused), then each value is checked and converted. The result holds only
//! valid values (durations, socket addresses, URIs, resolved secrets), so no
//! other module re-parses or re-checks configuration on a request path.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use serde::Deserialize;

/// A validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Token issuing and verification.
    pub tokens: TokensConfig,
    /// Where the signing keys live.
    pub keys: KeysConfig,
    /// One code exchange per mini-program.
    pub providers: Vec<ProviderConfig>,
    /// Proxied prefixes.
    pub routes: Vec<RouteConfig>,
    /// Where login-session state lives.
    pub sessions: SessionsConfig,
    /// Limits that protect the gateway from its clients.
    pub server: ServerConfig,
    /// Inbound TLS, if configured; plain HTTP otherwise.
    pub tls: Option<TlsConfig>,
    /// `[log]`: how log lines are written.
    pub log: LogConfig,
}

/// `[log]`: the format of log lines on stderr; the level is `RUST_LOG`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log shippers (Loki, Elasticsearch,
    /// Cloud Logging).
    Json,
}

/// `[tls]`: the certificate chain and key, PEM files, re-read when they change.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[sessions]`.
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// A shared Redis store, if set; else the in-process store. The URL may
    /// hold a password, so it is a [`Secret`].
    pub redis_url: Option<Secret>,
    /// Most sessions the in-process store keeps.
    pub max_sessions: u64,
}

/// `[server]`: limits that keep hostile or broken clients from hurting others.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most client connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request head (slow-loris), and
    /// how long an idle keep-alive connection is kept.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), in bytes: 431 beyond.
    pub max_header_bytes: usize,
    /// Most request headers: 431 beyond.
    pub max_headers: usize,
    /// How long the body of a login, refresh or logout may take to arrive.
    pub body_timeout: Duration,
    /// Logins per minute allowed to one client IP (token bucket); 0 = no limit.
    pub login_per_minute: u32,
    /// Logins one client IP may make at once before the rate applies.
    pub login_burst: u32,
    /// On SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_timeout: Duration,
    /// Most requests in flight to one upstream (`host:port`) at once, so
    /// most connections open to it; more wait, within their route's
    /// timeout.
    pub upstream_max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(15),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            body_timeout: Duration::from_secs(10),
            login_per_minute: 30,
            login_burst: 10,
            shutdown_timeout: Duration::from_secs(20),
            upstream_max_connections: 1024,
        }
    }
}

/// `[tokens]`.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// `iss` of every token, and the base of the discovery document.
    pub issuer: String,
    /// `aud` of access tokens; a token is accepted if it names any of these.
    pub audience: Vec<String>,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// Clock skew allowed on exp, nbf and iat.
    pub leeway: Duration,
    /// Most verified access tokens kept in the cache.
    pub cache_capacity: u64,
}

/// `[keys]`.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// The directory made by `minigate keys init`.
    pub dir: PathBuf,
    /// How often the key set is re-read.
    pub reload_interval: Duration,
}

/// The mini-program platforms minigate can exchange codes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// WeChat mini-programs (`jscode2session`).
    WeChat,
}

impl Platform {
    /// The name used in config, tokens and headers.
    pub const fn name(self) -> &'static str {
        match self {
            Platform::WeChat => "wechat",
        }
    }

    const fn default_base_url(self) -> &'static str {
        match self {
            Platform::WeChat => "https://api.weixin.qq.com",
        }
    }
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// `[[providers]]`: one mini-program's code exchange.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Which platform's API.
    pub platform: Platform,
    /// The mini-program's appid; `client_id` of its tokens.
    pub appid: String,
    /// The app secret, resolved from `secret_env` or `secret_file`.
    pub secret: Secret,
    /// Where the secret came from (`env NAME` or `file PATH`), never the
    /// secret itself: what `config check` shows.
    pub secret_source: String,
    /// The platform API's base URL.
    pub base_url: String,
    /// How long one code exchange may take.
    pub timeout: Duration,
}

/// How a route treats bearer tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A valid access token is needed.
    Required,
    /// Anonymous passes; a token, if sent, must be valid.
    Optional,
    /// No check at all (identity headers are still stripped).
    Public,
}

/// `[[routes]]`: a proxied prefix.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The path prefix; the longest matching prefix wins.
    pub prefix: String,
    /// `http://host:port` of the upstream; the request path is kept.
    pub upstream: Uri,
    /// Token policy.
    pub auth: AuthMode,
    /// How long the upstream may take to send its response head.
    pub timeout: Duration,
}

/// A configuration error: one line naming the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, as `section.key` or `routes[1].upstream`, or the file.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    tokens: Option<RawTokens>,
    keys: Option<RawKeys>,
    #[serde(default)]
    providers: Vec<RawProvider>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    tls: Option<RawTls>,
    sessions: Option<RawSessions>,
    server: Option<RawServer>,
    log: Option<RawLog>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    redis_url: Option<String>,
    max_sessions: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    max_connections: Option<usize>,
    header_timeout: Option<String>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    body_timeout: Option<String>,
    login_per_minute: Option<u32>,
    login_burst: Option<u32>,
    shutdown_timeout: Option<String>,
    upstream_max_connections: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAudience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    issuer: Option<String>,
    audience: Option<RawAudience>,
    access_ttl: Option<String>,
    refresh_ttl: Option<String>,
    leeway: Option<String>,
    cache_capacity: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    dir: Option<PathBuf>,
    reload_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    platform: Option<String>,
    appid: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    base_url: Option<String>,
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: Option<String>,
    upstream: Option<String>,
    auth: Option<String>,
    timeout: Option<String>,
}

/// Parses a duration such as `30s`, `15m`, `12h` or `30d`.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|_| {
        err(
            key,
            format!("{value:?} is not a duration (e.g. \"30s\", \"15m\", \"12h\", \"30d\")"),
        )
    })
}

fn duration_or(key: &str, value: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(key, value.unwrap_or(default))?;
    if d.is_zero() {
        return Err(err(key, "must be more than zero"));
    }
    Ok(d)
}

fn required<T>(key: &str, value: Option<T>) -> Result<T, ConfigError> {
    value.ok_or_else(|| err(key, "is required"))
}

/// Is `s` usable as an HTTP header value and short: ids that end up in
/// `X-Auth-*` headers must be.
pub fn is_header_safe(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The refresh TTL of a config file, read without resolving anything else:
/// key pruning needs only that, and must not need the app secrets.
pub fn refresh_ttl_of(path: &Path) -> Result<Duration, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path.display().to_string(), e.to_string()))?;
    let value: toml::Table =
        toml::from_str(&text).map_err(|e| err("config", e.message().replace('\n', " ")))?;
    let ttl = value
        .get("tokens")
        .and_then(|t| t.get("refresh_ttl"))
        .and_then(|v| v.as_str());
    duration_or("tokens.refresh_ttl", ttl, "30d")
}

impl Config {
    /// Reads and validates a config file. Errors name the file or the key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), e.to_string()))?;
        Self::from_toml(&text, &|name| std::env::var(name).ok())
    }

    /// Parses and validates TOML text; `env` resolves `secret_env` names.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let message = e.message().replace('\n', " ");
            match line {
                Some(line) => err(format!("line {line}"), message),
                None => err("config", message),
            }
        })?;
        let tls = match raw.tls {
            None => None,
            Some(t) => {
                let tls = TlsConfig {
                    cert: required("tls.cert", t.cert)?,
                    key: required("tls.key", t.key)?,
                };
                // Read once here, so a bad file stops the start with its key named.
                crate::tls::load(&tls).map_err(|e| err(e.key, e.problem))?;
                Some(tls)
            }
        };
        let listen = raw.listen.as_deref().unwrap_or("0.0.0.0:8080");
        let listen: SocketAddr = listen.parse().map_err(|_| {
            err(
                "listen",
                format!("{listen:?} is not an address like \"0.0.0.0:8080\""),
            )
        })?;
        let tokens = Self::tokens(required("tokens", raw.tokens)?)?;
        let keys = required("keys", raw.keys)?;
        let keys = KeysConfig {
            dir: required("keys.dir", keys.dir)?,
            reload_interval: duration_or(
                "keys.reload_interval",
                keys.reload_interval.as_deref(),
                "10s",
            )?,
        };
        let mut providers = Vec::with_capacity(raw.providers.len());
        for (i, p) in raw.providers.into_iter().enumerate() {
            let p = Self::provider(i, p, env)?;
            if providers
                .iter()
                .any(|o: &ProviderConfig| o.appid == p.appid)
            {
                return Err(err(
                    format!("providers[{i}].appid"),
                    format!("{:?} appears twice", p.appid),
                ));
            }
            providers.push(p);
        }
        let mut routes = Vec::with_capacity(raw.routes.len());
        for (i, r) in raw.routes.into_iter().enumerate() {
            let r = Self::route(i, r)?;
            if routes.iter().any(|o: &RouteConfig| o.prefix == r.prefix) {
                return Err(err(
                    format!("routes[{i}].prefix"),
                    format!("{:?} appears twice", r.prefix),
                ));
            }
            routes.push(r);
        }
        let sessions = Self::sessions(raw.sessions)?;
        let server = Self::server(raw.server)?;
        let log = LogConfig {
            format: match raw.log.and_then(|l| l.format).as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(err(
                        "log.format",
                        format!("{other:?} is not a log format (text, json)"),
                    ))
                }
            },
        };
        Ok(Config {
            listen,
            tokens,
            keys,
            providers,
            routes,
            sessions,
            server,
            tls,
            log,
        })
    }

    fn sessions(s: Option<RawSessions>) -> Result<SessionsConfig, ConfigError> {
        let s = s.unwrap_or(RawSessions {
            redis_url: None,
            max_sessions: None,
        });
        if let Some(url) = &s.redis_url {
            // Checked here so a typo fails at start, not at the first refresh.
            // The message never repeats the URL: it may hold a password.
            let ok = (url.starts_with("redis://") || url.starts_with("rediss://"))
                && redis::IntoConnectionInfo::into_connection_info(url.as_str()).is_ok();
            if !ok {
                return Err(err(
                    "sessions.redis_url",
                    "is not a URL like \"redis://host:6379/0\"",
                ));
            }
        }
        let max_sessions = s.max_sessions.unwrap_or(200_000);
        if max_sessions == 0 {
            return Err(err("sessions.max_sessions", "must be more than zero"));
        }
        Ok(SessionsConfig {
            redis_url: s.redis_url.map(Secret),
            max_sessions,
        })
    }

    fn server(s: Option<RawServer>) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let Some(s) = s else { return Ok(d) };
        let at_least = |key: &str, v: Option<usize>, min: usize, default: usize| {
            let v = v.unwrap_or(default);
            if v < min {
                return Err(err(key, format!("must be at least {min}")));
            }
            Ok(v)
        };
        let dur = |key: &str, v: Option<String>, default: Duration| match v {
            Some(v) => duration_or(key, Some(&v), ""),
            None => Ok(default),
        };
        let login_burst = s.login_burst.unwrap_or(d.login_burst);
        if login_burst == 0 {
            return Err(err("server.login_burst", "must be more than zero"));
        }
        Ok(ServerConfig {
            max_connections: at_least(
                "server.max_connections",
                s.max_connections,
                1,
                d.max_connections,
            )?,
            header_timeout: dur("server.header_timeout", s.header_timeout, d.header_timeout)?,
            // hyper cannot read a head into less than 8 KiB of buffer.
            max_header_bytes: at_least(
                "server.max_header_bytes",
                s.max_header_bytes,
                8192,
                d.max_header_bytes,
            )?,
            max_headers: at_least("server.max_headers", s.max_headers, 8, d.max_headers)?,
            body_timeout: dur("server.body_timeout", s.body_timeout, d.body_timeout)?,
            login_per_minute: s.login_per_minute.unwrap_or(d.login_per_minute),
            login_burst,
            shutdown_timeout: dur(
                "server.shutdown_timeout",
                s.shutdown_timeout,
                d.shutdown_timeout,
            )?,
            upstream_max_connections: at_least(
                "server.upstream_max_connections",
                s.upstream_max_connections,
                1,
                d.upstream_max_connections,
            )?,
        })
    }

    fn tokens(t: RawTokens) -> Result<TokensConfig, ConfigError> {
        let issuer = required("tokens.issuer", t.issuer)?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.parse::<Uri>().is_err()
            || !is_header_safe(&issuer, 512)
        {
            return Err(err(
                "tokens.issuer",
                format!("{issuer:?} is not an http(s) URL"),
            ));
        }
        let audience = match required("tokens.audience", t.audience)? {
            RawAudience::One(a) => vec![a],
            RawAudience::Many(list) => list,
        };
        if audience.is_empty() || audience.iter().any(|a| a.trim().is_empty()) {
            return Err(err(
                "tokens.audience",
                "must be a non-empty string or list of non-empty strings",
            ));
        }
        let access_ttl = duration_or("tokens.access_ttl", t.access_ttl.as_deref(), "15m")?;
        let refresh_ttl = duration_or("tokens.refresh_ttl", t.refresh_ttl.as_deref(), "30d")?;
        if refresh_ttl < access_ttl {
            return Err(err(
                "tokens.refresh_ttl",
                "must not be shorter than tokens.access_ttl",
            ));
        }
        let leeway = parse_duration("tokens.leeway", t.leeway.as_deref().unwrap_or("30s"))?;
        let cache_capacity = t.cache_capacity.unwrap_or(100_000);
        Ok(TokensConfig {
            issuer,
            audience,
            access_ttl,
            refresh_ttl,
            leeway,
            cache_capacity,
        })
    }

    fn provider(
        i: usize,
        p: RawProvider,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProviderConfig, ConfigError> {
        let key = |k: &str| format!("providers[{i}].{k}");
        let platform = match required(&key("platform"), p.platform)?.as_str() {
            "wechat" => Platform::WeChat,
            other => {
                return Err(err(
                    key("platform"),
                    format!("{other:?} is not a known platform (wechat)"),
                ))
            }
        };
        let appid = required(&key("appid"), p.appid)?;
        if !is_header_safe(&appid, 64) {
            return Err(err(key("appid"), "must be 1-64 visible ASCII characters"));
        }
        let (secret, secret_source) = match (p.secret_env, p.secret_file) {
            (Some(name), None) => (
                env(&name).filter(|v| !v.is_empty()).ok_or_else(|| {
                    err(
                        key("secret_env"),
                        format!("environment variable {name} is not set"),
                    )
                })?,
                format!("env {name}"),
            ),
            (None, Some(path)) => (
                std::fs::read_to_string(&path)
                    .map_err(|e| err(key("secret_file"), format!("{}: {e}", path.display())))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                format!("file {}", path.display()),
            ),
            _ => {
                return Err(err(
                    key("secret_env"),
                    "exactly one of secret_env and secret_file is required",
                ))
            }
        };
        if secret.is_empty() {
            return Err(err(key("secret_file"), "the secret is empty"));
        }
        let base_url = p
            .base_url
            .unwrap_or_else(|| platform.default_base_url().to_owned());
        let base_ok = base_url.parse::<Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
        });
        if !base_ok {
            return Err(err(
                key("base_url"),
                format!("{base_url:?} is not an http(s) URL"),
            ));
        }
        Ok(ProviderConfig {
            platform,
            appid,
            secret: Secret(secret),
            secret_source,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout: duration_or(&key("timeout"), p.timeout.as_deref(), "5s")?,
        })
    }

    fn route(i: usize, r: RawRoute) -> Result<RouteConfig, ConfigError> {
        let key = |k: &str| format!("routes[{i}].{k}");
        let prefix = required(&key("prefix"), r.prefix)?;
        if !prefix.starts_with('/') {
            return Err(err(key("prefix"), format!("{prefix:?} must start with /")));
        }
        let upstream_text = required(&key("upstream"), r.upstream)?;
        let upstream: Uri = upstream_text
            .parse()
            .map_err(|_| err(key("upstream"), format!("{upstream_text:?} is not a URL")))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err(err(
                key("upstream"),
                format!("{upstream_text:?} must be http://host:port"),
            ));
        }
        if !matches!(upstream.path(), "" | "/") || upstream.query().is_some() {
            return Err(err(
                key("upstream"),
                format!("{upstream_text:?} must have no path: the request path is forwarded as is"),
            ));
        }
        let auth = match r.auth.as_deref().unwrap_or("required") {
            "required" => AuthMode::Required,
            "optional" => AuthMode::Optional,
            "public" => AuthMode::Public,
            other => {
                return Err(err(
                    key("auth"),
                    format!("{other:?} is not required, optional or public"),
                ))
            }
        };
        Ok(RouteConfig {
            prefix,
            upstream,
            auth,
            timeout: duration_or(&key("timeout"), r.timeout.as_deref(), "30s")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:9000"
[tokens]
issuer = "https://auth.example.com"
audience = ["api", "admin"]
access_ttl = "15m"
refresh_ttl = "30d"
[keys]
dir = "/tmp/keys"
[[providers]]
platform = "wechat"
appid = "wx0123456789abcdef"
secret_env = "WECHAT_APP_SECRET"
[[routes]]
prefix = "/api/"
upstream = "http://orders:8080"
auth = "optional"
"#;

    fn env(name: &str) -> Option<String> {
        (name == "WECHAT_APP_SECRET").then(|| "s3cr3t".to_owned())
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::from_toml(GOOD, &env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.tokens.audience, ["api", "admin"]);
        assert_eq!(c.tokens.leeway, Duration::from_secs(30));
        assert_eq!(c.keys.reload_interval, Duration::from_secs(10));
        assert_eq!(c.providers[0].base_url, "https://api.weixin.qq.com");
        assert_eq!(c.providers[0].secret.expose(), "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(c.routes[0].auth, AuthMode::Optional);
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-a-file\n").unwrap();
        let text = GOOD.replace(
            "secret_env = \"WECHAT_APP_SECRET\"",
            &format!("secret_file = {:?}", path.display().to_string()),
        );
        let c = Config::from_toml(&text, &env).unwrap();
        assert_eq!(c.providers[0].secret.expose(), "from-a-file");
        std::fs::write(&path, "\n").unwrap();
        let e = Config::from_toml(&text, &env).unwrap_err();
        assert_eq!(e.key, "providers[0].secret_file");
        let both = GOOD.replace(
            "secret_env = \"WECHAT_APP_SECRET\"",
            "secret_env = \"WECHAT_APP_SECRET\"\nsecret_file = \"/x\"",
        );
        assert!(Config::from_toml(&both, &env)
            .unwrap_err()
            .to_string()
            .contains("exactly one"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (GOOD.replace("\"15m\"", "\"15x\""), "tokens.access_ttl"),
            (GOOD.replace("\"30d\"", "\"1m\""), "tokens.refresh_ttl"),
            (GOOD.replace("127.0.0.1:9000", "nowhere"), "listen"),
            (
                GOOD.replace("http://orders:8080", "ftp://orders"),
                "routes[0].upstream",
            ),
            (
                GOOD.replace("http://orders:8080", "http://orders:8080/v1"),
                "routes[0].upstream",
            ),
            (GOOD.replace("\"optional\"", "\"maybe\""), "routes[0].auth"),
            (GOOD.replace("\"/api/\"", "\"api\""), "routes[0].prefix"),
            (
                GOOD.replace("WECHAT_APP_SECRET", "NOT_SET_ANYWHERE"),
                "providers[0].secret_env",
            ),
            (
                GOOD.replace("\"wechat\"", "\"alipay\""),
                "providers[0].platform",
            ),
            (
                GOOD.replace("https://auth.example.com", "auth"),
                "tokens.issuer",
            ),
            (
                GOOD.replace("[\"api\", \"admin\"]", "[]"),
                "tokens.audience",
            ),
            (GOOD.replace("dir = \"/tmp/keys\"", ""), "keys.dir"),
            (
                GOOD.replace("auth = \"optional\"", "auth = \"optional\"\nfoo = 1"),
                "line ",
            ),
            (GOOD.replace("listen", "listen = 1\nlisten"), "line 2"),
            (
                format!("{GOOD}[sessions]\nredis_url = \"http://u:pw@x\"\n"),
                "sessions.redis_url",
            ),
            (
                format!("{GOOD}[server]\nmax_header_bytes = 100\n"),
                "server.max_header_bytes",
            ),
            (
                format!("{GOOD}[server]\nheader_timeout = \"0s\"\n"),
                "server.header_timeout",
            ),
            (
                format!("{GOOD}[server]\nlogin_burst = 0\n"),
                "server.login_burst",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(&text, &env).unwrap_err();
            assert!(e.to_string().starts_with(key), "{e} should name {key}");
            assert!(!e.to_string().contains('\n'), "{e} is not one line");
            assert!(!e.to_string().contains("s3cr3t"));
            assert!(
                !e.to_string().contains("pw"),
                "{e} shows the redis password"
            );
        }
    }

    #[test]
    fn sessions_and_server_sections() {
        let c = Config::from_toml(GOOD, &env).unwrap();
        assert!(c.sessions.redis_url.is_none());
        assert_eq!(c.server.max_connections, 10_000);
        let text = format!(
            "{GOOD}[sessions]\nredis_url = \"redis://:hunter2@127.0.0.1:6379/0\"\n[server]\nlogin_per_minute = 0\nshutdown_timeout = \"5s\"\n"
        );
        let c = Config::from_toml(&text, &env).unwrap();
        assert!(c.sessions.redis_url.is_some());
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.server.login_per_minute, 0);
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(5));
    }
}
