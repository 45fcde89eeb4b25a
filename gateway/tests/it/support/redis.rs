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

    /// `[sessions]` pointing at this server.
    pub fn sessions(&self) -> super::Sessions {
        super::Sessions::default().redis_url(self.url())
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

/// A real Redis Cluster of three masters (and, from
/// [`RedisCluster::start_replicated`], a replica of each), started by the
/// test on free ports with `redis-server --cluster-enabled yes` and
/// `redis-cli --cluster create`, killed when dropped.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<std::process::Child>,
    _dirs: Vec<tempfile::TempDir>,
}

/// A port that is free, and whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let port = free_port();
        let Some(bus) = port.checked_add(10000) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

impl RedisCluster {
    /// Three masters, no replicas.
    pub async fn start() -> RedisCluster {
        RedisCluster::start_nodes(0).await
    }

    /// Three masters and a replica of each, every replica in sync: kill a
    /// master ([`RedisCluster::kill`]) and its replica takes over.
    pub async fn start_replicated() -> RedisCluster {
        let cluster = RedisCluster::start_nodes(1).await;
        for port in &cluster.ports {
            for _ in 0..400 {
                let info = cluster.cli_at(*port, &["INFO", "replication"]).await;
                if info.contains("connected_slaves:1") || info.contains("master_link_status:up") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        cluster
    }

    async fn start_nodes(replicas: usize) -> RedisCluster {
        let nodes = 3 * (1 + replicas);
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < nodes {
            let p = free_cluster_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let mut children = Vec::new();
        let mut dirs = Vec::new();
        for port in &ports {
            let dir = tempfile::tempdir().unwrap();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "2000"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect(
                    "redis-server is not installed (apt-get install redis-server; ./test does)",
                );
            children.push(child);
            dirs.push(dir);
        }
        let cluster = RedisCluster {
            ports,
            children,
            _dirs: dirs,
        };
        for port in &cluster.ports {
            cluster.wait_for(*port, "PING", "PONG").await;
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = tokio::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli is not installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for port in &cluster.ports {
            cluster
                .wait_for(*port, "CLUSTER INFO", "cluster_state:ok")
                .await;
        }
        cluster
    }

    /// Kills the node on `port` outright (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
    }

    /// `redis-cli -p PORT ARGS...` on one node.
    pub async fn cli_at(&self, port: u16, args: &[&str]) -> String {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `redis-cli -p PORT COMMAND` answers something holding `want`.
    pub async fn wait_for(&self, port: u16, command: &str, want: &str) {
        for _ in 0..400 {
            let out = tokio::process::Command::new("redis-cli")
                .args(["-p", &port.to_string()])
                .args(command.split(' '))
                .output()
                .await
                .expect("redis-cli is not installed");
            if String::from_utf8_lossy(&out.stdout).contains(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis cluster node {port} never answered {want} to {command}");
    }

    /// `[sessions]` pointing at this cluster's nodes.
    pub fn sessions(&self) -> super::Sessions {
        super::Sessions::default().redis_cluster(
            self.ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect(),
        )
    }

    /// `redis-cli -c` (following redirections) on the first node.
    pub async fn cli(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-c", "-p", &self.ports[0].to_string()])
            .args(args)
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
