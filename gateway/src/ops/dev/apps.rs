//! Dev mode's apps: one mini-program of the chosen platform (and with
//! WeChat a `wechat_web` sign-in), their built-in credentials, and the
//! script that lets any code log in, with a user derived from the code so
//! the same code gives the same user.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine as _;
use std::net::SocketAddr;

use super::standins::{App, Component, Credential, Login, Outcome, Script, User};
use super::DevError;
use crate::config::CredentialKind;
use crate::config::{
    defaults, ComponentConfig, Credentials, KeyPair, Platform, ProviderConfig, Secret,
};
use crate::crypto::rsa2::SigningKey;
use crate::wechat::msgcrypt::MsgCrypt;

/// The appid of the dev WeChat mini-program.
pub const DEV_APPID: &str = "wxdev000000000000";
const DOUYIN_APPID: &str = "ttdev0000000000000";
const BAIDU_APPID: &str = "devAppKey000000000000000";
const ALIPAY_APPID: &str = "2021000000000000";
const KUAISHOU_APPID: &str = "ks000000000000000000";
const FEISHU_APPID: &str = "cli_dev0000000000";
const DEV_SECRET: &str = "dev-mode-app-secret";
/// The appid of the dev web sign-in (`wechat_web`), beside the WeChat
/// mini-program.
pub const DEV_WEB_APPID: &str = "wxdevweb000000000";
const DEV_WEB_SECRET: &str = "dev-mode-web-secret";
/// The dev third-party platform (`wechat_component`), which logs in the
/// dev mini-program [`DEV_APPID`] on its behalf.
pub const DEV_COMPONENT_APPID: &str = "wxdev3rd000000000";
/// Its dev `EncodingAESKey` and message token: they protect nothing.
const DEV_COMPONENT_AES_KEY: &str = "ZGV2IG1vZGUgb25seTogcHJvdGVjdHMgbm90aGluZzA";
const DEV_COMPONENT_TOKEN: &str = "devComponentToken";
/// A throwaway 2048-bit RSA key, PKCS#8 base64, made for dev mode only: it
/// signs the gateway's Alipay calls and the stand-in's answers alike (ring
/// cannot generate RSA keys). It protects nothing.
const DEV_RSA_KEY: &str = include_str!("alipay-dev-key.pk8.b64");

/// The dev mini-program's appid on `platform`, shaped like that platform's.
pub(super) fn appid(platform: Platform) -> &'static str {
    match platform.name() {
        "wechat" => DEV_APPID,
        "wechat_component" => DEV_COMPONENT_APPID,
        "qq" => "1100000000",
        "douyin" => DOUYIN_APPID,
        "baidu" => BAIDU_APPID,
        "alipay" => ALIPAY_APPID,
        "kuaishou" => KUAISHOU_APPID,
        "feishu" => FEISHU_APPID,
        _ => "dev-app",
    }
}

/// What a mini-program calls on `platform` to get a code.
pub(super) fn client_call(platform: Platform) -> &'static str {
    match platform.name() {
        "wechat" | "wechat_component" => "wx.login()",
        "qq" => "qq.login()",
        "douyin" => "tt.login()",
        "baidu" => "swan.login()",
        "alipay" => "my.getAuthCode()",
        "kuaishou" => "ks.login()",
        "feishu" => "tt.login()",
        _ => "the platform's login",
    }
}

fn dev_key() -> Result<SigningKey, DevError> {
    let bad = |_| DevError::Platform("alipay", "the built-in dev key did not load");
    let der = STANDARD.decode(DEV_RSA_KEY.trim()).map_err(|_| bad(()))?;
    SigningKey::from_pkcs8(&der).map_err(|_| bad(()))
}

fn web_platform() -> Result<Platform, DevError> {
    Platform::named("wechat_web").ok_or(DevError::Platform("wechat_web", "is not in the registry"))
}

/// The apps the stand-in knows in dev mode: the gateway's own, as
/// [`providers`] configures them.
pub(super) fn standin_apps(platform: Platform) -> Result<Vec<App>, DevError> {
    if !matches!(
        platform.name(),
        "wechat"
            | "qq"
            | "douyin"
            | "baidu"
            | "alipay"
            | "kuaishou"
            | "feishu"
            | "wechat_component"
    ) {
        return Err(DevError::Platform(platform.name(), "has no dev stand-in"));
    }
    if let Some(c) = component(platform) {
        let crypt = MsgCrypt::new(
            DEV_COMPONENT_APPID,
            c.verify_token.expose(),
            c.encoding_aes_key.expose(),
        )
        .ok_or(DevError::Platform(
            "wechat_component",
            "the built-in dev key did not load",
        ))?;
        return Ok(vec![App {
            platform,
            appid: DEV_COMPONENT_APPID.into(),
            credential: Credential::Component(Component {
                secret: DEV_SECRET.into(),
                crypt,
                authorized: c.appids,
            }),
        }]);
    }
    let mut apps = vec![match platform.credentials() {
        CredentialKind::AppSecret => App::secret(platform, appid(platform), DEV_SECRET),
        CredentialKind::KeyPair => {
            let key = dev_key()?;
            App {
                platform,
                appid: appid(platform).into(),
                credential: Credential::Rsa2 {
                    app: key.verifying_key(),
                    platform: key,
                },
            }
        }
    }];
    if platform == Platform::wechat() {
        apps.push(App::secret(web_platform()?, DEV_WEB_APPID, DEV_WEB_SECRET));
    }
    Ok(apps)
}

