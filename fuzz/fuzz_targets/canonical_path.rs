//! The canonical path (`minigate::protocol::path`): canonical twice is canonical
//! once; what it accepts holds nothing an upstream could read as another
//! path; and the request the pipeline forwards (`pipeline::with_path`)
//! carries exactly the path that was judged, with the query as sent.
#![no_main]

use std::borrow::Cow;

use http::Uri;
use libfuzzer_sys::fuzz_target;
use minigate::pipeline::with_path;
use minigate::protocol::path::canonical;

fuzz_target!(|data: &[u8]| {
    // A request target as hyper would hand it over, when it is one.
    let Ok(uri) = Uri::try_from(data) else {
        return;
    };
    let raw = uri.path();
    let Ok(form) = canonical(raw) else {
        return;
    };
    // Canonical twice is canonical once (and borrowed: nothing to redo).
    match canonical(&form) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, &*form),
        other => panic!("{raw:?} -> {form:?} -> {other:?}"),
    }
    // Nothing an upstream reads as another path.
    assert!(!form.contains("//") && !form.contains(';') && !form.contains('\\'));
    assert!(!form.contains("%3B"), "{form:?}");
    let b = form.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'%' {
            let hex = &b[i + 1..i + 3];
            assert!(hex
                .iter()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)));
            let byte = u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap();
            assert!(
                !(byte.is_ascii_alphanumeric() || b"-._~".contains(&byte)),
                "{form:?}"
            );
            assert!(byte != b'/' && byte != b'\\', "{form:?}");
        }
    }
    for seg in form.split('/') {
        assert!(seg != "." && seg != "..", "{form:?}");
    }
    // The path forwarded is the path judged.
    if let Cow::Owned(path) = &form {
        let forwarded = with_path(&uri, path).expect("a canonical path is a valid target");
        assert_eq!(forwarded.path(), path.as_str());
        assert_eq!(forwarded.query(), uri.query());
        assert_eq!(forwarded.authority(), uri.authority());
        assert!(matches!(canonical(forwarded.path()), Ok(Cow::Borrowed(_))));
    }
});
