//! The `minigate` command line: serve, manage keys, check config.
//!
//! Every failure ends as one line on stderr naming the file or key and what
//! is wrong, and a non-zero exit: 2 for bad config, keys or arguments, 1 for
//! failures at run time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use jwks::{Alg, KeySet};

use crate::config::{parse_duration, redacted_url, Config, LogFormat, Platform};
use crate::listener::shutdown_signal;
use crate::tokens::keys::KeyStore;

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

#[derive(Debug, Args)]
struct AdminArgs {
    /// The user key: uid, else unionid, else openid.
    #[arg(long, value_name = "USER", allow_hyphen_values = true)]
    user: String,
    /// The admin listener, e.g. http://127.0.0.1:9901. Default: `[admin]
    /// listen` of --config. The token, which needs the sessions scope, is
    /// read from MINIGATE_ADMIN_TOKEN.
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// The gateway's config, for its admin listener's address.
    #[arg(long, env = "MINIGATE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// The user's live sessions, newest first.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// End one session of the user (--sid), or all of them, on every replica.
    Revoke {
        #[command(flatten)]
        admin: AdminArgs,
        /// Only this session (a sid may start with `-`).
        #[arg(long, value_name = "SID", allow_hyphen_values = true)]
        sid: Option<String>,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The config file.
    #[arg(
        long,
        env = "MINIGATE_CONFIG",
        value_name = "PATH",
        conflicts_with = "dev"
    )]
    config: Option<PathBuf>,
    /// Run on an embedded default: in-memory keys, a stand-in platform
    /// (WeChat unless --platform) and a demo upstream, all on 127.0.0.1.
    /// Not for production.
    #[arg(long)]
    dev: bool,
    /// Listen here instead of the config's `listen` (dev: 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// With --dev: the platform whose stand-in the demo mini-program logs
    /// in at (wechat, qq, douyin, baidu, alipay). Default: wechat.
    #[arg(long, value_name = "NAME", requires = "dev", value_parser = platform)]
    platform: Option<Platform>,
}

/// A `--platform` that is not in the registry; the text lists those that are.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not a platform ({0})")]
struct UnknownPlatform(String);

/// A platform of the registry, by name.
fn platform(name: &str) -> Result<Platform, UnknownPlatform> {
    // Dev mode demonstrates a mini-program; the browser sign-in comes with
    // WeChat's.
    Platform::named(name)
        .filter(|p| !p.is_web())
        .ok_or_else(|| {
            let known: Vec<&str> = Platform::all()
                .filter(|p| !p.is_web())
                .map(Platform::name)
                .collect();
            UnknownPlatform(known.join(", "))
        })
}

