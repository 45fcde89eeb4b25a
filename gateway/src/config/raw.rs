//! The serde mirror of the TOML file: plain strings and numbers, unknown
//! keys refused. Nothing here is checked; [`super::parse`] turns it into the
//! validated types, naming the key of every error.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub listen: Option<String>,
    pub tokens: Option<RawTokens>,
    pub keys: Option<RawKeys>,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    pub tls: Option<RawTls>,
    pub sessions: Option<RawSessions>,
    pub server: Option<RawServer>,
    pub log: Option<RawLog>,
    #[serde(default)]
    pub roles: Vec<RawRole>,
    pub enrich: Option<RawEnrich>,
    pub admin: Option<RawAdmin>,
    pub web: Option<RawWeb>,
    pub audit: Option<RawAudit>,
    pub tracing: Option<RawTracing>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracing {
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: Option<f64>,
    pub service_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub redis_stream: Option<String>,
    pub stream_maxlen: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub public_url: Option<String>,
    pub cookies: Option<bool>,
}

/// Only the `[[roles]]` of a file, for the reload of static grants: the
/// rest of the file is not looked at.
#[derive(Deserialize)]
pub(super) struct RawRolesOnly {
    #[serde(default)]
    pub roles: Vec<RawRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    pub role: Option<String>,
    pub users: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnrich {
    pub url: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllow {
    pub roles: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub listen: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub tokens: Vec<RawAdminToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdminToken {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessions {
    pub redis_url: Option<String>,
    pub redis_cluster: Option<Vec<String>>,
    pub max_sessions: Option<u64>,
    pub max_per_user: Option<i64>,
    pub reuse_grace: Option<String>,
    pub idle_ttl: Option<String>,
    pub on_limit: Option<String>,
    pub devices: Option<std::collections::BTreeMap<String, i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub max_connections: Option<usize>,
    pub header_timeout: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub body_timeout: Option<String>,
    pub login_per_minute: Option<u32>,
    pub login_burst: Option<u32>,
    pub shutdown_timeout: Option<String>,
    pub upstream_max_connections: Option<usize>,
    pub underscores_in_headers: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub proxy_body_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub max_requests_per_ip: Option<u32>,
    pub tunnel_idle_timeout: Option<String>,
    pub max_tunnels_per_user: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawAudience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    pub issuer: Option<String>,
    pub audience: Option<RawAudience>,
    pub access_ttl: Option<String>,
    pub refresh_ttl: Option<String>,
    pub leeway: Option<String>,
    pub cache_capacity: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeys {
    pub dir: Option<PathBuf>,
    pub reload_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub platform: Option<String>,
    pub appid: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub private_key_file: Option<PathBuf>,
    pub alipay_public_key_file: Option<PathBuf>,
    pub base_url: Option<String>,
    pub timeout: Option<String>,
    pub authorize_url: Option<String>,
    pub component_appid: Option<String>,
    pub encoding_aes_key_env: Option<String>,
    pub verify_token_env: Option<String>,
    pub appids: Option<Vec<String>>,
    pub allow_any_authorized: Option<bool>,
    pub risk_scene: Option<u32>,
    pub refuse_risk_rank: Option<u8>,
    pub risk_required: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub prefix: Option<String>,
    pub upstream: Option<String>,
    pub auth: Option<String>,
    pub timeout: Option<String>,
    pub allow: Option<Vec<RawAllow>>,
}
