//! `minigate config check`: what a config file means, without a secret in it.

use super::*;

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Validate a config file and print what it means.
    Check {
        /// The config file.
        #[arg(long, env = "MINIGATE_CONFIG", value_name = "PATH")]
        config: PathBuf,
        /// Do not try to reach the Redis session store (by default `check`
        /// sends it one PING and says whether it answered).
        #[arg(long)]
        offline: bool,
    },
}

pub(super) fn check(path: &Path, offline: bool) -> Result<(), Failure> {
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
        if let Some(c) = &p.component {
            say!("          {c}");
        }
        if let Some(r) = &p.risk {
            say!("          {r}");
        }
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
            r.target.authority,
            r.auth,
            d(r.target.timeout)
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
    if !offline {
        reach(sc)?;
    }
    say!(
        "          devices {}; {}; past a limit: {}; reuse grace {}; idle timeout {}",
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
        },
        sc.idle_ttl.map_or_else(|| "off".to_owned(), d)
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
    match &config.tracing {
        Some(t) => say!(
            "tracing   OTLP/HTTP to {}/v1/traces as {}, sampling {} of new traces (a parent's decision is followed)",
            redacted_url(t.otlp_endpoint.trim_end_matches('/')),
            t.service_name,
            t.sample_ratio
        ),
        None => say!("tracing   off"),
    }
    match &config.audit.redis_stream {
        Some(stream) => say!(
            "audit     JSON lines on stderr (target {}), and the stream {stream} of the session store's Redis (MAXLEN ~ {})",
            crate::telemetry::audit::TARGET,
            config.audit.stream_maxlen
        ),
        None => say!(
            "audit     JSON lines on stderr (target {})",
            crate::telemetry::audit::TARGET
        ),
    }
    Ok(())
}

/// Sends the Redis session store one PING and says whether it answered. An
/// unreachable store does not make the config invalid (the gateway starts
/// without it, and sign-ins answer 503 until it is there), so this only
/// reports.
fn reach(sc: &crate::config::SessionsConfig) -> Result<(), Failure> {
    if sc.redis_url.is_none() && sc.redis_cluster.is_empty() {
        return Ok(());
    }
    let pinged = runtime()?.block_on(async {
        // The client spawns its connection task: inside the runtime.
        let store = crate::sessions::Store::new(sc).map_err(bad)?;
        Ok::<_, Failure>(store.ping().await)
    })?;
    match pinged {
        None => {}
        Some(Ok(took)) => say!(
            "          reachable: PING answered in {} ms",
            took.as_millis()
        ),
        Some(Err(why)) => say!(
            "          NOT reachable: {why}; the gateway starts without it, but \
             login, refresh and logout answer 503 until it is (--offline skips this)"
        ),
    }
    Ok(())
}
