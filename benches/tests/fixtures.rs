//! The bench fixtures make tokens the gateway accepts: otherwise the
//! benchmarks would time refusals.

use jwks::Alg;
use minigate_benches::{access_token, es256_public_pem, key_set, tokens};

#[test]
fn every_algorithm_verifies_cold_and_warm() {
    for alg in [Alg::ES256, Alg::EdDSA, Alg::RS256] {
        let set = key_set(alg);
        let token = access_token(&set, 7, 3600);
        let copy = jwks::KeySet::from_json(set.to_json().as_bytes()).unwrap();
        let t = tokens(copy, 16);
        let id = t
            .verify_access(&token)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert!(id.headers().any(|(_, v)| v == "openid-00000007"));
        assert!(t.verify_access(&token).is_ok());
    }
}

#[test]
fn the_es256_pem_is_the_current_key() {
    let set = key_set(Alg::ES256);
    let pem = es256_public_pem(set.current()).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"));
}
