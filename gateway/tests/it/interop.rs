//! Interoperability: the served JWKS and tokens verify with a stock verifier
//! from another ecosystem (PyJWT and its JWK support), which is the point of
//! publishing a JWKS. `./test` installs PyJWT (or `pip install 'pyjwt[crypto]'`).

use crate::support::*;

async fn verify_with_pyjwt(alg: jwks::Alg) {
    let gw = start(Setup {
        alg,
        ..Setup::default()
    })
    .await;
    let t = gw.login("interop").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/interop/verify_with_pyjwt.py"
    );
    let out = tokio::process::Command::new("python3")
        .args([
            script,
            &gw.url,
            "https://auth.test",
            "api",
            &t.access_token,
            &t.refresh_token,
        ])
        .output()
        .await
        .expect("python3 is needed for the interoperability test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'jwt'"),
        "PyJWT is missing: pip install 'pyjwt[crypto]' (./test does)"
    );
    assert!(
        out.status.success(),
        "PyJWT refused minigate's token ({alg}):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("access ok: alg={alg}")),
        "{stdout}"
    );
    assert!(
        stdout.contains("refresh ok") && stdout.contains("tampered ok"),
        "{stdout}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn pyjwt_verifies_es256_tokens_from_the_served_jwks() {
    verify_with_pyjwt(jwks::Alg::ES256).await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn pyjwt_verifies_eddsa_tokens_from_the_served_jwks() {
    verify_with_pyjwt(jwks::Alg::EdDSA).await;
}
