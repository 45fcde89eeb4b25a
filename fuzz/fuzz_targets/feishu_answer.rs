//! Feishu's answers, from a hostile or broken upstream, with any HTTP
//! status: `tokenLoginValidate`'s (a session with its tenant, or a contract
//! error) and `app_access_token`'s (a token with a life, or an error),
//! never a panic. The first byte picks the answer and the status.
#![no_main]

use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use minigate::error::ApiError;
use minigate::signin::providers::feishu::{interpret, interpret_token, token_refused};

fuzz_target!(|data: &[u8]| {
    let (pick, body) = data.split_first().map_or((0, data), |(&b, rest)| (b, rest));
    let status = if pick & 1 == 1 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let _ = token_refused(body);
    if pick & 2 == 2 {
        match interpret_token("cli_fuzz", status, body) {
            Ok((token, expire)) => {
                assert!(status.is_success());
                assert!(!token.is_empty() && expire > 0);
            }
            Err(e) => assert!(ApiError::from(e).status().as_u16() >= 400),
        }
        return;
    }
    match interpret("cli_fuzz", status, body) {
        Ok(session) => {
            assert!(status.is_success());
            assert!(!session.openid.is_empty() && session.session_key.is_some());
            assert!(session.tenant.is_some_and(|t| !t.is_empty()));
            assert!(session.unionid.is_none());
        }
        Err(e) => assert!(ApiError::from(e).status().as_u16() >= 400),
    }
});
