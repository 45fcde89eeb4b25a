//! WeChat's `jscode2session` answer (QQ's too: same shape, same parser), from
//! a hostile or broken upstream: any body maps to a session or a contract
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minigate::error::ApiError;
use minigate::signin::providers::wechat::interpret;

fuzz_target!(|data: &[u8]| {
    match interpret("wx-fuzz", data) {
        Ok(session) => assert!(!session.openid.is_empty()),
        Err(e) => {
            let e: ApiError = e.into();
            assert!(e.status().as_u16() >= 400);
        }
    }
});
