//! WebSocket tunnels: an authenticated HTTP/1.1 upgrade, relayed both ways.
//!
//! `wx.connectSocket` opens a WebSocket with the same headers as any
//! request, so an upgrade goes down the same path as every other request
//! (route, authenticate, rewrite headers) and only differs at the end: when
//! the upstream answers `101 Switching Protocols`, both connections are
//! taken over from hyper and bytes are copied between them until either side
//! closes. The gateway does not parse frames; the token was checked at the
//! handshake, as with any WebSocket server.
//!
//! A tunnel outlives the request that opened it, so it keeps holding what
//! its client connection held: a [`Lease`] on one of the gateway's
//! connection slots (tunnels count against `max_connections`), and the
//! signal that cuts every connection when the shutdown deadline passes.
//! Because a tunnel holds a connection slot for as long as it lives, an idle
//! one is closed after `tunnel_idle_timeout` (no byte either way), and one
//! user (an anonymous client: one address) may hold at most
//! `max_tunnels_per_user` at once: otherwise one token could open idle
//! tunnels until nobody else, health probes included, gets a connection.
//! Upgrades other than `websocket` (`h2c`, say) are not tunnelled: their
//! headers are dropped as hop-by-hop, as before.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::Version;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::forward::occupancy::Held;

/// A place in a user's count of open tunnels, held for the tunnel's life.
pub type TunnelPlace = Held<Box<str>>;

/// A client connection's hold on its slot, shared with any tunnel it opens.
#[derive(Debug)]
pub struct Lease {
    _slot: OwnedSemaphorePermit,
    cut: watch::Receiver<bool>,
}

impl Lease {
    /// `slot` is released when the connection and every tunnel it opened
    /// are gone; `cut` turning true (or its sender going away) ends them.
    pub fn new(slot: OwnedSemaphorePermit, cut: watch::Receiver<bool>) -> Lease {
        Lease { _slot: slot, cut }
    }

    /// Resolves when connections must be cut.
    pub async fn cut(&self) {
        let mut cut = self.cut.clone();
        // An error means the sender is gone: the gateway has stopped.
        let _ = cut.wait_for(|c| *c).await;
    }
}

fn has_token(v: &HeaderValue, token: &str) -> bool {
    v.to_str()
        .unwrap_or("")
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The `Upgrade` value of an HTTP/1.1 WebSocket handshake (RFC 6455 4.1:
/// `Connection: Upgrade` and `Upgrade: websocket`), or `None` for any other
/// request.
pub fn websocket_upgrade(version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 {
        return None;
    }
    let upgrade = headers.get(header::UPGRADE)?;
    let connection = headers.get(header::CONNECTION)?;
    (has_token(connection, "upgrade") && has_token(upgrade, "websocket")).then(|| upgrade.clone())
}

/// Puts back the two hop-by-hop headers an upgrade needs on the next hop.
pub fn mark_upgrade(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}

/// One tunnel to relay, with what it holds.
#[derive(Debug)]
pub struct Relay {
    /// The client's side, once hyper hands it over.
    pub client: OnUpgrade,
    /// The upstream's side.
    pub upstream: OnUpgrade,
    /// The client connection's slot.
    pub lease: Arc<Lease>,
    /// Counts live tunnels.
    pub open: metrics::Gauge,
    /// How long both sides may be silent.
    pub idle: Duration,
    /// The user's tunnel place.
    pub place: Option<TunnelPlace>,
    /// Counts tunnels closed for idleness.
    pub closed_idle: Option<metrics::Counter>,
}

/// An upgraded connection that notes when bytes last moved through it.
struct Stamped<T> {
    io: T,
    base: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Stamped<T> {
    fn stamp(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stamped<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.stamp();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stamped<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Resolves once neither side has sent a byte for `idle`.
async fn idle_for(base: Instant, last: &AtomicU64, idle: Duration) {
    loop {
        let at = base + Duration::from_millis(last.load(Ordering::Relaxed)) + idle;
        if Instant::now() >= at {
            return;
        }
        tokio::time::sleep_until(at).await;
    }
}

/// Relays bytes between the client's and the upstream's upgraded
/// connections until either side closes, both stay silent for `idle`, or
/// the lease is cut.
pub fn spawn_relay(relay: Relay) {
    tokio::spawn(async move {
        let Relay {
            client,
            upstream,
            lease,
            open,
            idle,
            place,
            closed_idle,
        } = relay;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let base = Instant::now();
        let last = Arc::new(AtomicU64::new(0));
        let stamped = |io| Stamped {
            io,
            base,
            last: last.clone(),
        };
        let (mut client, mut upstream) = (
            stamped(TokioIo::new(client)),
            stamped(TokioIo::new(upstream)),
        );
        open.increment(1.0);
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = copied {
                    tracing::debug!(error = %e, "tunnel ended with an error");
                }
            }
            () = idle_for(base, &last, idle) => {
                if let Some(c) = &closed_idle {
                    c.increment(1);
                }
                tracing::debug!("idle tunnel closed");
            }
            () = lease.cut() => tracing::debug!("tunnel cut at the shutdown deadline"),
        }
        open.decrement(1.0);
        drop(place);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn only_an_http11_websocket_handshake_is_an_upgrade() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ]);
        assert_eq!(
            websocket_upgrade(Version::HTTP_11, &ws).as_ref(),
            ws.get("upgrade")
        );
        assert!(websocket_upgrade(Version::HTTP_2, &ws).is_none());
        assert!(websocket_upgrade(Version::HTTP_10, &ws).is_none());
        for h in [
            headers(&[("upgrade", "websocket")]),
            headers(&[("connection", "upgrade")]),
            headers(&[("connection", "upgrade"), ("upgrade", "h2c")]),
            headers(&[("connection", "close"), ("upgrade", "websocket")]),
        ] {
            assert!(websocket_upgrade(Version::HTTP_11, &h).is_none(), "{h:?}");
        }
    }
}
