//! The `[[routes]]`, `[[roles]]` and `[enrich]` sections: what is proxied and who may use it.

use std::time::Duration;

use http::Uri;

use super::is_header_safe;

/// `[[roles]]`: one role granted to listed users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    /// The role: 1-64 visible ASCII characters without commas.
    pub role: String,
    /// User keys (uid, else unionid, else openid) that hold it.
    pub users: Vec<String>,
}

/// `[enrich]`: where to ask for a user's uid, roles and claims.
#[derive(Debug, Clone)]
pub struct EnrichConfig {
    /// The endpoint (http or https), POSTed JSON at login and refresh. May
    /// hold credentials, so it is shown only redacted.
    pub url: reqwest::Url,
    /// How long one call may take; past it the login or refresh is 503.
    pub timeout: Duration,
}

/// One entry of a route's `allow` list: a request matches when it holds one
/// of `roles` (absent: any caller) and uses one of `methods` (absent: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// Roles, any of which is enough.
    pub roles: Option<Vec<String>>,
    /// Methods, any of which is enough.
    pub methods: Option<Vec<http::Method>>,
}

/// Is `role` a role name the contract allows (1-64 visible ASCII, no comma)?
pub fn is_role_name(role: &str) -> bool {
    is_header_safe(role, 64) && !role.contains(',')
}

/// How a route treats bearer tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A valid access token is needed.
    Required,
    /// Anonymous passes; a token, if sent, must be valid.
    Optional,
    /// No check at all (identity headers are still stripped).
    Public,
}

/// `[[routes]]`: a proxied prefix.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The path prefix; the longest matching prefix wins.
    pub prefix: String,
    /// `http://host:port` of the upstream; the request path is kept.
    pub upstream: Uri,
    /// Token policy.
    pub auth: AuthMode,
    /// How long the upstream may take to send its response head.
    pub timeout: Duration,
    /// Who may use it; `None` is every caller that passes `auth`.
    pub allow: Option<Vec<AllowRule>>,
}
