//! The gateway's configuration: TOML in, validated values out.
//!
//! Parsing happens in two steps so that every error can name the key it is
//! about: first the TOML is read into plain strings and numbers (`raw`,
//! unknown keys refused), then each value is checked and converted
//! (`parse`). Reading files the config names (secrets, the TLS pair) is
//! [`files`]' job, and every default is named once in [`defaults`]. The
//! result holds only valid values (durations, socket addresses, URIs,
//! resolved secrets), so no other module re-parses or re-checks
//! configuration on a request path.

pub mod defaults;
pub mod files;
mod load;
mod parse;
mod raw;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

pub use load::{admin_listen_of, grants_of, refresh_ttl_of};
pub use parse::public_origin;

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
    /// `[[roles]]`: static role grants, by user key.
    pub roles: Vec<RoleGrant>,
    /// `[enrich]`: the team's user service, asked at login and refresh.
    pub enrich: Option<EnrichConfig>,
    /// The file it was read from, when it was: static grants are re-read
    /// from it on reload.
    pub source: Option<PathBuf>,
    /// `[admin]`: the admin listener, if configured.
    pub admin: Option<AdminConfig>,
    /// `[web]`: browser sign-in and cookie sessions, if configured.
    pub web: Option<WebConfig>,
}

/// `[web]`: where browsers see the gateway, and whether the access cookie
/// authenticates proxied requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// The origin browsers see, `scheme://host[:port]` (lowercase, no
    /// default port, no path): the base of `redirect_uri`, what the CSRF
    /// check compares `Origin` with, and where sign-ins land.
    pub public_url: String,
    /// Whether `__Host-minigate_at` authenticates proxied requests (and
    /// `/auth/verify`, `/auth/sessions`) that send no `Authorization`.
    pub cookies: bool,
}

/// `[[roles]]`: one role granted to listed users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    /// The role: 1-64 visible ASCII characters without commas.
    pub role: String,
    /// User keys (uid, else unionid, else openid) that hold it.
    pub users: Vec<String>,
}

/// `[enrich]`: where to ask for a user's uid, roles and claims.
#[derive(Debug, Clone)]
pub struct EnrichConfig {
    /// The endpoint (http or https), POSTed JSON at login and refresh. May
    /// hold credentials, so it is shown only redacted.
    pub url: reqwest::Url,
    /// How long one call may take; past it the login or refresh is 503.
    pub timeout: Duration,
}

/// One entry of a route's `allow` list: a request matches when it holds one
/// of `roles` (absent: any caller) and uses one of `methods` (absent: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// Roles, any of which is enough.
    pub roles: Option<Vec<String>>,
    /// Methods, any of which is enough.
    pub methods: Option<Vec<http::Method>>,
}

/// Is `role` a role name the contract allows (1-64 visible ASCII, no comma)?
pub fn is_role_name(role: &str) -> bool {
    is_header_safe(role, 64) && !role.contains(',')
}

/// `[admin]`: the operators' listener, on its own socket.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it listens; never the public `listen`.
    pub listen: SocketAddr,
    /// The tokens it accepts, each with its scopes: at least one, no two
    /// alike. `token_env`/`token_file` (every scope) comes first, then
    /// `[[admin.tokens]]` in order.
    pub tokens: Vec<AdminToken>,
}

/// One admin token and the endpoints it may call.
#[derive(Debug, Clone)]
pub struct AdminToken {
    /// The bearer token.
    pub token: Secret,
    /// Where it came from (`env NAME` or `file PATH`), for `config check`.
    pub source: String,
    /// What it may call: no duplicates, in [`AdminScope::ALL`] order.
    pub scopes: Vec<AdminScope>,
}

