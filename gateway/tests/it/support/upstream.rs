//! Real hyper upstreams that report what reached them, and a WebSocket echo.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::Gateway;

/// Serves `f` on a fresh loopback port; returns the address.
pub async fn serve<F, Fut, B>(f: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_counting(f, Arc::default()).await
}

/// Like [`serve`], counting accepted connections in `accepted`.
pub async fn serve_counting<F, Fut, B>(
    f: F,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let f = f.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(f(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// What reached the upstream.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A body of `left` zero bytes in 64 KiB chunks, made as it is read.
pub struct Zeros {
    pub left: usize,
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 65536] = [0; 65536];
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK.len());
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..n])))))
    }
}

/// The upstream: records each request and answers `{"seen": true}`, except
/// `/…/big?mib=N` (N MiB streamed), `/…/slow` (3 s), `/…/status/NNN`.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Bytes received by `/…/sink`, which reads bodies without keeping them.
    pub sunk: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Upstream {
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("nothing reached the upstream")
    }
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub async fn upstream() -> Upstream {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sunk = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let log = seen.clone();
    let sink = sunk.clone();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let addr = serve_counting(
        move |req: Request<Incoming>| {
            let log = log.clone();
            let sink = sink.clone();
            async move {
                let (parts, mut body) = req.into_parts();
                let path = parts.uri.path().to_owned();
                if path.ends_with("/sink") {
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Some(d) = frame.data_ref() {
                            sink.fetch_add(d.len(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    return Response::new(Either::Right(Full::new(Bytes::from_static(b"sunk"))));
                }
                if path.ends_with("/big") {
                    let mib: usize = parts
                        .uri
                        .query()
                        .and_then(|q| q.strip_prefix("mib="))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1);
                    return Response::new(Either::Left(Zeros { left: mib << 20 }));
                }
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                log.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers.clone(),
                    body: body.clone(),
                });
                if path.ends_with("/slow") {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                let status = path
                    .rsplit_once("/status/")
                    .and_then(|(_, s)| s.parse().ok())
                    .unwrap_or(200);
                let mut res = Response::new(Either::Right(Full::new(Bytes::from(format!(
                    "{{\"seen\":true,\"body_len\":{}}}",
                    body.len()
                )))));
                *res.status_mut() = StatusCode::from_u16(status).unwrap();
                res.headers_mut()
                    .insert("x-upstream", "yes".parse().unwrap());
                res.headers_mut()
                    .insert("connection", "keep-alive, x-hop".parse().unwrap());
                res.headers_mut()
                    .insert("x-hop", "must-not-pass".parse().unwrap());
                res
            }
        },
        connections.clone(),
    )
    .await;
    Upstream {
        addr,
        seen,
        sunk,
        connections,
    }
}

/// A WebSocket upstream (tungstenite) that greets each client, echoes every
/// data frame, closes when told `"bye"`, and keeps each handshake's headers.
pub struct WsEcho {
    pub addr: SocketAddr,
    pub handshakes: Arc<Mutex<Vec<HeaderMap>>>,
}

pub async fn ws_echo() -> WsEcho {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::Message;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let seen = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                // The callback's signature is tungstenite's.
                #[allow(clippy::result_large_err)]
                let record = |req: &Request, res: Response| {
                    seen.lock().unwrap().push(req.headers().clone());
                    Ok(res)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
                    return;
                };
                let _ = ws.send(Message::text("hello from upstream")).await;
                while let Some(Ok(msg)) = ws.next().await {
                    let bye = matches!(&msg, Message::Text(t) if t.as_str() == "bye");
                    let sent = if bye {
                        ws.close(None).await
                    } else if msg.is_text() || msg.is_binary() {
                        ws.send(msg).await
                    } else {
                        Ok(())
                    };
                    if sent.is_err() {
                        break;
                    }
                }
            });
        }
    });
    WsEcho { addr, handshakes }
}

/// A WebSocket client connection.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `path` on the gateway with `headers`.
pub async fn ws_connect(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    let url = format!("ws://{}{path}", gw.running.addr);
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The next data or close frame (pings are skipped), within 5 s.
pub async fn ws_next_data(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no frame in 5 s")
            .expect("the stream ended")
            .expect("a frame");
        if msg.is_text() || msg.is_binary() || msg.is_close() {
            return msg;
        }
    }
}

/// The status of a refused handshake.
pub fn ws_status(e: WsError) -> u16 {
    match e {
        WsError::Http(res) => res.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}
