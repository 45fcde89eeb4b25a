//! minigate: the auth gateway for mini-program backends.
//!
//! # Layout
//!
//! The folders are the layers, in the order a request meets them:
//!
//! - [`listener`]: the downstream side. Accepts connections, terminates
//!   TLS, speaks HTTP/1 and 2, keeps each connection's deadlines, drains
//!   at shutdown. A new protocol or socket option goes here.
//! - [`pipeline`]: the path of one request, top to bottom in
//!   `pipeline/mod.rs` (classify → admit → authenticate → authorize →
//!   rewrite → forward → log), one file per phase with substance: the
//!   canonical path, routes and their `allow` rules, per-client limits,
//!   authentication. A new phase goes here.
//! - [`forward`]: the upstream side. Forwarding, the upstream connection
//!   pool, the watched bodies, WebSocket tunnels.
//! - [`endpoints`]: the gateway's own endpoints, one file each (login,
//!   refresh and logout, sessions, WeChat's services, forward-auth, the
//!   documents and probes), and the admin listener's. A new endpoint goes
//!   here.
//! - [`signin`]: what a login is made of. The login session every sign-in
//!   shares, one exchange per code, enrichment by the team's user service,
//!   the platforms' code exchanges (`providers`, one file per platform) and
//!   the browser sign-in (`web`). A new platform goes in `providers`.
//! - [`tokens`]: the JWTs: issuing and verifying, the verified-token cache,
//!   the identity they carry, and the key set they are signed with.
//! - [`sessions`]: which refresh token may be redeemed next, in process or
//!   in Redis, and the revoked set every replica keeps in step.
//! - [`wechat`]: WeChat's services after the login (phone numbers, the
//!   app's access token, `session_key` crypto).
//! - [`config`]: the TOML file turned into checked values.
//! - [`outbound`]: the gateway's own calls out (platforms, the user
//!   service, WeChat's services): one client, redirects refused, every call
//!   with a deadline, answers read within a bound, errors never formatted.
//! - [`telemetry`]: the metrics registry and the label enums' trait and
//!   macro; every layer counts into it. A new metric goes in
//!   `telemetry/metrics.rs`, a new audit event in `telemetry/audit.rs`.
//! - [`ops`]: the `minigate` command (one file a command) and
//!   `serve --dev`. A new CLI command goes here.
//!
//! Beside them, [`gateway`] is the shared state a running gateway reads
//! (built once from the config, with the background tasks that keep it
//! fresh), and [`error`] the contract's error table.

pub mod config;
pub mod endpoints;
pub mod error;
pub mod forward;
pub mod gateway;
pub mod listener;
pub mod ops;
pub mod outbound;
pub mod pipeline;
pub mod sessions;
pub mod signin;
pub mod telemetry;
pub mod tokens;
pub mod wechat;
