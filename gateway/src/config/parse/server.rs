//! `[server]`, checked.

use super::*;

pub(super) fn trusted_proxies(list: Vec<String>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    err(
                        format!("server.trusted_proxies[{i}]"),
                        format!("{s:?} is not an address or CIDR like \"10.0.0.0/8\""),
                    )
                })
        })
        .collect()
}

pub(super) fn server(s: Option<RawServer>) -> Result<ServerConfig, ConfigError> {
    let d = ServerConfig::default();
    let Some(s) = s else { return Ok(d) };
    let at_least = |key: &str, v: Option<usize>, min: usize, default: usize| {
        let v = v.unwrap_or(default);
        if v < min {
            return Err(err(key, format!("must be at least {min}")));
        }
        Ok(v)
    };
    let dur =
        |key: &str, v: Option<String>, default: Duration| duration_or(key, v.as_deref(), default);
    let login_burst = s.login_burst.unwrap_or(d.login_burst);
    if login_burst == 0 {
        return Err(err("server.login_burst", "must be more than zero"));
    }
    Ok(ServerConfig {
        max_connections: at_least(
            "server.max_connections",
            s.max_connections,
            1,
            d.max_connections,
        )?,
        header_timeout: dur("server.header_timeout", s.header_timeout, d.header_timeout)?,
        // hyper cannot read a head into less than 8 KiB of buffer.
        max_header_bytes: at_least(
            "server.max_header_bytes",
            s.max_header_bytes,
            8192,
            d.max_header_bytes,
        )?,
        max_headers: at_least("server.max_headers", s.max_headers, 8, d.max_headers)?,
        body_timeout: dur("server.body_timeout", s.body_timeout, d.body_timeout)?,
        login_per_minute: s.login_per_minute.unwrap_or(d.login_per_minute),
        login_burst,
        shutdown_timeout: dur(
            "server.shutdown_timeout",
            s.shutdown_timeout,
            d.shutdown_timeout,
        )?,
        upstream_max_connections: at_least(
            "server.upstream_max_connections",
            s.upstream_max_connections,
            1,
            d.upstream_max_connections,
        )?,
        underscores_in_headers: s.underscores_in_headers.unwrap_or(d.underscores_in_headers),
        trusted_proxies: trusted_proxies(s.trusted_proxies.unwrap_or_default())?,
        proxy_body_timeout: dur(
            "server.proxy_body_timeout",
            s.proxy_body_timeout,
            d.proxy_body_timeout,
        )?,
        send_timeout: dur("server.send_timeout", s.send_timeout, d.send_timeout)?,
        max_requests_per_ip: s.max_requests_per_ip.unwrap_or(d.max_requests_per_ip),
        tunnel_idle_timeout: dur(
            "server.tunnel_idle_timeout",
            s.tunnel_idle_timeout,
            d.tunnel_idle_timeout,
        )?,
        max_tunnels_per_user: s.max_tunnels_per_user.unwrap_or(d.max_tunnels_per_user),
    })
}
