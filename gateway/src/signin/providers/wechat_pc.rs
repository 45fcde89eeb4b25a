//! WeChat QR-code sign-in for PC browsers (scope `snsapi_login`): a
//! browser sign-in of device type `pc`. The flow is [`crate::signin::web`]'s; this
//! is its entry in the registry.

use super::{Browser, CredentialKind, PlatformSpec, ProviderSetupError, SignIn};

/// WeChat's PC QR-code sign-in in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::Browser(Browser {
        authorize_path: "/connect/qrconnect",
        scope: "snsapi_login",
        device_type: "pc",
    }),
    name: "wechat_pc",
    default_base_url: "https://api.weixin.qq.com",
    credentials: CredentialKind::AppSecret,
    build: |config| {
        Err(ProviderSetupError::NotMiniProgram {
            appid: config.appid.clone(),
        })
    },
};
