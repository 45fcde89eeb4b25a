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
//! keeps at most [`MAX_REVOKED_PER_USER`] revocations, each with why it
//! ended (a forgotten one makes a later refresh "unknown" instead of
//! "revoked": refused all the same, without a reason). A session idle past
//! `idle_ttl` turns into such a revocation (reason `idle`) the next time
//! its user's sessions are touched.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::{
    Checked, EndReason, EndedAll, KeptKey, NewSession, Recorded, Redeemed, Rotation, SessionInfo,
    SessionRef, SessionStore, Unavailable, MAX_LISTED, REFRESHES_PER_WINDOW, REFRESH_WINDOW,
};
use crate::config::{OnLimit, Secret};
use crate::tokens::{now_secs, Jti, Sid, UserKey};

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
    platform: Box<str>,
    appid: Box<str>,
    device_name: Option<Box<str>>,
    session_key: Option<Secret>,
    /// The openid the key is of.
    openid: Box<str>,
    /// The phone number verified at `/auth/phone`, for the next refreshes.
    phone: Option<Box<str>>,
    /// When the last refreshes were checked, oldest first (at most
    /// [`REFRESHES_PER_WINDOW`], within [`REFRESH_WINDOW`]).
    recent: VecDeque<Instant>,
    created: u64,
    refreshed: u64,
    /// Wall-clock order of logins within one second.
    seq: u64,
    /// When its record goes: the refresh TTL past the last refresh.
    expires: Instant,
    /// When it ends unless refreshed: `expires`, or sooner with `idle_ttl`.
    live_until: Instant,
}

impl Session {
    /// Refreshed (or begun) `now`: it lives `ttl` more, or `idle` less.
    fn touch(&mut self, now: Instant, ttl: Duration, idle: Option<Duration>) {
        self.expires = now + ttl;
        self.live_until = now + idle.map_or(ttl, |i| i.min(ttl));
    }
}

#[derive(Debug, Default)]
struct User {
    live: HashMap<Box<str>, Session>,
    revoked: VecDeque<(Box<str>, Instant, EndReason)>,
}

/// Why a session a refresh token names cannot be used.
enum Gone {
    /// It was ended, for this reason.
    Revoked(EndReason),
    /// It never was, or it expired.
    Unknown,
}

impl User {
    /// The live session `sid`, or why there is none.
    fn session(&mut self, sid: &str) -> Result<&mut Session, Gone> {
        if let Some((_, _, why)) = self.revoked.iter().find(|(s, _, _)| &**s == sid) {
            return Err(Gone::Revoked(*why));
        }
        self.live.get_mut(sid).ok_or(Gone::Unknown)
    }

    /// Drops what expired; sessions idle too long end (reason `idle`),
    /// remembered until their record would have expired.
    fn forget_expired(&mut self, now: Instant) {
        self.live.retain(|_, s| s.expires > now);
        self.revoked.retain(|(_, until, _)| *until > now);
        let idle: Vec<(Box<str>, Instant)> = self
            .live
            .iter()
            .filter(|(_, s)| s.live_until <= now)
            .map(|(sid, s)| (sid.clone(), s.expires))
            .collect();
        for (sid, until) in idle {
            self.revoke(&sid, until, EndReason::Idle);
        }
    }

    fn revoke(&mut self, sid: &str, until: Instant, why: EndReason) {
        self.live.remove(sid);
        if self.revoked.len() >= MAX_REVOKED_PER_USER {
            self.revoked.pop_front();
        }
        self.revoked.push_back((sid.into(), until, why));
    }

    /// Ends the live sessions of `sids`.
    fn revoke_all<'a>(
        &mut self,
        sids: impl IntoIterator<Item = &'a str>,
        until: Instant,
        why: EndReason,
    ) {
        for sid in sids {
            self.revoke(sid, until, why);
        }
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
    idle: Option<Duration>,
    seq: AtomicU64,
    listed: usize,
}

