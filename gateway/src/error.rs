//! The contract's error table as a type.
//!
//! Every error the gateway answers with is one of these variants, and each
//! variant's row (status, `error` code, description) is declared once, in
//! `ApiError::row`, so status, code and headers are decided in one place and every handler speaks
//! the same JSON `{"error", "error_description"}` (with `"reason"` beside them for a token of
//! an ended session: [`ApiError::reason`]). Descriptions are fixed text
//! chosen here: nothing a client or a provider sent is echoed back.

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};

use crate::config::AdminScope;
use crate::tokens::{EndReason, TokenError};

/// An error from the contract's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400 invalid_request: a malformed body or parameter.
    InvalidRequest(&'static str),
    /// 413 invalid_request: the body is over the limit.
    TooLarge,
    /// 405 invalid_request: wrong method on one of the gateway's endpoints.
    MethodNotAllowed(&'static str),
    /// 400 invalid_code: the provider refused the code (bad or used).
    InvalidCode,
    /// 429 rate_limited, with Retry-After in seconds: the platform's limit.
    RateLimited(u64),
    /// 429 rate_limited, with Retry-After in seconds: this client IP logs in
    /// faster than the gateway allows.
    TooManyLogins(u64),
    /// 429 rate_limited, with this description and Retry-After in seconds:
    /// a session refreshes, or a user calls the sessions endpoints, faster
    /// than the gateway allows.
    TooOften(&'static str, u64),
    /// 408 invalid_request: the body of a gateway endpoint came too slowly.
    BodyTimeout,
    /// 503 temporarily_unavailable: the session store cannot be reached, so
    /// refresh and logout fail closed.
    SessionsUnavailable,
    /// 403 risky_user: the provider flags the user.
    RiskyUser,
    /// 503 provider_unavailable: busy or unreachable.
    ProviderUnavailable,
    /// 504 provider_timeout: slower than its timeout.
    ProviderTimeout,
    /// 502 provider_error: an answer that cannot be used.
    ProviderError,
    /// 400 invalid_grant: a bad, expired, revoked or reused refresh token.
    InvalidGrant(&'static str),
    /// 401 without a token on a route that needs one.
    MissingToken,
    /// 401 invalid_token: a bad access token.
    InvalidToken(TokenError),
    /// 429 rate_limited: this client address has too many requests (or
    /// tunnels) open at once.
    TooManyInFlight,
    /// 409 session_key_expired: the session's platform key does not decrypt
    /// the data (the user logged in again since), or there is none.
    SessionKeyExpired,
    /// 409 session_key_expired, told apart by WeChat's `checksession`
    /// (the answer's `"session_key"` member): the key is no longer the
    /// user's (`valid: false`: log in again), or it is and the data was
    /// encrypted under another one (`valid: true`: fetch the data again).
    SessionKeyChecked {
        /// What `checksession` said of the session's key.
        valid: bool,
    },
    /// 403 risky_user: the platform's risk rank of the user is at or above
    /// the provider's `refuse_risk_rank`.
    RiskRank,
    /// 403 insufficient_scope: the route's `allow` rules refuse the caller.
    InsufficientScope,
    /// 403 access_denied: the user service refused the user (banned).
    AccessDenied,
    /// 403 csrf_rejected: a request authenticated by minigate's cookies,
    /// with an unsafe method, whose `Origin` (or `Referer`) is not the
    /// `[web] public_url` origin.
    CsrfRejected,
    /// 503 temporarily_unavailable: the user service gave no usable answer,
    /// so no token is issued.
    EnrichUnavailable,
    /// 404 not_found: no route.
    NotFound,
    /// 404 not_found: no live session of this id for the caller's user.
    SessionNotFound,
    /// 409 session_limit: the login's device class, or the user's ceiling
    /// (`sessions.max_per_user`), is full and `sessions.on_limit` is
    /// `refuse`.
    SessionLimit,
    /// 401 for the admin API: a missing or wrong admin token.
    AdminUnauthorized,
    /// 403 insufficient_scope for the admin API: a valid admin token
    /// without the scope the endpoint needs.
    AdminScope(AdminScope),
    /// 502 bad_gateway: the upstream is unreachable or broke off.
    BadGateway,
    /// 504 gateway_timeout: the upstream is too slow.
    GatewayTimeout,
    /// 500 server_error: a fault of the gateway itself.
    Internal,
    /// 401 unauthorized: a push to a third-party platform's callback whose
    /// `msg_signature` is not of its verify token: not from WeChat.
    PushSignature,
    /// 400 invalid_grant: a refresh token of a session that ended, for
    /// this reason.
    SessionEnded(EndReason),
    /// 400 invalid_grant: a refresh token already redeemed, presented
    /// again: its session ends now (reason `reused`).
    RefreshReused,
}

/// The `realm` of every `WWW-Authenticate` challenge.
const REALM: &str = "Bearer realm=\"minigate\"";

impl ApiError {
    /// The error's row of the contract's table: status, `error` code and
    /// `error_description`, declared together for each variant.
    pub fn row(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::InvalidRequest(d) => (S::BAD_REQUEST, "invalid_request", d),
            ApiError::TooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body too large",
            ),
            ApiError::MethodNotAllowed(_) => (
                S::METHOD_NOT_ALLOWED,
                "invalid_request",
                "method not allowed on this endpoint",
            ),
            ApiError::BodyTimeout => (
                S::REQUEST_TIMEOUT,
                "invalid_request",
                "the request body did not arrive in time",
            ),
            ApiError::InvalidCode => (
                S::BAD_REQUEST,
                "invalid_code",
                "the login code is invalid or was already used",
            ),
            ApiError::InvalidGrant(d) => (S::BAD_REQUEST, "invalid_grant", d),
            ApiError::RateLimited(_) => (
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                "the platform rate-limited this login, retry later",
            ),
            ApiError::TooManyLogins(_) => (
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many logins from this address, retry later",
            ),
            ApiError::TooOften(d, _) => (S::TOO_MANY_REQUESTS, "rate_limited", d),
            ApiError::TooManyInFlight => (
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests open from this client, retry later",
            ),
            ApiError::SessionsUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the session store is unavailable, retry later",
            ),
            ApiError::EnrichUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the user service is unavailable, retry later",
            ),
            ApiError::RiskyUser => (
                S::FORBIDDEN,
                "risky_user",
                "the platform refused this user as risky",
            ),
            ApiError::ProviderUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                "the platform's login service is unavailable",
            ),
            ApiError::ProviderTimeout => (
                S::GATEWAY_TIMEOUT,
                "provider_timeout",
                "the platform's login service did not answer in time",
            ),
            ApiError::ProviderError => (
                S::BAD_GATEWAY,
                "provider_error",
                "the platform's login service gave an unusable answer",
            ),
            ApiError::MissingToken => (
                S::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required",
            ),
            ApiError::InvalidToken(e) => (S::UNAUTHORIZED, "invalid_token", e.message()),
            ApiError::SessionKeyExpired => (
                S::CONFLICT,
                "session_key_expired",
                "the session's key does not decrypt this data; log in again (wx.login) and retry",
            ),
            ApiError::SessionKeyChecked { valid: false } => (
                S::CONFLICT,
                "session_key_expired",
                "WeChat no longer holds the session's key; log in again (wx.login) and retry",
            ),
            ApiError::SessionKeyChecked { valid: true } => (
                S::CONFLICT,
                "session_key_expired",
                "the session's key is valid but this data was encrypted under another; fetch it again",
            ),
            ApiError::RiskRank => (
                S::FORBIDDEN,
                "risky_user",
                "the platform ranks this user's risk at or above what this app accepts",
            ),
            ApiError::InsufficientScope => (
                S::FORBIDDEN,
                "insufficient_scope",
                "the caller's roles do not allow this request",
            ),
            ApiError::AccessDenied => (S::FORBIDDEN, "access_denied", "this user may not sign in"),
            ApiError::CsrfRejected => (
                S::FORBIDDEN,
                "csrf_rejected",
                "a cookie-authenticated request must come from the gateway's own origin",
            ),
            ApiError::NotFound => (S::NOT_FOUND, "not_found", "no route for this path"),
            ApiError::SessionNotFound => {
                (S::NOT_FOUND, "not_found", "no such session of this user")
            }
            ApiError::SessionLimit => (
                S::CONFLICT,
                "session_limit",
                "this user holds the most sessions allowed, for this device type or in all",
            ),
            ApiError::AdminUnauthorized => (
                S::UNAUTHORIZED,
                "unauthorized",
                "a valid admin token is required",
            ),
            ApiError::AdminScope(AdminScope::Sessions) => (
                S::FORBIDDEN,
                "insufficient_scope",
                "this admin token does not hold the sessions scope",
            ),
            ApiError::AdminScope(AdminScope::Wechat) => (
                S::FORBIDDEN,
                "insufficient_scope",
                "this admin token does not hold the wechat scope",
            ),
            ApiError::BadGateway => (
                S::BAD_GATEWAY,
                "bad_gateway",
                "the upstream service is unreachable",
            ),
            ApiError::GatewayTimeout => (
                S::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "the upstream service did not answer in time",
            ),
            ApiError::Internal => (S::INTERNAL_SERVER_ERROR, "server_error", "internal error"),
            ApiError::PushSignature => (
                S::UNAUTHORIZED,
                "unauthorized",
                "the push's msg_signature is not the platform's: not from WeChat",
            ),
            ApiError::SessionEnded(_) => (S::BAD_REQUEST, "invalid_grant", "session revoked"),
            ApiError::RefreshReused => (
                S::BAD_REQUEST,
                "invalid_grant",
                "refresh token already used",
            ),
        }
    }

    /// Why the session of the token presented ended, for the answer's
    /// `reason` member: a 401 `invalid_token` or a 400 `invalid_grant` of
    /// an ended session. Known only for a session the store (or the revoked
    /// set) remembers ending; an expired or forgotten one has none.
    pub fn reason(&self) -> Option<EndReason> {
        match self {
            ApiError::InvalidToken(TokenError::Revoked(why)) | ApiError::SessionEnded(why) => {
                Some(*why)
            }
            ApiError::RefreshReused => Some(EndReason::Reused),
            _ => None,
        }
    }

    /// What WeChat's `checksession` said of the session's key, for the
    /// answer's `session_key` member (`valid` / `invalid`) of a 409
    /// `session_key_expired` told apart by it.
    pub fn session_key(&self) -> Option<&'static str> {
        match self {
            ApiError::SessionKeyChecked { valid: true } => Some("valid"),
            ApiError::SessionKeyChecked { valid: false } => Some("invalid"),
            _ => None,
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        self.row().0
    }

    /// The `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        self.row().1
    }

    /// The human-readable `error_description`.
    pub fn description(&self) -> &'static str {
        self.row().2
    }

    /// Adds the `WWW-Authenticate`, `Retry-After` or `Allow` header its
    /// answer carries, where one is due. The answer itself is built by
    /// [`ApiError::into_response`], beside the body every response has.
    pub fn add_headers(self, headers: &mut HeaderMap) {
        match self {
            ApiError::MissingToken => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
            }
            ApiError::AdminUnauthorized => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"minigate-admin\""),
                );
            }
            ApiError::InvalidToken(e) => {
                // Descriptions are our own constants: plain ASCII without quotes.
                let challenge = format!(
                    "{REALM}, error=\"invalid_token\", error_description=\"{}\"",
                    e.message()
                );
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    headers.insert(WWW_AUTHENTICATE, v);
                }
            }
            ApiError::RateLimited(secs)
            | ApiError::TooManyLogins(secs)
            | ApiError::TooOften(_, secs) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            ApiError::AdminScope(scope) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(match scope {
                        AdminScope::Sessions => {
                            "Bearer realm=\"minigate-admin\", error=\"insufficient_scope\", scope=\"sessions\""
                        }
                        AdminScope::Wechat => {
                            "Bearer realm=\"minigate-admin\", error=\"insufficient_scope\", scope=\"wechat\""
                        }
                    }),
                );
            }
            ApiError::InsufficientScope => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        "Bearer realm=\"minigate\", error=\"insufficient_scope\"",
                    ),
                );
            }
            ApiError::SessionsUnavailable
            | ApiError::TooManyInFlight
            | ApiError::EnrichUnavailable => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::MethodNotAllowed(allow) => {
                headers.insert(http::header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
    }
}

