//! What every section shares: the error that names its key, durations, header-safe text, redacted URLs.

use std::fmt;
use std::time::Duration;

/// A configuration error: one line naming the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key, as `section.key` or `routes[1].upstream`, or the file.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// The longest duration any key takes. Timeouts are added to the clock on
/// the request path, where an absurd one (humantime reads up to 2^64
/// seconds) would overflow `Instant` and panic; refusing it here turns that
/// into a config error at start. A hundred years is far beyond any TTL or
/// timeout that means something.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Parses a duration such as `30s`, `15m`, `12h` or `30d`, at most
/// [`MAX_DURATION`].
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(value.trim()).map_err(|_| {
        err(
            key,
            format!("{value:?} is not a duration (e.g. \"30s\", \"15m\", \"12h\", \"30d\")"),
        )
    })?;
    if d > MAX_DURATION {
        return Err(err(
            key,
            format!("{value:?} is too long (at most 100 years)"),
        ));
    }
    Ok(d)
}

/// Is `s` usable as an HTTP header value and short: ids that end up in
/// `X-Auth-*` headers must be.
pub fn is_header_safe(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A URL with any `user:password@` taken out, for display: what operators
/// see of a URL never holds a credential.
pub fn redacted_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rsplit_once('@') {
                Some((_, host)) => {
                    format!("{scheme}://[credentials redacted]@{host}{}", &rest[end..])
                }
                None => url.to_owned(),
            }
        }
        None => "(unparsable)".to_owned(),
    }
}