/// Whether `jti` may be redeemed in session `s` now: `Some(false)` it is
/// the current token, `Some(true)` the one redeemed last, within `grace`.
fn redeemable(s: &Session, jti: &str, grace: Duration, now: Instant) -> Option<bool> {
    if &*s.jti == jti {
        return Some(false);
    }
    let in_grace = !grace.is_zero()
        && s.prev
            .as_ref()
            .is_some_and(|(p, at)| &**p == jti && now.duration_since(*at) < grace);
    in_grace.then_some(true)
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
            idle: None,
            seq: Default::default(),
            listed: MAX_LISTED,
        }
    }

    /// Ends sessions not refreshed for `idle` (`sessions.idle_ttl`).
    pub fn idle(mut self, idle: Option<Duration>) -> MemoryStore {
        self.idle = idle;
        self
    }

    /// Lists at most `n` sessions of a user (see [`super::listed`]).
    pub fn listing(mut self, n: usize) -> MemoryStore {
        self.listed = n;
        self
    }

    /// Changes the live session `at` in place with `f` (its user's entry
    /// keeps its weight and life); `false`: it is not live.
    fn change_live(&self, at: SessionRef<'_>, f: impl FnOnce(&mut Session)) -> bool {
        self.with_user(at.user.0, Duration::ZERO, |u| {
            match u.live.get_mut(at.sid.0) {
                Some(s) => {
                    f(s);
                    (true, false)
                }
                None => (false, false),
            }
        })
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
        platform: Some(s.platform.to_string()),
        appid: Some(s.appid.to_string()),
        device_name: s.device_name.as_deref().map(str::to_owned),
        created_at: s.created,
        refreshed_at: s.refreshed,
    }
}

