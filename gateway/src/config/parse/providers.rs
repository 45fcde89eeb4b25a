//! `[[providers]]` and `[web]`, checked, with the secrets they name.

use super::*;

/// An http(s) URL with a host and no query: a base that paths are added to.
pub(super) fn is_base_url(url: &str) -> bool {
    url.parse::<Uri>().ok().is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.host().is_some()
            && u.query().is_none()
    })
}

/// `[web]`: `public_url` must be an origin browsers can hold `Secure`
/// cookies for: https, or http on loopback (development).
pub(super) fn web(w: RawWeb) -> Result<WebConfig, ConfigError> {
    let url = required("web.public_url", w.public_url)?;
    let public_url = public_origin(&url).map_err(|why| {
        err(
            "web.public_url",
            format!("{:?} is not {why}", crate::config::redacted_url(&url)),
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

pub(super) fn provider(
    i: usize,
    mut p: RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProviderConfig, ConfigError> {
    let key = |k: &str| format!("providers[{i}].{k}");
    let name = required(&key("platform"), p.platform.take())?;
    let platform = Platform::named(&name).ok_or_else(|| {
        let known: Vec<&str> = Platform::all().map(Platform::name).collect();
        err(
            key("platform"),
            format!("{name:?} is not a known platform ({})", known.join(", ")),
        )
    })?;
    let (appid, component) = if super::component::is_component(platform) {
        let (appid, c) = super::component::component(&key, &mut p, env)?;
        (appid, Some(c))
    } else {
        super::component::refuse_keys(&key, &p, &name)?;
        (required(&key("appid"), p.appid)?, None)
    };
    if !is_header_safe(&appid, 64) {
        return Err(err(key("appid"), "must be 1-64 visible ASCII characters"));
    }
    let risk = super::risk::risk(
        &key,
        (p.risk_scene, p.refuse_risk_rank, p.risk_required),
        platform,
    )?;
    // The first of two keys that is set.
    let first_set =
        |keys: [(&'static str, bool); 2]| keys.into_iter().find_map(|(k, set)| set.then_some(k));
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
            secret(&key, p.secret_env, p.secret_file, env)?
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
                private_key: files::read_private_key(&key("private_key_file"), &private_key_file)?,
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
        risk,
        authorize_url,
        component,
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
pub(super) fn secret(
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
