//! Test configurations as typed pieces: a [`Setup`](super::Setup) names
//! its `[server]` keys, extra routes, grants, providers and sections with
//! these, and [`super::config_text`] renders the whole TOML in one place.
//! Each piece is a table of typed setters (`Server::default()
//! .header_timeout(ms(500))`), so a misspelt key does not compile and a
//! value is written in its TOML type. Tests whose point is the text itself
//! (a bad config's error, a file edited by hand) keep their text.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

/// A value as the config writes it.
pub trait ToToml {
    fn to_toml(self) -> Value;
}

impl ToToml for &str {
    fn to_toml(self) -> Value {
        Value::String(self.to_owned())
    }
}

impl ToToml for String {
    fn to_toml(self) -> Value {
        Value::String(self)
    }
}

impl ToToml for &Path {
    fn to_toml(self) -> Value {
        Value::String(self.display().to_string())
    }
}

impl ToToml for SocketAddr {
    fn to_toml(self) -> Value {
        Value::String(self.to_string())
    }
}

impl ToToml for u64 {
    fn to_toml(self) -> Value {
        Value::Integer(self as i64)
    }
}

impl ToToml for f64 {
    fn to_toml(self) -> Value {
        Value::Float(self)
    }
}

impl ToToml for bool {
    fn to_toml(self) -> Value {
        Value::Boolean(self)
    }
}

/// A duration as the config's humane form (`500ms`, `8s`).
impl ToToml for Duration {
    fn to_toml(self) -> Value {
        Value::String(humantime::format_duration(self).to_string())
    }
}

impl<T: ToToml, const N: usize> ToToml for [T; N] {
    fn to_toml(self) -> Value {
        Value::Array(self.into_iter().map(ToToml::to_toml).collect())
    }
}

impl<T: ToToml> ToToml for Vec<T> {
    fn to_toml(self) -> Value {
        Value::Array(self.into_iter().map(ToToml::to_toml).collect())
    }
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A table with a typed setter per key it may hold.
macro_rules! table {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $key:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default)]
        pub struct $name(pub Table);

        impl $name {
            $(
                $(#[$fdoc])*
                pub fn $key(mut self, value: $ty) -> Self {
                    self.0.insert(stringify!($key).into(), ToToml::to_toml(value));
                    self
                }
            )*
        }

        impl ToToml for $name {
            fn to_toml(self) -> Value {
                Value::Table(self.0)
            }
        }
    };
}

table!(
    /// `[server]`.
    Server {
        login_per_minute: u64,
        login_burst: u64,
        trusted_proxies: Vec<&'static str>,
        shutdown_timeout: Duration,
        header_timeout: Duration,
        body_timeout: Duration,
        max_headers: u64,
        max_header_bytes: u64,
        max_connections: u64,
        max_requests_per_ip: u64,
        upstream_max_connections: u64,
        proxy_body_timeout: Duration,
        send_timeout: Duration,
        underscores_in_headers: bool,
        tunnel_idle_timeout: Duration,
        max_tunnels_per_user: u64,
    }
);

table!(
    /// One `[[routes]]` table; without [`Route::upstream`], the harness
    /// upstream's.
    Route {
        /// `required` (the default when absent), `optional` or `public`.
        auth: &'static str,
        /// The `allow` rules, in order.
        allow: Vec<Allow>,
    }
);

impl Route {
    /// A route of `prefix`, `auth` left to the default.
    pub fn new(prefix: &str) -> Route {
        let mut t = Table::new();
        t.insert("prefix".into(), prefix.to_toml());
        Route(t)
    }

    pub fn required(prefix: &str) -> Route {
        Route::new(prefix).auth("required")
    }

    pub fn optional(prefix: &str) -> Route {
        Route::new(prefix).auth("optional")
    }

    pub fn public(prefix: &str) -> Route {
        Route::new(prefix).auth("public")
    }

