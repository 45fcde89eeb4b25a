//! `[sessions]`, checked.

use super::*;

/// Is `url` a Redis URL the client accepts? Never repeated in an error: it
/// may hold a password.
pub(super) fn is_redis_url(url: &str) -> bool {
    (url.starts_with("redis://") || url.starts_with("rediss://"))
        && redis::IntoConnectionInfo::into_connection_info(url).is_ok()
}

/// `[sessions]`, checked against `[tokens]`: an idle timeout only makes
/// sense between the access and the refresh TTL (a client refreshes about
/// once an access TTL while it is used; a session past the refresh TTL is
/// over anyway).
pub(super) fn sessions(
    s: Option<RawSessions>,
    tokens: &TokensConfig,
) -> Result<SessionsConfig, ConfigError> {
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
    let idle_ttl = match s.idle_ttl.as_deref() {
        Some(v) => Some(parse_duration("sessions.idle_ttl", v)?),
        None => None,
    };
    if let Some(idle) = idle_ttl {
        if idle <= tokens.access_ttl {
            return Err(err(
                "sessions.idle_ttl",
                "must be longer than tokens.access_ttl: a client in use refreshes about once an access TTL",
            ));
        }
        if idle >= tokens.refresh_ttl {
            return Err(err(
                "sessions.idle_ttl",
                "must be shorter than tokens.refresh_ttl, or it never applies",
            ));
        }
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
        idle_ttl,
        on_limit,
        devices,
    })
}
