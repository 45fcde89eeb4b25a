//! A `[[providers]]` entry of `platform = "wechat_component"`: its own keys
//! checked, and the rules across providers that keep a login's `appid`
//! naming one provider only.

use super::*;
use crate::config::ComponentConfig;

/// The keys only a third-party platform has.
const KEYS: [&str; 5] = [
    "component_appid",
    "encoding_aes_key_env",
    "verify_token_env",
    "appids",
    "allow_any_authorized",
];

/// The platform that has them.
pub(super) fn is_component(platform: Platform) -> bool {
    platform == Platform::wechat_component()
}

/// For any other platform: none of the third-party platform's keys.
pub(super) fn refuse_keys(
    key: &dyn Fn(&str) -> String,
    p: &RawProvider,
    name: &str,
) -> Result<(), ConfigError> {
    let set = [
        p.component_appid.is_some(),
        p.encoding_aes_key_env.is_some(),
        p.verify_token_env.is_some(),
        p.appids.is_some(),
        p.allow_any_authorized.is_some(),
    ];
    match KEYS.iter().zip(set).find(|(_, set)| *set) {
        Some((k, _)) => Err(err(
            key(k),
            format!("is only for platform = \"wechat_component\" (a third-party platform); {name} has no such key"),
        )),
        None => Ok(()),
    }
}

/// The `component_appid` (the provider's appid) and the rest of a
/// third-party platform's keys.
pub(super) fn component(
    key: &dyn Fn(&str) -> String,
    p: &mut RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, ComponentConfig), ConfigError> {
    if p.appid.is_some() {
        return Err(err(
            key("appid"),
            "a third-party platform names itself with component_appid and the mini-programs it logs in with appids",
        ));
    }
    let appid = required(&key("component_appid"), p.component_appid.take())?;
    if !is_header_safe(&appid, 64) {
        return Err(err(
            key("component_appid"),
            "must be 1-64 visible ASCII characters",
        ));
    }
    let from_env = |k: &str, name: Option<String>| -> Result<(Secret, String), ConfigError> {
        let name = required(&key(k), name)?;
        let value = env(&name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| err(key(k), format!("environment variable {name} is not set")))?;
        Ok((Secret::new(value), name))
    };
    let (encoding_aes_key, encoding_aes_key_env) =
        from_env("encoding_aes_key_env", p.encoding_aes_key_env.take())?;
    let k = encoding_aes_key.expose();
    if k.len() != 43
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return Err(err(
            key("encoding_aes_key_env"),
            format!(
                "{encoding_aes_key_env} must hold WeChat's EncodingAESKey: 43 letters and digits"
            ),
        ));
    }
    let (verify_token, verify_token_env) = from_env("verify_token_env", p.verify_token_env.take())?;
    let t = verify_token.expose();
    if !(3..=32).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(err(
            key("verify_token_env"),
            format!("{verify_token_env} must hold WeChat's message token: 3-32 letters and digits"),
        ));
    }
    let appids = p.appids.take().unwrap_or_default();
    for (i, a) in appids.iter().enumerate() {
        if !is_header_safe(a, 64) {
            return Err(err(
                format!("{}[{i}]", key("appids")),
                "must be 1-64 visible ASCII characters",
            ));
        }
        if appids[..i].contains(a) {
            return Err(err(
                format!("{}[{i}]", key("appids")),
                format!("{a:?} appears twice"),
            ));
        }
    }
    let allow_any_authorized = p.allow_any_authorized.take().unwrap_or(false);
    if appids.is_empty() && !allow_any_authorized {
        return Err(err(
            key("appids"),
            "lists the mini-programs this third-party platform logs in (or set allow_any_authorized = true)",
        ));
    }
    Ok((
        appid,
        ComponentConfig {
            encoding_aes_key,
            encoding_aes_key_env,
            verify_token,
            verify_token_env,
            appids,
            allow_any_authorized,
        },
    ))
}

/// Across providers: a mini-program's appid names one provider. An appid
/// a third-party platform lists is no other provider's own nor another
/// platform's, and one third-party platform at most takes any appid.
pub(super) fn check_all(providers: &[ProviderConfig]) -> Result<(), ConfigError> {
    let mut any = None;
    for (i, p) in providers.iter().enumerate() {
        let Some(c) = &p.component else { continue };
        if c.allow_any_authorized {
            if let Some(first) = any {
                return Err(err(
                    format!("providers[{i}].allow_any_authorized"),
                    format!("providers[{first}] takes any authorized appid already: a login's appid could not say which platform"),
                ));
            }
            any = Some(i);
        }
        for (j, a) in c.appids.iter().enumerate() {
            let taken = providers.iter().enumerate().find(|(k, o)| {
                *k != i
                    && (o.component.is_none() && o.appid == *a
                        || o.component.as_ref().is_some_and(|oc| oc.appids.contains(a)))
            });
            if let Some((k, _)) = taken {
                return Err(err(
                    format!("providers[{i}].appids[{j}]"),
                    format!(
                        "{a:?} is providers[{k}]'s too: a login's appid must name one provider"
                    ),
                ));
            }
        }
    }
    Ok(())
}
