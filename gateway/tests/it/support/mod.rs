//! Test harness: the real gateway on a real port, with a stand-in WeChat that
//! speaks `jscode2session`'s wire format (and stand-ins for the other
//! platforms) and a real hyper upstream that reports what reached it; for
//! the browser sign-in, a stand-in for WeChat's web authorization, an
//! upstream of pages, and headless Chromium.

mod browser;
mod component;
mod config;
mod gateway;
mod nginx;
mod pki;
mod platforms;
mod process;
mod redis;
mod requests;
mod upstream;
mod users;
mod web;
mod wechat;
mod wsgi;

pub use browser::*;
pub use component::*;
pub use config::*;
pub use gateway::*;
pub use nginx::*;
pub use pki::*;
pub use platforms::*;
pub use process::*;
pub use redis::*;
pub use requests::*;
pub use upstream::*;
pub use users::*;
pub use web::*;
pub use wechat::*;
pub use wsgi::*;

/// A loopback port that was free a moment ago, for a server that must be
/// told its port up front.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An address where nothing listens, kept so for as long as the returned
/// socket lives: it is bound (no other test can take the port) but not
/// listening, so every connection to it is refused at once.
pub fn closed_port() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}
