//! Holds idle keep-alive connections open, for the load comparison's
//! memory-per-connection figure: wrk keeps its connections busy, while the
//! target is about connections that made a request and now sit idle.
//!
//! `hold ADDR COUNT PATH [HEADER]`: opens COUNT connections to ADDR, sends
//! one `GET PATH` on each (with HEADER, e.g. an `Authorization` line), reads
//! each answer, prints `held N` and keeps them open until stdin closes.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(count), Some(path)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: hold ADDR COUNT PATH [HEADER]");
        std::process::exit(2);
    };
    let count: usize = count.parse().unwrap_or(0);
    let header = args.get(4).map(|h| format!("{h}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{header}\r\n");
    let mut held = Vec::with_capacity(count);
    let mut buf = [0u8; 4096];
    for i in 0..count {
        let mut s = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("connection {i}: {e}");
                break;
            }
        };
        // The answer is a short head and "ok": one read takes it.
        let answered = s.write_all(request.as_bytes()).is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"HTTP/1.1 200"));
        if !answered {
            eprintln!("connection {i}: no 200");
            break;
        }
        held.push(s);
    }
    println!("held {}", held.len());
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
