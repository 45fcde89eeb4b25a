//! The load comparison's client for TLS rows that wrk cannot make: one
//! request per connection, each connection a new TLS handshake, either with
//! no session offered at all (a full handshake every time) or resuming a
//! session from an earlier handshake. wrk's `Connection: close` resumes
//! whenever it can, so it measures neither on purpose.
//!
//! ```text
//! tls_conns ADDR CA_PEM CONNS SECONDS full|resume PATH [HEADER]
//! ```
//! runs CONNS loops on one thread (like `wrk -t1`) for SECONDS, each opening
//! a connection to ADDR (server name `localhost`, verified against CA_PEM),
//! sending `GET PATH` with HEADER and `Connection: close`, and reading the
//! answer to its end. It prints, one `key value` a line: requests, ok (200s),
//! other (other statuses), errors, full and resumed (handshakes of each kind,
//! from rustls's own account of each connection: the proof of what a row
//! measured), rps, p50_ms and p99_ms.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::HandshakeKind;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Default)]
struct Tally {
    ok: u64,
    other: u64,
    errors: u64,
    full: u64,
    resumed: u64,
    micros: Vec<u64>,
}

struct Plan {
    addr: SocketAddr,
    config: rustls::ClientConfig,
    resume: bool,
    request: Vec<u8>,
    until: Instant,
}

fn usage() -> ExitCode {
    eprintln!("usage: tls_conns ADDR CA_PEM CONNS SECONDS full|resume PATH [HEADER]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, ca, conns, secs, mode, path, rest @ ..] = args.as_slice() else {
        return usage();
    };
    let (Ok(addr), Ok(conns), Ok(secs)) = (
        addr.parse::<SocketAddr>(),
        conns.parse::<usize>(),
        secs.parse::<u64>(),
    ) else {
        return usage();
    };
    let resume = match mode.as_str() {
        "full" => false,
        "resume" => true,
        _ => return usage(),
    };
    let config = match client_config(ca) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tls_conns: {e}");
            return ExitCode::FAILURE;
        }
    };
    let header = rest.first().map(|h| format!("{h}\r\n")).unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{header}Connection: close\r\n\r\n");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tls_conns: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let plan = Arc::new(Plan {
        addr,
        config,
        resume,
        request: request.into_bytes(),
        until: started + Duration::from_secs(secs),
    });
    let tally = runtime.block_on(async {
        let loops: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(one_loop(Arc::clone(&plan))))
            .collect();
        let mut all = Tally::default();
        for l in loops {
            if let Ok(t) = l.await {
                all.ok += t.ok;
                all.other += t.other;
                all.errors += t.errors;
                all.full += t.full;
                all.resumed += t.resumed;
                all.micros.extend(t.micros);
            }
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut micros = tally.micros;
    micros.sort_unstable();
    let pct = |p: f64| {
        let i = ((micros.len() as f64 * p) as usize).min(micros.len().saturating_sub(1));
        micros.get(i).map_or(0.0, |&m| m as f64 / 1000.0)
    };
    let requests = tally.ok + tally.other + tally.errors;
    println!("requests {requests}");
    println!("ok {}", tally.ok);
    println!("other {}", tally.other);
    println!("errors {}", tally.errors);
    println!("full {}", tally.full);
    println!("resumed {}", tally.resumed);
    println!("rps {:.0}", (tally.ok + tally.other) as f64 / elapsed);
    println!("p50_ms {:.2}", pct(0.5));
    println!("p99_ms {:.2}", pct(0.99));
    ExitCode::SUCCESS
}

/// A client config trusting CA_PEM, TLS 1.3 only.
fn client_config(ca: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
        let cert = cert.map_err(|e| format!("{ca}: {e}"))?;
        roots.add(cert).map_err(|e| format!("{ca}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// One client's connections, one after the other. Each loop has its own
/// session cache, as each phone has: its next connection resumes with a
/// ticket its last one was given, or (full) offers none.
async fn one_loop(plan: Arc<Plan>) -> Tally {
    let mut config = plan.config.clone();
    config.resumption = if plan.resume {
        Resumption::in_memory_sessions(4)
    } else {
        Resumption::disabled()
    };
    let connector = TlsConnector::from(Arc::new(config));
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(1024);
    while Instant::now() < plan.until {
        let t0 = Instant::now();
        buf.clear();
        match one_request(&plan, &connector, &mut buf).await {
            Ok(kind) => {
                match kind {
                    Some(HandshakeKind::Resumed) => tally.resumed += 1,
                    Some(_) => tally.full += 1,
                    None => {}
                }
                if buf.starts_with(b"HTTP/1.1 200 ") {
                    tally.ok += 1;
                } else {
                    tally.other += 1;
                }
                tally.micros.push(t0.elapsed().as_micros() as u64);
            }
            Err(_) => tally.errors += 1,
        }
    }
    tally
}

async fn one_request(
    plan: &Plan,
    connector: &TlsConnector,
    buf: &mut Vec<u8>,
) -> io::Result<Option<HandshakeKind>> {
    let tcp = TcpStream::connect(plan.addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let mut tls = connector.connect(name, tcp).await?;
    let kind = tls.get_ref().1.handshake_kind();
    tls.write_all(&plan.request).await?;
    // To the end: a server that closes without close_notify still gave its
    // whole answer, so an unexpected end after some bytes counts as read.
    match tls.read_to_end(buf).await {
        Ok(_) => Ok(kind),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !buf.is_empty() => Ok(kind),
        Err(e) => Err(e),
    }
}