impl AdminToken {
    /// Does this token hold `scope`?
    pub fn allows(&self, scope: AdminScope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A part of the admin API a token may be given (`[[admin.tokens]] scopes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminScope {
    /// The sessions API, `/admin/users/{user}/sessions...` (what `minigate
    /// sessions` calls): list and end any user's sessions.
    Sessions,
    /// `/admin/wechat/access_token`: the WeChat access token, for backend
    /// services.
    Wechat,
}

impl AdminScope {
    /// Every scope: what `token_env`/`token_file` holds.
    pub const ALL: [AdminScope; 2] = [AdminScope::Sessions, AdminScope::Wechat];

    /// The config name.
    pub const fn name(self) -> &'static str {
        match self {
            AdminScope::Sessions => "sessions",
            AdminScope::Wechat => "wechat",
        }
    }

    /// The scope of a config name.
    pub fn named(name: &str) -> Option<AdminScope> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
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
    /// Redis Cluster seed URLs, if set (never together with `redis_url`).
    pub redis_cluster: Vec<Secret>,
    /// Most sessions the in-process store keeps.
    pub max_sessions: u64,
    /// Most live sessions of one user across every device class; 0 = no
    /// ceiling.
    pub max_per_user: u32,
    /// How long a refresh token just redeemed may be redeemed once more
    /// (zero: never).
    pub reuse_grace: Duration,
    /// What a login past its device class's limit does.
    pub on_limit: OnLimit,
    /// The device classes and their limits.
    pub devices: DeviceClasses,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            redis_url: None,
            redis_cluster: Vec::new(),
            max_sessions: defaults::MAX_SESSIONS,
            max_per_user: defaults::MAX_PER_USER,
            reuse_grace: Duration::ZERO,
            on_limit: OnLimit::EvictOldest,
            devices: DeviceClasses::default(),
        }
    }
}

/// `sessions.on_limit`: what a login that would pass its class's limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLimit {
    /// End the user's oldest session of the class.
    #[default]
    EvictOldest,
    /// Refuse the login (409 `session_limit`).
    Refuse,
}

impl OnLimit {
    /// The config name.
    pub const fn name(self) -> &'static str {
        match self {
            OnLimit::EvictOldest => "evict_oldest",
            OnLimit::Refuse => "refuse",
        }
    }
}

/// One device class and the most sessions a user may hold in it (0: no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClass {
    /// Its name, as a login's `device_type` and the `dvt` claim.
    pub name: String,
    /// Most live sessions of one user in this class; 0 = no limit.
    pub limit: u32,
}

/// `[sessions.devices]`: the defaults, with the config's values over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClasses(pub Vec<DeviceClass>);

impl Default for DeviceClasses {
    fn default() -> Self {
        DeviceClasses(
            defaults::DEVICE_CLASSES
                .iter()
                .map(|(name, limit)| DeviceClass {
                    name: (*name).to_owned(),
                    limit: *limit,
                })
                .collect(),
        )
    }
}

impl DeviceClasses {
    /// The class named `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&DeviceClass> {
        self.0.iter().find(|c| c.name == name)
    }

    /// Every class name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.name.as_str())
    }
}

/// Is `s` a device class name: 1-32 of `a-z`, `0-9`, `_`, `-`.
pub fn is_class_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
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
    /// Whether request headers whose names hold `_` pass (those that read
    /// as a header the gateway owns never do).
    pub underscores_in_headers: bool,
    /// Load balancers in front, whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest gap between two reads of a proxied request body.
    pub proxy_body_timeout: Duration,
    /// Longest time a client may leave a response unread.
    pub send_timeout: Duration,
    /// Requests in flight from one client address; 0 = no limit.
    pub max_requests_per_ip: u32,
    /// A WebSocket tunnel idle both ways this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// Open tunnels per user (anonymous: per client address); 0 = no limit.
    pub max_tunnels_per_user: u32,
}

impl ServerConfig {
    /// Is `ip` one of the trusted proxies?
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        !self.trusted_proxies.is_empty() && self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        use defaults as d;
        ServerConfig {
            max_connections: d::MAX_CONNECTIONS,
            header_timeout: d::HEADER_TIMEOUT,
            max_header_bytes: d::MAX_HEADER_BYTES,
            max_headers: d::MAX_HEADERS,
            body_timeout: d::BODY_TIMEOUT,
            login_per_minute: d::LOGIN_PER_MINUTE,
            login_burst: d::LOGIN_BURST,
            shutdown_timeout: d::SHUTDOWN_TIMEOUT,
            upstream_max_connections: d::UPSTREAM_MAX_CONNECTIONS,
            underscores_in_headers: false,
            trusted_proxies: Vec::new(),
            proxy_body_timeout: d::PROXY_BODY_TIMEOUT,
            send_timeout: d::SEND_TIMEOUT,
            max_requests_per_ip: d::MAX_REQUESTS_PER_IP,
            tunnel_idle_timeout: d::TUNNEL_IDLE_TIMEOUT,
            max_tunnels_per_user: d::MAX_TUNNELS_PER_USER,
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

/// The mini-program platforms: named by the registry in
/// [`crate::signin::providers`], so a new platform needs no change here.
pub use crate::signin::providers::Platform;

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
    /// What the gateway proves itself to the platform with: the kind its
    /// platform names (see [`crate::signin::providers::CredentialKind`]).
    pub credentials: Credentials,
    /// The platform API's base URL.
    pub base_url: String,
    /// How long one code exchange may take.
    pub timeout: Duration,
    /// Web providers only: the base URL of the platform's authorize page.
    pub authorize_url: Option<String>,
}

impl ProviderConfig {
    /// The app secret, for platforms that use one.
    pub fn secret(&self) -> Option<&Secret> {
        match &self.credentials {
            Credentials::Secret { secret, .. } => Some(secret),
            Credentials::KeyPair(_) => None,
        }
    }

