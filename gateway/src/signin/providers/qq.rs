//! QQ mini-programs: WeChat's wire at `api.q.qq.com`.
//!
//! `GET {base}/sns/jscode2session?appid&secret&js_code&grant_type=authorization_code`,
//! answered in WeChat's shape (`openid`, `session_key`, `unionid` when the
//! app is bound to a QQ open platform account; or `errcode`/`errmsg` with
//! WeChat's codes). The call and its reading are WeChat's own
//! ([`super::wechat::WeChat`], [`super::wechat::interpret`]); only the
//! platform's name and base URL are QQ's.

use super::{wechat::WeChat, CredentialKind, PlatformSpec, SignIn};

/// QQ in the registry.
pub static PLATFORM: PlatformSpec = PlatformSpec {
    sign_in: SignIn::MiniProgram,
    name: "qq",
    default_base_url: "https://api.q.qq.com",
    credentials: CredentialKind::AppSecret,
    build: |config| Ok(Box::new(WeChat::new(config)?)),
};
