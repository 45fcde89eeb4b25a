//! The Redis server the session-store tests start.

use std::time::Duration;

use super::free_port;

/// A real `redis-server`, started by the test on a free port, without
/// persistence, killed when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = free_port();
        let mut r = Redis {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The `[sessions]` section pointing at this server.
    pub fn sessions_section(&self) -> String {
        format!("[sessions]\nredis_url = \"{}\"\n", self.url())
    }

    /// Starts (again) on the same port, and waits until it answers.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed (apt-get install redis-server; ./test does)");
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").await.is_ok()
                    && s.read_exact(&mut buf).await.is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills it outright (SIGKILL): every connection drops.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: a server that hangs without closing anything.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let sig = if paused { "-STOP" } else { "-CONT" };
        assert!(std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.pause(false);
        }
        self.kill();
    }
}
