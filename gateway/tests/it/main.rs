//! minigate's integration tests, as one test binary: one module per area,
//! sharing the harness in `support` (built and linked once).
//!
//! Run one area with a filter, e.g. `cargo test -p minigate --test it sessions::`.

// The harness is test code: a fixture that cannot be built fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin;
mod app_tokens;
mod audit;
mod authz;
mod cli;
mod component;
mod deploy;
mod devices;
mod ended;
mod enrichment;
mod errors;
mod examples;
mod faults;
mod forgery;
mod headers;
mod image;
mod interop;
mod limits;
mod login_flow;
mod metrics;
mod monitoring;
mod operators;
mod paths;
mod platforms;
mod proxy;
mod rotation;
mod sessions;
mod superapps;
mod tls;
mod traces;
mod web;
mod websocket;
mod wechat;
mod wechat_health;
