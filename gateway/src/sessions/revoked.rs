//! The sessions that ended while their access tokens may still be alive.
//!
//! Checked on every authenticated request, after the token verified (and
//! after the verified-token cache, which knows nothing of sessions): one
//! hash lookup under a read lock, skipped altogether while the set is
//! empty. An entry lives until the last access token its session could
//! have been issued has expired (`access_ttl` plus `leeway` past the
//! revocation), so the set holds only the sessions ended in the last
//! access-token lifetime, and it is capped at [`MAX_ENTRIES`] besides.
//!
//! With Redis, [`super::redis::spawn_sync`] keeps it in step with the other
//! replicas; without, only this process ends sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::telemetry::metrics::{Resync, RevokedMetrics};
use crate::tokens::{Identity, TokenError};

/// The most entries kept. Past it the entries that expire soonest go
/// first: their tokens have the least time left anyway.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Ended sessions, by sid, with when their last access token expires
/// (unix milliseconds).
pub struct RevokedSet {
    map: RwLock<HashMap<Box<str>, u64, foldhash::fast::RandomState>>,
    len: AtomicUsize,
    lifetime_ms: u64,
    cap: usize,
    metrics: RevokedMetrics,
}

impl std::fmt::Debug for RevokedSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokedSet")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl RevokedSet {
    /// A set whose entries live `lifetime` (access TTL plus leeway).
    pub fn new(lifetime: Duration, metrics: RevokedMetrics) -> RevokedSet {
        Self::with_cap(lifetime, MAX_ENTRIES, metrics)
    }

    /// A set of at most `cap` entries.
    pub fn with_cap(lifetime: Duration, cap: usize, metrics: RevokedMetrics) -> RevokedSet {
        RevokedSet {
            map: RwLock::new(HashMap::default()),
            len: AtomicUsize::new(0),
            lifetime_ms: u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
            cap: cap.max(1),
            metrics,
        }
    }

    /// How long an entry lives, in milliseconds.
    pub fn lifetime_ms(&self) -> u64 {
        self.lifetime_ms
    }

    /// Refuses an identity whose session has ended.
    #[inline]
    pub fn check(&self, id: &Identity) -> Result<(), TokenError> {
        if self.contains(id.sid()) {
            Err(TokenError::Revoked)
        } else {
            Ok(())
        }
    }

    /// Has session `sid` ended (and may its tokens still be alive)?
    #[inline]
    pub fn contains(&self, sid: &str) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(sid).is_some_and(|until| *until > now_ms())
    }

    /// Entries now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that `sid` ended; its tokens are refused until `until`
    /// (unix milliseconds). A later `until` wins.
    pub fn insert(&self, sid: &str, until: u64) {
        self.insert_all(std::iter::once((sid, until)));
    }

    /// Records many at once, under one lock.
    pub fn insert_all<'a>(&self, entries: impl IntoIterator<Item = (&'a str, u64)>) {
        let now = now_ms();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for (sid, until) in entries {
            if until <= now {
                continue;
            }
            if let Some(old) = map.get_mut(sid) {
                *old = (*old).max(until);
                continue;
            }
            if map.len() >= self.cap {
                map.retain(|_, u| *u > now);
                if map.len() >= self.cap {
                    // Still full: drop the entries that expire soonest.
                    let mut untils: Vec<u64> = map.values().copied().collect();
                    let tenth = (self.cap / 10).max(1).min(untils.len() - 1);
                    let (_, cut, _) = untils.select_nth_unstable(tenth);
                    let cut = *cut;
                    map.retain(|_, u| *u > cut);
                }
            }
            map.insert(sid.into(), until);
        }
        self.publish_len(map.len());
    }

    /// Forgets the entries whose tokens have all expired.
    pub fn sweep(&self) {
        let now = now_ms();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, u| *u > now);
        self.publish_len(map.len());
    }

    fn publish_len(&self, n: usize) {
        self.len.store(n, Ordering::Relaxed);
        self.metrics.size.set(n as f64);
    }

    /// Counts a resync.
    pub fn resynced(&self, kind: Resync) {
        self.metrics.resyncs.increment(kind);
    }

    /// Records how long a revocation took to arrive from the replica that
    /// made it (`at`: unix milliseconds there).
    pub fn arrived(&self, at: u64) {
        let lag = now_ms().saturating_sub(at);
        self.metrics.lag.record(lag as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_set_is_capped() {
        let set = RevokedSet::with_cap(Duration::from_secs(60), 100, RevokedMetrics::noop());
        assert!(!set.contains("a"));
        let later = now_ms() + 60_000;
        set.insert("a", later);
        assert!(set.contains("a") && !set.contains("b"));
        set.insert("gone", now_ms().saturating_sub(1));
        assert!(!set.contains("gone"));
        for i in 0..1000 {
            set.insert(&format!("s{i}"), later + i);
        }
        assert!(set.len() <= 100, "{}", set.len());
        // The newest survive.
        assert!(set.contains("s999"));
        set.insert("short", now_ms() + 150);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!set.contains("short"));
        let before = set.len();
        set.sweep();
        assert!(set.len() < before);
    }
}
