//! The key-set file: whatever is on disk (an operator's typo, a truncated
//! write, garbage), loading gives a set or an error, never a panic; a set
//! that loads survives its own round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = jwks::KeySet::from_json(data) {
        let again = jwks::KeySet::from_json(set.to_json().as_bytes())
            .expect("a loaded set must load again from its own file");
        let kids = |s: &jwks::KeySet| {
            s.entries()
                .iter()
                .map(|e| (e.key.kid().to_owned(), e.state))
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(&set), kids(&again));
        assert!(serde_json::to_string(&set.jwks()).is_ok());
    }
});
