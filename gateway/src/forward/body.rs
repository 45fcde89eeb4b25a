//! The body of every response, and the wrappers that watch proxied bodies.
//!
//! A response is either one of the gateway's own (a small buffer) or an
//! upstream's, streamed as it comes. The upstream's body holds what the
//! request took (an upstream connection slot, a place in the client's
//! in-flight count) until hyper drops it: read to the end, or abandoned by
//! a client that went away or stopped reading.
//!
//! The request body sent upstream is watched too: a client that stops
//! sending it for `proxy_body_timeout` gets its request ended, and one that
//! breaks its framing (a bad chunk size) is told so with a 400 rather than
//! counted as an upstream failure. Each failure is its own error type, so
//! the proxy can tell it apart from the upstream's failures by walking the
//! error's sources.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::sync::OwnedSemaphorePermit;

use crate::error::ApiError;
use crate::forward::occupancy::InFlight;
use crate::forward::upstream::Lent;

/// The body of every response: an upstream's streamed body, or one of ours.
pub type Body = Either<UpstreamBody, Full<Bytes>>;

/// A response made by the gateway itself.
pub fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut res = Response::new(Either::Right(Full::new(body.into())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// A JSON response made by the gateway itself.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    // Serializing our own response structs cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    full(status, "application/json", body)
}

/// An upstream's response body, streamed to the client as it comes, driving
/// the upstream connection it comes on and holding its upstream connection
impl ApiError {
    /// The answer the contract gives for the error: its JSON body (with
    /// `reason` beside `error` for a token of an ended session), with the
    /// headers it carries ([`ApiError::add_headers`]).
    pub fn into_response(self) -> Response<Body> {
        #[derive(serde::Serialize)]
        struct Wire {
            error: &'static str,
            error_description: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<crate::tokens::EndReason>,
            #[serde(skip_serializing_if = "Option::is_none")]
            session_key: Option<&'static str>,
        }
        let (status, error, error_description) = self.row();
        let mut res = json(
            status,
            &Wire {
                error,
                error_description,
                reason: self.reason(),
                session_key: self.session_key(),
            },
        );
        self.add_headers(res.headers_mut());
        res
    }
}

impl From<ApiError> for Response<Body> {
    fn from(e: ApiError) -> Self {
        e.into_response()
    }
}

/// slot and its client's in-flight place.
#[derive(Debug)]
pub struct UpstreamBody {
    // Dropped first, so that the connection below sees whether the body was
    // read to its end before it decides whether to go back to the pool.
    inner: Incoming,
    conn: Option<Lent<RequestBody>>,
    _slot: Option<OwnedSemaphorePermit>,
    _in_flight: Option<InFlight>,
}

impl UpstreamBody {
    /// `inner`, driving `conn` (none for a WebSocket handshake, whose
    /// connection runs on its own) and holding `slot` and `in_flight` until
    /// it is dropped.
    pub fn new(
        inner: Incoming,
        conn: Option<Lent<RequestBody>>,
        slot: Option<OwnedSemaphorePermit>,
        in_flight: Option<InFlight>,
    ) -> UpstreamBody {
        UpstreamBody {
            inner,
            conn,
            _slot: slot,
            _in_flight: in_flight,
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a client's request body could not be sent upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBodyError {
    /// No bytes for `proxy_body_timeout`.
    Stalled,
    /// The client broke the body's framing (a bad chunk size, a short
    /// body), or its connection failed.
    Broken,
}

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientBodyError::Stalled => "the client stopped sending the request body",
            ClientBodyError::Broken => "the client's request body is broken",
        })
    }
}

impl std::error::Error for ClientBodyError {}

impl ClientBodyError {
    /// The client-body failure somewhere in `e`'s sources, if that is what
    /// ended an upstream request.
    pub fn find(e: &(dyn std::error::Error + 'static)) -> Option<ClientBodyError> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(found) = err.downcast_ref::<ClientBodyError>() {
                return Some(*found);
            }
            cur = err.source();
        }
        None
    }
}

/// A client's request body on its way upstream, ended if it stalls.
///
/// The deadline runs only while the gateway waits on the client (a read
/// that found nothing): time the upstream spends not reading is not the
/// client's fault. The timer is made on the first such wait and reused, so
/// a body that arrives in one piece, the common case, never allocates one.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    gap: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    waiting: bool,
}

impl RequestBody {
    /// `inner`, allowed to keep the gateway waiting at most `gap` at a time.
    pub fn new(inner: Incoming, gap: Duration) -> RequestBody {
        RequestBody {
            inner,
            gap,
            timer: None,
            waiting: false,
        }
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(|_| ClientBodyError::Broken)))
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + this.gap;
                let timer = match this.timer.as_mut() {
                    Some(t) => {
                        if !this.waiting {
                            t.as_mut().reset(deadline);
                        }
                        t
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                this.waiting = true;
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(ClientBodyError::Stalled))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
