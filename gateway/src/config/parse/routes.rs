//! `[[routes]]`, `[[roles]]` and `[enrich]`, checked.

use super::*;

/// `[[roles]]`, checked: every role a valid name, every user a user key.
pub(crate) fn grants(raw: Vec<RawRole>) -> Result<Vec<RoleGrant>, ConfigError> {
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

pub(super) fn enrich(e: RawEnrich) -> Result<EnrichConfig, ConfigError> {
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
pub(super) fn allow(i: usize, list: Vec<RawAllow>) -> Result<Vec<AllowRule>, ConfigError> {
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
pub(super) fn method(name: &str) -> Option<http::Method> {
    let upper = name.to_ascii_uppercase();
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .contains(&upper.as_str())
        .then(|| http::Method::from_bytes(upper.as_bytes()).ok())
        .flatten()
}

pub(super) fn route(i: usize, r: RawRoute) -> Result<RouteConfig, ConfigError> {
    let key = |k: &str| format!("routes[{i}].{k}");
    let prefix = required(&key("prefix"), r.prefix)?;
    if !prefix.starts_with('/') {
        return Err(err(key("prefix"), format!("{prefix:?} must start with /")));
    }
    // Requests are matched in the canonical form: a prefix in any other
    // would never match.
    match crate::protocol::path::canonical(&prefix) {
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
