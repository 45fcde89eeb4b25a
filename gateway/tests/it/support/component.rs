//! A WeChat third-party platform on the gateway's own stand-in
//! (`minigate::ops::dev::standins`): its keys as WeChat and the gateway's
//! config know them, the mini-programs that authorized it, and pushes made
//! as WeChat makes them (or as an impostor would).

use minigate::config::Platform;
use minigate::ops::dev::standins::{App, AuthorizePage, Component, Credential, StandIn};
use minigate::wechat::msgcrypt::MsgCrypt;

use super::{Codes, Provider};

pub const COMPONENT_APPID: &str = "wx3rd00000000000001";
pub const COMPONENT_SECRET: &str = "COMPONENT-SECRET-must-not-leak-5e1f";
/// An `EncodingAESKey`: 43 characters of base64.
pub const COMPONENT_AES_KEY: &str = "Zm9yIG1pbmlnYXRlIHRlc3RzIG9ubHk0MDEyMzQ1Njc";
pub const COMPONENT_TOKEN: &str = "componentToken7f3a";
/// Mini-programs that authorized the platform (A and B), and one that did
/// not (C).
pub const MERCHANT_A: &str = "wxa0000000000000a1";
pub const MERCHANT_B: &str = "wxb0000000000000b2";
pub const MERCHANT_C: &str = "wxc0000000000000c3";

/// The platform's message crypto, as WeChat holds it.
pub fn component_crypt() -> MsgCrypt {
    MsgCrypt::new(COMPONENT_APPID, COMPONENT_TOKEN, COMPONENT_AES_KEY).unwrap()
}

/// The stand-in WeChat of the platform, authorized by A and B. Login codes
/// are the WeChat stand-in's ([`super::wechat`]).
pub async fn component_wechat() -> StandIn {
    let app = App {
        platform: Platform::wechat_component(),
        appid: COMPONENT_APPID.into(),
        credential: Credential::Component(Component {
            secret: COMPONENT_SECRET.into(),
            crypt: component_crypt(),
            authorized: vec![MERCHANT_A.into(), MERCHANT_B.into()],
        }),
    };
    StandIn::start(vec![app], Codes::default(), AuthorizePage::Redirect)
        .await
        .unwrap()
}

/// The platform's `[[providers]]` entry at `standin`, logging in `appids`.
pub fn component_provider(standin: &StandIn, appids: Vec<&'static str>) -> Provider {
    Provider::default()
        .platform("wechat_component")
        .component_appid(COMPONENT_APPID)
        .secret_env("TEST_COMPONENT_SECRET")
        .encoding_aes_key_env("TEST_COMPONENT_AES_KEY")
        .verify_token_env("TEST_COMPONENT_TOKEN")
        .appids(appids)
        .base_url(standin.url())
}

/// The platform's callback on the gateway at `base`.
pub fn ticket_callback(base: &str) -> String {
    format!("{base}/auth/wechat/component/{COMPONENT_APPID}/ticket")
}
