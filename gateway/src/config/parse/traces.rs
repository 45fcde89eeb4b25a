//! `[tracing]`, checked.

use super::*;

pub(super) fn tracing_section(t: RawTracing) -> Result<TracingConfig, ConfigError> {
    let endpoint = required("tracing.otlp_endpoint", t.otlp_endpoint)?;
    let uri: Uri = endpoint.parse().map_err(|_| {
        err(
            "tracing.otlp_endpoint",
            "is not a URL like \"http://otel-collector:4318\"",
        )
    })?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none() || uri.query().is_some() {
        return Err(err(
            "tracing.otlp_endpoint",
            "is not a URL like \"http://otel-collector:4318\"",
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(err("tracing.otlp_endpoint", "must not hold credentials"));
    }
    let sample_ratio = t.sample_ratio.unwrap_or(defaults::TRACE_SAMPLE_RATIO);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(err("tracing.sample_ratio", "must be from 0 to 1"));
    }
    let service_name = t
        .service_name
        .unwrap_or_else(|| defaults::TRACE_SERVICE_NAME.to_owned());
    if service_name.is_empty() || service_name.len() > 128 {
        return Err(err("tracing.service_name", "must be 1-128 characters"));
    }
    Ok(TracingConfig {
        otlp_endpoint: endpoint,
        sample_ratio,
        service_name,
    })
}
