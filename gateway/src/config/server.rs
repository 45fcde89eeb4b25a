//! The `[server]`, `[tls]` and `[log]` sections: the listener's limits and what it logs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::defaults;

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
