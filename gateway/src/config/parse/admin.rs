//! `[admin]`, checked: the listener and its scoped tokens.

use super::*;

/// An admin token from `source`, checked; errors name `key`, never the token.
pub(super) fn admin_token(
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
pub(super) fn admin_scopes(key: &str, names: Vec<String>) -> Result<Vec<AdminScope>, ConfigError> {
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

pub(super) fn admin(
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
                format!(
                    "holds the same token as {other}: give each token once, with all its scopes"
                ),
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
