//! The in-process session store: a bounded moka cache of users, each with
//! its sessions.
//!
//! Right for one replica. State is lost on restart (sessions then fail
//! closed and clients log in again, which a mini-program does silently) and,
//! being bounded, the least recently used users are evicted under pressure.
//! Several replicas need the Redis store, or a refresh on one replica would
//! not know a session begun on another.
//!
//! Every change to one user's sessions (a login checked against its class's
//! limit, a redemption, ending sessions) runs in one critical section: a
//! lock striped by user, held from reading the user's sessions to writing
//! them back. The cache is weighed in sessions (live ones plus remembered
//! revocations), so `max_sessions` bounds the whole store, and each user
//! keeps at most [`MAX_REVOKED_PER_USER`] revocations (a forgotten one
//! makes a later refresh "unknown" instead of "revoked": refused all the
//! same).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::{Begun, NewSession, Redeemed, SessionInfo, SessionStore, Unavailable, MAX_LISTED};
use crate::config::{OnLimit, Secret};
use crate::tokens::now_secs;

/// Revoked sessions remembered per user, to answer "session revoked".
pub const MAX_REVOKED_PER_USER: usize = 64;
/// Lock stripes: logins of different users rarely wait on each other.
const STRIPES: usize = 256;

#[derive(Debug)]
struct Session {
    jti: Box<str>,
    /// The token redeemed last, and when, for `reuse_grace`.
    prev: Option<(Box<str>, Instant)>,
    device_type: Box<str>,
    device_id: Option<Box<str>>,
    session_key: Option<Secret>,
    created: u64,
    refreshed: u64,
    /// Wall-clock order of logins within one second.
    seq: u64,
    expires: Instant,
}

#[derive(Debug, Default)]
struct User {
    live: HashMap<Box<str>, Session>,
    revoked: VecDeque<(Box<str>, Instant)>,
}

impl User {
    fn forget_expired(&mut self, now: Instant) {
        self.live.retain(|_, s| s.expires > now);
        self.revoked.retain(|(_, until)| *until > now);
    }

    fn revoke(&mut self, sid: &str, until: Instant) {
        self.live.remove(sid);
        if self.revoked.len() >= MAX_REVOKED_PER_USER {
            self.revoked.pop_front();
        }
        self.revoked.push_back((sid.into(), until));
    }

    fn weight(&self) -> u32 {
        u32::try_from(1 + self.live.len() + self.revoked.len()).unwrap_or(u32::MAX)
    }
}

/// One user's sessions and their weight, read by the cache's weigher.
#[derive(Debug, Default)]
struct Slot {
    user: Mutex<User>,
    weight: AtomicU32,
    /// The refresh TTL in milliseconds, as of the last change.
    ttl_ms: AtomicU64,
}

/// A user lives the refresh TTL past its last change.
struct ByLastChange;

impl moka::Expiry<Box<str>, Arc<Slot>> for ByLastChange {
    fn expire_after_create(&self, _: &Box<str>, s: &Arc<Slot>, _: Instant) -> Option<Duration> {
        Some(Duration::from_millis(s.ttl_ms.load(Ordering::Relaxed)))
    }
    fn expire_after_update(
        &self,
        _: &Box<str>,
        s: &Arc<Slot>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_millis(s.ttl_ms.load(Ordering::Relaxed)))
    }
}

/// Sessions in this process.
pub struct MemoryStore {
    users: Cache<Box<str>, Arc<Slot>>,
    stripes: Vec<Mutex<()>>,
    hasher: foldhash::fast::RandomState,
    grace: Duration,
    seq: AtomicU64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these; a poisoned lock still holds
    // consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    /// A store holding at most about `capacity` sessions; a redeemed token
    /// may be redeemed again within `grace`.
    pub fn new(capacity: u64, grace: Duration) -> MemoryStore {
        MemoryStore {
            users: Cache::builder()
                .max_capacity(capacity)
                .weigher(|_, slot: &Arc<Slot>| slot.weight.load(Ordering::Relaxed))
                .expire_after(ByLastChange)
                .build(),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: foldhash::fast::RandomState::default(),
            grace,
            seq: Default::default(),
        }
    }

    /// Runs `f` on `user`'s sessions in the user's critical section, then
    /// writes them back (weight and TTL renewed) if `f` says they changed.
    fn with_user<T>(&self, user: &str, ttl: Duration, f: impl FnOnce(&mut User) -> (T, bool)) -> T {
        let stripe = self.hasher.hash_one(user) as usize % STRIPES;
        let _section = self.stripes.get(stripe).map(lock);
        let slot = self.users.get(user).unwrap_or_default();
        let (out, changed) = {
            let mut u = lock(&slot.user);
            u.forget_expired(Instant::now());
            let (out, changed) = f(&mut u);
            slot.weight.store(u.weight(), Ordering::Relaxed);
            (out, changed)
        };
        if changed {
            // Re-inserted so the weigher sees the new size and the entry
            // lives the refresh TTL past its user's last change.
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            slot.ttl_ms.store(ms, Ordering::Relaxed);
            self.users.insert(user.into(), slot);
        }
        out
    }
}

