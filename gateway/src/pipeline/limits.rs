//! Per-client limits: the login rate, and how much one client may hold at
//! once (requests in flight, WebSocket tunnels).
//!
//! **Logins.**
//! Every login costs a call to the platform's code exchange, and the platform
//! rate-limits the app as a whole (errcode 45011): one client looping on
//! login would lock every user of the mini-program out. A token bucket per
//! client IP (GCRA, from `governor`) stops that client alone, with a
//! `Retry-After` that says when its next login will pass. IPv6 clients are
//! keyed by their /64, since one host usually holds a whole /64 and could
//! otherwise rotate addresses to dodge the limit.
//!
//! The key is the client address (the TCP peer, or behind
//! `trusted_proxies` the address they forwarded).
//!
//! **The session endpoints.** `GET /auth/sessions` and
//! `DELETE /auth/sessions/{sid}` read and write the shared session store:
//! [`UserLimiter`] allows each user [`SESSIONS_PER_MINUTE`] of them (burst
//! [`SESSIONS_BURST`]), keyed by the user, not the client address, which
//! thousands of users may share behind a carrier-grade NAT. (Refreshes are
//! limited per session, in the session store itself:
//! [`crate::sessions::REFRESHES_PER_WINDOW`].)
//!
//! **WeChat's services on a session.** `/auth/phone`,
//! `/auth/wechat/decrypt` and `/auth/wechat/session_key` call WeChat with
//! the app's access token, whose daily quota every user of the app shares:
//! one user must not spend it for all. A second [`UserLimiter`] allows each
//! user [`WECHAT_PER_MINUTE`] of these calls (burst [`WECHAT_BURST`]).
//!
//! **Occupancy.** A client that opens many slow requests, or many idle
//! tunnels, would otherwise take every upstream slot or connection slot
//! there is: admission takes a place in [`crate::forward::occupancy`]'s count
//! for each, refused past the cap.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// The login limiter; `None` inside when the config turns it off.
#[derive(Debug)]
pub struct LoginLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

/// The key a client IP counts under.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginLimiter {
    /// `per_minute` logins per client IP, `burst` at once; 0 per minute turns
    /// the limit off.
    pub fn new(per_minute: u32, burst: u32) -> LoginLimiter {
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            DefaultKeyedRateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        LoginLimiter { limiter }
    }

    /// `Ok` if `ip` may log in now, else the whole seconds until it may.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&bucket(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets clients whose buckets are full again, so the table holds only
    /// recently active clients. Called periodically.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many clients are tracked now.
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// Calls of the session endpoints one user may make per minute.
pub const SESSIONS_PER_MINUTE: u32 = 30;
/// ...and at once, before the rate applies.
pub const SESSIONS_BURST: u32 = 10;

/// Calls of WeChat's services on a session one user may make per minute.
pub const WECHAT_PER_MINUTE: u32 = 20;
/// ...and at once, before the rate applies.
pub const WECHAT_BURST: u32 = 10;

/// A per-user limit (the session endpoints, WeChat's services); see the
/// module docs.
#[derive(Debug)]
pub struct UserLimiter {
    limiter: DefaultKeyedRateLimiter<Box<str>>,
}

impl Default for UserLimiter {
    fn default() -> Self {
        UserLimiter::new(SESSIONS_PER_MINUTE, SESSIONS_BURST)
    }
}

impl UserLimiter {
    /// `per_minute` calls per user (at least 1), `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> UserLimiter {
        let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        UserLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)),
        }
    }

    /// `Ok` if `user` may call now, else the whole seconds until it may.
    pub fn check(&self, user: &str) -> Result<(), u64> {
        // Looked up by `&str` would need a borrowed key type governor does
        // not take; the user key is short.
        let key: Box<str> = user.into();
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }

    /// Forgets users whose buckets are full again. Called periodically.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_retry_after_is_given() {
        let l = LoginLimiter::new(6, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.check(ip), Ok(()));
        }
        let wait = l.check(ip).unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        // Another client is not affected.
        assert_eq!(l.check("192.0.2.2".parse().unwrap()), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let l = LoginLimiter::new(1, 1);
        assert_eq!(l.check("2001:db8::1".parse().unwrap()), Ok(()));
        assert!(l.check("2001:db8::2".parse().unwrap()).is_err());
        assert_eq!(l.check("2001:db8:0:1::1".parse().unwrap()), Ok(()));
        assert_eq!(l.check("::ffff:192.0.2.9".parse().unwrap()), Ok(()));
        assert!(l.check("192.0.2.9".parse().unwrap()).is_err());
    }

    #[test]
    fn users_are_limited_each_on_their_own() {
        let l = UserLimiter::new(6, 2);
        assert_eq!(l.check("alice"), Ok(()));
        assert_eq!(l.check("alice"), Ok(()));
        let wait = l.check("alice").unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        assert_eq!(l.check("bob"), Ok(()));
    }

    #[test]
    fn zero_turns_it_off() {
        let l = LoginLimiter::new(0, 1);
        for _ in 0..100 {
            assert_eq!(l.check("192.0.2.1".parse().unwrap()), Ok(()));
        }
        assert_eq!(l.tracked(), 0);
    }
}
