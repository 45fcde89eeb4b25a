//! The operators' side: how the gateway is started.
//!
//! [`cli`] is the `minigate` command (serve, config check, keys, sessions;
//! one file a command) and [`dev`] the `serve --dev` mode with its built-in
//! stand-ins. Nothing here is on a request's path.

pub mod cli;
pub mod dev;
