//! The login, refresh and logout bodies: any bytes give a checked request
//! or a contract error, never a panic; what passes is within its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minigate::endpoints::{parse_login, parse_refresh};
use minigate::signin::MAX_CODE;

fuzz_target!(|data: &[u8]| {
    if let Ok(login) = parse_login(data) {
        assert!(!login.code.is_empty() && login.code.len() <= MAX_CODE);
        if let Some(d) = &login.device_id {
            assert!(minigate::config::is_header_safe(d, 128));
        }
    }
    if let Ok(token) = parse_refresh(data) {
        assert!(!token.is_empty());
    }
    // Whatever the error, it renders as the contract's JSON.
    if let Err(e) = parse_login(data) {
        let res = e.into_response();
        assert!(res.status().is_client_error());
    }
});
