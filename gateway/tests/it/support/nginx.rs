//! A real nginx, started by the test on a free port with a server block
//! from `fixtures/`, in the foreground and without a master process, all of
//! its files in a temporary directory; killed when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::free_port;

pub struct Nginx {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

/// The nginx binary: on `PATH`, else Debian's `/usr/sbin/nginx`.
fn binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("nginx")
    }
}

impl Nginx {
    /// Starts nginx serving `fixtures/{fixture}`, whose `{port}`, `{dir}`
    /// (its temporary directory) and `{target}` (an upstream address) are
    /// filled in; waits until it accepts connections.
    pub async fn start(fixture: &str, target: SocketAddr) -> Nginx {
        Nginx::start_with(fixture, target, &[]).await
    }

    /// Like [`Nginx::start`], filling in more `{name}` placeholders with
    /// addresses.
    pub async fn start_with(
        fixture: &str,
        target: SocketAddr,
        vars: &[(&str, SocketAddr)],
    ) -> Nginx {
        let site = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/it/fixtures")
                .join(fixture),
        )
        .unwrap();
        Nginx::start_site(&site, target, vars).await
    }

    /// Like [`Nginx::start_with`], with the server block's text itself
    /// (say a file of `examples/` with its addresses swapped for
    /// placeholders).
    pub async fn start_site(site: &str, target: SocketAddr, vars: &[(&str, SocketAddr)]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let site = site
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.path().display().to_string())
            .replace("{target}", &target.to_string());
        let site = vars.iter().fold(site, |site, (name, addr)| {
            site.replace(&format!("{{{name}}}"), &addr.to_string())
        });
        std::fs::write(dir.path().join("site.conf"), site).unwrap();
        let d = dir.path().display();
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/client_body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/site.conf;\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main).unwrap();
        let child = std::process::Command::new(binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx is not installed (apt-get install nginx)");
        let mut nginx = Nginx {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            child,
        };
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(nginx.addr).await.is_ok() {
                return nginx;
            }
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}): {}", nginx.errors());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nginx did not start on port {port}: {}", nginx.errors());
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// nginx's error log so far.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The lines of an access log the fixture writes into its `{dir}`
    /// (none if it was never written).
    pub fn access_log(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
