//! A real WSGI app (Python's `wsgiref`, `fixtures/wsgi_env.py`) that answers
//! each request with its CGI environ as JSON: what a Flask or Django service
//! behind the gateway would read from the request.

use std::net::SocketAddr;
use std::time::Duration;

use super::free_port;

/// The WSGI app, started by the test on a free port, killed when dropped.
pub struct Wsgi {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Wsgi {
    /// Starts it and waits until it answers.
    pub async fn start() -> Wsgi {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/wsgi_env.py");
        let port = free_port();
        let child = std::process::Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("python3 is needed for the WSGI app");
        let mut wsgi = Wsgi {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        };
        let http = super::client();
        for _ in 0..400 {
            if let Ok(res) = http.get(format!("http://{}/ready", wsgi.addr)).send().await {
                if res.status() == 200 {
                    return wsgi;
                }
            }
            if let Some(status) = wsgi.child.try_wait().unwrap() {
                panic!("the WSGI app exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the WSGI app did not start on port {port}");
    }
}

impl Drop for Wsgi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
