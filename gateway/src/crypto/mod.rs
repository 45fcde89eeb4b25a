//! The one crypto library: ring, for signatures and for TLS. The
//! primitives every layer shares live here, below the config that loads
//! their keys: the process-wide provider, and Alipay's RSA2 ([`rsa2`]).
//!
//! reqwest is built with `rustls-no-provider` so that aws-lc-rs never
//! enters the build; rustls then needs its process-wide provider installed
//! before the first client config is made, which [`install_crypto_provider`]
//! does. (Server configs name ring explicitly.)

pub mod rsa2;

/// Installs ring as rustls' process-wide crypto provider. Idempotent: a
/// provider already installed is left in place.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
