//! The upstream side: what happens to a request once the pipeline has
//! decided it may pass.
//!
//! [`proxy`] sends it over [`upstream`]'s pooled keep-alive connections
//! (driven by the request's own task), [`body`] watches the bodies that
//! stream both ways so that a stalled client frees its upstream slot, and
//! [`tunnel`] relays a WebSocket once both sides have switched protocols.
//! Nothing here reads a token or a route's policy: that was the pipeline's.

pub mod body;
pub mod proxy;
pub mod tunnel;
pub mod upstream;
