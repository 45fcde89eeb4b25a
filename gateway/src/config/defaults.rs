//! Every default of the configuration, named once.
//!
//! The parser, `serve --dev`, `keys prune` and the docs all mean the same
//! values; keeping them here is what makes that true.

use std::time::Duration;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `listen`.
pub const LISTEN: &str = "0.0.0.0:8080";
/// `tokens.access_ttl`.
pub const ACCESS_TTL: Duration = secs(15 * 60);
/// `tokens.refresh_ttl`; also what `keys prune` keeps retired keys for
/// when it is given no config.
pub const REFRESH_TTL: Duration = secs(30 * 24 * 3600);
/// `tokens.leeway`.
pub const LEEWAY: Duration = secs(30);
/// `tokens.cache_capacity`.
pub const TOKEN_CACHE_CAPACITY: u64 = 100_000;
/// `keys.reload_interval`.
pub const KEYS_RELOAD_INTERVAL: Duration = secs(10);
/// `providers[].timeout`.
pub const PROVIDER_TIMEOUT: Duration = secs(5);
/// `routes[].timeout`.
pub const ROUTE_TIMEOUT: Duration = secs(30);
/// `enrich.timeout`.
pub const ENRICH_TIMEOUT: Duration = secs(2);
/// `providers[].authorize_url` of `wechat_web` and `wechat_pc`.
pub const WEB_AUTHORIZE_URL: &str = "https://open.weixin.qq.com";
/// `web.cookies`: the access cookie authenticates proxied requests only
/// when the operator says so.
pub const WEB_COOKIES: bool = false;
/// `sessions.max_sessions`.
pub const MAX_SESSIONS: u64 = 200_000;
/// `sessions.max_per_user`: live sessions of one user across classes.
pub const MAX_PER_USER: u32 = 100;
/// `[sessions.devices]`: the device classes and their limits (0 = no
/// limit), after the mini-program article's table: phones many, PC one,
/// web two. A login without `device_type` is a `phone` login.
pub const DEVICE_CLASSES: [(&str, u32); 3] = [("phone", 0), ("pc", 1), ("web", 2)];
/// The device class of a login that names none.
pub const DEVICE_TYPE: &str = "phone";

/// `server.max_connections`.
pub const MAX_CONNECTIONS: usize = 10_000;
/// `server.header_timeout`.
pub const HEADER_TIMEOUT: Duration = secs(15);
/// `server.max_header_bytes`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// `server.max_headers`.
pub const MAX_HEADERS: usize = 64;
/// `server.body_timeout`.
pub const BODY_TIMEOUT: Duration = secs(10);
/// `server.login_per_minute`.
pub const LOGIN_PER_MINUTE: u32 = 30;
/// `server.login_burst`.
pub const LOGIN_BURST: u32 = 10;
/// `server.shutdown_timeout`.
pub const SHUTDOWN_TIMEOUT: Duration = secs(20);
/// `server.upstream_max_connections`.
pub const UPSTREAM_MAX_CONNECTIONS: usize = 1024;
/// `server.proxy_body_timeout`.
pub const PROXY_BODY_TIMEOUT: Duration = secs(30);
/// `server.send_timeout`.
pub const SEND_TIMEOUT: Duration = secs(30);
/// `server.max_requests_per_ip`.
pub const MAX_REQUESTS_PER_IP: u32 = 256;
/// `server.tunnel_idle_timeout`.
pub const TUNNEL_IDLE_TIMEOUT: Duration = secs(5 * 60);
/// `tracing.sample_ratio`.
pub const TRACE_SAMPLE_RATIO: f64 = 0.01;
/// `tracing.service_name`.
pub const TRACE_SERVICE_NAME: &str = "minigate";
/// `audit.stream_maxlen`.
pub const AUDIT_STREAM_MAXLEN: u64 = 100_000;
/// `server.max_tunnels_per_user`.
pub const MAX_TUNNELS_PER_USER: u32 = 16;
