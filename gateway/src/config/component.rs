//! A WeChat third-party platform's own keys (`platform = "wechat_component"`):
//! what opens WeChat's pushes to it, and which mini-programs it logs in.

use std::fmt;

use super::Secret;

/// The keys of a `[[providers]]` entry of `platform = "wechat_component"`
/// beside the usual ones (`component_appid` is its `appid`, `secret_env`
/// its `component_appsecret`).
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// The `EncodingAESKey` WeChat encrypts its pushes with: 43 characters
    /// of base64.
    pub encoding_aes_key: Secret,
    /// The environment variable it came from.
    pub encoding_aes_key_env: String,
    /// The token WeChat signs its pushes with.
    pub verify_token: Secret,
    /// The environment variable it came from.
    pub verify_token_env: String,
    /// The authorized mini-programs' appids this gateway logs in.
    pub appids: Vec<String>,
    /// Whether any appid WeChat accepts (one that authorized the platform)
    /// logs in too, listed or not.
    pub allow_any_authorized: bool,
}

impl ComponentConfig {
    /// Whether a login for `appid` is this platform's to make.
    pub fn serves(&self, appid: &str) -> bool {
        self.allow_any_authorized || self.appids.iter().any(|a| a == appid)
    }
}

/// What `config check` shows: where the keys come from, and the apps.
impl fmt::Display for ComponentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "third-party platform: pushes signed with env {} and encrypted with env {}; logs in {}",
            self.verify_token_env,
            self.encoding_aes_key_env,
            self.appids.join(", ")
        )?;
        match (self.allow_any_authorized, self.appids.is_empty()) {
            (true, true) => f.write_str("any mini-program that authorized it"),
            (true, false) => f.write_str(" and any other mini-program that authorized it"),
            (false, _) => Ok(()),
        }
    }
}
