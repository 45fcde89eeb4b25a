//! The `[audit]` section: where audit events go besides their log target
//! (see [`crate::telemetry::audit`]).

/// `[audit]`; absent, events go to the log target alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// A Redis Stream of the session store's Redis that every event is also
    /// appended to (`XADD`), if set.
    pub redis_stream: Option<String>,
    /// The stream's approximate cap (`XADD ... MAXLEN ~`).
    pub stream_maxlen: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            redis_stream: None,
            stream_maxlen: super::defaults::AUDIT_STREAM_MAXLEN,
        }
    }
}
