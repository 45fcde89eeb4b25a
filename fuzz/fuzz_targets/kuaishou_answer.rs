//! Kuaishou's `code2session` answer, from a hostile or broken upstream,
//! with any HTTP status: a session or a contract error, never a panic.
#![no_main]

use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use minigate::error::ApiError;
use minigate::signin::providers::kuaishou::interpret;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => (StatusCode::BAD_REQUEST, rest),
        Some((_, rest)) => (StatusCode::OK, rest),
        None => (StatusCode::OK, data),
    };
    match interpret("ks-fuzz", status, body) {
        Ok(session) => {
            assert!(status.is_success());
            assert!(!session.openid.is_empty() && session.session_key.is_some());
            assert!(session.unionid.is_none() && session.tenant.is_none());
        }
        Err(e) => assert!(ApiError::from(e).status().as_u16() >= 400),
    }
});
