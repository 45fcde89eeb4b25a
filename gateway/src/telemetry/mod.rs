//! What the gateway tells its operators about itself, counted by every
//! layer: [`metrics`] is the registry of every Prometheus series, and
//! [`labels`] the trait of the enums that label them, with the macro that
//! declares such an enum once.

pub mod labels;
pub mod metrics;