    /// Forwarded to `http://{addr}`.
    pub fn upstream(self, addr: SocketAddr) -> Route {
        self.upstream_url(&format!("http://{addr}"))
    }

    /// Forwarded to `url` as written.
    pub fn upstream_url(mut self, url: &str) -> Route {
        self.0.insert("upstream".into(), url.to_toml());
        self
    }
}

table!(
    /// One `allow` rule of a route: any of `roles`, any of `methods`.
    Allow {
        roles: Vec<&'static str>,
        methods: Vec<&'static str>,
    }
);

/// A rule for these roles.
pub fn roles<const N: usize>(roles: [&'static str; N]) -> Allow {
    Allow::default().roles(roles.to_vec())
}

/// A rule for these methods.
pub fn methods<const N: usize>(methods: [&'static str; N]) -> Allow {
    Allow::default().methods(methods.to_vec())
}

table!(
    /// One `[[roles]]` grant.
    Role {
        role: &str,
        users: Vec<String>,
    }
);

/// `[[roles]]`: `role` for these subjects.
pub fn grant(role: &str, users: Vec<String>) -> Role {
    Role::default().role(role).users(users)
}

table!(
    /// One `[[providers]]` table.
    Provider {
        platform: &str,
        appid: &str,
        secret_env: &str,
        secret_file: &Path,
        private_key_file: &Path,
        alipay_public_key_file: &Path,
        base_url: String,
        authorize_url: String,
        timeout: Duration,
        component_appid: &str,
        encoding_aes_key_env: &str,
        verify_token_env: &str,
        appids: Vec<&'static str>,
        allow_any_authorized: bool,
        risk_scene: u64,
        refuse_risk_rank: u64,
        risk_required: bool,
    }
);

impl Provider {
    /// An app of `platform` whose secret is in the env var `secret_env`.
    pub fn new(platform: &str, appid: &str, secret_env: &str) -> Provider {
        Provider::default()
            .platform(platform)
            .appid(appid)
            .secret_env(secret_env)
    }
}

table!(
    /// `[sessions]`: in process when empty.
    Sessions {
        redis_url: String,
        redis_cluster: Vec<String>,
        max_per_user: u64,
        /// `evict` or `refuse`.
        on_limit: &str,
        reuse_grace: Duration,
        idle_ttl: Duration,
        /// `[sessions.devices]`.
        devices: Devices,
    }
);

table!(
    /// `[sessions.devices]`: live sessions per device class.
    Devices {
        web: u64,
        tablet: u64,
        phone: u64,
        pc: u64,
    }
);

table!(
    /// `[admin]`.
    Admin {
        listen: SocketAddr,
        token_env: &str,
        /// `[[admin.tokens]]`.
        tokens: Vec<AdminToken>,
    }
);

impl Admin {
    /// On a port of its own, with the test token (`TEST_ADMIN_TOKEN`).
    pub fn test() -> Admin {
        Admin::default()
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .token_env("TEST_ADMIN_TOKEN")
    }
}

table!(
    /// One `[[admin.tokens]]` table.
    AdminToken {
        file: &Path,
        scopes: Vec<&'static str>,
    }
);

table!(
    /// `[enrich]`: the user service.
    Enrich {
        url: String,
        timeout: Duration,
    }
);

/// `[enrich]` at `url`.
pub fn enrich(url: String) -> Enrich {
    Enrich::default().url(url)
}

table!(
    /// `[web]`.
    Web {
        public_url: String,
        cookies: bool,
    }
);

table!(
    /// `[log]`.
    Log { format: &str }
);

table!(
    /// `[tls]`.
    Tls {
        cert: &Path,
        key: &Path,
    }
);

table!(
    /// `[audit]`.
    Audit {
        redis_stream: &str,
        stream_maxlen: u64,
    }
);

table!(
    /// `[tracing]`.
    Tracing {
        otlp_endpoint: String,
        sample_ratio: f64,
        service_name: &str,
    }
);
