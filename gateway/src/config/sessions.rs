//! The `[sessions]` section: the store, device classes, limits, the ceiling per user and
//! the idle timeout.

use std::time::Duration;

use super::{defaults, Secret};

/// `[sessions]`.
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// A shared Redis store, if set; else the in-process store. The URL may
    /// hold a password, so it is a [`Secret`].
    pub redis_url: Option<Secret>,
    /// Redis Cluster seed URLs, if set (never together with `redis_url`).
    pub redis_cluster: Vec<Secret>,
    /// Most sessions the in-process store keeps.
    pub max_sessions: u64,
    /// Most live sessions of one user across every device class; 0 = no
    /// ceiling.
    pub max_per_user: u32,
    /// How long a refresh token just redeemed may be redeemed once more
    /// (zero: never).
    pub reuse_grace: Duration,
    /// A session not refreshed for this long ends at its next refresh
    /// (reason `idle`); none: only the refresh TTL ends it.
    pub idle_ttl: Option<Duration>,
    /// What a login past its device class's limit does.
    pub on_limit: OnLimit,
    /// The device classes and their limits.
    pub devices: DeviceClasses,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            redis_url: None,
            redis_cluster: Vec::new(),
            max_sessions: defaults::MAX_SESSIONS,
            max_per_user: defaults::MAX_PER_USER,
            reuse_grace: Duration::ZERO,
            idle_ttl: None,
            on_limit: OnLimit::EvictOldest,
            devices: DeviceClasses::default(),
        }
    }
}

/// `sessions.on_limit`: what a login that would pass its class's limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLimit {
    /// End the user's oldest session of the class.
    #[default]
    EvictOldest,
    /// Refuse the login (409 `session_limit`).
    Refuse,
}

impl OnLimit {
    /// The config name.
    pub const fn name(self) -> &'static str {
        match self {
            OnLimit::EvictOldest => "evict_oldest",
            OnLimit::Refuse => "refuse",
        }
    }
}

/// One device class and the most sessions a user may hold in it (0: no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClass {
    /// Its name, as a login's `device_type` and the `dvt` claim.
    pub name: String,
    /// Most live sessions of one user in this class; 0 = no limit.
    pub limit: u32,
}

/// `[sessions.devices]`: the defaults, with the config's values over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClasses(pub Vec<DeviceClass>);

impl Default for DeviceClasses {
    fn default() -> Self {
        DeviceClasses(
            defaults::DEVICE_CLASSES
                .iter()
                .map(|(name, limit)| DeviceClass {
                    name: (*name).to_owned(),
                    limit: *limit,
                })
                .collect(),
        )
    }
}

impl DeviceClasses {
    /// The class named `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&DeviceClass> {
        self.0.iter().find(|c| c.name == name)
    }

    /// Every class name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.name.as_str())
    }
}

/// Is `s` a device class name: 1-32 of `a-z`, `0-9`, `_`, `-`.
pub fn is_class_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