#[derive(Debug, Args)]
struct DirArg {
    /// The key directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key set: a current key and a next key.
    Init {
        #[command(flatten)]
        dir: DirArg,
        /// The signature algorithm.
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "EdDSA", "RS256"])]
        alg: String,
    },
    /// Retire the current key, promote the next, create a new next.
    Rotate {
        #[command(flatten)]
        dir: DirArg,
    },
    /// List the keys: kid, algorithm, state and times.
    List {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Delete retired keys retired longer ago than --older-than.
    Prune {
        #[command(flatten)]
        dir: DirArg,
        /// Keep retired keys younger than this. Default: the refresh TTL of
        /// --config (or MINIGATE_CONFIG) if given, else 30d; tokens signed by a
        /// retired key stay valid until they expire.
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// The gateway's config, for its refresh TTL.
        #[arg(long, env = "MINIGATE_CONFIG", value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Copy a key set into DIR, validated and private (mode 0600): for
    /// example out of a read-only Secret volume, to rotate the copy.
    Copy {
        /// The key directory to copy from.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Print the public JWKS on stdout.
    Jwks {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file and print what it means.
    Check {
        /// The config file.
        #[arg(long, env = "MINIGATE_CONFIG", value_name = "PATH")]
        config: PathBuf,
    },
}

/// Prints a line on stdout, ignoring a closed pipe (`minigate keys list |
/// head -1`): `println!` would panic there.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// A failure to report: the line to print and the exit code.
struct Failure(u8, String);

fn bad(msg: impl std::fmt::Display) -> Failure {
    Failure(2, msg.to_string())
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, line)) => {
            eprintln!("minigate: {line}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Keys(cmd) => keys(cmd),
        Command::Config(ConfigCommand::Check { config }) => check(&config),
        Command::Sessions(cmd) => sessions(cmd),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colour codes only for a person at a terminal, never in log files.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // The request span's id goes with every line of the request.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(1, format!("cannot start the runtime: {e}")))
}

/// A config or key set that did not load; the text names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The config file.
    #[error("config {path}: {error}")]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        error: crate::config::ConfigError,
    },
    /// The key set the config names.
    #[error("keys: {0}")]
    Keys(#[from] jwks::KeySetError),
}

/// Loads a config and its key set; errors name the file or key.
pub fn load(path: &Path) -> Result<(Config, KeyStore), LoadError> {
    let config = Config::load(path).map_err(|error| LoadError::Config {
        path: path.to_owned(),
        error,
    })?;
    let keys = KeyStore::open(config.keys.dir.clone(), &config.tokens.issuer)?;
    Ok((config, keys))
}

fn serve(args: ServeArgs) -> Result<(), Failure> {
    crate::tokens::crypto::install_crypto_provider();
    if args.dev {
        init_logging(LogFormat::Text);
        let listen = args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        return runtime()?.block_on(async {
            let platform = args
                .platform
                .or_else(|| Platform::named("wechat"))
                .ok_or_else(|| bad("no platform"))?;
            let running = crate::ops::dev::start(listen, platform)
                .await
                .map_err(|e| Failure(1, e.to_string()))?;
            say!("{}", crate::ops::dev::walkthrough(running.addr, platform));
            tracing::info!(addr = %running.addr, "minigate dev mode listening");
            shutdown_signal().await;
            running.stop().await;
            Ok(())
        });
    }
    let Some(path) = args.config else {
        return Err(bad(
            "serve needs --config PATH (or MINIGATE_CONFIG), or --dev to try it out",
        ));
    };
    let (mut config, keys) = load(&path).map_err(bad)?;
    init_logging(config.log.format);
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    runtime()?.block_on(async {
        let running = crate::listener::start(&config, keys)
            .await
            .map_err(|e| Failure(1, e.to_string()))?;
        tracing::info!(
            addr = %running.addr,
            routes = config.routes.len(),
            providers = config.providers.len(),
            sessions = running.gateway.sessions.kind(),
            kid = %running.gateway.tokens.keys().load().set.current().kid(),
            reload_every = %humantime::format_duration(config.keys.reload_interval),
            "minigate listening"
        );
        shutdown_signal().await;
        tracing::info!(
            deadline = %humantime::format_duration(config.server.shutdown_timeout),
            "shutting down: finishing in-flight requests"
        );
        let cut = running.stop().await;
        tracing::info!(cut_off = cut, "stopped");
        Ok(())
    })
}

fn keys(cmd: KeysCommand) -> Result<(), Failure> {
    let now = SystemTime::now();
    match cmd {
        KeysCommand::Init { dir, alg } => {
            let alg: Alg = alg.parse().map_err(bad)?;
            let _lock = KeySet::lock(&dir.dir).map_err(bad)?;
            let file = KeySet::file_in(&dir.dir);
            if file.exists() {
                return Err(bad(format!(
                    "{}: a key set exists already; rotate it with `minigate keys rotate`",
                    file.display()
                )));
            }
            let set = KeySet::generate(alg, now).map_err(bad)?;
            set.save(&dir.dir).map_err(bad)?;
            say!("created {} with {alg} keys", file.display());
            print_list(&set);
        }
        KeysCommand::Rotate { dir } => {
            let _lock = KeySet::lock(&dir.dir).map_err(bad)?;
            let mut set = KeySet::load(&dir.dir).map_err(bad)?;
            set.rotate(now).map_err(bad)?;
            set.save(&dir.dir).map_err(bad)?;
            say!("rotated; now signing with {}", set.current().kid());
            print_list(&set);
        }
        KeysCommand::List { dir } => print_list(&KeySet::load(&dir.dir).map_err(bad)?),
        KeysCommand::Prune {
            dir,
            older_than,
            config,
        } => {
            let age: Duration = match (older_than, config) {
                (Some(d), _) => parse_duration("--older-than", &d).map_err(bad)?,
                (None, Some(path)) => crate::config::refresh_ttl_of(&path)
                    .map_err(|e| bad(format!("config {}: {e}", path.display())))?,
                (None, None) => crate::config::defaults::REFRESH_TTL,
            };
            let _lock = KeySet::lock(&dir.dir).map_err(bad)?;
            let mut set = KeySet::load(&dir.dir).map_err(bad)?;
            let gone = set.prune(age, now);
            if !gone.is_empty() {
                set.save(&dir.dir).map_err(bad)?;
            }
            say!(
                "pruned {} retired key(s) retired more than {} ago",
                gone.len(),
                humantime::format_duration(age)
            );
            for kid in gone {
                say!("  {kid}");
            }
        }
        KeysCommand::Copy { from, dir } => {
            let set = KeySet::load(&from).map_err(bad)?;
            let _lock = KeySet::lock(&dir.dir).map_err(bad)?;
            set.save(&dir.dir).map_err(bad)?;
            say!(
                "copied {} keys to {}",
                set.entries().len(),
                KeySet::file_in(&dir.dir).display()
            );
        }
        KeysCommand::Jwks { dir } => {
            let set = KeySet::load(&dir.dir).map_err(bad)?;
            let doc = serde_json::to_string_pretty(&set.jwks()).map_err(bad)?;
            say!("{doc}");
        }
    }
    Ok(())
}

/// The admin listener's base URL and token for `args`.
fn admin_target(args: &AdminArgs) -> Result<(String, String), Failure> {
    let base = match (&args.admin, &args.config) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(path)) => {
            let mut listen = crate::config::admin_listen_of(path)
                .map_err(|e| bad(format!("config {}: {e}", path.display())))?;
            // A listener on every address is reached on this machine's loopback.
            if listen.ip().is_unspecified() {
                listen.set_ip(match listen {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{listen}")
        }
        (None, None) => {
            return Err(bad(
                "name the admin listener with --admin URL or --config PATH",
            ))
        }
    };
    let token = std::env::var("MINIGATE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("MINIGATE_ADMIN_TOKEN is not set: the admin API needs its token"))?;
    Ok((base, token))
}

/// `%XX` for everything but unreserved characters: a user key as one path
/// segment.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn sessions(cmd: SessionsCommand) -> Result<(), Failure> {
    let (args, sid, method) = match &cmd {
        SessionsCommand::List { admin } => (admin, None, reqwest::Method::GET),
        SessionsCommand::Revoke { admin, sid } => (admin, sid.as_deref(), reqwest::Method::DELETE),
    };
    let (base, token) = admin_target(args)?;
    let mut url = format!("{base}/admin/users/{}/sessions", path_segment(&args.user));
    if let Some(sid) = sid {
        url = format!("{url}/{}", path_segment(sid));
    }
    crate::tokens::crypto::install_crypto_provider();
    let fail = |e: reqwest::Error| {
        // The URL is the operator's own; the token is never in it.
        Failure(1, format!("admin API at {base}: {}", e.without_url()))
    };
    let (status, body) = runtime()?.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(fail)?;
        let res = client
            .request(method, &url)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(fail)?;
        let status = res.status();
        let body = res.bytes().await.map_err(fail)?;
        Ok::<_, Failure>((status, body))
    })?;
    match status.as_u16() {
        200 => {
            let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
                Failure(
                    1,
                    "the admin API answered something that is not JSON".into(),
                )
            })?;
            let time = |v: &serde_json::Value| {
                let t = std::time::UNIX_EPOCH + Duration::from_secs(v.as_u64().unwrap_or(0));
                humantime::format_rfc3339_seconds(t).to_string()
            };
            let list = doc["sessions"].as_array().cloned().unwrap_or_default();
            say!(
                "{:<24} {:<8} {:<21} {:<21} DEVICE_ID",
                "SID",
                "TYPE",
                "CREATED",
                "REFRESHED"
            );
            let text = |v: &serde_json::Value| escaped(v.as_str().unwrap_or("-"));
            for s in &list {
                say!(
                    "{:<24} {:<8} {:<21} {:<21} {}",
                    text(&s["sid"]),
                    text(&s["device_type"]),
                    time(&s["created_at"]),
                    time(&s["refreshed_at"]),
                    text(&s["device_id"])
                );
            }
            say!("{} live session(s) of {}", list.len(), escaped(&args.user));
            Ok(())
        }
        204 => {
            match sid {
                Some(sid) => say!(
                    "ended session {} of {}",
                    escaped(sid),
                    escaped(&args.user)
                ),
                None => say!("ended every session of {}", escaped(&args.user)),
            }
            Ok(())
        }
        401 => Err(Failure(
            1,
            "the admin API refused the token in MINIGATE_ADMIN_TOKEN".into(),
        )),
        403 => Err(Failure(
            1,
            "the token in MINIGATE_ADMIN_TOKEN does not hold the sessions scope: use a token with scopes = [\"sessions\"] (or token_env/token_file's, which has every scope)".into(),
        )),
        404 if sid.is_some() => Err(Failure(
            1,
            format!(
                "{} has no live session {}",
                escaped(&args.user),
                escaped(sid.unwrap_or(""))
            ),
        )),
        other => {
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            Err(Failure(
                1,
                format!(
                    "the admin API answered {other}: {}",
                    escaped(
                        doc["error_description"]
                            .as_str()
                            .unwrap_or("(no description)")
                    )
                ),
            ))
        }
    }
}