    /// The RSA key pair, for platforms that sign their calls (Alipay).
    pub fn key_pair(&self) -> Option<&KeyPair> {
        match &self.credentials {
            Credentials::Secret { .. } => None,
            Credentials::KeyPair(keys) => Some(keys),
        }
    }
}

/// A provider's credentials, resolved at start. `Display` says where they
/// came from, never what they are: what `config check` shows.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// An app secret, from `secret_env` or `secret_file`.
    Secret {
        /// The secret.
        secret: Secret,
        /// Where it came from: `env NAME` or `file PATH`.
        source: String,
    },
    /// An RSA2 key pair, from `private_key_file` and `alipay_public_key_file`.
    KeyPair(KeyPair),
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Secret { source, .. } => write!(f, "secret from {source}"),
            Credentials::KeyPair(k) => write!(
                f,
                "requests signed RSA2 with the key in {}, answers verified with the platform key in {}",
                k.private_key_file.display(),
                k.platform_key_file.display()
            ),
        }
    }
}

/// The app's private key, which signs each call, and the platform's public
/// key, which every answer must be signed with.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The app's private key.
    pub private_key: crate::signin::providers::rsa2::SigningKey,
    /// The file it was read from.
    pub private_key_file: PathBuf,
    /// The platform's public key.
    pub platform_key: crate::signin::providers::rsa2::VerifyingKey,
    /// The file it was read from.
    pub platform_key_file: PathBuf,
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
    /// Who may use it; `None` is every caller that passes `auth`.
    pub allow: Option<Vec<AllowRule>>,
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

pub(crate) fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// The longest duration any key takes. Timeouts are added to the clock on
/// the request path, where an absurd one (humantime reads up to 2^64
/// seconds) would overflow `Instant` and panic; refusing it here turns that
/// into a config error at start. A hundred years is far beyond any TTL or
/// timeout that means something.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Parses a duration such as `30s`, `15m`, `12h` or `30d`, at most
/// [`MAX_DURATION`].
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(value.trim()).map_err(|_| {
        err(
            key,
            format!("{value:?} is not a duration (e.g. \"30s\", \"15m\", \"12h\", \"30d\")"),
        )
    })?;
    if d > MAX_DURATION {
        return Err(err(
            key,
            format!("{value:?} is too long (at most 100 years)"),
        ));
    }
    Ok(d)
}