fn info(sid: &str, s: &Session) -> SessionInfo {
    SessionInfo {
        sid: sid.to_owned(),
        device_type: s.device_type.to_string(),
        device_id: s.device_id.as_deref().map(str::to_owned),
        created_at: s.created,
        refreshed_at: s.refreshed,
    }
}

impl SessionStore for MemoryStore {
    async fn begin(&self, new: &NewSession<'_>, ttl: Duration) -> Result<Begun, Unavailable> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        Ok(self.with_user(new.user, ttl, |u| {
            let now = Instant::now();
            let mut evicted = Vec::new();
            if new.limit > 0 {
                let mut class: Vec<(u64, u64, Box<str>)> = u
                    .live
                    .iter()
                    .filter(|(_, s)| &*s.device_type == new.device_type)
                    .map(|(sid, s)| (s.created, s.seq, sid.clone()))
                    .collect();
                let limit = new.limit as usize;
                if class.len() >= limit {
                    if new.on_limit == OnLimit::Refuse {
                        return (Begun::Refused, false);
                    }
                    class.sort_unstable();
                    let over = class.len() + 1 - limit;
                    for (_, _, sid) in class.into_iter().take(over) {
                        u.revoke(&sid, now + ttl);
                        evicted.push(sid.into_string());
                    }
                }
            }
            let secs = now_secs();
            u.live.insert(
                new.sid.into(),
                Session {
                    jti: new.jti.into(),
                    prev: None,
                    device_type: new.device_type.into(),
                    device_id: new.device_id.map(Into::into),
                    session_key: new.session_key.map(|k| Secret::new(k.to_owned())),
                    created: secs,
                    refreshed: secs,
                    seq,
                    expires: now + ttl,
                },
            );
            (Begun::Started { evicted }, true)
        }))
    }

    async fn redeem(
        &self,
        user: &str,
        sid: &str,
        jti: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<Redeemed, Unavailable> {
        let grace = self.grace;
        Ok(self.with_user(user, ttl, |u| {
            let now = Instant::now();
            if u.revoked.iter().any(|(s, _)| &**s == sid) {
                return (Redeemed::Revoked, false);
            }
            let Some(s) = u.live.get_mut(sid) else {
                return (Redeemed::Unknown, false);
            };
            let in_grace = !grace.is_zero()
                && s.prev
                    .as_ref()
                    .is_some_and(|(p, at)| &**p == jti && now.duration_since(*at) < grace);
            if &*s.jti == jti || in_grace {
                // A grace redemption spends the grace: the token redeems
                // no third time, and the first answer's pair stops working.
                s.prev = if in_grace {
                    None
                } else {
                    Some((jti.into(), now))
                };
                s.jti = next.into();
                s.refreshed = now_secs();
                s.expires = now + ttl;
                return (Redeemed::Rotated, true);
            }
            u.revoke(sid, now + ttl);
            (Redeemed::Reused, true)
        }))
    }

    async fn reissue(
        &self,
        user: &str,
        sid: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        Ok(self.with_user(user, ttl, |u| {
            let now = Instant::now();
            let Some(s) = u.live.get_mut(sid) else {
                return (false, false);
            };
            let current = std::mem::replace(&mut s.jti, next.into());
            s.prev = Some((current, now));
            s.refreshed = now_secs();
            s.expires = now + ttl;
            (true, true)
        }))
    }

    async fn session_key(&self, user: &str, sid: &str) -> Result<Option<Secret>, Unavailable> {
        let Some(slot) = self.users.get(user) else {
            return Ok(None);
        };
        let u = lock(&slot.user);
        let now = Instant::now();
        Ok(u.live
            .get(sid)
            .filter(|s| s.expires > now)
            .and_then(|s| s.session_key.clone()))
    }

    async fn end(
        &self,
        user: &str,
        sid: Option<&str>,
        ttl: Duration,
    ) -> Result<Vec<String>, Unavailable> {
        Ok(self.with_user(user, ttl, |u| {
            let until = Instant::now() + ttl;
            let ended: Vec<String> = match sid {
                Some(sid) if u.live.contains_key(sid) => vec![sid.to_owned()],
                Some(_) => Vec::new(),
                None => u.live.keys().map(|s| s.to_string()).collect(),
            };
            for sid in &ended {
                u.revoke(sid, until);
            }
            let changed = !ended.is_empty();
            (ended, changed)
        }))
    }

    async fn list(&self, user: &str) -> Result<Vec<SessionInfo>, Unavailable> {
        Ok(self.with_user(user, Duration::ZERO, |u| {
            let mut all: Vec<(&Box<str>, &Session)> = u.live.iter().collect();
            all.sort_unstable_by_key(|(_, s)| std::cmp::Reverse((s.created, s.seq)));
            let list = all
                .into_iter()
                .take(MAX_LISTED)
                .map(|(sid, s)| info(sid, s))
                .collect();
            (list, false)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn new<'a>(user: &'a str, sid: &'a str, class: &'a str, limit: u32) -> NewSession<'a> {
        NewSession {
            user,
            sid,
            jti: "a",
            device_type: class,
            device_id: None,
            limit,
            on_limit: OnLimit::EvictOldest,
            session_key: None,
        }
    }

    #[tokio::test]
    async fn rotation_reuse_and_logout() {
        let s = MemoryStore::new(100, Duration::ZERO);
        assert_eq!(
            s.redeem("u", "s", "a", "b", TTL).await,
            Ok(Redeemed::Unknown)
        );
        s.begin(&new("u", "s", "phone", 0), TTL).await.unwrap();
        assert_eq!(
            s.redeem("u", "s", "a", "b", TTL).await,
            Ok(Redeemed::Rotated)
        );
        assert_eq!(
            s.redeem("u", "s", "b", "c", TTL).await,
            Ok(Redeemed::Rotated)
        );
        // "a" again: reuse, and the session is gone for everyone.
        assert_eq!(
            s.redeem("u", "s", "a", "x", TTL).await,
            Ok(Redeemed::Reused)
        );
        assert_eq!(
            s.redeem("u", "s", "c", "d", TTL).await,
            Ok(Redeemed::Revoked)
        );
        s.begin(&new("u", "t", "phone", 0), TTL).await.unwrap();
        assert_eq!(s.end("u", Some("t"), TTL).await.unwrap(), ["t"]);
        assert_eq!(
            s.redeem("u", "t", "a", "b", TTL).await,
            Ok(Redeemed::Revoked)
        );
        // Another user's session is not this user's to end.
        s.begin(&new("v", "w", "phone", 0), TTL).await.unwrap();
        assert!(s.end("u", Some("w"), TTL).await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exactly_one_concurrent_redemption_wins() {
        let s = Arc::new(MemoryStore::new(100, Duration::ZERO));
        s.begin(&new("u", "s", "phone", 0), TTL).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { s.redeem("u", "s", "a", &format!("n{i}"), TTL).await })
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
    async fn limits_evict_the_oldest_or_refuse() {
        let s = MemoryStore::new(100, Duration::ZERO);
        s.begin(&new("u", "w1", "web", 2), TTL).await.unwrap();
        s.begin(&new("u", "w2", "web", 2), TTL).await.unwrap();
        s.begin(&new("u", "p1", "phone", 0), TTL).await.unwrap();
        let third = s.begin(&new("u", "w3", "web", 2), TTL).await.unwrap();
        assert_eq!(
            third,
            Begun::Started {
                evicted: vec!["w1".into()]
            }
        );
        let mut refuse = new("u", "w4", "web", 2);
        refuse.on_limit = OnLimit::Refuse;
        assert_eq!(s.begin(&refuse, TTL).await.unwrap(), Begun::Refused);
        let sids: Vec<String> = s
            .list("u")
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.sid)
            .collect();
        assert_eq!(sids, ["w3", "p1", "w2"]);
        let all = s.end("u", None, TTL).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(s.list("u").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn reuse_grace_allows_one_more_redemption() {
        let s = MemoryStore::new(100, Duration::from_secs(5));
        s.begin(&new("u", "s", "phone", 0), TTL).await.unwrap();
        assert_eq!(
            s.redeem("u", "s", "a", "b", TTL).await,
            Ok(Redeemed::Rotated)
        );
        // The answer was lost: "a" again, within the grace.
        assert_eq!(
            s.redeem("u", "s", "a", "c", TTL).await,
            Ok(Redeemed::Rotated)
        );
        // A third time is reuse.
        assert_eq!(
            s.redeem("u", "s", "a", "d", TTL).await,
            Ok(Redeemed::Reused)
        );
    }

    #[tokio::test]
    async fn sessions_expire_with_their_ttl() {
        let s = MemoryStore::new(100, Duration::ZERO);
        s.begin(&new("u", "s", "phone", 0), Duration::from_millis(200))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            s.redeem("u", "s", "a", "b", TTL).await,
            Ok(Redeemed::Unknown)
        );
        assert!(s.list("u").await.unwrap().is_empty());
    }
}
