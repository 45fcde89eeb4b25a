//! One client connection as its requests see it: who is on the other end
//! ([`ClientAddr`]), the slot it holds, and when its next request head is
//! due ([`HeadDue`]).
//!
//! The listener makes a [`Conn`] when it accepts; the
//! socket, the service and every request of the connection share it. Its
//! changing fields are atomics with relaxed ordering: the request count is
//! only ever added to, and the head deadline is written by one task at a
//! time (HTTP/1 handles one request at a time; on HTTP/2 it is off).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use tokio::time::Instant;

use crate::forward::tunnel::Lease;

/// A client's address, with its header form made once rather than
/// formatted on every request.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    /// The IP.
    pub ip: IpAddr,
    /// The same, as a header value.
    pub header: HeaderValue,
    /// `http` or `https`: the connection's scheme, for `X-Forwarded-Proto`.
    pub proto: HeaderValue,
}

impl ClientAddr {
    /// The address of a new plain-HTTP connection's peer.
    pub fn new(ip: IpAddr) -> ClientAddr {
        let header =
            HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        ClientAddr {
            ip,
            header,
            proto: HeaderValue::from_static("http"),
        }
    }

    /// The client behind a trusted proxy, on this connection's scheme.
    pub(crate) fn forwarded(&self, ip: IpAddr) -> ClientAddr {
        ClientAddr {
            proto: self.proto.clone(),
            ..ClientAddr::new(ip)
        }
    }

    /// The same, for a connection that came over TLS.
    pub fn over_tls(self) -> ClientAddr {
        ClientAddr {
            proto: HeaderValue::from_static("https"),
            ..self
        }
    }
}

/// One client connection, as each of its requests sees it.
#[derive(Debug)]
pub struct Conn {
    /// The TCP peer.
    pub addr: ClientAddr,
    /// Its connection slot, handed on to any tunnel it opens.
    pub lease: Arc<Lease>,
    /// Requests started on it so far: an HTTP/2 connection on which this
    /// stops moving is idle.
    pub requests: AtomicU64,
    /// When its next request head is due.
    pub head: HeadDue,
}

impl Conn {
    /// A new connection from `addr` holding `lease`, its first request
    /// head due within `header_timeout`.
    pub fn new(addr: ClientAddr, lease: Arc<Lease>, header_timeout: Duration) -> Conn {
        Conn {
            addr,
            lease,
            requests: AtomicU64::new(0),
            head: HeadDue::new(header_timeout),
        }
    }
}

/// `HeadDue::at` while a request is in flight.
const BUSY: u64 = 0;
/// `HeadDue::at` when the connection has no head deadline any more.
const OFF: u64 = u64::MAX;

/// When a connection's next request head is due: set by its service and
/// its responses, read by its socket (the listener's `ClientIo`).
///
/// One HTTP/1 connection handles one request at a time in one task, so the
/// stores need no ordering with anything else; the atomic only makes the
/// value shareable between the socket and the service's futures.
#[derive(Debug)]
pub struct HeadDue {
    /// The connection's start: the deadline is kept as nanoseconds after it.
    base: Instant,
    /// `server.header_timeout`.
    timeout: Duration,
    /// The deadline in nanoseconds after `base`, or [`BUSY`] or [`OFF`].
    at: AtomicU64,
}

impl HeadDue {
    /// A head due `timeout` from now.
    pub fn new(timeout: Duration) -> HeadDue {
        let due = HeadDue {
            base: Instant::now(),
            timeout,
            at: AtomicU64::new(BUSY),
        };
        due.wait_from(due.base);
        due
    }

    /// The next head is awaited from `now` (a response is done, a TLS
    /// handshake finished).
    pub fn wait_from(&self, now: Instant) {
        if self.at.load(Ordering::Relaxed) == OFF {
            return;
        }
        let after = now
            .saturating_duration_since(self.base)
            .saturating_add(self.timeout);
        // 584 years at most, short of the two markers.
        let nanos = u64::try_from(after.as_nanos()).unwrap_or(OFF - 1).max(1);
        self.at.store(nanos, Ordering::Relaxed);
    }

    /// A request head has arrived: no deadline until its response is done.
    pub fn busy(&self) {
        if self.at.load(Ordering::Relaxed) != OFF {
            self.at.store(BUSY, Ordering::Relaxed);
        }
    }

    /// No head deadline any more: the connection speaks HTTP/2, or became
    /// a tunnel.
    pub fn off(&self) {
        self.at.store(OFF, Ordering::Relaxed);
    }

    /// The deadline, if one runs now.
    pub(crate) fn due(&self) -> Option<Instant> {
        match self.at.load(Ordering::Relaxed) {
            BUSY | OFF => None,
            nanos => self.base.checked_add(Duration::from_nanos(nanos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_head_deadline_pauses_while_busy_and_restarts_after_a_response() {
        let head = HeadDue::new(Duration::from_secs(10));
        let first = head.due().expect("due from the start");
        assert_eq!(first, head.base + Duration::from_secs(10));
        head.busy();
        assert_eq!(head.due(), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        head.wait_from(Instant::now());
        assert_eq!(head.due(), Some(Instant::now() + Duration::from_secs(10)));
        head.off();
        assert_eq!(head.due(), None);
        // Off stays off: neither a request nor a response turns it back on.
        head.busy();
        head.wait_from(Instant::now());
        assert_eq!(head.due(), None);
    }

    #[test]
    fn an_absurd_timeout_saturates_instead_of_panicking() {
        let head = HeadDue::new(Duration::MAX);
        head.busy();
        head.wait_from(Instant::now());
        // Either far away or none: never a deadline that has passed.
        assert!(head.due().is_none_or(|due| due > Instant::now()));
    }
}
