//! What operators see of the Redis store: where it is (credentials
//! redacted), whether it answered last, and why not.
//!
//! A Redis outage stops sign-ins (login, refresh and logout answer 503) but
//! not the proxy: access tokens verify without it. So the gateway starts,
//! and stays ready, while Redis is down, and says so instead: a warning
//! when the store becomes unreachable (at start included: the revocation
//! subscriber connects at once), a line when it is back, and the state in
//! `/readyz`'s `session_store`. The reason is the OS's error chain
//! (`Connection refused (os error 111)`), or the error's kind and the
//! server's error code: never the server's reply text, never the URL's
//! userinfo.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use redis::ErrorKind;

/// Whether the store answered its last call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not asked yet.
    Unknown,
    /// It answered.
    Up,
    /// It failed: why, and since when.
    Down {
        /// The reason (see [`reason`]).
        reason: String,
        /// When it began to fail.
        since: SystemTime,
    },
}

impl State {
    /// `unknown`, `up` or `down`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down { .. } => "down",
        }
    }
}

/// Where the store is and how it last answered.
#[derive(Debug)]
pub struct Health {
    /// The URL or the seeds, credentials redacted.
    target: String,
    state: Mutex<State>,
}

impl Health {
    /// The health of a store at these URLs (shown redacted).
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a str>) -> Health {
        let target = urls
            .into_iter()
            .map(crate::config::redacted_url)
            .collect::<Vec<_>>()
            .join(", ");
        Health {
            target,
            state: Mutex::new(State::Unknown),
        }
    }

    /// The URL or seeds, credentials redacted.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The state now.
    pub fn state(&self) -> State {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or(State::Unknown)
    }

    /// The store answered: logged when it was down or unknown before.
    pub fn up(&self) {
        let Ok(mut s) = self.state.lock() else { return };
        match &*s {
            State::Up => return,
            State::Unknown => tracing::info!(at = %self.target, "session store reachable"),
            State::Down { since, .. } => tracing::warn!(
                at = %self.target,
                down_for = %humantime::format_duration(round(since.elapsed().unwrap_or_default())),
                "session store reachable again: sign-ins work again"
            ),
        }
        *s = State::Up;
    }

    /// The store failed with `reason` in `op`: logged once when it goes
    /// down (each failed call is logged by the caller too).
    pub fn down(&self, op: &'static str, reason: String) {
        let Ok(mut s) = self.state.lock() else { return };
        if !matches!(&*s, State::Down { .. }) {
            tracing::warn!(
                at = %self.target,
                op,
                error = %reason,
                "session store unreachable: login, refresh and logout answer 503 \
                 until it is back; proxying with valid access tokens goes on"
            );
            *s = State::Down {
                reason,
                since: SystemTime::now(),
            };
        } else if let State::Down { reason: r, .. } = &mut *s {
            *r = reason;
        }
    }

    /// `/readyz`'s `session_store`.
    pub fn json(&self, kind: &str) -> serde_json::Value {
        let state = self.state();
        let mut doc = serde_json::json!({
            "kind": kind,
            "at": self.target,
            "state": state.name(),
            "sign_in": if matches!(state, State::Down { .. }) { "degraded" } else { "ready" },
        });
        if let State::Down { reason, since } = state {
            doc["error"] = reason.into();
            doc["down_for_seconds"] = since.elapsed().unwrap_or_default().as_secs().into();
        }
        doc
    }
}

fn round(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

/// Why a call failed, for operators: the OS's error chain for I/O errors,
/// else the error's kind and, from a server error, its code (`NOAUTH`,
/// `WRONGPASS`, `READONLY`): nothing of the server's reply text.
pub fn reason(e: &redis::RedisError) -> String {
    let kind = match e.kind() {
        ErrorKind::AuthenticationFailed => {
            "authentication failed (check the user and password in the URL)".to_owned()
        }
        k => format!("{k:?}"),
    };
    if e.kind() == ErrorKind::Io || e.is_timeout() || e.is_connection_refusal() {
        let mut chain = Vec::new();
        let mut next = std::error::Error::source(e);
        while let Some(err) = next {
            let text = err.to_string();
            if !chain.contains(&text) {
                chain.push(text);
            }
            next = err.source();
        }
        if !chain.is_empty() {
            return chain.join(": ");
        }
    }
    match e.code() {
        Some(code) if code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => {
            format!("{kind}: the server answered {code}")
        }
        _ => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_hides_credentials_and_io_errors_say_why() {
        let h = Health::new(["redis://:hunter2@redis.internal:6379/0"]);
        assert_eq!(
            h.target(),
            "redis://[credentials redacted]@redis.internal:6379/0"
        );
        assert_eq!(h.state(), State::Unknown);
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(reason(&refused), "connection refused");
        h.down("begin", reason(&refused));
        let doc = h.json("redis");
        assert_eq!(doc["state"], "down");
        assert_eq!(doc["sign_in"], "degraded");
        assert_eq!(doc["error"], "connection refused");
        assert!(!doc.to_string().contains("hunter2"));
        h.up();
        assert_eq!(h.json("redis")["sign_in"], "ready");
    }
}
