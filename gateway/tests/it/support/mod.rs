//! Test harness: the real gateway on a real port, with a stand-in WeChat that
//! speaks `jscode2session`'s wire format (and stand-ins for the other
//! platforms) and a real hyper upstream that reports what reached it.

mod gateway;
mod nginx;
mod pki;
mod platforms;
mod process;
mod redis;
mod upstream;
mod users;
mod wechat;
mod wsgi;

pub use gateway::*;
pub use nginx::*;
pub use pki::*;
pub use platforms::*;
pub use process::*;
pub use redis::*;
pub use upstream::*;
pub use users::*;
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
