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

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = r#"
[tokens]
issuer = "https://auth.example.com"
audience = "api"
[keys]
dir = "/tmp/keys"
[[providers]]
platform = "wechat"
appid = "wx-own"
secret_env = "SECRET"
"#;

    const COMPONENT: &str = r#"
[[providers]]
platform = "wechat_component"
component_appid = "wx3rd"
secret_env = "SECRET"
encoding_aes_key_env = "AES"
verify_token_env = "TOKEN"
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("component-secret".into()),
            "AES" => Some("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into()),
            "TOKEN" => Some("pamtest".into()),
            "SHORT_AES" => Some("abcdefghijklmnopqrstuvwxyz".into()),
            "BAD_TOKEN" => Some("to ken!".into()),
            _ => None,
        }
    }

    fn parse(extra: &str) -> Result<Config, String> {
        Config::from_toml(&format!("{BASE}{extra}"), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn a_third_party_platform_names_its_keys_and_its_mini_programs() {
        let c = parse(&format!("{COMPONENT}appids = [\"wxa\", \"wxb\"]\n")).unwrap();
        let p = &c.providers[1];
        assert_eq!(p.appid, "wx3rd");
        assert_eq!(p.base_url, "https://api.weixin.qq.com");
        let k = p.component.as_ref().unwrap();
        assert_eq!(k.appids, ["wxa", "wxb"]);
        assert!(k.serves("wxa") && !k.serves("wxc") && !k.serves("wx3rd"));
        assert_eq!(k.verify_token.expose(), "pamtest");
        let shown = format!("{k} {:?}", c.providers[1]);
        assert!(
            !shown.contains("pamtest") && !shown.contains("ABCDEFG"),
            "{shown}"
        );
        assert!(
            shown.contains("env TOKEN") && shown.contains("env AES"),
            "{shown}"
        );
        let any = parse(&format!("{COMPONENT}allow_any_authorized = true\n")).unwrap();
        assert!(any.providers[1].component.as_ref().unwrap().serves("wxz"));
    }

    #[test]
    fn each_mistake_names_its_key() {
        for (extra, want) in [
            (
                COMPONENT.to_owned(),
                "providers[1].appids: lists the mini-programs",
            ),
            (
                format!("{COMPONENT}appid = \"wx3rd\"\nappids = [\"wxa\"]\n"),
                "providers[1].appid: a third-party platform names itself with component_appid",
            ),
            (
                COMPONENT.replace("component_appid = \"wx3rd\"\n", "") + "appids = [\"wxa\"]\n",
                "providers[1].component_appid: ",
            ),
            (
                COMPONENT.replace("\"AES\"", "\"SHORT_AES\"") + "appids = [\"wxa\"]\n",
                "providers[1].encoding_aes_key_env: SHORT_AES must hold WeChat's EncodingAESKey",
            ),
            (
                COMPONENT.replace("\"AES\"", "\"UNSET\"") + "appids = [\"wxa\"]\n",
                "providers[1].encoding_aes_key_env: environment variable UNSET is not set",
            ),
            (
                COMPONENT.replace("\"TOKEN\"", "\"BAD_TOKEN\"") + "appids = [\"wxa\"]\n",
                "providers[1].verify_token_env: BAD_TOKEN must hold WeChat's message token",
            ),
            (
                format!("{COMPONENT}appids = [\"wxa\", \"wxa\"]\n"),
                "providers[1].appids[1]: \"wxa\" appears twice",
            ),
            (
                format!("{COMPONENT}appids = [\"wx-own\"]\n"),
                "providers[1].appids[0]: \"wx-own\" is providers[0]'s too",
            ),
            (
                format!(
                    "{COMPONENT}allow_any_authorized = true\n{}allow_any_authorized = true\n",
                    COMPONENT.replace("wx3rd", "wx3rd2")
                ),
                "providers[2].allow_any_authorized: providers[1] takes any authorized appid already",
            ),
            (
                "[[providers]]\nplatform = \"qq\"\nappid = \"1\"\nsecret_env = \"SECRET\"\nappids = [\"x\"]\n".to_owned(),
                "providers[1].appids: is only for platform = \"wechat_component\"",
            ),
        ] {
            let e = parse(&extra).unwrap_err();
            assert!(e.starts_with(want), "{e}\nwanted: {want}");
        }
    }
}