/// Dev mode's providers: the mini-program of `platform`, and with WeChat
/// also a `wechat_web` sign-in at the same stand-in.
pub(super) fn providers(
    platform: Platform,
    addr: SocketAddr,
) -> Result<Vec<ProviderConfig>, DevError> {
    let mut all = vec![provider(platform, addr)?];
    if platform == Platform::wechat() {
        all.push(ProviderConfig {
            platform: web_platform()?,
            appid: DEV_WEB_APPID.into(),
            credentials: Credentials::Secret {
                secret: Secret::new(DEV_WEB_SECRET.into()),
                source: "built in (dev)".into(),
            },
            base_url: format!("http://{addr}"),
            timeout: defaults::PROVIDER_TIMEOUT,
            authorize_url: Some(format!("http://{addr}")),
            component: None,
            risk: None,
        });
    }
    Ok(all)
}

/// The dev mini-program's provider, calling the stand-in at `addr`.
fn provider(platform: Platform, addr: SocketAddr) -> Result<ProviderConfig, DevError> {
    let credentials = match platform.credentials() {
        CredentialKind::AppSecret => Credentials::Secret {
            secret: Secret::new(DEV_SECRET.into()),
            source: "built in (dev)".into(),
        },
        CredentialKind::KeyPair => {
            let key = dev_key()?;
            Credentials::KeyPair(KeyPair {
                platform_key: key.verifying_key(),
                private_key: key,
                private_key_file: "(built in, dev)".into(),
                platform_key_file: "(built in, dev)".into(),
            })
        }
    };
    // Alipay's base_url is the whole gateway URL.
    let path = if platform.name() == "alipay" {
        "/gateway.do"
    } else {
        ""
    };
    Ok(ProviderConfig {
        platform,
        appid: appid(platform).into(),
        credentials,
        base_url: format!("http://{addr}{path}"),
        timeout: defaults::PROVIDER_TIMEOUT,
        authorize_url: None,
        component: component(platform),
        risk: None,
    })
}

/// The dev third-party platform's own keys, when `platform` is one: it
/// logs in the dev WeChat mini-program.
fn component(platform: Platform) -> Option<ComponentConfig> {
    (platform == Platform::wechat_component()).then(|| ComponentConfig {
        encoding_aes_key: Secret::new(DEV_COMPONENT_AES_KEY.into()),
        encoding_aes_key_env: "(built in, dev)".into(),
        verify_token: Secret::new(DEV_COMPONENT_TOKEN.into()),
        verify_token_env: "(built in, dev)".into(),
        appids: vec![DEV_APPID.into()],
        allow_any_authorized: false,
    })
}

/// Dev mode's script: any code logs in.
pub(super) struct DevUsers;

/// The dev user of `code`: openid, unionid and session key, derived from it.
fn user(code: &str) -> (String, String, String) {
    let digest = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    let id = B64.encode(&digest.as_ref()[..12]);
    (
        format!("dev-openid-{id}"),
        format!("dev-unionid-{id}"),
        // WeChat's session_key is standard base64 of 16 bytes.
        STANDARD.encode(&digest.as_ref()[12..28]),
    )
}

impl Script for DevUsers {
    fn login(&self, login: &Login<'_>) -> Outcome {
        let (openid, unionid, session_key) = user(login.code);
        let anonymous_openid = login
            .anonymous_code
            .map(|a| user(a).0.replace("openid", "anonymous"));
        Outcome::User(User {
            // The web app's openid is its own; the unionid is the person's.
            openid: if login.platform.is_web() {
                openid.replace("dev-openid-", "dev-web-openid-")
            } else {
                openid
            },
            unionid: Some(unionid),
            session_key,
            anonymous_openid,
            // Feishu's users are an organisation's: one dev organisation.
            tenant: (login.platform.name() == "feishu").then(|| "dev-tenant".to_owned()),
        })
    }

    /// Any code gives a number derived from it, under the app's watermark.
    fn phone(&self, appid: &str, code: &str) -> Outcome {
        let digest = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
        let digits: String = digest.as_ref()[..8]
            .iter()
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        Outcome::Phone {
            number: format!("138{digits}"),
            watermark: appid.to_owned(),
        }
    }
}
