//! The `[tracing]` section: OpenTelemetry traces, exported over OTLP/HTTP
//! (see [`crate::telemetry::traces`]). Absent, nothing is traced.

/// `[tracing]`: declared beside the tracer that reads it, so that the
/// telemetry layer needs nothing of the config's.
pub use crate::telemetry::traces::TracingConfig;
