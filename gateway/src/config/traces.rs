//! The `[tracing]` section: OpenTelemetry traces, exported over OTLP/HTTP
//! (see [`crate::telemetry::traces`]). Absent, nothing is traced.

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP base URL; `/v1/traces` is appended.
    pub otlp_endpoint: String,
    /// The share of new traces sampled, 0 to 1; a trusted parent's decision
    /// is followed instead.
    pub sample_ratio: f64,
    /// The `service.name` of the spans.
    pub service_name: String,
}
