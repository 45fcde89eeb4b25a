//! The in-process session store: a bounded moka cache.
//!
//! Right for one replica. State is lost on restart (sessions then fail
//! closed and clients log in again, which a mini-program does silently) and,
//! being bounded, the oldest sessions are evicted under pressure. Several
//! replicas need the Redis store, or a refresh on one replica would not know
//! a session begun on another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;

use super::{Redeemed, SessionStore, Unavailable};

#[derive(Clone, Debug)]
enum State {
    Current(Arc<str>),
    Revoked,
}

#[derive(Clone, Debug)]
struct Entry {
    state: State,
    ttl: Duration,
}

/// Each entry lives its own TTL from its last write.
struct ByEntry;

impl moka::Expiry<Arc<str>, Entry> for ByEntry {
    fn expire_after_create(&self, _: &Arc<str>, e: &Entry, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
    fn expire_after_update(
        &self,
        _: &Arc<str>,
        e: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// Sessions in this process.
pub struct MemoryStore {
    sessions: Cache<Arc<str>, Entry>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` sessions.
    pub fn new(capacity: u64) -> MemoryStore {
        MemoryStore {
            sessions: Cache::builder()
                .max_capacity(capacity)
                .expire_after(ByEntry)
                .build(),
        }
    }
}

impl SessionStore for MemoryStore {
    async fn begin(&self, sid: &str, jti: &str, ttl: Duration) -> Result<(), Unavailable> {
        self.sessions.insert(
            sid.into(),
            Entry {
                state: State::Current(jti.into()),
                ttl,
            },
        );
        Ok(())
    }

    async fn redeem(
        &self,
        sid: &str,
        jti: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<Redeemed, Unavailable> {
        let mut outcome = Redeemed::Unknown;
        // One atomic read-modify-write per key: concurrent redemptions of
        // one session are serialized here.
        self.sessions
            .entry(Arc::from(sid))
            .and_compute_with(|found| {
                let Some(found) = found else {
                    outcome = Redeemed::Unknown;
                    return Op::Nop;
                };
                let (state, new) = match &found.value().state {
                    State::Revoked => (Redeemed::Revoked, None),
                    State::Current(cur) if &**cur == jti => {
                        (Redeemed::Rotated, Some(State::Current(next.into())))
                    }
                    State::Current(_) => (Redeemed::Reused, Some(State::Revoked)),
                };
                outcome = state;
                match new {
                    Some(state) => Op::Put(Entry { state, ttl }),
                    None => Op::Nop,
                }
            });
        Ok(outcome)
    }

    async fn revoke(&self, sid: &str, ttl: Duration) -> Result<(), Unavailable> {
        self.sessions.insert(
            sid.into(),
            Entry {
                state: State::Revoked,
                ttl,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn rotation_reuse_and_logout() {
        let s = MemoryStore::new(100);
        assert_eq!(s.redeem("s", "a", "b", TTL).await, Ok(Redeemed::Unknown));
        s.begin("s", "a", TTL).await.unwrap();
        assert_eq!(s.redeem("s", "a", "b", TTL).await, Ok(Redeemed::Rotated));
        assert_eq!(s.redeem("s", "b", "c", TTL).await, Ok(Redeemed::Rotated));
        // "a" again: reuse, and the session is gone for everyone.
        assert_eq!(s.redeem("s", "a", "x", TTL).await, Ok(Redeemed::Reused));
        assert_eq!(s.redeem("s", "c", "d", TTL).await, Ok(Redeemed::Revoked));
        s.begin("t", "a", TTL).await.unwrap();
        s.revoke("t", TTL).await.unwrap();
        assert_eq!(s.redeem("t", "a", "b", TTL).await, Ok(Redeemed::Revoked));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exactly_one_concurrent_redemption_wins() {
        let s = Arc::new(MemoryStore::new(100));
        s.begin("s", "a", TTL).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.redeem("s", "a", &format!("n{i}"), TTL).await })
            })
            .collect();
        let mut rotated = 0;
        for t in tasks {
            if t.await.unwrap() == Ok(Redeemed::Rotated) {
                rotated += 1;
            }
        }
        assert_eq!(rotated, 1);
    }

    #[tokio::test]
    async fn sessions_expire_with_their_ttl() {
        let s = MemoryStore::new(100);
        s.begin("s", "a", Duration::from_millis(200)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(s.redeem("s", "a", "b", TTL).await, Ok(Redeemed::Unknown));
    }
}
