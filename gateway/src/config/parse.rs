//! From the serde mirror to validated values: every check, every error
//! naming its key.

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;

use super::raw::{
    Raw, RawAdmin, RawAllow, RawAudience, RawEnrich, RawProvider, RawRole, RawRoute, RawServer,
    RawSessions, RawTokens, RawWeb,
};
use super::{
    defaults, err, files, is_class_name, is_header_safe, is_role_name, parse_duration, AdminConfig,
    AdminScope, AdminToken, AllowRule, AuthMode, Config, ConfigError, Credentials, DeviceClass,
    DeviceClasses, EnrichConfig, KeyPair, KeysConfig, LogConfig, LogFormat, OnLimit, Platform,
    ProviderConfig, RoleGrant, RouteConfig, Secret, ServerConfig, SessionsConfig, TlsConfig,
    TokensConfig, WebConfig,
};
use crate::signin::providers::CredentialKind;

/// `[[roles]]`, checked: every role a valid name, every user a user key.
pub(super) fn grants(raw: Vec<RawRole>) -> Result<Vec<RoleGrant>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let key = |k: &str| format!("roles[{i}].{k}");
            let role = required(&key("role"), r.role)?;
            if !is_role_name(&role) {
                return Err(err(
                    key("role"),
                    "must be 1-64 visible ASCII characters without commas",
                ));
            }
            let users = required(&key("users"), r.users)?;
            if let Some(bad) = users.iter().position(|u| !is_header_safe(u, 128)) {
                return Err(err(
                    format!("roles[{i}].users[{bad}]"),
                    "must be a user key of 1-128 visible ASCII characters",
                ));
            }
            Ok(RoleGrant { role, users })
        })
        .collect()
}

fn enrich(e: RawEnrich) -> Result<EnrichConfig, ConfigError> {
    let url = required("enrich.url", e.url)?;
    let parsed = reqwest::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    let Some(url) = parsed else {
        // Not repeated: it may hold credentials.
        return Err(err("enrich.url", "is not an http(s) URL"));
    };
    Ok(EnrichConfig {
        url,
        timeout: duration_or(
            "enrich.timeout",
            e.timeout.as_deref(),
            defaults::ENRICH_TIMEOUT,
        )?,
    })
}

