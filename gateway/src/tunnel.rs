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
//! Upgrades other than `websocket` (`h2c`, say) are not tunnelled: their
//! headers are dropped as hop-by-hop, as before.

use http::header::{self, HeaderMap, HeaderValue};
use http::Version;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::{watch, OwnedSemaphorePermit};

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

/// Relays bytes between the client's and the upstream's upgraded
/// connections until either side closes or the lease is cut. `open` counts
/// live tunnels.
pub fn spawn_relay(
    client: OnUpgrade,
    upstream: OnUpgrade,
    lease: std::sync::Arc<Lease>,
    open: metrics::Gauge,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        open.increment(1.0);
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = copied {
                    tracing::debug!(error = %e, "tunnel ended with an error");
                }
            }
            () = lease.cut() => tracing::debug!("tunnel cut at the shutdown deadline"),
        }
        open.decrement(1.0);
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
