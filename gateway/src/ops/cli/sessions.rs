//! `minigate sessions`: a user's sessions, through the admin listener.

use super::*;

#[derive(Debug, Args)]
pub(super) struct AdminArgs {
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

/// What `sessions list` says when a user key holds no sessions.
const USER_KEY_HINT: &str = "\
note: sessions are kept under the user key: the user service's uid when \
enrichment gives one, else the unionid when the platform gives one, else \
the openid. Upstreams see it as X-Auth-User, else X-Auth-Unionid, else \
X-Auth-Openid. If this is a user's openid, try their unionid or uid.";

#[derive(Debug, Subcommand)]
pub(super) enum SessionsCommand {
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

/// The admin listener's base URL and token for `args`.
pub(super) fn admin_target(args: &AdminArgs) -> Result<(String, String), Failure> {
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
pub(super) fn path_segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const NOT_UNRESERVED: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

pub(super) fn sessions(cmd: SessionsCommand) -> Result<(), Failure> {
    let (args, sid, method) = match &cmd {
        SessionsCommand::List { admin } => (admin, None, reqwest::Method::GET),
        SessionsCommand::Revoke { admin, sid } => (admin, sid.as_deref(), reqwest::Method::DELETE),
    };
    let (base, token) = admin_target(args)?;
    let mut url = format!("{base}/admin/users/{}/sessions", path_segment(&args.user));
    if let Some(sid) = sid {
        url = format!("{url}/{}", path_segment(sid));
    }
    crate::crypto::install_crypto_provider();
    let fail = |e: reqwest::Error| AdminFailure::Unreachable {
        base: base.clone(),
        // The URL is the operator's own; the token is never in it.
        error: e.without_url().to_string(),
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
        Ok::<_, AdminFailure>((status, body))
    })?;
    match status.as_u16() {
        200 => {
            let listing: Listing =
                serde_json::from_slice(&body).map_err(|_| AdminFailure::NotJson)?;
            let time = |secs: Option<u64>| {
                let t = std::time::UNIX_EPOCH + Duration::from_secs(secs.unwrap_or(0));
                humantime::format_rfc3339_seconds(t).to_string()
            };
            let list = listing.sessions;
            say!(
                "{:<24} {:<8} {:<10} {:<20} {:<21} {:<21} {:<16} DEVICE_NAME",
                "SID",
                "TYPE",
                "PLATFORM",
                "APPID",
                "CREATED",
                "REFRESHED",
                "DEVICE_ID"
            );
            let text = |v: &Option<String>| escaped(v.as_deref().unwrap_or("-"));
            for s in &list {
                say!(
                    "{:<24} {:<8} {:<10} {:<20} {:<21} {:<21} {:<16} {}",
                    text(&s.sid),
                    text(&s.device_type),
                    text(&s.platform),
                    text(&s.appid),
                    time(s.created_at),
                    time(s.refreshed_at),
                    text(&s.device_id),
                    text(&s.device_name)
                );
            }
            say!(
                "{} live session(s) under the user key {}",
                list.len(),
                escaped(&args.user)
            );
            if list.is_empty() {
                // The commonest surprise: an openid looked up for a user
                // whose sessions are kept under a unionid or a uid.
                eprintln!("{}", USER_KEY_HINT);
            }
            Ok(())
        }
        204 => {
            match sid {
                Some(sid) => say!("ended session {} of {}", escaped(sid), escaped(&args.user)),
                None => say!("ended every session of {}", escaped(&args.user)),
            }
            Ok(())
        }
        401 => Err(AdminFailure::TokenRefused.into()),
        403 => Err(AdminFailure::NoSessionsScope.into()),
        404 if sid.is_some() => Err(AdminFailure::NoSuchSession {
            user: escaped(&args.user),
            sid: escaped(sid.unwrap_or("")),
        }
        .into()),
        other => {
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            Err(AdminFailure::Answered {
                status: other,
                description: escaped(
                    doc["error_description"]
                        .as_str()
                        .unwrap_or("(no description)"),
                ),
            }
            .into())
        }
    }
}

/// `GET /admin/users/{user}/sessions`' answer, as the CLI prints it: a
/// field the server left out prints as `-` (or the epoch).
#[derive(Debug, serde::Deserialize)]
struct Listing {
    sessions: Vec<ListedSession>,
}

/// One session of a [`Listing`].
#[derive(Debug, serde::Deserialize)]
struct ListedSession {
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    device_type: Option<String>,
    #[serde(default)]
    created_at: Option<u64>,
    #[serde(default)]
    refreshed_at: Option<u64>,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    device_name: Option<String>,
}

/// What went wrong asking the admin API. Every text in it is escaped
/// ([`escaped`]) or the operator's own.
#[derive(Debug, thiserror::Error)]
pub(super) enum AdminFailure {
    /// The call did not get an answer.
    #[error("admin API at {base}: {error}")]
    Unreachable {
        /// The admin listener's base URL.
        base: String,
        /// What failed, without the URL.
        error: String,
    },
    /// A 200 whose body is not JSON.
    #[error("the admin API answered something that is not JSON")]
    NotJson,
    /// 401.
    #[error("the admin API refused the token in MINIGATE_ADMIN_TOKEN")]
    TokenRefused,
    /// 403.
    #[error("the token in MINIGATE_ADMIN_TOKEN does not hold the sessions scope: use a token with scopes = [\"sessions\"] (or token_env/token_file's, which has every scope)")]
    NoSessionsScope,
    /// 404 for one session.
    #[error("{user} has no live session {sid}")]
    NoSuchSession {
        /// The user key, escaped.
        user: String,
        /// The sid, escaped.
        sid: String,
    },
    /// Any other answer.
    #[error("the admin API answered {status}: {description}")]
    Answered {
        /// Its status.
        status: u16,
        /// Its `error_description`, escaped.
        description: String,
    },
}

/// `s` with its control characters (C0, DEL, C1) and the Unicode marks
/// that reorder text on screen written as escapes (`\n`, `\u{1b}`): what
/// a server or an argument says is printed as one inert line, never as
/// terminal commands.
pub(super) fn escaped(s: &str) -> String {
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