/// `s` with its control characters (C0, DEL, C1) and the Unicode marks
/// that reorder text on screen written as escapes (`\n`, `\u{1b}`): what
/// a server or an argument says is printed as one inert line, never as
/// terminal commands.
fn escaped(s: &str) -> String {
    let reorders = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    s.chars()
        .map(|c| {
            if c.is_control() || reorders(c) {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn print_list(set: &KeySet) {
    let time = |t: Option<SystemTime>| {
        t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_else(|| "-".into())
    };
    say!(
        "{:<44} {:<6} {:<8} {:<21} {:<21} {:<21}",
        "KID",
        "ALG",
        "STATE",
        "CREATED",
        "ACTIVATED",
        "RETIRED"
    );
    for e in set.entries() {
        say!(
            "{:<44} {:<6} {:<8} {:<21} {:<21} {:<21}",
            e.key.kid(),
            e.key.alg().name(),
            e.state.to_string(),
            time(Some(e.created)),
            time(e.activated),
            time(e.retired)
        );
    }
}

fn check(path: &Path) -> Result<(), Failure> {
    let (config, store) = load(path).map_err(bad)?;
    let loaded = store.load();
    let keys = &loaded.set;
    let t = &config.tokens;
    let s = &config.server;
    let d = |d: Duration| humantime::format_duration(d).to_string();
    say!("config {} is valid", path.display());
    say!(
        "listen    {} ({})",
        config.listen,
        match &config.tls {
            Some(_) => "TLS; HTTP/2 and HTTP/1.1 by ALPN",
            None => "plain HTTP/1.1",
        }
    );
    if let Some(tls) = &config.tls {
        say!(
            "tls       cert {} key {} (re-read when they change, checked every {})",
            tls.cert.display(),
            tls.key.display(),
            d(config.keys.reload_interval)
        );
    }
    say!(
        "tokens    issuer {} audience {:?} access {} refresh {} leeway {}, cache {} entries",
        t.issuer,
        t.audience,
        d(t.access_ttl),
        d(t.refresh_ttl),
        d(t.leeway),
        t.cache_capacity
    );
    say!(
        "keys      {} ({} keys, signing with {} {}), reloaded every {} and on SIGHUP",
        config.keys.dir.display(),
        keys.entries().len(),
        keys.current().alg(),
        keys.current().kid(),
        d(config.keys.reload_interval)
    );
    for e in keys.entries() {
        say!("          {} {:?} {}", e.key.kid(), e.state, e.key.alg());
    }
    for p in &config.providers {
        say!(
            "provider  {} {} via {} (timeout {}), {}",
            p.platform.name(),
            p.appid,
            redacted_url(&p.base_url),
            d(p.timeout),
            p.credentials
        );
        if let Some(page) = &p.authorize_url {
            say!(
                "          browser sign-in, authorize page at {}",
                redacted_url(page)
            );
        }
    }
    match &config.web {
        Some(w) => say!(
            "web       public origin {}; callback {}{}; access cookie on proxied routes: {}",
            w.public_url,
            w.public_url,
            crate::signin::web::CALLBACK,
            if w.cookies {
                "accepted"
            } else {
                "not accepted (cookies = false)"
            }
        ),
        None => say!("web       off (no browser sign-in)"),
    }
    for r in crate::pipeline::routes::Routes::new(&config.routes, s.upstream_max_connections).iter()
    {
        say!(
            "route     {} -> http://{} auth {:?} (timeout {})",
            r.prefix,
            r.authority,
            r.auth,
            d(r.timeout)
        );
        let rules = config
            .routes
            .get(r.index)
            .and_then(|c| c.allow.as_deref())
            .unwrap_or_default();
        for rule in rules {
            let roles = rule.roles.as_ref().map_or("any caller".to_owned(), |r| {
                format!("roles {}", r.join("|"))
            });
            let methods = rule.methods.as_ref().map_or("any method".to_owned(), |m| {
                let names: Vec<&str> = m.iter().map(http::Method::as_str).collect();
                names.join("|")
            });
            say!("          allow {roles}, {methods}");
        }
    }
    for g in &config.roles {
        say!("role      {} granted to {} user(s)", g.role, g.users.len());
    }
    match &config.enrich {
        Some(e) => say!(
            "enrich    POST {} at login and refresh (timeout {}; fails closed)",
            redacted_url(e.url.as_str()),
            d(e.timeout)
        ),
        None => say!("enrich    off (roles from [[roles]] only)"),
    }
    let sc = &config.sessions;
    match &sc.redis_url {
        Some(url) => say!(
            "sessions  Redis at {} (shared by every replica)",
            redacted_url(url.expose())
        ),
        None if !sc.redis_cluster.is_empty() => say!(
            "sessions  Redis Cluster, seeds {} (shared by every replica)",
            sc.redis_cluster
                .iter()
                .map(|u| redacted_url(u.expose()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => say!(
            "sessions  in-process, up to {} (one replica only: run Redis with several)",
            sc.max_sessions
        ),
    }
    say!(
        "          devices {}; {}; past a limit: {}; reuse grace {}",
        sc.devices
            .0
            .iter()
            .map(|c| match c.limit {
                0 => format!("{} unlimited", c.name),
                n => format!("{} {n}", c.name),
            })
            .collect::<Vec<_>>()
            .join(", "),
        match sc.max_per_user {
            0 => "no ceiling per user".to_owned(),
            n => format!("at most {n} per user"),
        },
        sc.on_limit.name(),
        if sc.reuse_grace.is_zero() {
            "off".to_owned()
        } else {
            d(sc.reuse_grace)
        }
    );
    match &config.admin {
        Some(a) => {
            say!("admin     {} (its own listener)", a.listen);
            for t in &a.tokens {
                let scopes: Vec<&str> = t.scopes.iter().map(|s| s.name()).collect();
                say!(
                    "          token from {}: {}",
                    t.source,
                    if t.scopes.len() == crate::config::AdminScope::ALL.len() {
                        format!("every scope ({})", scopes.join(", "))
                    } else {
                        scopes.join(", ")
                    }
                );
            }
        }
        None => say!("admin     none"),
    }
    say!(
        "server    max {} connections; request head {} bytes / {} headers within {}; bodies within {}",
        s.max_connections,
        s.max_header_bytes,
        s.max_headers,
        d(s.header_timeout),
        d(s.body_timeout)
    );
    say!(
        "          at most {} requests in flight to each upstream; logins per client IP: {}; shutdown deadline {}",
        s.upstream_max_connections,
        if s.login_per_minute == 0 {
            "unlimited".to_owned()
        } else {
            format!("{}/min, burst {}", s.login_per_minute, s.login_burst)
        },
        d(s.shutdown_timeout)
    );
    let trusted: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
    let limit = |n: u32| match n {
        0 => "unlimited".to_owned(),
        n => n.to_string(),
    };
    say!(
        "          client address: {}; headers with '_': {}",
        if trusted.is_empty() {
            "the TCP peer (no trusted proxies)".to_owned()
        } else {
            format!("X-Forwarded-For behind {}", trusted.join(", "))
        },
        if s.underscores_in_headers {
            "kept, except ones that read as minigate's"
        } else {
            "dropped"
        }
    );
    say!(
        "          proxied bodies: a read every {}, a write every {}; in flight per client address: {}",
        d(s.proxy_body_timeout),
        d(s.send_timeout),
        limit(s.max_requests_per_ip)
    );
    say!(
        "          WebSocket tunnels: closed after {} idle, {} per user",
        d(s.tunnel_idle_timeout),
        limit(s.max_tunnels_per_user)
    );
    say!(
        "log       {} lines on stderr, level from RUST_LOG (default info)",
        match config.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "JSON",
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn what_a_server_says_is_printed_inert() {
        assert_eq!(
            escaped("the session store is unavailable, retry later"),
            "the session store is unavailable, retry later"
        );
        assert_eq!(escaped("用户 o_1"), "用户 o_1", "text is not escaped");
        assert_eq!(
            escaped("a\u{1b}[2J\r\nb\u{7}\u{9b}c\u{202e}d\te"),
            "a\\u{1b}[2J\\r\\nb\\u{7}\\u{9b}c\\u{202e}d\\te"
        );
    }
}
