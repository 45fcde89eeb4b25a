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
    POOL.with_borrow_mut(|pool| pool.take(&mut bytes))?;
    Ok(B64.encode(bytes))
}

/// How many random bytes a thread draws from the kernel at a time: 64 ids.
const POOL_BYTES: usize = 1024;

thread_local! {
    /// Each thread's random bytes not yet made into ids. A login makes
    /// three ids and a refresh one, and a `getrandom` call each cost more
    /// than the id's encoding (ring's own nonces still draw theirs); cut
    /// from a block, it is one call per 64 ids. The bytes are the kernel's
    /// and as secret as the ids they become: each is cleared as it is
    /// handed out.
    static POOL: std::cell::RefCell<Pool> = const {
        std::cell::RefCell::new(Pool { bytes: [0; POOL_BYTES], used: POOL_BYTES })
    };
}

struct Pool {
    bytes: [u8; POOL_BYTES],
    used: usize,
}

impl Pool {
    /// Fills `out` with the next unused bytes, drawing a new block first
    /// when too few are left.
    fn take(&mut self, out: &mut [u8]) -> Result<(), Internal> {
        if POOL_BYTES - self.used < out.len() {
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut self.bytes)
                .map_err(|_| Internal)?;
            self.used = 0;
        }
        let next = &mut self.bytes[self.used..self.used + out.len()];
        out.copy_from_slice(next);
        next.fill(0);
        self.used += out.len();
        Ok(())
    }
}

/// A stand-in of the length of [`random_id`]'s ids (16 bytes, base64url
/// without padding), where only an id's length matters.
pub(crate) const ID_OF_RANDOM_ID_LENGTH: &str = "AAAAAAAAAAAAAAAAAAAAAA";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_across_blocks_of_the_pool() {
        // Three blocks' worth: ids cut from one block and from the next
        // never repeat.
        let ids: std::collections::HashSet<String> = (0..3 * POOL_BYTES / 16)
            .map(|_| random_id().unwrap())
            .collect();
        assert_eq!(ids.len(), 3 * POOL_BYTES / 16);
    }

    #[test]
    fn the_stand_in_id_has_the_length_of_a_random_one() {
        assert_eq!(ID_OF_RANDOM_ID_LENGTH.len(), random_id().unwrap().len());
    }
}
