//! The series the layers count into, and the labels they count by.
//!
//! Every series the request path touches is registered once, at start-up,
//! by the registry (`gateway::metrics`) and handed to its layer as
//! a handle: counting a request is an atomic add, with no label hashing or
//! registry lookup per request. The label enums here are the ones several
//! layers share; a layer's own series and labels live with the layer (the
//! user service's in `signin::enrich`, the WeChat token's in
//! `wechat::token`) and the registry builds them all.

use metrics::{Counter, Gauge, Histogram};

use crate::telemetry::labels::label_enum;
pub use crate::telemetry::labels::{Counters, Label};

label_enum! {
    /// The gateway's own endpoints, as route labels.
    pub enum Own {
        /// `/auth/login`.
        Login = "/auth/login",
        /// `/auth/refresh`.
        Refresh = "/auth/refresh",
        /// `/auth/logout`.
        Logout = "/auth/logout",
        /// `/auth/sessions` and `/auth/sessions/{sid}`.
        Sessions = "/auth/sessions",
        /// The admin listener's endpoints.
        Admin = "admin",
        /// The JWKS and discovery documents.
        WellKnown = "/.well-known/*",
        /// `/healthz` and `/readyz`.
        Health = "/healthz+readyz",
        /// `/metrics`.
        Metrics = "/metrics",
        /// A path no route matches.
        Unmatched = "unmatched",
        /// A path refused before routing (dot segments, encoded separators).
        RefusedPath = "refused-path",
        /// A request refused before routing for its head (Host, target) or its
        /// client (too many in flight).
        RefusedRequest = "refused-request",
        /// `/auth/verify`, the forward-auth decision.
        Verify = "/auth/verify",
        /// `/auth/phone` and `/auth/wechat/decrypt`: WeChat's services.
        WeChat = "/auth/wechat",
        /// `/auth/web/login`: the redirect to the authorize page.
        WebLogin = "/auth/web/login",
        /// `/auth/web/callback`: the browser's return from it.
        WebCallback = "/auth/web/callback",
    }
}

label_enum! {
    /// How the revoked-session set was brought in step with Redis.
    pub enum Resync {
        /// The whole set, after (re)connecting.
        Full = "full",
        /// The recent entries, on the periodic tick.
        Periodic = "periodic",
        /// A resync that Redis did not answer.
        Failed = "failed",
    }
}

/// The revoked-session set's series, handed to the set itself.
#[derive(Debug, Clone)]
pub struct RevokedMetrics {
    /// Entries now.
    pub size: Gauge,
    /// From a revocation on one replica to its arrival on this one.
    pub lag: Histogram,
    /// Resyncs, by kind.
    pub resyncs: Counters<Resync>,
}

impl RevokedMetrics {
    /// Series that record nothing (tests, benchmarks).
    pub fn noop() -> RevokedMetrics {
        RevokedMetrics {
            size: Gauge::noop(),
            lag: Histogram::noop(),
            resyncs: Counters::noop(),
        }
    }
}

label_enum! {
    /// Requests or connections the gateway refused or ended to protect itself
    /// or an upstream, by what it did.
    pub enum Refusal {
        /// A request header dropped for the `_` in its name.
        HeaderDropped = "header_dropped",
        /// A path refused (dot segments, encoded separators, `..;`).
        PathRefused = "path_refused",
        /// A request refused for its head (not one Host, userinfo in the target).
        BadRequestHead = "bad_request_head",
        /// A proxied request body that stalled past `proxy_body_timeout`.
        SlowBody = "slow_body",
        /// A client that stopped reading its response for `send_timeout`.
        SlowReader = "slow_reader",
        /// A client over `max_requests_per_ip`.
        PerIpCap = "per_ip_cap",
        /// A WebSocket tunnel closed after `tunnel_idle_timeout`.
        TunnelIdle = "tunnel_idle",
        /// A WebSocket handshake over `max_tunnels_per_user`.
        TunnelCap = "tunnel_cap",
        /// A refresh past its session's refreshes per minute.
        RefreshRate = "refresh_rate",
        /// A call of `/auth/sessions` past its user's calls per minute.
        SessionsRate = "sessions_rate",
        /// A call of WeChat's services on a session (`/auth/phone`,
        /// `/auth/wechat/*`) past its user's calls per minute.
        WechatRate = "wechat_rate",
    }
}

label_enum! {
    /// How a browser's return to `/auth/web/callback` ended.
    pub enum WebLogin {
        /// Signed in: cookies set, redirected.
        Ok = "ok",
        /// No state cookie, a state that does not match it, or one expired.
        BadState = "bad_state",
        /// A state already used once (a replay).
        ReplayedState = "replayed_state",
        /// The user declined at the authorize page (no code).
        Denied = "denied",
        /// The code exchange, the user service, the device limit or the
        /// session store refused or failed.
        Failed = "failed",
    }
}

label_enum! {
    /// Why a cookie-authenticated unsafe request was refused (403 `csrf_rejected`).
    pub enum Csrf {
        /// Its `Origin` (or `Referer`) names another origin.
        ForeignOrigin = "foreign_origin",
        /// It has neither `Origin` nor a usable `Referer` (or `Origin: null`).
        NoOrigin = "no_origin",
    }
}

label_enum! {
    /// The session store operations whose failures are counted.
    pub enum SessionOp {
        /// Recording a new session.
        Login = "login",
        /// Redeeming a refresh token.
        Refresh = "refresh",
        /// Revoking a session.
        Logout = "logout",
        /// Listing or ending sessions (`/auth/sessions`, the admin API).
        Sessions = "sessions",
    }
}

label_enum! {
    /// What a route's `allow` rules say of a request (the label of
    /// `minigate_authz_decisions_total`).
    pub enum Decision {
        /// An entry matches (or the route has no rules).
        Allowed = "allowed",
        /// No entry names a role the caller holds.
        DeniedRole = "denied_role",
        /// The caller's roles match an entry, but not with this method.
        DeniedMethod = "denied_method",
    }
}

/// Counters of one route: responses by status class (1xx..5xx), and the
/// upstream's time to response head.
#[derive(Debug)]
pub struct RouteMetrics {
    /// Responses by status class, 1xx to 5xx.
    pub classes: [Counter; 5],
    /// Upstream time to response head (proxied routes only).
    pub upstream: Histogram,
    /// WebSocket tunnels open now (proxied routes only).
    pub tunnels: Gauge,
    /// `allow` decisions, proxied and forward-auth (routes with rules only).
    pub decisions: Counters<Decision>,
}

impl RouteMetrics {
    /// Counts one response of status `status`.
    #[inline]
    pub fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class].increment(1);
    }
}
