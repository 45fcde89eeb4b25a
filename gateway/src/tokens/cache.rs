//! The verified-token cache's key and type.

use std::sync::Arc;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::UnitWeighter;

use super::Identity;

/// The verified-token cache's key: the first half of the token's SHA-256.
pub(super) type TokenKey = [u8; 16];

/// The cache key of `token`.
#[inline]
pub(super) fn token_key(token: &[u8]) -> TokenKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, token);
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest.as_ref()[..16]);
    key
}

/// The verified-token cache: a token's key to its identity, each entry
/// weighing one.
pub(super) type TokenCache = Cache<
    TokenKey,
    Arc<Identity>,
    UnitWeighter,
    foldhash::fast::RandomState,
    DefaultLifecycle<TokenKey, Arc<Identity>>,
>;
