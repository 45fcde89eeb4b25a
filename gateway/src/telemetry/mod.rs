//! What the gateway tells its operators about itself, counted by every
//! layer: [`metrics`] is the registry of every Prometheus series, and
//! [`labels`] the trait of the enums that label them, with the macro that
//! declares such an enum once; [`audit`] the security-relevant events, as
//! JSON lines on their own log target; [`traces`] the OpenTelemetry spans,
//! when `[tracing]` asks for them; [`ended`] why a session ended, the one
//! reason the audit events, the error answers and the session stores share.

pub mod audit;
pub mod ended;
pub mod labels;
pub mod metrics;
pub mod traces;
