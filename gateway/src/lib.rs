//! minigate: the auth gateway for mini-program backends.
//!
//! The path of a request reads top to bottom in [`pipeline`]: classify →
//! admit → authenticate → authorize → rewrite → forward → log. [`server`] is the
//! listener that feeds it (accept, TLS, HTTP/1 or 2, drain), [`conn`] what
//! a request knows of its connection, and [`gateway`] the shared state it
//! reads. Along the way [`path`] puts the path in the one form that is
//! judged and forwarded (refusing what an upstream could misread),
//! [`routes`] picks the upstream and its `allow` rules, [`auth`]
//! applies the route's policy using [`tokens`], [`proxy`] rewrites headers
//! and forwards over [`upstream`]'s connections (driven by the request's
//! own task), [`body`] watches the bodies that stream both ways and
//! [`tunnel`] relays WebSockets. [`timer`] is the per-connection timer
//! that the client socket's and the upstream connection's deadlines move
//! instead of making a timer per request.
//!
//! Logins, refreshes and logouts are served by [`endpoints`], with
//! [`providers`] doing the code exchange (one file per platform, [`rsa2`]
//! signing Alipay's calls), [`signin`] opening the login session that
//! every sign-in shares, [`sessions`] remembering which
//! refresh token may be redeemed next, and [`limits`] keeping one client
//! from burning the app's login quota or holding every slot. [`config`]
//! turns the TOML file into checked values, [`keys`] holds the key set,
//! [`tls`] the certificate, [`metrics`] every series, [`error`] the
//! contract's error table, and [`cli`] and [`dev`] are the two ways to
//! start it all. [`admin`] is the operators' listener, on its own socket.
//! [`web`] is the browser sign-in (WeChat web and PC) and its cookies.

pub mod admin;
pub mod auth;
pub mod body;
pub mod cli;
pub mod codes;
pub mod config;
pub mod conn;
pub mod crypto;
pub mod dev;
pub mod endpoints;
pub mod enrich;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod labels;
pub mod limits;
pub mod metrics;
pub mod path;
pub mod pipeline;
pub mod providers;
pub mod proxy;
pub mod routes;
pub mod rsa2;
pub mod server;
pub mod sessions;
pub mod signin;
pub mod timer;
pub mod tls;
pub mod tokens;
pub mod tunnel;
pub mod upstream;
pub mod web;
pub mod wechat;
