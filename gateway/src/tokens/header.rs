//! The identity header names sent upstream, in one list that the cached
//! identity, the proxy and the forward-auth examples' test all read.

use http::HeaderName;
/// `sub` (the openid).
pub const SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
/// The openid.
pub const OPENID: HeaderName = HeaderName::from_static("x-auth-openid");
/// `client_id` (the appid).
pub const APPID: HeaderName = HeaderName::from_static("x-auth-appid");
/// `sid`.
pub const SESSION: HeaderName = HeaderName::from_static("x-auth-session");
/// `platform`.
pub const PLATFORM: HeaderName = HeaderName::from_static("x-auth-platform");
/// `jti`.
pub const TOKEN_ID: HeaderName = HeaderName::from_static("x-auth-token-id");
/// `unionid`, when known.
pub const UNIONID: HeaderName = HeaderName::from_static("x-auth-unionid");
/// `did` (device id), when known.
pub const DEVICE: HeaderName = HeaderName::from_static("x-auth-device");
/// `roles`, joined with `,`, when there are any.
pub const ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
/// `uid`, the user service's own id, when enrichment gave one.
pub const USER: HeaderName = HeaderName::from_static("x-auth-user");
/// The prefix of one header per `ext` claim: `x-auth-claim-<name>`.
pub const CLAIM_PREFIX: &str = "x-auth-claim-";
/// `phone_number`, once the user shared it.
pub const PHONE: HeaderName = HeaderName::from_static("x-auth-phone");
/// `dvt` (device class: phone, pc, web...), when the token has one.
pub const DEVICE_TYPE: HeaderName = HeaderName::from_static("x-auth-device-type");
/// `risk_rank`, WeChat's risk rank of the user at login, when asked.
pub const RISK_RANK: HeaderName = HeaderName::from_static("x-auth-risk-rank");
/// `tenant` (the user's organisation: Feishu's `tenant_key`), when the
/// platform has one.
pub const TENANT: HeaderName = HeaderName::from_static("x-auth-tenant");
/// Places in [`ALL`] the identity reads back.
pub(super) const AT_SUBJECT: usize = 0;
pub(super) const AT_SESSION: usize = 3;
pub(super) const AT_ROLES: usize = 10;
/// Every fixed name, in the order they are sent; a cached identity
/// names them by their place here rather than carrying them.
pub static ALL: [HeaderName; 14] = [
    SUBJECT,
    OPENID,
    APPID,
    SESSION,
    PLATFORM,
    TOKEN_ID,
    UNIONID,
    DEVICE,
    DEVICE_TYPE,
    PHONE,
    ROLES,
    USER,
    RISK_RANK,
    TENANT,
];