/// A route's `allow` list: not empty, and every entry one that can match.
fn allow(i: usize, list: Vec<RawAllow>) -> Result<Vec<AllowRule>, ConfigError> {
    if list.is_empty() {
        return Err(err(
            format!("routes[{i}].allow"),
            "is empty, so nobody could use the route; remove it to allow every caller",
        ));
    }
    list.into_iter()
        .enumerate()
        .map(|(j, a)| {
            let key = |k: &str| format!("routes[{i}].allow[{j}].{k}");
            let roles = match a.roles {
                None => None,
                Some(r) if r.is_empty() => {
                    return Err(err(key("roles"), "is empty: no caller could match it"))
                }
                Some(r) => {
                    if let Some(bad) = r.iter().find(|r| !is_role_name(r)) {
                        return Err(err(
                            key("roles"),
                            format!("{bad:?} is not a role (1-64 visible ASCII, no commas)"),
                        ));
                    }
                    Some(r)
                }
            };
            let methods = match a.methods {
                None => None,
                Some(m) if m.is_empty() => {
                    return Err(err(key("methods"), "is empty: no request could match it"))
                }
                Some(m) => Some(
                    m.iter()
                        .map(|name| method(name).ok_or_else(|| {
                            err(
                                key("methods"),
                                format!("{name:?} is not an HTTP method (GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE)"),
                            )
                        }))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            Ok(AllowRule { roles, methods })
        })
        .collect()
}

/// A standard method by name, any case.
fn method(name: &str) -> Option<http::Method> {
    let upper = name.to_ascii_uppercase();
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .contains(&upper.as_str())
        .then(|| http::Method::from_bytes(upper.as_bytes()).ok())
        .flatten()
}

/// The shortest admin token accepted: a guessable token would open every
/// user's sessions to whoever reaches the admin port.
const MIN_ADMIN_TOKEN: usize = 16;

/// Where an admin token is read from.
enum TokenSource {
    Env(String),
    File(std::path::PathBuf),
}

/// An admin token from `source`, checked; errors name `key`, never the token.
fn admin_token(
    key: &str,
    source: TokenSource,
    scopes: Vec<AdminScope>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AdminToken, ConfigError> {
    let (token, source) = match source {
        TokenSource::Env(name) => (
            env(&name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err(key, format!("environment variable {name} is not set")))?,
            format!("env {name}"),
        ),
        TokenSource::File(path) => (
            files::read_token_file(key, &path)?,
            format!("file {}", path.display()),
        ),
    };
    if token.len() < MIN_ADMIN_TOKEN {
        return Err(err(
            key,
            format!("the admin token must be at least {MIN_ADMIN_TOKEN} characters"),
        ));
    }
    if !is_header_safe(&token, 4096) {
        return Err(err(key, "the admin token must be visible ASCII"));
    }
    Ok(AdminToken {
        token: Secret::new(token),
        source,
        scopes,
    })
}

/// A token's `scopes`: not empty, each known and named once; in
/// [`AdminScope::ALL`] order.
fn admin_scopes(key: &str, names: Vec<String>) -> Result<Vec<AdminScope>, ConfigError> {
    let known = || {
        AdminScope::ALL
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if names.is_empty() {
        return Err(err(
            key,
            format!(
                "is empty: the token could call nothing (scopes: {})",
                known()
            ),
        ));
    }
    let mut scopes = Vec::with_capacity(names.len());
    for name in &names {
        let scope = AdminScope::named(name)
            .ok_or_else(|| err(key, format!("{name:?} is not a scope ({})", known())))?;
        if scopes.contains(&scope) {
            return Err(err(key, format!("{name:?} appears twice")));
        }
        scopes.push(scope);
    }
    scopes.sort();
    Ok(scopes)
}

/// Is `url` a Redis URL the client accepts? Never repeated in an error: it
/// may hold a password.
fn is_redis_url(url: &str) -> bool {
    (url.starts_with("redis://") || url.starts_with("rediss://"))
        && redis::IntoConnectionInfo::into_connection_info(url).is_ok()
}

fn trusted_proxies(list: Vec<String>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    err(
                        format!("server.trusted_proxies[{i}]"),
                        format!("{s:?} is not an address or CIDR like \"10.0.0.0/8\""),
                    )
                })
        })
        .collect()
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

/// An http(s) URL with a host and no query: a base that paths are added to.
fn is_base_url(url: &str) -> bool {
    url.parse::<Uri>().ok().is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.host().is_some()
            && u.query().is_none()
    })
}

/// `[web]`: `public_url` must be an origin browsers can hold `Secure`
/// cookies for: https, or http on loopback (development).
fn web(w: RawWeb) -> Result<WebConfig, ConfigError> {
    let url = required("web.public_url", w.public_url)?;
    let public_url = public_origin(&url).map_err(|why| {
        err(
            "web.public_url",
            format!("{:?} is not {why}", super::redacted_url(&url)),
        )
    })?;
    Ok(WebConfig {
        public_url,
        cookies: w.cookies.unwrap_or(defaults::WEB_COOKIES),
    })
}