/// Is `s` usable as an HTTP header value and short: ids that end up in
/// `X-Auth-*` headers must be.
pub fn is_header_safe(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A URL with any `user:password@` taken out, for display: what operators
/// see of a URL never holds a credential.
pub fn redacted_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rsplit_once('@') {
                Some((_, host)) => {
                    format!("{scheme}://[credentials redacted]@{host}{}", &rest[end..])
                }
                None => url.to_owned(),
            }
        }
        None => "(unparsable)".to_owned(),
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
        match name {
            "WECHAT_APP_SECRET" => Some("s3cr3t".to_owned()),
            "ADMIN" => Some("an-admin-token-long-enough".to_owned()),
            "BROKER" => Some("a-broker-token-long-enough".to_owned()),
            "SHORT" => Some("short".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn a_duration_longer_than_a_century_is_refused() {
        assert_eq!(
            parse_duration("k", "100y").unwrap(),
            MAX_DURATION,
            "humantime's year is 365.25 days"
        );
        let e = parse_duration("k", "101y").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"k: "101y" is too long (at most 100 years)"#
        );
        // Long enough to overflow the clock when added to it: refused, where
        // it used to panic the worker serving the request.
        for key in ["send_timeout", "header_timeout", "proxy_body_timeout"] {
            let text = GOOD.replace(
                "[[providers]]",
                &format!("[server]\n{key} = \"500000000000y\"\n[[providers]]"),
            );
            let e = Config::from_toml(&text, &env).unwrap_err();
            assert_eq!(e.key, format!("server.{key}"));
            assert!(e.problem.contains("too long"), "{e}");
        }
        let route = GOOD.replace(
            "auth = \"optional\"",
            "auth = \"optional\"\ntimeout = \"500000000000y\"",
        );
        assert_eq!(
            Config::from_toml(&route, &env).unwrap_err().key,
            "routes[0].timeout"
        );
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::from_toml(GOOD, &env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.tokens.audience, ["api", "admin"]);
        assert_eq!(c.tokens.leeway, Duration::from_secs(30));
        assert_eq!(c.keys.reload_interval, Duration::from_secs(10));
        assert_eq!(c.providers[0].base_url, "https://api.weixin.qq.com");
        assert_eq!(c.providers[0].secret().unwrap().expose(), "s3cr3t");
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
        assert_eq!(c.providers[0].secret().unwrap().expose(), "from-a-file");
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
            // Requests are matched in the canonical form: a prefix that is
            // not in it would never match.
            (GOOD.replace("\"/api/\"", "\"/%61pi/\""), "routes[0].prefix"),
            (GOOD.replace("\"/api/\"", "\"/api//\""), "routes[0].prefix"),
            (
                GOOD.replace("\"/api/\"", "\"/api;v=1/\""),
                "routes[0].prefix",
            ),
            (
                GOOD.replace("WECHAT_APP_SECRET", "NOT_SET_ANYWHERE"),
                "providers[0].secret_env",
            ),
            (
                GOOD.replace("\"wechat\"", "\"line\""),
                "providers[0].platform",
            ),
            (
                GOOD.replace("\"wechat\"", "\"alipay\""),
                "providers[0].secret_env",
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
            (
                format!("{GOOD}[sessions]\non_limit = \"kick\"\n"),
                "sessions.on_limit",
            ),
            (
                format!("{GOOD}[sessions]\nreuse_grace = \"soon\"\n"),
                "sessions.reuse_grace",
            ),
            (
                format!("{GOOD}[sessions.devices]\npc = -1\n"),
                "sessions.devices.pc",
            ),
            (
                format!("{GOOD}[sessions.devices]\nPC = 1\n"),
                "sessions.devices.PC",
            ),
            (
                format!("{GOOD}[sessions]\nredis_cluster = [\"http://u:pw@x\"]\n"),
                "sessions.redis_cluster[0]",
            ),
            (
                format!(
                    "{GOOD}[sessions]\nredis_url = \"redis://x\"\nredis_cluster = [\"redis://y\"]\n"
                ),
                "sessions.redis_cluster",
            ),
            (
                format!("{GOOD}[admin]\nlisten = \"127.0.0.1:9000\"\ntoken_env = \"ADMIN\"\n"),
                "admin.listen",
            ),
            (
                format!("{GOOD}[admin]\nlisten = \"127.0.0.1:9901\"\n"),
                "admin.token_env",
            ),
            (
                format!("{GOOD}[admin]\nlisten = \"127.0.0.1:9901\"\ntoken_env = \"SHORT\"\n"),
                "admin.token_env",
            ),
            (
                format!("{GOOD}[admin]\ntoken_env = \"ADMIN\"\n"),
                "admin.listen",
            ),
        ];
        let allow = |auth: &str, allow: &str| {
            GOOD.replace(
                "auth = \"optional\"",
                &format!("auth = \"{auth}\"\nallow = {allow}"),
            )
        };
        let more = [
            (allow("public", "[{ roles = [\"a\"] }]"), "routes[0].allow"),
            (allow("required", "[]"), "routes[0].allow"),
            (
                allow("required", "[{ methods = [\"FETCH\"] }]"),
                "routes[0].allow[0].methods",
            ),
            (
                allow("required", "[{ roles = [\"a\"] }, { roles = [] }]"),
                "routes[0].allow[1].roles",
            ),
            (
                allow("optional", "[{ methods = [] }]"),
                "routes[0].allow[0].methods",
            ),
            (
                allow("required", "[{ roles = [\"a,b\"] }]"),
                "routes[0].allow[0].roles",
            ),
            (allow("required", "[{ role = [\"a\"] }]"), "line "),
            (
                format!("{GOOD}[[roles]]\nrole = \"a b\"\nusers = [\"u\"]\n"),
                "roles[0].role",
            ),
            (
                format!("{GOOD}[[roles]]\nrole = \"a\"\nusers = [\"\"]\n"),
                "roles[0].users[0]",
            ),
            (format!("{GOOD}[[roles]]\nrole = \"a\"\n"), "roles[0].users"),
            (
                format!("{GOOD}[enrich]\nurl = \"ftp://u:pw@x/\"\n"),
                "enrich.url",
            ),
            (
                format!("{GOOD}[enrich]\nurl = \"http://x/\"\ntimeout = \"0s\"\n"),
                "enrich.timeout",
            ),
            (
                format!("{GOOD}[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n"),
                "server.trusted_proxies[0]",
            ),
            (
                format!("{GOOD}[server]\nproxy_body_timeout = \"soon\"\n"),
                "server.proxy_body_timeout",
            ),
        ];
        for (text, key) in cases.into_iter().chain(more) {
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
    fn rules_grants_and_enrichment_parse() {
        let text = GOOD.replace(
            "auth = \"optional\"",
            "auth = \"required\"\nallow = [ { roles = [\"auditor\"], methods = [\"get\"] }, { roles = [\"admin\"] } ]",
        ) + "[[roles]]\nrole = \"admin\"\nusers = [\"u_1024\", \"o_2b9f\"]\n[enrich]\nurl = \"https://users.svc/minigate/enrich\"\n[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n";
        let c = Config::from_toml(&text, &env).unwrap();
        let allow = c.routes[0].allow.as_ref().unwrap();
        assert_eq!(allow[0].methods.as_deref(), Some(&[http::Method::GET][..]));
        assert_eq!(allow[1].methods, None);
        assert_eq!(c.roles[0].users, ["u_1024", "o_2b9f"]);
        let enrich = c.enrich.unwrap();
        assert_eq!(enrich.timeout, defaults::ENRICH_TIMEOUT);
        assert!(c.server.is_trusted("10.1.2.3".parse().unwrap()));
        assert!(c.server.is_trusted("192.0.2.7".parse().unwrap()));
        assert!(!c.server.is_trusted("192.0.2.8".parse().unwrap()));
        assert_eq!(c.server.proxy_body_timeout, defaults::PROXY_BODY_TIMEOUT);
        assert_eq!(
            redacted_url("https://user:hunter2@api.example.com/x?y=@"),
            "https://[credentials redacted]@api.example.com/x?y=@"
        );
    }

    /// A `[[providers]]` table of `platform` with these credential keys.
    fn with_provider(platform: &str, keys: &str) -> String {
        format!(
            "{GOOD}[[providers]]\nplatform = \"{platform}\"\nappid = \"2021000000000001\"\n{keys}\n"
        )
    }

    #[test]
    fn alipay_is_configured_with_key_files_and_nothing_else() {
        use std::os::unix::fs::PermissionsExt as _;
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/alipay");
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("app.pem");
        std::fs::copy(fixtures.join("app.pkcs1.pem"), &private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        let public = fixtures.join("alipay.spki.pem");
        let keys = format!(
            "private_key_file = {:?}\nalipay_public_key_file = {:?}",
            private.display().to_string(),
            public.display().to_string()
        );
        let c = Config::from_toml(&with_provider("alipay", &keys), &env).unwrap();
        let p = &c.providers[1];
        assert_eq!(p.platform.name(), "alipay");
        assert_eq!(p.base_url, "https://openapi.alipay.com/gateway.do");
        assert!(p.secret().is_none() && p.key_pair().is_some());
        let shown = p.credentials.to_string();
        assert!(
            shown.contains(&private.display().to_string()) && shown.contains("alipay.spki.pem"),
            "{shown}"
        );
        let pem = std::fs::read_to_string(&private).unwrap();
        let body = pem.lines().nth(1).unwrap();
        assert!(!format!("{c:?}").contains(body));

        let refused = |text: String, key: &str, says: &str| {
            let e = Config::from_toml(&text, &env).unwrap_err().to_string();
            assert!(
                e.starts_with(key) && e.contains(says),
                "{e} should name {key} and say {says:?}"
            );
            assert!(!e.contains(body) && !e.contains('\n'), "{e}");
        };
        let k = "providers[1]";
        refused(
            with_provider(
                "alipay",
                &format!("{keys}\nsecret_env = \"WECHAT_APP_SECRET\""),
            ),
            &format!("{k}.secret_env"),
            "no app secret",
        );
        refused(
            with_provider("alipay", "secret_env = \"WECHAT_APP_SECRET\""),
            &format!("{k}.secret_env"),
            "no app secret",
        );
        refused(
            with_provider("alipay", &keys.replace("alipay_public_key_file", "#")),
            &format!("{k}.alipay_public_key_file"),
            "required",
        );
        refused(
            with_provider("qq", &format!("secret_env = \"WECHAT_APP_SECRET\"\n{keys}")),
            &format!("{k}.private_key_file"),
            "(alipay)",
        );
        // Others may read the private key: refused, the path named.
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        refused(
            with_provider("alipay", &keys),
            &format!("{k}.private_key_file"),
            "mode 0644",
        );
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A file of the wrong kind under each key.
        let public_as_private = dir.path().join("public-as-private.pem");
        std::fs::copy(&public, &public_as_private).unwrap();
        std::fs::set_permissions(&public_as_private, std::fs::Permissions::from_mode(0o600))
            .unwrap();
        refused(
            with_provider(
                "alipay",
                &keys.replace(
                    &private.display().to_string(),
                    &public_as_private.display().to_string(),
                ),
            ),
            &format!("{k}.private_key_file"),
            "not an RSA private key",
        );
        refused(
            with_provider(
                "alipay",
                &keys.replace(
                    &public.display().to_string(),
                    &private.display().to_string(),
                ),
            ),
            &format!("{k}.alipay_public_key_file"),
            "not an RSA public key",
        );
        refused(
            with_provider(
                "alipay",
                &keys.replace(&public.display().to_string(), "/nonexistent/alipay.pem"),
            ),
            &format!("{k}.alipay_public_key_file"),
            "/nonexistent/alipay.pem",
        );
    }

    #[test]
    fn every_platform_has_its_default_base_url() {
        for (platform, url) in [
            ("qq", "https://api.q.qq.com"),
            ("douyin", "https://developer.toutiao.com"),
            ("baidu", "https://spapi.baidu.com"),
        ] {
            let c = Config::from_toml(
                &with_provider(platform, "secret_env = \"WECHAT_APP_SECRET\""),
                &env,
            )
            .unwrap();
            assert_eq!(c.providers[1].platform.name(), platform);
            assert_eq!(c.providers[1].base_url, url);
        }
        let e = Config::from_toml(&GOOD.replace("\"wechat\"", "\"line\""), &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "providers[0].platform: \"line\" is not a known platform (wechat, qq, douyin, baidu, alipay, wechat_web, wechat_pc)"
        );
    }

    #[test]
    fn devices_and_admin() {
        let c = Config::from_toml(GOOD, &env).unwrap();
        assert_eq!(c.sessions.devices, DeviceClasses::default());
        assert_eq!(c.sessions.on_limit, OnLimit::EvictOldest);
        assert!(c.sessions.reuse_grace.is_zero());
        assert!(c.admin.is_none());
        let text = format!(
            "{GOOD}[sessions]\non_limit = \"refuse\"\nreuse_grace = \"10s\"\n[sessions.devices]\npc = 2\ntablet = 1\n[admin]\nlisten = \"127.0.0.1:9901\"\ntoken_env = \"ADMIN\"\n"
        );
        let c = Config::from_toml(&text, &env).unwrap();
        assert_eq!(c.sessions.on_limit, OnLimit::Refuse);
        assert_eq!(c.sessions.reuse_grace, Duration::from_secs(10));
        let limits: Vec<(&str, u32)> = c
            .sessions
            .devices
            .0
            .iter()
            .map(|d| (d.name.as_str(), d.limit))
            .collect();
        assert_eq!(limits, [("phone", 0), ("pc", 2), ("web", 2), ("tablet", 1)]);
        let admin = c.admin.unwrap();
        assert_eq!(admin.listen.port(), 9901);
        assert_eq!(admin.tokens.len(), 1);
        assert_eq!(admin.tokens[0].source, "env ADMIN");
        assert_eq!(admin.tokens[0].scopes, AdminScope::ALL);
        assert!(!format!("{admin:?}").contains("an-admin-token"));
    }

    #[test]
    fn scoped_admin_tokens() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sessions-token");
        std::fs::write(&file, "a-sessions-token-from-a-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = file.display().to_string();
        // A token file others may read is refused, as a private key file is.
        let readable = dir.path().join("readable-token");
        std::fs::write(&readable, "a-token-others-may-read\n").unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
        let readable = readable.display().to_string();
        let admin = |body: &str| format!("{GOOD}[admin]\nlisten = \"127.0.0.1:9901\"\n{body}");
        let token =
            |source: &str, scopes: &str| format!("[[admin.tokens]]\n{source}\nscopes = {scopes}\n");
        // Scoped tokens only, without a token of every scope.
        let text = admin(&format!(
            "{}{}",
            token("env = \"BROKER\"", "[\"wechat\"]"),
            token(&format!("file = {file:?}"), "[\"wechat\", \"sessions\"]")
        ));
        let c = Config::from_toml(&text, &env).unwrap();
        let tokens = c.admin.unwrap().tokens;
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].source, "env BROKER");
        assert_eq!(tokens[0].scopes, [AdminScope::Wechat]);
        assert!(tokens[0].allows(AdminScope::Wechat) && !tokens[0].allows(AdminScope::Sessions));
        assert_eq!(tokens[1].source, format!("file {file}"));
        assert_eq!(tokens[1].token.expose(), "a-sessions-token-from-a-file");
        assert_eq!(tokens[1].scopes, AdminScope::ALL, "in ALL order");
        // With the token of every scope, first.
        let text = admin(&format!(
            "token_env = \"ADMIN\"\n{}",
            token("env = \"BROKER\"", "[\"wechat\"]")
        ));
        let tokens = Config::from_toml(&text, &env)
            .unwrap()
            .admin
            .unwrap()
            .tokens;
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            (tokens[0].source.as_str(), tokens[0].scopes.as_slice()),
            ("env ADMIN", &AdminScope::ALL[..])
        );
        assert!(!format!("{tokens:?}").contains("token-long-enough"));

        let cases = [
            (
                admin(&token("env = \"BROKER\"", "[\"broker\"]")),
                "admin.tokens[0].scopes: \"broker\" is not a scope (sessions, wechat)",
            ),
            (
                admin(&token("env = \"BROKER\"", "[]")),
                "admin.tokens[0].scopes: is empty: the token could call nothing (scopes: sessions, wechat)",
            ),
            (
                admin(&token("env = \"BROKER\"", "[\"wechat\", \"wechat\"]")),
                "admin.tokens[0].scopes: \"wechat\" appears twice",
            ),
            (
                admin("[[admin.tokens]]\nenv = \"BROKER\"\n"),
                "admin.tokens[0].scopes: is required",
            ),
            (
                admin(&token(&format!("env = \"BROKER\"\nfile = {file:?}"), "[\"wechat\"]")),
                "admin.tokens[0].env: exactly one of env and file is required",
            ),
            (
                admin(&token("", "[\"wechat\"]")),
                "admin.tokens[0].env: exactly one of env and file is required",
            ),
            (
                admin(&token("env = \"NOT_SET_ANYWHERE\"", "[\"wechat\"]")),
                "admin.tokens[0].env: environment variable NOT_SET_ANYWHERE is not set",
            ),
            (
                admin(&token("env = \"SHORT\"", "[\"wechat\"]")),
                "admin.tokens[0].env: the admin token must be at least 16 characters",
            ),
            (
                admin(&token("file = \"/nonexistent/broker\"", "[\"wechat\"]")),
                "admin.tokens[0].file: /nonexistent/broker: No such file or directory (os error 2)",
            ),
            // The same token twice: under two names, or once with every scope.
            (
                admin(&format!(
                    "{}{}",
                    token("env = \"BROKER\"", "[\"wechat\"]"),
                    token("env = \"BROKER\"", "[\"sessions\"]")
                )),
                "admin.tokens[1].env: holds the same token as admin.tokens[0].env: give each token once, with all its scopes",
            ),
            (
                admin(&format!(
                    "token_env = \"ADMIN\"\n{}",
                    token("env = \"ADMIN\"", "[\"wechat\"]")
                )),
                "admin.tokens[0].env: holds the same token as admin.token_env: give each token once, with all its scopes",
            ),
            (
                admin(&format!("token_file = {file:?}\n")).replace(&file, &readable),
                "admin.token_file: ",
            ),
            (
                admin(&token(&format!("file = {readable:?}"), "[\"wechat\"]")),
                "admin.tokens[0].file: ",
            ),
            (
                admin(""),
                "admin.token_env: the admin listener needs a token: token_env or token_file (every scope), or [[admin.tokens]] with their scopes",
            ),
            (
                admin(&format!("token_env = \"ADMIN\"\ntoken_file = {file:?}\n")),
                "admin.token_env: give one of token_env and token_file, not both",
            ),
            (
                admin("[[admin.tokens]]\nenv = \"BROKER\"\nscopes = [\"wechat\"]\nscope = 1\n"),
                "line ",
            ),
        ];
        for (text, says) in cases {
            let e = Config::from_toml(&text, &env).unwrap_err().to_string();
            assert!(e.starts_with(says), "{e}\nshould start with\n{says}");
            assert!(
                !e.contains("long-enough") && !e.contains("from-a-file"),
                "{e}"
            );
            assert!(!e.contains("others-may-read") && !e.contains('\n'), "{e}");
            if e.contains(&readable) {
                assert!(e.ends_with("holds an admin token but is accessible to others (mode 0644); chmod 600 it"), "{e}");
            }
        }
    }

    #[test]
    fn web_sign_in_and_its_checks() {
        let web_provider = |platform: &str, extra: &str| {
            format!("[[providers]]\nplatform = \"{platform}\"\nappid = \"wxweb\"\nsecret_env = \"WECHAT_APP_SECRET\"\n{extra}")
        };
        let text = format!(
            "{GOOD}[web]\npublic_url = \"https://App.Example.com:443/\"\ncookies = true\n{}",
            web_provider("wechat_web", "")
        );
        let c = Config::from_toml(&text, &env).unwrap();
        let web = c.web.unwrap();
        assert_eq!(web.public_url, "https://app.example.com");
        assert!(web.cookies);
        let p = &c.providers[1];
        assert_eq!(p.platform.name(), "wechat_web");
        assert_eq!(p.base_url, "https://api.weixin.qq.com");
        assert_eq!(
            p.authorize_url.as_deref(),
            Some("https://open.weixin.qq.com")
        );
        assert_eq!(c.providers[0].authorize_url, None);
        // cookies defaults to false; http is for loopback only.
        for (url, origin) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://localhost:3000/", "http://localhost:3000"),
            ("http://[::1]:9", "http://[::1]:9"),
        ] {
            let text = format!("{GOOD}[web]\npublic_url = \"{url}\"\n");
            let web = Config::from_toml(&text, &env).unwrap().web.unwrap();
            assert_eq!((web.public_url.as_str(), web.cookies), (origin, false));
        }
        let cases = [
            (format!("{GOOD}[web]\ncookies = true\n"), "web.public_url"),
            (format!("{GOOD}[web]\npublic_url = \"http://app.example.com\"\n"), "web.public_url"),
            (format!("{GOOD}[web]\npublic_url = \"https://app.example.com/app\"\n"), "web.public_url"),
            (format!("{GOOD}[web]\npublic_url = \"https://u:pw@app.example.com\"\n"), "web.public_url"),
            (format!("{GOOD}[web]\npublic_url = \"app.example.com\"\n"), "web.public_url"),
            (format!("{GOOD}[web]\npublic_url = \"https://a.example\"\nsecure = 1\n"), "line "),
            (format!("{GOOD}{}", web_provider("wechat_pc", "")), "providers[1].platform"),
            (
                format!("{GOOD}[web]\npublic_url = \"https://a.example\"\n{}", web_provider("wechat_pc", "authorize_url = \"ftp://x\"\n")),
                "providers[1].authorize_url",
            ),
            (
                GOOD.replace("secret_env = \"WECHAT_APP_SECRET\"", "secret_env = \"WECHAT_APP_SECRET\"\nauthorize_url = \"https://open.weixin.qq.com\""),
                "providers[0].authorize_url",
            ),
        ];
        for (text, key) in cases {
            let e = Config::from_toml(&text, &env).unwrap_err();
            assert!(e.to_string().starts_with(key), "{e} should name {key}");
            assert!(!e.to_string().contains("pw@"), "{e}");
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
