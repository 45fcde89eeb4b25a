//! From the serde mirror to validated values: every check, every error
//! naming its key.

mod admin;
mod audit;
mod component;
mod providers;
mod risk;
mod routes;
mod server;
mod sessions;
mod tokens;
mod traces;

use admin::admin;
use audit::audit;
pub use providers::public_origin;
use providers::{provider, web};
pub(in crate::config) use routes::grants;
use routes::{enrich, route};
use server::server;
use sessions::sessions;
use tokens::tokens;
use traces::tracing_section;

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;

use super::raw::{
    Raw, RawAdmin, RawAllow, RawAudience, RawAudit, RawEnrich, RawProvider, RawRole, RawRoute,
    RawServer, RawSessions, RawTokens, RawTracing, RawWeb,
};
use super::{
    defaults, err, files, is_class_name, is_header_safe, is_role_name, parse_duration, AdminConfig,
    AdminScope, AdminToken, AllowRule, AuditConfig, AuthMode, Config, ConfigError, Credentials,
    DeviceClass, DeviceClasses, EnrichConfig, KeyPair, KeysConfig, LogConfig, LogFormat, OnLimit,
    Platform, ProviderConfig, RoleGrant, RouteConfig, Secret, ServerConfig, SessionsConfig,
    TlsConfig, TokensConfig, TracingConfig, WebConfig,
};
use crate::config::CredentialKind;

/// The shortest admin token accepted: a guessable token would open every
/// user's sessions to whoever reaches the admin port.
const MIN_ADMIN_TOKEN: usize = 16;

/// Where an admin token is read from.
enum TokenSource {
    Env(String),
    File(std::path::PathBuf),
}

/// A duration of at least a second's worth of anything: `default` when absent.
pub(super) fn duration_or(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let d = parse_duration(key, value)?;
    if d.is_zero() {
        return Err(err(key, "must be more than zero"));
    }
    Ok(d)
}

fn required<T>(key: &str, value: Option<T>) -> Result<T, ConfigError> {
    value.ok_or_else(|| err(key, "is required"))
}

impl Config {
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
                files::load_tls(&tls)?;
                Some(tls)
            }
        };
        let listen = raw.listen.as_deref().unwrap_or(defaults::LISTEN);
        let listen: SocketAddr = listen.parse().map_err(|_| {
            err(
                "listen",
                format!("{listen:?} is not an address like \"0.0.0.0:8080\""),
            )
        })?;
        let tokens = tokens(required("tokens", raw.tokens)?)?;
        let keys = required("keys", raw.keys)?;
        let keys = KeysConfig {
            dir: required("keys.dir", keys.dir)?,
            reload_interval: duration_or(
                "keys.reload_interval",
                keys.reload_interval.as_deref(),
                defaults::KEYS_RELOAD_INTERVAL,
            )?,
        };
        let mut providers = Vec::with_capacity(raw.providers.len());
        for (i, p) in raw.providers.into_iter().enumerate() {
            let p = provider(i, p, env)?;
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
        component::check_all(&providers)?;
        let mut routes = Vec::with_capacity(raw.routes.len());
        for (i, r) in raw.routes.into_iter().enumerate() {
            let r = route(i, r)?;
            if routes.iter().any(|o: &RouteConfig| o.prefix == r.prefix) {
                return Err(err(
                    format!("routes[{i}].prefix"),
                    format!("{:?} appears twice", r.prefix),
                ));
            }
            routes.push(r);
        }
        let roles = grants(raw.roles)?;
        let enrich = raw.enrich.map(enrich).transpose()?;
        let sessions = sessions(raw.sessions, &tokens)?;
        let audit = audit(raw.audit, &sessions)?;
        let tracing = raw.tracing.map(tracing_section).transpose()?;
        let server = server(raw.server)?;
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
        let admin = raw.admin.map(|a| admin(a, listen, env)).transpose()?;
        let web = raw.web.map(web).transpose()?;
        if web.is_none() {
            if let Some(i) = providers.iter().position(|p| p.platform.is_web()) {
                return Err(err(
                    format!("providers[{i}].platform"),
                    "a web sign-in needs [web] public_url: the origin browsers see",
                ));
            }
        }
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
            roles,
            enrich,
            source: None,
            admin,
            web,
            audit,
            tracing,
        })
    }
}
