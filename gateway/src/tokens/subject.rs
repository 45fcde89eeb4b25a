//! Who a token pair is for, and the one rule that names a user.

use std::collections::BTreeMap;

use super::UserKey;
use crate::config::Platform;

/// Who a token pair is for.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The user's openid (`sub`).
    pub openid: String,
    /// The user's unionid, when known.
    pub unionid: Option<String>,
    /// The mini-program's appid (`client_id`).
    pub appid: String,
    /// The platform.
    pub platform: Platform,
    /// The WeChat third-party platform that logged the user in to the
    /// mini-program `appid` on its behalf (claim `component_appid`), if one
    /// did.
    pub component_appid: Option<String>,
    /// The device id the client sent at login, if any.
    pub device_id: Option<String>,
    /// The user service's id for the person, from enrichment.
    pub uid: Option<String>,
    /// Roles: static grants and enrichment's, sorted, no duplicates.
    pub roles: Vec<String>,
    /// Short custom claims from enrichment (`ext`).
    pub ext: BTreeMap<String, String>,
    /// The device class of the login (`dvt`).
    pub device_type: DeviceClass,
    /// The phone number WeChat verified for this session (`phone_number`).
    pub phone: Option<String>,
    /// WeChat's risk rank of the user at login (`risk_rank`), when asked;
    /// refreshes keep it.
    pub risk_rank: Option<u8>,
    /// The user the login session was begun under (`usr` of its refresh
    /// token), once there is one; see [`Subject::user`].
    pub session_user: Option<String>,
    /// The organisation the user belongs to, on the platforms whose users
    /// are an organisation's (Feishu's `tenant_key`; claim `tenant`).
    pub tenant: Option<Tenant>,
}

/// An organisation a user belongs to (Feishu's `tenant_key`), and the user
/// key it makes of the user's id (see [`user_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    key: String,
    user: String,
}

impl Tenant {
    /// The tenant `key` of the user whose id on the platform is `id` (the
    /// unionid when there is one, else the openid).
    pub fn new(key: String, id: &str) -> Tenant {
        Tenant {
            user: tenant_user(&key, id),
            key,
        }
    }

    /// The tenant's key (`tenant` claim, `X-Auth-Tenant`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The user key of its user: [`tenant_user`].
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// The user key of a tenant's user: `<tenant>:<id>`. A platform's ids may
/// repeat across organisations; with the tenant in front, the users of two
/// organisations never share a key (and so never their sessions, device
/// limits, grants or bans). The key is only ever compared, never split
/// again.
pub fn tenant_user(tenant: &str, id: &str) -> String {
    format!("{tenant}:{id}")
}

/// A device class (`dvt`): one of `[sessions] device_types`, or the
/// default class of a login that named none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClass(String);

impl DeviceClass {
    /// The class named `name`, which the caller has checked against the
    /// configured classes (or read from a token the gateway signed).
    pub fn new(name: impl Into<String>) -> DeviceClass {
        DeviceClass(name.into())
    }

    /// Its name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for DeviceClass {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Subject {
    /// The user (see [`user_key`]) whose session this is: the one the
    /// session was begun under (`usr` of its refresh token), else the one
    /// these claims name. Role grants, device limits, the session list and
    /// the admin API key on it; every caller goes through here.
    pub fn user(&self) -> &str {
        match &self.session_user {
            Some(u) => u,
            None => user_key(
                self.uid.as_deref(),
                self.tenant.as_ref().map(Tenant::user),
                self.unionid.as_deref(),
                &self.openid,
            ),
        }
    }

    /// [`Subject::user`], as the key type the session store takes.
    pub fn user_key(&self) -> UserKey<'_> {
        UserKey(self.user())
    }
}

/// The key that identifies a person across sessions, devices and apps:
/// the user service's `uid` when enrichment gave one; else, for a user of
/// an organisation (Feishu), `<tenant>:<unionid or openid>`
/// ([`tenant_user`]); else the unionid when the platform gave one, else the
/// openid. Role grants, tunnel caps and everything else per user go
/// through this one function.
pub fn user_key<T>(uid: Option<T>, tenant_user: Option<T>, unionid: Option<T>, openid: T) -> T {
    uid.or(tenant_user).or(unionid).unwrap_or(openid)
}
