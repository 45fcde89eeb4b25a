//! The upstream side: what happens to a request once the pipeline has
//! decided it may pass.
//!
//! [`proxy`] sends it over [`upstream`]'s pooled keep-alive connections
//! (driven by the request's own task), [`body`] watches the bodies that
//! stream both ways so that a stalled client frees its upstream slot, and
//! [`tunnel`] relays a WebSocket once both sides have switched protocols.
//! What a client holds meanwhile is counted in [`occupancy`], and the
//! deadlines on both sides are [`timer`]'s movable timers.
//! Nothing here reads a token or a route's policy: that was the pipeline's.

pub mod body;
pub mod occupancy;
pub mod proxy;
pub mod timer;
pub mod tunnel;
pub mod upstream;
