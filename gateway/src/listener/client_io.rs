//! The client's socket and its two deadlines: one for the next request head
//! (slow-loris, and how long an idle keep-alive connection is kept) and one
//! for each write (a client that stops reading its response).
//!
//! Both deadlines are a timer per connection ([`Timer`]), made on the first
//! wait and then moved, never remade. hyper's own head deadline (`header_read_timeout`)
//! boxes a fresh timer for every request and registers and removes it in
//! the runtime's timer wheel, under the wheel's lock (measured in
//! `benches/README.md`). Moving a registered tokio timer later is
//! one atomic exchange, so here a keep-alive request pays a clock reading
//! and two atomic stores for the same guarantee.
//!
//! The head deadline runs from the moment the gateway waits for a request
//! head (the connection is accepted, or the TLS handshake done, or the
//! previous response fully handed to hyper) until that head has been read,
//! exactly as hyper's did. What knows those moments is the service, not the
//! socket, so the service and the socket share the connection's
//! [`HeadDue`](crate::pipeline::conn::HeadDue): the service marks it busy when a request head arrives, and
//! the response's body ([`Served`]) sets the next deadline when hyper drops
//! it, done. While a
//! request is in flight (an upload, a slow upstream, a long download or
//! an event stream) there is no head deadline; after a WebSocket upgrade,
//! or on HTTP/2 (which multiplexes and has its own idle rule), none at all.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::forward::body::Body;
use crate::forward::timer::Timer;
use crate::pipeline::conn::Conn;

/// A response body that, once hyper is done with it (sent or abandoned),
/// starts the wait for the connection's next request head.
pub struct Served {
    body: Body,
    /// The request's own handle on its connection, kept to the end.
    conn: Arc<Conn>,
    /// A `101 Switching Protocols`: the connection is now a tunnel.
    upgraded: bool,
}

impl Served {
    /// `body`, the response to a request on `conn`.
    pub fn new(body: Body, conn: Arc<Conn>, upgraded: bool) -> Served {
        Served {
            body,
            conn,
            upgraded,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.upgraded {
            self.conn.head.off();
        } else {
            self.conn.head.wait_from(Instant::now());
        }
    }
}

impl hyper::body::Body for Served {
    type Data = <Body as hyper::body::Body>::Data;
    type Error = <Body as hyper::body::Body>::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client's TCP stream with the connection's deadlines.
///
/// A read that has to wait while a head is due fails with `TimedOut` once
/// the deadline passes; a write (or flush) that cannot make progress for
/// `send_timeout` fails the same way, which ends the connection and drops
/// the response it was sending, and with it the upstream slot that
/// response held. Either way hyper closes the connection without an answer.
pub struct ClientIo {
    io: TcpStream,
    conn: Arc<Conn>,
    head_timer: Timer,
    send_timeout: Duration,
    send_timer: Timer,
    /// A write is waiting: its deadline is set.
    sending: bool,
    slow_readers: Option<metrics::Counter>,
}

impl ClientIo {
    /// `io`, its reads bounded by `conn`'s head deadline and its writes by
    /// `send_timeout`; write timeouts counted in `slow_readers`.
    pub fn new(
        io: TcpStream,
        conn: Arc<Conn>,
        send_timeout: Duration,
        slow_readers: Option<metrics::Counter>,
    ) -> ClientIo {
        ClientIo {
            io,
            conn,
            head_timer: Timer::new(),
            send_timeout,
            send_timer: Timer::new(),
            sending: false,
            slow_readers,
        }
    }

    /// A read returned `Pending`: if a head is due, wait for it no longer
    /// than its deadline.
    fn read_pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some(due) = self.conn.head.due() else {
            return Poll::Pending;
        };
        match self.head_timer.poll_at(due, cx) {
            Poll::Ready(()) => {
                tracing::debug!("no request head within header_timeout; connection closed");
                Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// A write returned `Pending`: starts or checks its deadline.
    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        // A wait that goes on keeps its deadline; a new one starts one.
        let deadline = match (self.send_timer.deadline(), self.sending) {
            (Some(deadline), true) => deadline,
            _ => Instant::now() + self.send_timeout,
        };
        self.sending = true;
        match self.send_timer.poll_at(deadline, cx) {
            Poll::Ready(()) => {
                if let Some(c) = &self.slow_readers {
                    c.increment(1);
                }
                tracing::debug!("client stopped reading; connection closed");
                Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// A write made progress: its deadline no longer runs.
    #[inline]
    fn wrote<T>(&mut self, ready: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        self.sending = false;
        ready
    }
}

impl AsyncRead for ClientIo {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => this.read_pending(cx),
            ready => ready,
        }
    }
}

impl AsyncWrite for ClientIo {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => this.write_pending(cx),
            ready => this.wrote(ready),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.write_pending(cx),
            ready => this.wrote(ready),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.write_pending(cx),
            ready => this.wrote(ready),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
