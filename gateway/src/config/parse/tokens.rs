//! `[tokens]`, checked.

use super::*;

pub(super) fn tokens(t: RawTokens) -> Result<TokensConfig, ConfigError> {
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
