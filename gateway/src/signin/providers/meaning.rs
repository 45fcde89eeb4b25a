//! The platforms' error codes in operators' terms: what a code means and
//! what to check, for the log line of a refused exchange or call. The
//! client still gets the contract's error for it; this only says why.
//!
//! Only codes the platforms document are listed; any other is logged as the
//! number it is, with "see the platform's error code list".

/// What WeChat's `errcode` means: WeChat's own table, beside its client.
pub use crate::wechat::client::errcode_meaning as wechat;

/// What Douyin's `err_no` means, for operators.
pub fn douyin(err_no: i64) -> &'static str {
    match err_no {
        40014 => "a parameter is wrong or missing: check the provider's `appid` and secret",
        40015 => "invalid appid: check the provider's `appid` against the app's AppID in Douyin's developer console",
        40017 => "invalid app secret: check that the provider's `secret_env` or `secret_file` holds the app's current AppSecret",
        40018 | 40019 => "the login code is invalid or expired: a client's mistake, nothing to fix here",
        -1 => "Douyin is busy: retry later; it is on Douyin's side",
        _ => "an err_no not listed here: see Douyin's error code list",
    }
}

/// What Baidu's `error` means, for operators.
pub fn baidu(error: Option<&str>) -> &'static str {
    match error {
        Some("invalid_grant") => {
            "the login code is invalid or expired: a client's mistake, nothing to fix here"
        }
        Some("invalid_client") => "invalid app key or secret: check the provider's `appid` (the App Key) and its secret against Baidu's developer console",
        Some("invalid_request") => "a parameter is wrong or missing: check the provider's `appid` and secret",
        _ => "an error not listed here: see Baidu's error code list",
    }
}

/// What Alipay's `sub_code` means, for operators.
pub fn alipay(sub_code: &str) -> &'static str {
    match sub_code {
        "isv.code-invalid" => {
            "the auth code is invalid or expired: a client's mistake, nothing to fix here"
        }
        "isv.invalid-app-id" => "invalid appid: check the provider's `appid` against the app's APPID in Alipay's console",
        "isv.invalid-signature" => "Alipay could not verify the call's signature: check that `private_key_file` is the app's private key and that its public key is the one uploaded to Alipay",
        "isv.insufficient-isv-permissions" => "the app lacks this capability: enable the login (user information) capability in Alipay's console",
        s if s.starts_with("isp.") => "Alipay is busy or failed: retry later; it is on Alipay's side",
        _ => "a sub_code not listed here: see Alipay's error code list",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_secret_or_appid_says_what_to_check() {
        assert!(wechat(40125).contains("secret_env"));
        assert!(wechat(40013).contains("`appid`"));
        assert!(wechat(40164).contains("allowlist"));
        assert!(wechat(12345).contains("not listed"));
        assert!(douyin(40017).contains("secret_env"));
        assert!(baidu(Some("invalid_client")).contains("secret"));
        assert!(alipay("isv.invalid-signature").contains("private_key_file"));
        assert!(alipay("isp.unknow-error").contains("Alipay's side"));
    }
}
