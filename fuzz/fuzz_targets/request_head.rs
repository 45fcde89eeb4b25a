//! The request-head checks that run before routing: any path is refused or
//! put in a form that holds nothing an upstream could read as another path
//! (checked without the gateway's own code); any header names leave no `_`
//! name behind (or, with underscores allowed, none that reads as a header
//! the gateway owns).
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use minigate::pipeline::headers::drop_underscored;
use minigate::protocol::path::canonical;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, names) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok(form) = canonical(path) {
        assert!(!form.contains(';'), "{path:?}");
        let lower = form.to_ascii_lowercase();
        assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains('\\'));
        for seg in lower.split('/') {
            let seg = seg.replace("%2e", ".").replace("%3b", ";");
            assert!(seg != "." && seg != "..", "{path:?}");
            assert!(!seg.contains(';'), "{path:?}");
            assert!(
                !seg.starts_with("..;") && !seg.starts_with(".;"),
                "{path:?}"
            );
        }
    }
    let mut headers = HeaderMap::new();
    for name in names.split('\n') {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.append(name, HeaderValue::from_static("v"));
        }
    }
    for allow in [false, true] {
        let mut h = headers.clone();
        let before = h.keys_len();
        let dropped = drop_underscored(&mut h, allow);
        assert_eq!(before - dropped, h.keys_len());
        for k in h.keys() {
            let k = k.as_str();
            if !allow {
                assert!(!k.contains('_'), "{k}");
            } else if k.contains('_') {
                let dashed = k.replace('_', "-");
                assert!(
                    !dashed.starts_with("x-auth-")
                        && !dashed.starts_with("x-forwarded-")
                        && !matches!(dashed.as_str(), "x-request-id" | "x-real-ip" | "forwarded"),
                    "{k}"
                );
            }
        }
    }
});
