//! Signing keys for minigate, and nothing of HTTP.
//!
//! The gateway, the CLI and any service that wants to check minigate's tokens
//! share one notion of a key: an asymmetric key pair made by ring, named by
//! its RFC 7638 thumbprint, and living in a [`KeySet`] where every key has a
//! rotation [`KeyState`]. Keeping this in its own crate keeps the code that
//! touches private keys small and free of network concerns, and lets the
//! benches and other tools use it without pulling in the server.
//!
//! - [`key`]: one key pair, its public JWK and its thumbprint.
//! - [`keyset`]: the set of keys with rotation states, and its file format.
//! - [`jws`]: compact JWS signing with the current key, and verification that
//!   takes the algorithm from the local key, never from the token.

pub mod alg;
pub mod jws;
pub mod key;
pub mod keyset;

pub use alg::Alg;
pub use jws::{VerifyError, MAX_TOKEN_LEN};
pub use key::{Key, PublicJwk};
pub use keyset::{
    DirLock, JwksDocument, KeyProblem, KeySet, KeySetError, KeyState, Problem, KEYSET_FILE,
    LOCK_FILE,
};
