//! `minigate serve`: load the config and the key set, and run the gateway.

use super::*;

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
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
    /// in at (wechat, qq, douyin, baidu, alipay, kuaishou, feishu,
    /// wechat_component). Default: wechat.
    #[arg(long, value_name = "NAME", requires = "dev", value_parser = platform)]
    platform: Option<Platform>,
}

/// A `--platform` that is not in the registry; the text lists those that are.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not a platform ({0})")]
pub(super) struct UnknownPlatform(String);

/// A platform of the registry, by name.
pub(super) fn platform(name: &str) -> Result<Platform, UnknownPlatform> {
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
    /// No key set where the config says: the first run's usual mistake.
    #[error("keys: {error}; make one with `minigate keys init --dir {}`", dir.display())]
    NoKeySet {
        /// The config's `[keys] dir`.
        dir: std::path::PathBuf,
        /// The error reading it.
        error: jwks::KeySetError,
    },
}

/// Loads a config and its key set; errors name the file or key.
pub fn load(path: &Path) -> Result<(Config, KeyStore), LoadError> {
    let config = Config::load(path).map_err(|error| LoadError::Config {
        path: path.to_owned(),
        error,
    })?;
    let keys =
        KeyStore::open(config.keys.dir.clone(), &config.tokens.issuer).map_err(
            |error| match &error {
                jwks::KeySetError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    LoadError::NoKeySet {
                        dir: config.keys.dir.clone(),
                        error,
                    }
                }
                _ => LoadError::Keys(error),
            },
        )?;
    Ok((config, keys))
}

pub(super) fn serve(args: ServeArgs) -> Result<(), Failure> {
    crate::crypto::install_crypto_provider();
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
                .map_err(|e| Failure::Start(e.to_string()))?;
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
            .map_err(|e| Failure::Start(e.to_string()))?;
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
