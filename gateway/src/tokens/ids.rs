//! The clock and the random ids tokens carry.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use super::Internal;

/// Seconds since the epoch, now.
#[inline]
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random 128-bit id, base64url: for `jti` and `sid`.
pub fn random_id() -> Result<String, Internal> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Internal)?;
    Ok(B64.encode(bytes))
}

/// Declares borrowed id types: each a `&str` that only its own kind of id
/// fits, so that a function taking a user, a session and two refresh
/// tokens cannot be handed them in the wrong places. Free to copy; the
/// text is `.0` or [`str`] by `Deref`.
macro_rules! borrowed_ids {
    ($( $(#[$doc:meta])* $name:ident ),+ $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub struct $name<'a>(pub &'a str);

            impl std::ops::Deref for $name<'_> {
                type Target = str;
                fn deref(&self) -> &str {
                    self.0
                }
            }

            impl std::fmt::Display for $name<'_> {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(self.0)
                }
            }
        )+
    };
}

borrowed_ids! {
    /// The key a user's sessions, grants and limits are kept by: the
    /// `uid` the user service gave, else the unionid, else `sub`
    /// ([`crate::tokens::Subject::user`]).
    UserKey,
    /// A login session's id: the `sid` claim.
    Sid,
    /// A refresh token's id: its `jti` claim.
    Jti,
}

/// One session of one user: what every session store operation on a
/// session acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef<'a> {
    /// Whose.
    pub user: UserKey<'a>,
    /// Which.
    pub sid: Sid<'a>,
}