impl SessionStore for MemoryStore {
    async fn begin(&self, new: &NewSession<'_>, ttl: Duration) -> Result<Recorded, Unavailable> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let idle = self.idle;
        Ok(self.with_user(new.user.0, ttl, |u| {
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
                        return (Recorded::Refused, false);
                    }
                    class.sort_unstable();
                    let over = class.len() + 1 - limit;
                    for (_, _, sid) in class.into_iter().take(over) {
                        u.revoke(&sid, now + ttl, EndReason::Replaced);
                        evicted.push(sid.into_string());
                    }
                }
            }
            // The user's ceiling, across classes, after the class's own
            // evictions: the oldest sessions by login end (or the login is
            // refused, before anything changed).
            let max = new.max_per_user as usize;
            if max > 0 && u.live.len() >= max {
                if new.on_limit == OnLimit::Refuse {
                    return (Recorded::Refused, false);
                }
                let mut all: Vec<(u64, u64, Box<str>)> = u
                    .live
                    .iter()
                    .map(|(sid, s)| (s.created, s.seq, sid.clone()))
                    .collect();
                all.sort_unstable();
                let over = all.len() + 1 - max;
                for (_, _, sid) in all.into_iter().take(over) {
                    u.revoke(&sid, now + ttl, EndReason::Replaced);
                    evicted.push(sid.into_string());
                }
            }
            let secs = now_secs();
            let mut session = Session {
                jti: new.jti.0.into(),
                prev: None,
                device_type: new.device_type.into(),
                device_id: new.device_id.map(Into::into),
                platform: new.platform.into(),
                appid: new.appid.into(),
                device_name: new.device_name.map(Into::into),
                session_key: new.session_key.map(|k| Secret::new(k.to_owned())),
                openid: new.openid.into(),
                phone: None,
                recent: VecDeque::new(),
                created: secs,
                refreshed: secs,
                seq,
                expires: now,
                live_until: now,
            };
            session.touch(now, ttl, idle);
            u.live.insert(new.sid.0.into(), session);
            (Recorded::Started { evicted }, true)
        }))
    }

    async fn redeem(
        &self,
        at: SessionRef<'_>,
        turn: Rotation<'_>,
        ttl: Duration,
    ) -> Result<Redeemed, Unavailable> {
        let (user, sid, jti, next) = (at.user.0, at.sid.0, turn.spent.0, turn.next.0);
        let (grace, idle) = (self.grace, self.idle);
        Ok(self.with_user(user, ttl, |u| {
            let now = Instant::now();
            let s = match u.session(sid) {
                Ok(s) => s,
                Err(Gone::Revoked(why)) => return (Redeemed::Revoked(why), false),
                Err(Gone::Unknown) => return (Redeemed::Unknown, false),
            };
            if let Some(in_grace) = redeemable(s, jti, grace, now) {
                // A grace redemption spends the grace: the token redeems
                // no third time, and the first answer's pair stops working.
                s.prev = if in_grace {
                    None
                } else {
                    Some((jti.into(), now))
                };
                s.jti = next.into();
                s.refreshed = now_secs();
                s.touch(now, ttl, idle);
                let phone = s.phone.as_deref().map(str::to_owned);
                return (Redeemed::Rotated { phone }, true);
            }
            u.revoke(sid, now + ttl, EndReason::Reused);
            (Redeemed::Reused, true)
        }))
    }

    async fn check(
        &self,
        at: SessionRef<'_>,
        jti: Jti<'_>,
        ttl: Duration,
    ) -> Result<Checked, Unavailable> {
        let (user, sid, jti) = (at.user.0, at.sid.0, jti.0);
        let grace = self.grace;
        Ok(self.with_user(user, ttl, |u| {
            let now = Instant::now();
            let s = match u.session(sid) {
                Ok(s) => s,
                Err(Gone::Revoked(why)) => return (Checked::Revoked(why), false),
                Err(Gone::Unknown) => return (Checked::Unknown, false),
            };
            if redeemable(s, jti, grace, now).is_none() {
                u.revoke(sid, now + ttl, EndReason::Reused);
                return (Checked::Reused, true);
            }
            s.recent
                .retain(|at| now.saturating_duration_since(*at) < REFRESH_WINDOW);
            if s.recent.len() >= REFRESHES_PER_WINDOW {
                let oldest = s.recent.front().copied().unwrap_or(now);
                let wait = REFRESH_WINDOW.saturating_sub(now.saturating_duration_since(oldest));
                return (Checked::TooSoon(wait), false);
            }
            s.recent.push_back(now);
            // Changed in place: the user's entry keeps its weight and life.
            (Checked::Live, false)
        }))
    }

    async fn end_everywhere(
        &self,
        at: SessionRef<'_>,
        jti: Jti<'_>,
        ttl: Duration,
    ) -> Result<EndedAll, Unavailable> {
        let (user, sid, jti) = (at.user.0, at.sid.0, jti.0);
        let grace = self.grace;
        Ok(self.with_user(user, ttl, |u| {
            let now = Instant::now();
            match u.session(sid) {
                Err(Gone::Revoked(why)) => return (EndedAll::Refused(Some(why)), false),
                Err(Gone::Unknown) => return (EndedAll::Refused(None), false),
                Ok(s) if redeemable(s, jti, grace, now).is_none() => {
                    return (EndedAll::Refused(None), false)
                }
                Ok(_) => {}
            }
            let ended: Vec<String> = u.live.keys().map(|s| s.to_string()).collect();
            u.revoke_all(
                ended.iter().map(String::as_str),
                now + ttl,
                EndReason::LoggedOut,
            );
            (EndedAll::Ended(ended), true)
        }))
    }

    async fn set_phone(&self, at: SessionRef<'_>, phone: &str) -> Result<bool, Unavailable> {
        Ok(self.change_live(at, |s| s.phone = Some(phone.into())))
    }

    async fn reissue(
        &self,
        at: SessionRef<'_>,
        next: Jti<'_>,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let (user, sid, next) = (at.user.0, at.sid.0, next.0);
        let idle = self.idle;
        Ok(self.with_user(user, ttl, |u| {
            let now = Instant::now();
            let Some(s) = u.live.get_mut(sid) else {
                return (false, false);
            };
            let current = std::mem::replace(&mut s.jti, next.into());
            s.prev = Some((current, now));
            s.refreshed = now_secs();
            s.touch(now, ttl, idle);
            (true, true)
        }))
    }

    async fn set_session_key(&self, at: SessionRef<'_>, key: &Secret) -> Result<bool, Unavailable> {
        Ok(self.change_live(at, |s| s.session_key = Some(key.clone())))
    }

    async fn session_key(&self, at: SessionRef<'_>) -> Result<Option<KeptKey>, Unavailable> {
        let (user, sid) = (at.user.0, at.sid.0);
        let Some(slot) = self.users.get(user) else {
            return Ok(None);
        };
        let u = lock(&slot.user);
        let now = Instant::now();
        Ok(u.live
            .get(sid)
            .filter(|s| s.live_until > now)
            .and_then(|s| {
                Some(KeptKey {
                    key: s.session_key.clone()?,
                    openid: s.openid.to_string(),
                    appid: s.appid.to_string(),
                })
            }))
    }

    async fn end(
        &self,
        user: UserKey<'_>,
        sid: Option<Sid<'_>>,
        why: EndReason,
        ttl: Duration,
    ) -> Result<Vec<String>, Unavailable> {
        let (user, sid) = (user.0, sid.map(|s| s.0));
        Ok(self.with_user(user, ttl, |u| {
            let until = Instant::now() + ttl;
            let ended: Vec<String> = match sid {
                Some(sid) if u.live.contains_key(sid) => vec![sid.to_owned()],
                Some(_) => Vec::new(),
                None => u.live.keys().map(|s| s.to_string()).collect(),
            };
            u.revoke_all(ended.iter().map(String::as_str), until, why);
            let changed = !ended.is_empty();
            (ended, changed)
        }))
    }

    async fn list(&self, user: UserKey<'_>) -> Result<Vec<SessionInfo>, Unavailable> {
        let user = user.0;
        let listed = self.listed;
        Ok(self.with_user(user, Duration::ZERO, |u| {
            // As the Redis store reads them: the most recently used ones
            // (latest expiry) up to the bound, then newest login first.
            let mut all: Vec<(&Box<str>, &Session)> = u.live.iter().collect();
            all.sort_unstable_by_key(|(_, s)| std::cmp::Reverse((s.expires, s.seq)));
            all.truncate(listed);
            all.sort_unstable_by_key(|(_, s)| std::cmp::Reverse((s.created, s.seq)));
            let list = all.into_iter().map(|(sid, s)| info(sid, s)).collect();
            (list, false)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn at<'a>(user: &'a str, sid: &'a str) -> SessionRef<'a> {
        SessionRef {
            user: UserKey(user),
            sid: Sid(sid),
        }
    }

    fn turn<'a>(spent: &'a str, next: &'a str) -> Rotation<'a> {
        Rotation {
            spent: Jti(spent),
            next: Jti(next),
        }
    }

    /// The sids `user`'s listing shows, in its order.
    async fn listed(s: &MemoryStore, user: &str) -> Vec<String> {
        let list = s.list(UserKey(user)).await.unwrap();
        list.into_iter().map(|i| i.sid).collect()
    }

    fn new<'a>(user: &'a str, sid: &'a str, class: &'a str, limit: u32) -> NewSession<'a> {
        NewSession {
            user: UserKey(user),
            sid: Sid(sid),
            jti: Jti("a"),
            device_type: class,
            device_id: None,
            platform: "wechat",
            appid: "wx1",
            device_name: None,
            limit,
            max_per_user: 0,
            on_limit: OnLimit::EvictOldest,
            session_key: None,
            openid: "o",
        }
    }

    #[tokio::test]
    async fn rotation_reuse_and_logout() {
        let s = MemoryStore::new(100, Duration::ZERO);
        assert_eq!(
            s.redeem(at("u", "s"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Unknown)
        );
        s.begin(&new("u", "s", "phone", 0), TTL).await.unwrap();
        assert_eq!(
            s.redeem(at("u", "s"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Rotated { phone: None })
        );
        assert_eq!(
            s.redeem(at("u", "s"), turn("b", "c"), TTL).await,
            Ok(Redeemed::Rotated { phone: None })
        );
        // "a" again: reuse, and the session is gone for everyone.
        assert_eq!(
            s.redeem(at("u", "s"), turn("a", "x"), TTL).await,
            Ok(Redeemed::Reused)
        );
        assert_eq!(
            s.redeem(at("u", "s"), turn("c", "d"), TTL).await,
            Ok(Redeemed::Revoked(EndReason::Reused))
        );
        s.begin(&new("u", "t", "phone", 0), TTL).await.unwrap();
        assert_eq!(
            s.end(UserKey("u"), Some(Sid("t")), EndReason::LoggedOut, TTL)
                .await
                .unwrap(),
            ["t"]
        );
        assert_eq!(
            s.redeem(at("u", "t"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Revoked(EndReason::LoggedOut))
        );
        // Another user's session is not this user's to end.
        s.begin(&new("v", "w", "phone", 0), TTL).await.unwrap();
        assert!(s
            .end(UserKey("u"), Some(Sid("w")), EndReason::Revoked, TTL)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exactly_one_concurrent_redemption_wins() {
        let s = Arc::new(MemoryStore::new(100, Duration::ZERO));
        s.begin(&new("u", "s", "phone", 0), TTL).await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.redeem(at("u", "s"), turn("a", &format!("n{i}")), TTL)
                        .await
                })
            })
            .collect();
        let mut rotated = 0;
        for t in tasks {
            if t.await.unwrap() == Ok(Redeemed::Rotated { phone: None }) {
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
            Recorded::Started {
                evicted: vec!["w1".into()]
            }
        );
        let mut refuse = new("u", "w4", "web", 2);
        refuse.on_limit = OnLimit::Refuse;
        assert_eq!(s.begin(&refuse, TTL).await.unwrap(), Recorded::Refused);
        let sids = listed(&s, "u").await;
        assert_eq!(sids, ["w3", "p1", "w2"]);
        assert_eq!(
            s.redeem(at("u", "w1"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Revoked(EndReason::Replaced))
        );
        let all = s
            .end(UserKey("u"), None, EndReason::Revoked, TTL)
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        assert!(s.list(UserKey("u")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn reuse_grace_allows_one_more_redemption() {
        let s = MemoryStore::new(100, Duration::from_secs(5));
        s.begin(&new("u", "s", "phone", 0), TTL).await.unwrap();
        assert_eq!(
            s.redeem(at("u", "s"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Rotated { phone: None })
        );
        // The answer was lost: "a" again, within the grace.
        assert_eq!(
            s.redeem(at("u", "s"), turn("a", "c"), TTL).await,
            Ok(Redeemed::Rotated { phone: None })
        );
        // A third time is reuse.
        assert_eq!(
            s.redeem(at("u", "s"), turn("a", "d"), TTL).await,
            Ok(Redeemed::Reused)
        );
    }

    #[tokio::test]
    async fn the_ceiling_ends_the_oldest_of_any_class_or_refuses() {
        let s = MemoryStore::new(100, Duration::ZERO);
        let capped = |sid, class| {
            let mut n = new("u", sid, class, 0);
            n.max_per_user = 2;
            n
        };
        s.begin(&capped("p1", "phone"), TTL).await.unwrap();
        s.begin(&capped("w1", "web"), TTL).await.unwrap();
        assert_eq!(
            s.begin(&capped("p2", "phone"), TTL).await.unwrap(),
            Recorded::Started {
                evicted: vec!["p1".into()]
            }
        );
        let mut refuse = capped("p3", "phone");
        refuse.on_limit = OnLimit::Refuse;
        assert_eq!(s.begin(&refuse, TTL).await.unwrap(), Recorded::Refused);
        let sids = listed(&s, "u").await;
        assert_eq!(sids, ["p2", "w1"]);
    }

    #[tokio::test]
    async fn checks_count_refreshes_and_catch_reuse_without_redeeming() {
        let s = MemoryStore::new(100, Duration::ZERO);
        s.begin(&new("u", "s", "phone", 0), TTL).await.unwrap();
        s.begin(&new("u", "t", "phone", 0), TTL).await.unwrap();
        for _ in 0..REFRESHES_PER_WINDOW {
            assert_eq!(
                s.check(at("u", "s"), Jti("a"), TTL).await,
                Ok(Checked::Live)
            );
        }
        let Ok(Checked::TooSoon(wait)) = s.check(at("u", "s"), Jti("a"), TTL).await else {
            panic!("the eleventh check passed");
        };
        assert!(wait <= REFRESH_WINDOW);
        // Another session of the user is counted on its own.
        assert_eq!(
            s.check(at("u", "t"), Jti("a"), TTL).await,
            Ok(Checked::Live)
        );
        // A check redeems nothing: "a" is still the token to redeem...
        assert_eq!(
            s.redeem(at("u", "t"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Rotated { phone: None })
        );
        // ...and once spent, checking it is reuse: the session ends.
        assert_eq!(
            s.check(at("u", "t"), Jti("a"), TTL).await,
            Ok(Checked::Reused)
        );
        assert_eq!(
            s.check(at("u", "t"), Jti("b"), TTL).await,
            Ok(Checked::Revoked(EndReason::Reused))
        );
        assert_eq!(
            s.check(at("u", "x"), Jti("a"), TTL).await,
            Ok(Checked::Unknown)
        );
        // Logout everywhere needs the live token, and then ends them all.
        assert_eq!(
            s.end_everywhere(at("u", "t"), Jti("b"), TTL).await,
            Ok(EndedAll::Refused(Some(EndReason::Reused)))
        );
        assert_eq!(
            s.end_everywhere(at("u", "s"), Jti("z"), TTL).await,
            Ok(EndedAll::Refused(None))
        );
        assert_eq!(
            s.end_everywhere(at("u", "s"), Jti("a"), TTL).await,
            Ok(EndedAll::Ended(vec!["s".to_owned()]))
        );
    }

    #[tokio::test]
    async fn the_session_key_is_kept_with_its_openid_and_replaced_in_place() {
        let s = MemoryStore::new(100, Duration::ZERO);
        let key = Secret::new("k2".into());
        assert_eq!(s.set_session_key(at("u", "s"), &key).await, Ok(false));
        let mut n = new("u", "s", "phone", 0);
        n.session_key = Some("k1");
        s.begin(&n, TTL).await.unwrap();
        let kept = s.session_key(at("u", "s")).await.unwrap().unwrap();
        assert_eq!(
            (kept.key.expose(), kept.openid.as_str(), kept.appid.as_str()),
            ("k1", "o", "wx1")
        );
        assert_eq!(s.set_session_key(at("u", "s"), &key).await, Ok(true));
        let kept = s.session_key(at("u", "s")).await.unwrap().unwrap();
        assert_eq!(kept.key.expose(), "k2");
        s.end(UserKey("u"), None, EndReason::LoggedOut, TTL)
            .await
            .unwrap();
        assert!(s.session_key(at("u", "s")).await.unwrap().is_none());
        assert_eq!(s.set_session_key(at("u", "s"), &key).await, Ok(false));
    }

    #[tokio::test]
    async fn a_phone_number_kept_with_the_session_comes_with_its_next_redemption() {
        let s = MemoryStore::new(100, Duration::ZERO);
        assert_eq!(s.set_phone(at("u", "s"), "+86 1").await, Ok(false));
        s.begin(&new("u", "s", "phone", 0), TTL).await.unwrap();
        assert_eq!(s.set_phone(at("u", "s"), "+86 1").await, Ok(true));
        assert_eq!(
            s.redeem(at("u", "s"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Rotated {
                phone: Some("+86 1".into())
            })
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
            s.redeem(at("u", "s"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Unknown)
        );
        assert!(s.list(UserKey("u")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_session_idle_too_long_ends_as_idle_and_leaves_the_listing() {
        let s = MemoryStore::new(100, Duration::ZERO).idle(Some(Duration::from_millis(300)));
        s.begin(&new("u", "s", "phone", 1), TTL).await.unwrap();
        s.begin(&new("u", "t", "pc", 0), TTL).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        // A refresh keeps "t" going; "s" is left alone.
        assert_eq!(
            s.redeem(at("u", "t"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Rotated { phone: None })
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(listed(&s, "u").await, ["t"]);
        assert_eq!(
            s.check(at("u", "s"), Jti("a"), TTL).await,
            Ok(Checked::Revoked(EndReason::Idle))
        );
        // An idle session holds no place in its class: a new login of the
        // class replaces nothing.
        assert_eq!(
            s.begin(&new("u", "s2", "phone", 1), TTL).await.unwrap(),
            Recorded::Started { evicted: vec![] }
        );
        assert_eq!(
            s.redeem(at("u", "s"), turn("a", "b"), TTL).await,
            Ok(Redeemed::Revoked(EndReason::Idle))
        );
    }

    #[tokio::test]
    async fn the_listing_shows_platform_app_and_device_name() {
        let s = MemoryStore::new(100, Duration::ZERO);
        let mut n = new("u", "s", "phone", 0);
        n.platform = "qq";
        n.appid = "1109";
        n.device_name = Some("Mi 14");
        s.begin(&n, TTL).await.unwrap();
        let listed = s.list(UserKey("u")).await.unwrap();
        assert_eq!(listed[0].platform.as_deref(), Some("qq"));
        assert_eq!(listed[0].appid.as_deref(), Some("1109"));
        assert_eq!(listed[0].device_name.as_deref(), Some("Mi 14"));
    }
}