impl From<crate::tokens::Internal> for ApiError {
    fn from(_: crate::tokens::Internal) -> ApiError {
        ApiError::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of each variant, in declaration order.
    fn every() -> Vec<ApiError> {
        use ApiError as E;
        let mut all = vec![
            E::InvalidRequest("code is required"),
            E::TooLarge,
            E::MethodNotAllowed("POST"),
            E::InvalidCode,
            E::RateLimited(60),
            E::TooManyLogins(1),
            E::TooOften("too many refreshes of this session, retry later", 1),
            E::BodyTimeout,
            E::SessionsUnavailable,
            E::RiskyUser,
            E::ProviderUnavailable,
            E::ProviderTimeout,
            E::ProviderError,
            E::InvalidGrant("refresh token reused"),
            E::MissingToken,
        ];
        all.extend(TokenError::ALL.map(E::InvalidToken));
        all.extend([
            E::TooManyInFlight,
            E::SessionKeyExpired,
            E::SessionKeyChecked { valid: false },
            E::SessionKeyChecked { valid: true },
            E::RiskRank,
            E::InsufficientScope,
            E::AccessDenied,
            E::CsrfRejected,
            E::EnrichUnavailable,
            E::NotFound,
            E::SessionNotFound,
            E::SessionLimit,
            E::AdminUnauthorized,
            E::AdminScope(AdminScope::Sessions),
            E::AdminScope(AdminScope::Wechat),
            E::BadGateway,
            E::GatewayTimeout,
            E::Internal,
            E::PushSignature,
            E::SessionEnded(EndReason::Replaced),
            E::RefreshReused,
        ]);
        all
    }

    /// The variant's place in the declaration; no wildcard, so a new
    /// variant does not compile until it has a place here, and the test
    /// below fails until [`every`] has one of it.
    fn place(e: &ApiError) -> usize {
        match e {
            ApiError::InvalidRequest(_) => 0,
            ApiError::TooLarge => 1,
            ApiError::MethodNotAllowed(_) => 2,
            ApiError::InvalidCode => 3,
            ApiError::RateLimited(_) => 4,
            ApiError::TooManyLogins(_) => 5,
            ApiError::TooOften(..) => 6,
            ApiError::BodyTimeout => 7,
            ApiError::SessionsUnavailable => 8,
            ApiError::RiskyUser => 9,
            ApiError::ProviderUnavailable => 10,
            ApiError::ProviderTimeout => 11,
            ApiError::ProviderError => 12,
            ApiError::InvalidGrant(_) => 13,
            ApiError::MissingToken => 14,
            ApiError::InvalidToken(_) => 15,
            ApiError::TooManyInFlight => 16,
            ApiError::SessionKeyExpired => 17,
            ApiError::SessionKeyChecked { .. } => 18,
            ApiError::RiskRank => 19,
            ApiError::InsufficientScope => 20,
            ApiError::AccessDenied => 21,
            ApiError::CsrfRejected => 22,
            ApiError::EnrichUnavailable => 23,
            ApiError::NotFound => 24,
            ApiError::SessionNotFound => 25,
            ApiError::SessionLimit => 26,
            ApiError::AdminUnauthorized => 27,
            ApiError::AdminScope(_) => 28,
            ApiError::BadGateway => 29,
            ApiError::GatewayTimeout => 30,
            ApiError::Internal => 31,
            ApiError::PushSignature => 32,
            ApiError::SessionEnded(_) => 33,
            ApiError::RefreshReused => 34,
        }
    }

    #[test]
    fn every_error_is_a_row_of_the_errors_reference() {
        let every = every();
        let mut places: Vec<usize> = every.iter().map(place).collect();
        places.dedup();
        assert_eq!(
            places,
            (0..=34).collect::<Vec<_>>(),
            "every() misses a variant"
        );
        let doc = include_str!("../../docs/errors.md");
        let rows: Vec<(u16, &str)> = doc
            .lines()
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                let status = cells.next()?.parse::<u16>().ok()?;
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                Some((status, code))
            })
            .collect();
        for e in &every {
            let row = (e.status().as_u16(), e.code());
            assert!(
                rows.contains(&row),
                "docs/errors.md has no row {row:?} ({e:?})"
            );
        }
        for row in &rows {
            assert!(
                every
                    .iter()
                    .any(|e| (e.status().as_u16(), e.code()) == *row),
                "docs/errors.md lists {row:?}, which no ApiError answers with"
            );
        }
        // A description of its own (not given by the caller or the token
        // error) is the one the reference shows.
        for e in &every {
            if matches!(
                e,
                ApiError::InvalidRequest(_)
                    | ApiError::InvalidGrant(_)
                    | ApiError::SessionEnded(_)
                    | ApiError::RefreshReused
                    | ApiError::TooOften(..)
                    | ApiError::InvalidToken(_)
                    | ApiError::AdminScope(AdminScope::Wechat)
            ) {
                continue;
            }
            let cell = format!(
                "| {} | `{}` | {}",
                e.status().as_u16(),
                e.code(),
                e.description()
            );
            assert!(doc.contains(&cell), "docs/errors.md has no {cell}");
        }
    }
}