/// The origin of a `public_url`, `scheme://host[:port]` as browsers write
/// it in `Origin` (lowercase, no default port), or what it is not.
pub fn public_origin(url: &str) -> Result<String, &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "a URL like \"https://app.example.com\"")?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("an origin: it holds credentials");
    }
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() || parsed.fragment().is_some()
    {
        return Err("an origin: it has a path, query or fragment");
    }
    let loopback = match parsed.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => return Err("a URL with a host"),
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(
                "https: browsers keep Secure cookies only for https origins (http is for loopback development only)",
            )
        }
        _ => return Err("an https URL"),
    }
    Ok(parsed.origin().ascii_serialization())
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
        let tokens = Self::tokens(required("tokens", raw.tokens)?)?;
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
        let roles = grants(raw.roles)?;
        let enrich = raw.enrich.map(enrich).transpose()?;
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
        let admin = raw.admin.map(|a| Self::admin(a, listen, env)).transpose()?;
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
        })
    }

    fn sessions(s: Option<RawSessions>) -> Result<SessionsConfig, ConfigError> {
        let s = s.unwrap_or_default();
        // Checked here so a typo fails at start, not at the first refresh.
        // The message never repeats the URL: it may hold a password.
        if let Some(url) = &s.redis_url {
            if !is_redis_url(url) {
                return Err(err(
                    "sessions.redis_url",
                    "is not a URL like \"redis://host:6379/0\"",
                ));
            }
        }
        let redis_cluster = s.redis_cluster.unwrap_or_default();
        if s.redis_url.is_some() && !redis_cluster.is_empty() {
            return Err(err(
                "sessions.redis_cluster",
                "give either redis_url (one Redis) or redis_cluster (its seeds), not both",
            ));
        }
        for (i, url) in redis_cluster.iter().enumerate() {
            if !is_redis_url(url) {
                return Err(err(
                    format!("sessions.redis_cluster[{i}]"),
                    "is not a URL like \"redis://10.0.0.1:6379\"",
                ));
            }
        }
        let max_sessions = s.max_sessions.unwrap_or(defaults::MAX_SESSIONS);
        if max_sessions == 0 {
            return Err(err("sessions.max_sessions", "must be more than zero"));
        }
        let max_per_user = match s.max_per_user {
            None => defaults::MAX_PER_USER,
            Some(n) => u32::try_from(n).map_err(|_| {
                err(
                    "sessions.max_per_user",
                    "must be a number of sessions, 0 for no ceiling",
                )
            })?,
        };
        let reuse_grace = match s.reuse_grace.as_deref() {
            Some(v) => parse_duration("sessions.reuse_grace", v)?,
            None => Duration::ZERO,
        };
        if reuse_grace > Duration::from_secs(300) {
            return Err(err(
                "sessions.reuse_grace",
                "must be at most 5m: it is for a client that lost one answer",
            ));
        }
        let on_limit = match s.on_limit.as_deref() {
            None | Some("evict_oldest") => OnLimit::EvictOldest,
            Some("refuse") => OnLimit::Refuse,
            Some(other) => {
                return Err(err(
                    "sessions.on_limit",
                    format!("{other:?} is not evict_oldest or refuse"),
                ))
            }
        };
        let mut devices = DeviceClasses::default();
        for (name, limit) in s.devices.unwrap_or_default() {
            let key = format!("sessions.devices.{name}");
            if !is_class_name(&name) {
                return Err(err(key, "a device class is 1-32 of a-z, 0-9, _ and -"));
            }
            let limit = u32::try_from(limit)
                .map_err(|_| err(&key, "must be a number of sessions, 0 for no limit"))?;
            match devices.0.iter_mut().find(|c| c.name == name) {
                Some(c) => c.limit = limit,
                None => devices.0.push(DeviceClass { name, limit }),
            }
        }
        Ok(SessionsConfig {
            redis_url: s.redis_url.map(Secret::new),
            redis_cluster: redis_cluster.into_iter().map(Secret::new).collect(),
            max_sessions,
            max_per_user,
            reuse_grace,
            on_limit,
            devices,
        })
    }

    fn admin(
        a: RawAdmin,
        public: SocketAddr,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AdminConfig, ConfigError> {
        let listen = required("admin.listen", a.listen)?;
        let listen: SocketAddr = listen.parse().map_err(|_| {
            err(
                "admin.listen",
                format!("{listen:?} is not an address like \"127.0.0.1:9901\""),
            )
        })?;
        if listen.port() != 0 && listen.port() == public.port() {
            return Err(err(
                "admin.listen",
                "must be another port than listen: the admin API is never served on the public one",
            ));
        }
        // Each token with the key its errors name.
        let mut tokens: Vec<(String, AdminToken)> = Vec::new();
        let full = match (a.token_env, a.token_file) {
            (Some(name), None) => Some(("admin.token_env".to_owned(), TokenSource::Env(name))),
            (None, Some(path)) => Some(("admin.token_file".to_owned(), TokenSource::File(path))),
            (Some(_), Some(_)) => {
                return Err(err(
                    "admin.token_env",
                    "give one of token_env and token_file, not both",
                ))
            }
            (None, None) => None,
        };
        if let Some((key, source)) = full {
            let token = admin_token(&key, source, AdminScope::ALL.to_vec(), env)?;
            tokens.push((key, token));
        }
        for (i, t) in a.tokens.into_iter().enumerate() {
            let key = |k: &str| format!("admin.tokens[{i}].{k}");
            let scopes = admin_scopes(&key("scopes"), required(&key("scopes"), t.scopes)?)?;
            let (key, source) = match (t.env, t.file) {
                (Some(name), None) => (key("env"), TokenSource::Env(name)),
                (None, Some(path)) => (key("file"), TokenSource::File(path)),
                _ => return Err(err(key("env"), "exactly one of env and file is required")),
            };
            let token = admin_token(&key, source, scopes, env)?;
            if let Some((other, _)) = tokens.iter().find(|(_, o)| o.token == token.token) {
                return Err(err(
                    key,
                    format!("holds the same token as {other}: give each token once, with all its scopes"),
                ));
            }
            tokens.push((key, token));
        }
        if tokens.is_empty() {
            return Err(err(
                "admin.token_env",
                "the admin listener needs a token: token_env or token_file (every scope), or [[admin.tokens]] with their scopes",
            ));
        }
        Ok(AdminConfig {
            listen,
            tokens: tokens.into_iter().map(|(_, t)| t).collect(),
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
        let dur = |key: &str, v: Option<String>, default: Duration| {
            duration_or(key, v.as_deref(), default)
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
            underscores_in_headers: s.underscores_in_headers.unwrap_or(d.underscores_in_headers),
            trusted_proxies: trusted_proxies(s.trusted_proxies.unwrap_or_default())?,
            proxy_body_timeout: dur(
                "server.proxy_body_timeout",
                s.proxy_body_timeout,
                d.proxy_body_timeout,
            )?,
            send_timeout: dur("server.send_timeout", s.send_timeout, d.send_timeout)?,
            max_requests_per_ip: s.max_requests_per_ip.unwrap_or(d.max_requests_per_ip),
            tunnel_idle_timeout: dur(
                "server.tunnel_idle_timeout",
                s.tunnel_idle_timeout,
                d.tunnel_idle_timeout,
            )?,
            max_tunnels_per_user: s.max_tunnels_per_user.unwrap_or(d.max_tunnels_per_user),
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
        let access_ttl = duration_or(
            "tokens.access_ttl",
            t.access_ttl.as_deref(),
            defaults::ACCESS_TTL,
        )?;
        let refresh_ttl = duration_or(
            "tokens.refresh_ttl",
            t.refresh_ttl.as_deref(),
            defaults::REFRESH_TTL,
        )?;
        if refresh_ttl < access_ttl {
            return Err(err(
                "tokens.refresh_ttl",
                "must not be shorter than tokens.access_ttl",
            ));
        }
        let leeway = match t.leeway.as_deref() {
            Some(v) => parse_duration("tokens.leeway", v)?,
            None => defaults::LEEWAY,
        };
        let cache_capacity = t.cache_capacity.unwrap_or(defaults::TOKEN_CACHE_CAPACITY);
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
        let name = required(&key("platform"), p.platform)?;
        let platform = Platform::named(&name).ok_or_else(|| {
            let known: Vec<&str> = Platform::all().map(Platform::name).collect();
            err(
                key("platform"),
                format!("{name:?} is not a known platform ({})", known.join(", ")),
            )
        })?;
        let appid = required(&key("appid"), p.appid)?;
        if !is_header_safe(&appid, 64) {
            return Err(err(key("appid"), "must be 1-64 visible ASCII characters"));
        }
        // The first of two keys that is set.
        let first_set = |keys: [(&'static str, bool); 2]| {
            keys.into_iter().find_map(|(k, set)| set.then_some(k))
        };
        let secret_keys = [
            ("secret_env", p.secret_env.is_some()),
            ("secret_file", p.secret_file.is_some()),
        ];
        let key_files = [
            ("private_key_file", p.private_key_file.is_some()),
            ("alipay_public_key_file", p.alipay_public_key_file.is_some()),
        ];
        let credentials = match platform.credentials() {
            CredentialKind::AppSecret => {
                if let Some(k) = first_set(key_files) {
                    let signed: Vec<&str> = Platform::all()
                        .filter(|p| p.credentials() == CredentialKind::KeyPair)
                        .map(Platform::name)
                        .collect();
                    return Err(err(
                        key(k),
                        format!(
                            "is only for platforms whose calls are signed ({}); {name} uses an app secret (secret_env or secret_file)",
                            signed.join(", ")
                        ),
                    ));
                }
                Self::secret(&key, p.secret_env, p.secret_file, env)?
            }
            CredentialKind::KeyPair => {
                if let Some(k) = first_set(secret_keys) {
                    return Err(err(
                        key(k),
                        format!("{name} has no app secret: its calls are signed with private_key_file and its answers checked with alipay_public_key_file"),
                    ));
                }
                let private_key_file = required(&key("private_key_file"), p.private_key_file)?;
                let platform_key_file =
                    required(&key("alipay_public_key_file"), p.alipay_public_key_file)?;
                Credentials::KeyPair(KeyPair {
                    private_key: files::read_private_key(
                        &key("private_key_file"),
                        &private_key_file,
                    )?,
                    private_key_file,
                    platform_key: files::read_public_key(
                        &key("alipay_public_key_file"),
                        &platform_key_file,
                    )?,
                    platform_key_file,
                })
            }
        };
        let base_url = p
            .base_url
            .unwrap_or_else(|| platform.default_base_url().to_owned());
        if !is_base_url(&base_url) {
            return Err(err(
                key("base_url"),
                format!("{base_url:?} is not an http(s) URL"),
            ));
        }
        let authorize_url = match (platform.is_web(), p.authorize_url) {
            (false, None) => None,
            (false, Some(_)) => {
                let web: Vec<&str> = Platform::all()
                    .filter(|p| p.is_web())
                    .map(Platform::name)
                    .collect();
                return Err(err(
                    key("authorize_url"),
                    format!(
                        "only web sign-ins ({}) have an authorize page",
                        web.join(", ")
                    ),
                ));
            }
            (true, url) => {
                let url = url.unwrap_or_else(|| defaults::WEB_AUTHORIZE_URL.to_owned());
                if !is_base_url(&url) {
                    return Err(err(
                        key("authorize_url"),
                        format!("{url:?} is not an http(s) URL"),
                    ));
                }
                Some(url.trim_end_matches('/').to_owned())
            }
        };
        Ok(ProviderConfig {
            authorize_url,
            platform,
            appid,
            credentials,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout: duration_or(
                &key("timeout"),
                p.timeout.as_deref(),
                defaults::PROVIDER_TIMEOUT,
            )?,
        })
    }

    /// An app secret from exactly one of `secret_env` and `secret_file`.
    fn secret(
        key: &dyn Fn(&str) -> String,
        secret_env: Option<String>,
        secret_file: Option<std::path::PathBuf>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credentials, ConfigError> {
        let (secret, source) = match (secret_env, secret_file) {
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
                files::read_secret(&key("secret_file"), &path)?,
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
        Ok(Credentials::Secret {
            secret: Secret::new(secret),
            source,
        })
    }

    fn route(i: usize, r: RawRoute) -> Result<RouteConfig, ConfigError> {
        let key = |k: &str| format!("routes[{i}].{k}");
        let prefix = required(&key("prefix"), r.prefix)?;
        if !prefix.starts_with('/') {
            return Err(err(key("prefix"), format!("{prefix:?} must start with /")));
        }
        // Requests are matched in the canonical form: a prefix in any other
        // would never match.
        match crate::pipeline::path::canonical(&prefix) {
            Ok(form) if form == prefix.as_str() => {}
            Ok(form) => {
                return Err(err(
                    key("prefix"),
                    format!("{prefix:?} is matched against canonical paths: write it as {form:?}"),
                ))
            }
            Err(bad) => return Err(err(key("prefix"), format!("{prefix:?}: {}", bad.message()))),
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
        let allow = match r.allow {
            None => None,
            Some(_) if auth == AuthMode::Public => {
                return Err(err(
                    key("allow"),
                    "a public route checks no token, so it cannot check roles; make it required or optional",
                ))
            }
            Some(list) => Some(allow(i, list)?),
        };
        Ok(RouteConfig {
            prefix,
            upstream,
            auth,
            timeout: duration_or(
                &key("timeout"),
                r.timeout.as_deref(),
                defaults::ROUTE_TIMEOUT,
            )?,
            allow,
        })
    }
}
