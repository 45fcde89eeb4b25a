//! minigate: the auth gateway for mini-program backends.
//!
//! # Layout
//!
//! The folders are the layers, in the order a request meets them; each may
//! call the ones listed after it:
//!
//! - [`ops`]: the `minigate` command (one file a command) and
//!   `serve --dev`. A new CLI command goes here.
//! - [`listener`]: the downstream side. Accepts connections, speaks TLS
//!   and HTTP/1 and 2, keeps each connection's deadlines, drains at
//!   shutdown. A new protocol or socket option goes here.
//! - [`pipeline`]: the path of one request, top to bottom in
//!   `pipeline/mod.rs` (classify → admit → authenticate → authorize →
//!   rewrite → forward → log), one file per phase with substance: routes
//!   and their `allow` rules, per-client limits, authentication, the header
//!   policy; and the connection as its requests see it. A new phase goes
//!   here.
//! - [`endpoints`]: the gateway's own endpoints, one file each (login,
//!   refresh and logout, sessions, WeChat's services, forward-auth, the
//!   documents and probes), and the admin listener's. A new endpoint goes
//!   here.
//! - [`signin`]: what a login is made of. The login session every sign-in
//!   shares, one exchange per code, enrichment by the team's user service,
//!   the platforms' code exchanges (`providers`, one file per platform) and
//!   the browser sign-in (`web`). A new platform goes in `providers`.
//! - [`gateway`]: the shared state a running gateway reads, built once from
//!   the config; the metrics registry (`gateway/metrics.rs`, where a new
//!   series is registered); and the background tasks that keep the state
//!   fresh, all started by [`gateway::spawn_tasks`]. A new background task
//!   goes here.
//! - [`forward`]: the upstream side. Forwarding, the upstream connection
//!   pool, the watched bodies, WebSocket tunnels, what each client holds
//!   meanwhile.
//! - [`sessions`]: which refresh token may be redeemed next, in process or
//!   in Redis, and the revoked set every replica keeps in step.
//! - [`wechat`]: WeChat's services after the login (phone numbers, the
//!   app's access token, `session_key` crypto).
//! - [`outbound`]: the gateway's own calls out (platforms, the user
//!   service, WeChat's services): one client, redirects refused, every call
//!   with a deadline, answers read within a bound, errors never formatted;
//!   and the platforms' app access tokens (WeChat's, its third-party
//!   platforms', Feishu's), kept and shared across replicas
//!   (`outbound::kept`).
//! - [`error`]: the contract's error table.
//! - [`tokens`]: the JWTs: issuing and verifying, the verified-token cache,
//!   the identity they carry, and the key set they are signed with.
//! - [`config`]: the TOML file turned into checked values (the TLS pair
//!   among them, re-read when its files change).
//! - At the ground, depending on nothing of the gateway's: [`protocol`]
//!   (the canonical request path, the credentials a request presents),
//!   [`crypto`] (ring, and Alipay's RSA2) and [`telemetry`] (the series
//!   the layers count into and the label enums they count by, the audit
//!   events (`telemetry/audit.rs`) and the OpenTelemetry traces
//!   (`telemetry/traces.rs`); a new label or audit event goes here).
//!
//! Three arrows run the other way, on purpose: the gateway's state holds
//! parts of the pipeline and of sign-in (the route table, the limiters, the
//! providers) that the flows above it read; `/auth/verify` and
//! `/auth/sessions` apply the pipeline's authentication phase itself; and
//! the config names platforms by the registry in `signin::providers`.

pub mod config;
pub mod crypto;
pub mod endpoints;
pub mod error;
pub mod forward;
pub mod gateway;
pub mod listener;
pub mod ops;
pub mod outbound;
pub mod pipeline;
pub mod protocol;
pub mod sessions;
pub mod signin;
pub mod telemetry;
pub mod tokens;
pub mod wechat;
