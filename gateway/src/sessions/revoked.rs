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
//! Each entry keeps why its session ended ([`EndReason`], told to the
//! client) in the top byte of the expiry's word: the lookup reads the one
//! word it always read. Two reasons for one sid (they arrive in any order,
//! from the channel and from resyncs) settle on the graver, so every
//! replica tells the same.
//!
//! With Redis, [`super::redis::spawn_sync`] keeps it in step with the other
//! replicas; without, only this process ends sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::telemetry::metrics::{Resync, RevokedMetrics};
use crate::tokens::{EndReason, Identity, TokenError};

/// The most entries kept. Past it the entries that expire soonest go
/// first: their tokens have the least time left anyway.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The expiry's bits of an entry; the reason is the byte above them.
const UNTIL: u64 = (1 << 56) - 1;

/// An entry: `until` (unix ms, far beyond any clock) and `why` in one word.
#[inline]
const fn entry(until: u64, why: EndReason) -> u64 {
    (until & UNTIL) | ((why.byte() as u64) << 56)
}

/// The reason of an entry.
#[inline]
fn why(entry: u64) -> EndReason {
    EndReason::from_byte((entry >> 56) as u8)
}

/// Ended sessions, by sid, with when their last access token expires
/// (unix milliseconds) and why they ended.
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

    /// Refuses an identity whose session has ended, saying why.
    #[inline]
    pub fn check(&self, id: &Identity) -> Result<(), TokenError> {
        match self.ended(id.sid()) {
            Some(why) => Err(TokenError::Revoked(why)),
            None => Ok(()),
        }
    }

    /// Has session `sid` ended (and may its tokens still be alive)?
    #[inline]
    pub fn contains(&self, sid: &str) -> bool {
        self.ended(sid).is_some()
    }

    /// Why session `sid` ended, if it has (and its tokens may still be
    /// alive).
    #[inline]
    pub fn ended(&self, sid: &str) -> Option<EndReason> {
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(sid)
            .filter(|e| **e & UNTIL > now_ms())
            .map(|e| why(*e))
    }

    /// Entries now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that `sid` ended, and why; its tokens are refused until
    /// `until` (unix milliseconds). A later `until` wins, and the graver
    /// reason.
    pub fn insert(&self, sid: &str, until: u64, why: EndReason) {
        self.insert_all(std::iter::once((sid, until, why)));
    }

    /// Records many at once, under one lock.
    pub fn insert_all<'a>(&self, entries: impl IntoIterator<Item = (&'a str, u64, EndReason)>) {
        let now = now_ms();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for (sid, until, reason) in entries {
            let until = until.min(UNTIL);
            if until <= now {
                continue;
            }
            if let Some(old) = map.get_mut(sid) {
                *old = entry((*old & UNTIL).max(until), why(*old).graver(reason));
                continue;
            }
            if map.len() >= self.cap {
                map.retain(|_, e| *e & UNTIL > now);
                if map.len() >= self.cap {
                    // Still full: drop the entries that expire soonest.
                    let mut untils: Vec<u64> = map.values().map(|e| e & UNTIL).collect();
                    let tenth = (self.cap / 10).max(1).min(untils.len() - 1);
                    let (_, cut, _) = untils.select_nth_unstable(tenth);
                    let cut = *cut;
                    map.retain(|_, e| *e & UNTIL > cut);
                }
            }
            map.insert(sid.into(), entry(until, reason));
        }
        self.publish_len(map.len());
    }

    /// Forgets the entries whose tokens have all expired.
    pub fn sweep(&self) {
        let now = now_ms();
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, e| *e & UNTIL > now);
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
        set.insert("a", later, EndReason::Replaced);
        assert!(set.contains("a") && !set.contains("b"));
        assert_eq!(set.ended("a"), Some(EndReason::Replaced));
        set.insert("gone", now_ms().saturating_sub(1), EndReason::Revoked);
        assert!(!set.contains("gone"));
        for i in 0..1000 {
            set.insert(&format!("s{i}"), later + i, EndReason::LoggedOut);
        }
        assert!(set.len() <= 100, "{}", set.len());
        // The newest survive.
        assert!(set.contains("s999"));
        set.insert("short", now_ms() + 150, EndReason::Idle);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!set.contains("short"));
        let before = set.len();
        set.sweep();
        assert!(set.len() < before);
    }

    #[test]
    fn the_graver_reason_and_the_later_expiry_stay_whatever_the_order() {
        let later = now_ms() + 60_000;
        for (first, second) in [
            (EndReason::LoggedOut, EndReason::Reused),
            (EndReason::Reused, EndReason::LoggedOut),
        ] {
            let set = RevokedSet::new(Duration::from_secs(60), RevokedMetrics::noop());
            set.insert("s", later, first);
            set.insert("s", later - 1, second);
            assert_eq!(set.ended("s"), Some(EndReason::Reused));
        }
        let set = RevokedSet::new(Duration::from_secs(60), RevokedMetrics::noop());
        set.insert("s", now_ms() + 100, EndReason::Banned);
        set.insert("s", later, EndReason::Banned);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(set.ended("s"), Some(EndReason::Banned));
    }
}
