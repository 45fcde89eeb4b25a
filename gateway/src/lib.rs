//! minigate: the auth gateway for mini-program backends.
//!
//! A request's path through the gateway reads top to bottom through these
//! modules: [`server`] accepts and dispatches; [`routes`] picks the upstream;
//! [`auth`] applies the route's policy using [`tokens`]; [`proxy`] rewrites
//! headers, forwards and streams back. Logins, refreshes and logouts are
//! served by [`endpoints`], with [`providers`] doing the code exchange,
//! [`sessions`] remembering which refresh token may be redeemed next, and
//! [`limits`] keeping one client from burning the app's login quota.
//! [`config`] turns the TOML file into checked values, [`keys`] holds the key
//! set, and [`cli`] and [`dev`] are the two ways to start it all.

pub mod auth;
pub mod cli;
pub mod config;
pub mod dev;
pub mod endpoints;
pub mod error;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod providers;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod sessions;
pub mod tls;
pub mod tokens;
pub mod tunnel;
