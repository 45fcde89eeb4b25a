//! Requests sent by hand and what comes back: raw HTTP/1.1 exchanges, the
//! error of a JSON body, metric series by name, the hardened test setup.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::*;

/// The harness's setup (login rate limiting off) with `server` added to
/// `[server]`.
pub fn hard(server: Server) -> Setup {
    Setup::default().server(server)
}

/// `minigate_refused_total{reason="…"}`.
pub fn refused(reason: &str) -> String {
    format!("minigate_refused_total{{reason=\"{reason}\"}}")
}

/// `minigate_requests_total{route="…",class="…"}`.
pub fn requests(route: &str, class: &str) -> String {
    format!("minigate_requests_total{{route=\"{route}\",class=\"{class}\"}}")
}

/// How much `series` moved between two scrapes.
pub fn moved(before: &str, after: &str, name: &str) -> f64 {
    series(after, name) - series(before, name)
}

/// One HTTP/1.1 response read off a raw connection: the status, the head
/// and the body (by `Content-Length`), within 5 s.
pub async fn read_response(s: &mut (impl AsyncRead + Unpin)) -> (u16, String, String) {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed inside the body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let status = head[9..12].parse().unwrap();
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
        (status, head, body)
    })
    .await
    .expect("no response within 5 s")
}

/// Sends `request` on a fresh connection and reads one response.
pub async fn exchange(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    read_response(&mut s).await
}

/// The `error` of a JSON error body.
pub fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["error"].as_str().unwrap_or("").to_owned()
}
