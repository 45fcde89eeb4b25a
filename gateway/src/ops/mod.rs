//! The operators' side: how the gateway is started and watched.
//!
//! [`cli`] is the `minigate` command (serve, config check, keys, sessions),
//! [`dev`] the `serve --dev` mode with its built-in stand-ins, [`metrics`]
//! the registry of every series the gateway exposes, and [`labels`] the
//! trait that turns a domain enum into its metric label. Everything else
//! reports into these; nothing here is on a request's path but the
//! counters themselves.

pub mod cli;
pub mod dev;
pub mod labels;
pub mod metrics;
