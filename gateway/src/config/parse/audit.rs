//! `[audit]`, checked.

use super::*;

/// Longest stream name accepted.
const MAX_STREAM_NAME: usize = 128;

pub(super) fn audit(
    a: Option<RawAudit>,
    sessions: &SessionsConfig,
) -> Result<AuditConfig, ConfigError> {
    let Some(a) = a else {
        return Ok(AuditConfig::default());
    };
    if let Some(name) = &a.redis_stream {
        if name.is_empty()
            || name.len() > MAX_STREAM_NAME
            || !name.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(err(
                "audit.redis_stream",
                "must be 1-128 visible ASCII characters",
            ));
        }
        if sessions.redis_url.is_none() && sessions.redis_cluster.is_empty() {
            return Err(err(
                "audit.redis_stream",
                "needs the session store's Redis ([sessions] redis_url or redis_cluster)",
            ));
        }
    }
    let stream_maxlen = match a.stream_maxlen {
        None => defaults::AUDIT_STREAM_MAXLEN,
        Some(n) if n >= 1 => n.unsigned_abs(),
        Some(_) => return Err(err("audit.stream_maxlen", "must be at least 1")),
    };
    if a.redis_stream.is_none() && a.stream_maxlen.is_some() {
        return Err(err(
            "audit.stream_maxlen",
            "caps the stream of audit.redis_stream, which is not set",
        ));
    }
    Ok(AuditConfig {
        redis_stream: a.redis_stream,
        stream_maxlen,
    })
}
