//! Alipay's `alipay.system.oauth.token` answer, from a hostile or broken
//! upstream: taking it apart, checking its signature (a forged one never
//! passes), and reading a verified object's content are each a session or a
//! contract error, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use minigate::crypto::rsa2::VerifyingKey;
use minigate::error::ApiError;
use minigate::signin::providers::alipay::{interpret, read, split};
use minigate::signin::providers::ExchangeError;

/// The TEST-ONLY key the committed seeds are signed with.
fn key() -> &'static VerifyingKey {
    static KEY: OnceLock<VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        VerifyingKey::parse(include_bytes!(
            "../../gateway/tests/it/fixtures/alipay/alipay.spki.pem"
        ))
        .unwrap()
    })
}

fn check<T>(r: Result<T, ExchangeError>) {
    if let Err(e) = r {
        assert!(ApiError::from(e).status().as_u16() >= 400);
    }
}

fuzz_target!(|data: &[u8]| {
    check(interpret("2021-fuzz", key(), data).map(|s| assert!(!s.openid.is_empty())));
    if let Some(signed) = split(data) {
        assert!(signed.content.starts_with('{') && signed.content.ends_with('}'));
        check(read("2021-fuzz", signed.content, signed.is_error));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check(read("2021-fuzz", text, data.len() % 2 == 0));
    }
});
