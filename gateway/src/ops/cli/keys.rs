//! `minigate keys`: the signing key set (init, rotate, prune, list).

use super::*;

#[derive(Debug, Args)]
pub(super) struct DirArg {
    /// The key directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
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

pub(super) fn keys(cmd: KeysCommand) -> Result<(), Failure> {
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

pub(super) fn print_list(set: &KeySet) {
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
