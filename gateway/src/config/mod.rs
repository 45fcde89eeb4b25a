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
//!
//! The checked values are declared a file per part of the config
//! (`server`, `sessions`, `routes`, `providers`, `tokens`, `admin`), what
//! they share in `values`, and checked a file per part in `parse/`; a new
//! key goes in its part's two files and in `raw`.

mod admin;
mod audit;
mod component;
pub mod defaults;
pub mod files;
mod load;
mod parse;
mod providers;
mod raw;
mod routes;
mod server;
mod sessions;
pub mod tls;
mod tokens;
mod traces;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use load::{admin_listen_of, grants_of, refresh_ttl_of};
pub use parse::public_origin;

pub use admin::*;
pub use audit::*;
pub use component::*;
pub use providers::*;
pub use routes::*;
pub use server::*;
pub use sessions::*;
pub use tokens::*;
pub use traces::*;
pub use values::*;

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
    /// `[audit]`: where audit events go besides their log target.
    pub audit: AuditConfig,
    /// `[tracing]`: OpenTelemetry traces, if configured.
    pub tracing: Option<TracingConfig>,
}

#[cfg(test)]
mod tests;
