//! WeChat web authorization, for H5 pages opened inside WeChat (scope
//! `snsapi_base`): a browser sign-in of device type `web`. The flow (the
//! authorize redirect, the callback, the `sns/oauth2/access_token`
//! exchange, the cookies) is [`crate::signin::web`]'s; this is its entry in the
//! registry.

use super::{Browser, CredentialKind, PlatformSpec, ProviderSetupError, SignIn};

/// WeChat's in-app web sign-in in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::Browser(Browser {
        authorize_path: "/connect/oauth2/authorize",
        scope: "snsapi_base",
        device_type: "web",
    }),
    name: "wechat_web",
    default_base_url: "https://api.weixin.qq.com",
    credentials: CredentialKind::AppSecret,
    build: |config| {
        Err(ProviderSetupError::NotMiniProgram {
            appid: config.appid.clone(),
        })
    },
};
