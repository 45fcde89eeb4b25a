//! The `minigate` command line: serve, manage keys, check config.
//!
//! Every failure ends as one line on stderr naming the file or key and what
//! is wrong, and a non-zero exit: 2 for bad config, keys or arguments, 1 for
//! failures at run time.
//!
//! One file a command (`serve`, `keys`, `sessions`, `config check`); what
//! they share (the arguments' root, failures, logging, the runtime) is here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use jwks::{Alg, KeySet};

use crate::config::{parse_duration, redacted_url, Config, LogFormat, Platform};
use crate::listener::shutdown_signal;
use crate::telemetry::audit;
use crate::tokens::keys::KeyStore;

/// Prints a line on stdout, ignoring a closed pipe (`minigate keys list |
/// head -1`): `println!` would panic there.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod check;
mod keys;
mod serve;
mod sessions;

use check::{check, ConfigCommand};
use keys::{keys, KeysCommand};
pub use serve::{load, LoadError};
use serve::{serve, ServeArgs};
use sessions::{sessions, SessionsCommand};

/// minigate: an auth gateway for mini-program backends.
#[derive(Debug, Parser)]
#[command(name = "minigate", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Manage the signing key set.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect a config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List or end a user's sessions, through the admin listener.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

/// Why a command failed: the one line it prints, and by its kind the exit
/// code. What the operator must correct (the command line, the config, the
/// key set) exits 2; what failed while the command ran (the runtime, the
/// listener, the admin API) exits 1.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The command line, the config or the key set is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The gateway (or the runtime under it) could not start.
    #[error("{0}")]
    Start(String),
    /// The admin API could not be asked, or did not do what was asked.
    #[error(transparent)]
    Admin(#[from] sessions::AdminFailure),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Invalid(_) => 2,
            Failure::Start(_) | Failure::Admin(_) => 1,
        }
    }
}

fn bad(msg: impl std::fmt::Display) -> Failure {
    Failure::Invalid(msg.to_string())
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("minigate: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Keys(cmd) => keys(cmd),
        Command::Config(ConfigCommand::Check { config, offline }) => check(&config, offline),
        Command::Sessions(cmd) => sessions(cmd),
    }
}

/// Logs to stderr in `format`, at `RUST_LOG`'s levels (default `info`);
/// audit events as their own JSON lines ([`audit::Lines`]), at `info`
/// whatever the level unless `RUST_LOG` names their target.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let spec = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .ok()
        .filter(|_| !spec.is_empty())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    if !spec.contains(audit::TARGET) {
        if let Ok(on) = format!("{}=info", audit::TARGET).parse() {
            filter = filter.add_directive(on);
        }
    }
    // Audit lines are the audit layer's alone.
    let not_audit = tracing_subscriber::filter::filter_fn(|m| m.target() != audit::TARGET);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(audit::Lines);
    let _ = match format {
        // Colour codes only for a person at a terminal, never in log files.
        LogFormat::Text => registry
            .with(
                lines
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_filter(not_audit),
            )
            .try_init(),
        // The request span's id goes with every line of the request.
        LogFormat::Json => registry
            .with(
                lines
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_filter(not_audit),
            )
            .try_init(),
    };
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Start(format!("cannot start the runtime: {e}")))
}
