//! Tests of the whole config: TOML in (`raw`, `parse`), the values out.

use std::time::Duration;

use super::*;

const GOOD: &str = r#"
listen = "127.0.0.1:9000"
[tokens]
issuer = "https://auth.example.com"
audience = ["api", "admin"]
access_ttl = "15m"
refresh_ttl = "30d"
[keys]
dir = "/tmp/keys"
[[providers]]
platform = "wechat"
appid = "wx0123456789abcdef"
secret_env = "WECHAT_APP_SECRET"
[[routes]]
prefix = "/api/"
upstream = "http://orders:8080"
auth = "optional"
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "WECHAT_APP_SECRET" => Some("s3cr3t".to_owned()),
        "ADMIN" => Some("an-admin-token-long-enough".to_owned()),
        "BROKER" => Some("a-broker-token-long-enough".to_owned()),
        "SHORT" => Some("short".to_owned()),
        _ => None,
    }
}

#[test]
fn a_duration_longer_than_a_century_is_refused() {
    assert_eq!(
        parse_duration("k", "100y").unwrap(),
        MAX_DURATION,
        "humantime's year is 365.25 days"
    );
    let e = parse_duration("k", "101y").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"k: "101y" is too long (at most 100 years)"#
    );
    // Long enough to overflow the clock when added to it: refused, where
    // it used to panic the worker serving the request.
    for key in ["send_timeout", "header_timeout", "proxy_body_timeout"] {
        let text = GOOD.replace(
            "[[providers]]",
            &format!("[server]\n{key} = \"500000000000y\"\n[[providers]]"),
        );
        let e = Config::from_toml(&text, &env).unwrap_err();
        assert_eq!(e.key, format!("server.{key}"));
        assert!(e.problem.contains("too long"), "{e}");
    }
    let route = GOOD.replace(
        "auth = \"optional\"",
        "auth = \"optional\"\ntimeout = \"500000000000y\"",
    );
    assert_eq!(
        Config::from_toml(&route, &env).unwrap_err().key,
        "routes[0].timeout"
    );
}

#[test]
fn good_config_parses_with_defaults() {
    let c = Config::from_toml(GOOD, &env).unwrap();
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.tokens.audience, ["api", "admin"]);
    assert_eq!(c.tokens.leeway, Duration::from_secs(30));
    assert_eq!(c.keys.reload_interval, Duration::from_secs(10));
    assert_eq!(c.providers[0].base_url, "https://api.weixin.qq.com");
    assert_eq!(c.providers[0].secret().unwrap().expose(), "s3cr3t");
    assert!(!format!("{c:?}").contains("s3cr3t"));
    assert_eq!(c.routes[0].auth, AuthMode::Optional);
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "from-a-file\n").unwrap();
    let text = GOOD.replace(
        "secret_env = \"WECHAT_APP_SECRET\"",
        &format!("secret_file = {:?}", path.display().to_string()),
    );
    let c = Config::from_toml(&text, &env).unwrap();
    assert_eq!(c.providers[0].secret().unwrap().expose(), "from-a-file");
    std::fs::write(&path, "\n").unwrap();
    let e = Config::from_toml(&text, &env).unwrap_err();
    assert_eq!(e.key, "providers[0].secret_file");
    let both = GOOD.replace(
        "secret_env = \"WECHAT_APP_SECRET\"",
        "secret_env = \"WECHAT_APP_SECRET\"\nsecret_file = \"/x\"",
    );
    assert!(Config::from_toml(&both, &env)
        .unwrap_err()
        .to_string()
        .contains("exactly one"));
}

#[test]
fn bad_values_name_their_key() {
    let cases = [
        (GOOD.replace("\"15m\"", "\"15x\""), "tokens.access_ttl"),
        (GOOD.replace("\"30d\"", "\"1m\""), "tokens.refresh_ttl"),
        (GOOD.replace("127.0.0.1:9000", "nowhere"), "listen"),
        (
            GOOD.replace("http://orders:8080", "ftp://orders"),
            "routes[0].upstream",
        ),
        (
            GOOD.replace("http://orders:8080", "http://orders:8080/v1"),
            "routes[0].upstream",
        ),
        (GOOD.replace("\"optional\"", "\"maybe\""), "routes[0].auth"),
        (GOOD.replace("\"/api/\"", "\"api\""), "routes[0].prefix"),
        // Requests are matched in the canonical form: a prefix that is
        // not in it would never match.
        (GOOD.replace("\"/api/\"", "\"/%61pi/\""), "routes[0].prefix"),
        (GOOD.replace("\"/api/\"", "\"/api//\""), "routes[0].prefix"),
        (
            GOOD.replace("\"/api/\"", "\"/api;v=1/\""),
            "routes[0].prefix",
        ),
        (
            GOOD.replace("WECHAT_APP_SECRET", "NOT_SET_ANYWHERE"),
            "providers[0].secret_env",
        ),
        (
            GOOD.replace("\"wechat\"", "\"line\""),
            "providers[0].platform",
        ),
        (
            GOOD.replace("\"wechat\"", "\"alipay\""),
            "providers[0].secret_env",
        ),
        (
            GOOD.replace("https://auth.example.com", "auth"),
            "tokens.issuer",
        ),
        (
            GOOD.replace("[\"api\", \"admin\"]", "[]"),
            "tokens.audience",
        ),
        (GOOD.replace("dir = \"/tmp/keys\"", ""), "keys.dir"),
        (
            GOOD.replace("auth = \"optional\"", "auth = \"optional\"\nfoo = 1"),
            "line ",
        ),
        (GOOD.replace("listen", "listen = 1\nlisten"), "line 2"),
        (
            format!("{GOOD}[sessions]\nredis_url = \"http://u:pw@x\"\n"),
            "sessions.redis_url",
        ),
        (
            format!("{GOOD}[server]\nmax_header_bytes = 100\n"),
            "server.max_header_bytes",
        ),
        (
            format!("{GOOD}[server]\nheader_timeout = \"0s\"\n"),
            "server.header_timeout",
        ),
        (
            format!("{GOOD}[server]\nlogin_burst = 0\n"),
            "server.login_burst",
        ),
        (
            format!("{GOOD}[sessions]\non_limit = \"kick\"\n"),
            "sessions.on_limit",
        ),
        (
            format!("{GOOD}[sessions]\nreuse_grace = \"soon\"\n"),
            "sessions.reuse_grace",
        ),
        (
            format!("{GOOD}[sessions]\nidle_ttl = \"15m\"\n"),
            "sessions.idle_ttl",
        ),
        (
            format!("{GOOD}[sessions]\nidle_ttl = \"30d\"\n"),
            "sessions.idle_ttl",
        ),
        (
            format!("{GOOD}[sessions]\nidle_ttl = \"idle\"\n"),
            "sessions.idle_ttl",
        ),
        (
            format!("{GOOD}[sessions.devices]\npc = -1\n"),
            "sessions.devices.pc",
        ),
        (
            format!("{GOOD}[sessions.devices]\nPC = 1\n"),
            "sessions.devices.PC",
        ),
        (
            format!("{GOOD}[sessions]\nredis_cluster = [\"http://u:pw@x\"]\n"),
            "sessions.redis_cluster[0]",
        ),
        (
            format!(
                "{GOOD}[sessions]\nredis_url = \"redis://x\"\nredis_cluster = [\"redis://y\"]\n"
            ),
            "sessions.redis_cluster",
        ),
        (
            format!("{GOOD}[admin]\nlisten = \"127.0.0.1:9000\"\ntoken_env = \"ADMIN\"\n"),
            "admin.listen",
        ),
        (
            format!("{GOOD}[admin]\nlisten = \"127.0.0.1:9901\"\n"),
            "admin.token_env",
        ),
        (
            format!("{GOOD}[admin]\nlisten = \"127.0.0.1:9901\"\ntoken_env = \"SHORT\"\n"),
            "admin.token_env",
        ),
        (
            format!("{GOOD}[admin]\ntoken_env = \"ADMIN\"\n"),
            "admin.listen",
        ),
    ];
    let allow = |auth: &str, allow: &str| {
        GOOD.replace(
            "auth = \"optional\"",
            &format!("auth = \"{auth}\"\nallow = {allow}"),
        )
    };
    let more = [
        (allow("public", "[{ roles = [\"a\"] }]"), "routes[0].allow"),
        (allow("required", "[]"), "routes[0].allow"),
        (
            allow("required", "[{ methods = [\"FETCH\"] }]"),
            "routes[0].allow[0].methods",
        ),
        (
            allow("required", "[{ roles = [\"a\"] }, { roles = [] }]"),
            "routes[0].allow[1].roles",
        ),
        (
            allow("optional", "[{ methods = [] }]"),
            "routes[0].allow[0].methods",
        ),
        (
            allow("required", "[{ roles = [\"a,b\"] }]"),
            "routes[0].allow[0].roles",
        ),
        (allow("required", "[{ role = [\"a\"] }]"), "line "),
        (
            format!("{GOOD}[[roles]]\nrole = \"a b\"\nusers = [\"u\"]\n"),
            "roles[0].role",
        ),
        (
            format!("{GOOD}[[roles]]\nrole = \"a\"\nusers = [\"\"]\n"),
            "roles[0].users[0]",
        ),
        (format!("{GOOD}[[roles]]\nrole = \"a\"\n"), "roles[0].users"),
        (
            format!("{GOOD}[enrich]\nurl = \"ftp://u:pw@x/\"\n"),
            "enrich.url",
        ),
        (
            format!("{GOOD}[enrich]\nurl = \"http://x/\"\ntimeout = \"0s\"\n"),
            "enrich.timeout",
        ),
        (
            format!("{GOOD}[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n"),
            "server.trusted_proxies[0]",
        ),
        (
            format!("{GOOD}[server]\nproxy_body_timeout = \"soon\"\n"),
            "server.proxy_body_timeout",
        ),
    ];
    for (text, key) in cases.into_iter().chain(more) {
        let e = Config::from_toml(&text, &env).unwrap_err();
        assert!(e.to_string().starts_with(key), "{e} should name {key}");
        assert!(!e.to_string().contains('\n'), "{e} is not one line");
        assert!(!e.to_string().contains("s3cr3t"));
        assert!(
            !e.to_string().contains("pw"),
            "{e} shows the redis password"
        );
    }
}

#[test]
fn rules_grants_and_enrichment_parse() {
    let text = GOOD.replace(
        "auth = \"optional\"",
        "auth = \"required\"\nallow = [ { roles = [\"auditor\"], methods = [\"get\"] }, { roles = [\"admin\"] } ]",
    ) + "[[roles]]\nrole = \"admin\"\nusers = [\"u_1024\", \"o_2b9f\"]\n[enrich]\nurl = \"https://users.svc/minigate/enrich\"\n[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n";
    let c = Config::from_toml(&text, &env).unwrap();
    let allow = c.routes[0].allow.as_ref().unwrap();
    assert_eq!(allow[0].methods.as_deref(), Some(&[http::Method::GET][..]));
    assert_eq!(allow[1].methods, None);
    assert_eq!(c.roles[0].users, ["u_1024", "o_2b9f"]);
    let enrich = c.enrich.unwrap();
    assert_eq!(enrich.timeout, defaults::ENRICH_TIMEOUT);
    assert!(c.server.is_trusted("10.1.2.3".parse().unwrap()));
    assert!(c.server.is_trusted("192.0.2.7".parse().unwrap()));
    assert!(!c.server.is_trusted("192.0.2.8".parse().unwrap()));
    assert_eq!(c.server.proxy_body_timeout, defaults::PROXY_BODY_TIMEOUT);
    assert_eq!(
        redacted_url("https://user:hunter2@api.example.com/x?y=@"),
        "https://[credentials redacted]@api.example.com/x?y=@"
    );
}

/// A `[[providers]]` table of `platform` with these credential keys.
fn with_provider(platform: &str, keys: &str) -> String {
    format!(
        "{GOOD}[[providers]]\nplatform = \"{platform}\"\nappid = \"2021000000000001\"\n{keys}\n"
    )
}

#[test]
fn alipay_is_configured_with_key_files_and_nothing_else() {
    use std::os::unix::fs::PermissionsExt as _;
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/alipay");
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("app.pem");
    std::fs::copy(fixtures.join("app.pkcs1.pem"), &private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let public = fixtures.join("alipay.spki.pem");
    let keys = format!(
        "private_key_file = {:?}\nalipay_public_key_file = {:?}",
        private.display().to_string(),
        public.display().to_string()
    );
    let c = Config::from_toml(&with_provider("alipay", &keys), &env).unwrap();
    let p = &c.providers[1];
    assert_eq!(p.platform.name(), "alipay");
    assert_eq!(p.base_url, "https://openapi.alipay.com/gateway.do");
    assert!(p.secret().is_none() && p.key_pair().is_some());
    let shown = p.credentials.to_string();
    assert!(
        shown.contains(&private.display().to_string()) && shown.contains("alipay.spki.pem"),
        "{shown}"
    );
    let pem = std::fs::read_to_string(&private).unwrap();
    let body = pem.lines().nth(1).unwrap();
    assert!(!format!("{c:?}").contains(body));

    let refused = |text: String, key: &str, says: &str| {
        let e = Config::from_toml(&text, &env).unwrap_err().to_string();
        assert!(
            e.starts_with(key) && e.contains(says),
            "{e} should name {key} and say {says:?}"
        );
        assert!(!e.contains(body) && !e.contains('\n'), "{e}");
    };
    let k = "providers[1]";
    refused(
        with_provider(
            "alipay",
            &format!("{keys}\nsecret_env = \"WECHAT_APP_SECRET\""),
        ),
        &format!("{k}.secret_env"),
        "no app secret",
    );
    refused(
        with_provider("alipay", "secret_env = \"WECHAT_APP_SECRET\""),
        &format!("{k}.secret_env"),
        "no app secret",
    );
    refused(
        with_provider("alipay", &keys.replace("alipay_public_key_file", "#")),
        &format!("{k}.alipay_public_key_file"),
        "required",
    );
    refused(
        with_provider("qq", &format!("secret_env = \"WECHAT_APP_SECRET\"\n{keys}")),
        &format!("{k}.private_key_file"),
        "(alipay)",
    );
    // Others may read the private key: refused, the path named.
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(
        with_provider("alipay", &keys),
        &format!("{k}.private_key_file"),
        "mode 0644",
    );
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A file of the wrong kind under each key.
    let public_as_private = dir.path().join("public-as-private.pem");
    std::fs::copy(&public, &public_as_private).unwrap();
    std::fs::set_permissions(&public_as_private, std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(
        with_provider(
            "alipay",
            &keys.replace(
                &private.display().to_string(),
                &public_as_private.display().to_string(),
            ),
        ),
        &format!("{k}.private_key_file"),
        "not an RSA private key",
    );
    refused(
        with_provider(
            "alipay",
            &keys.replace(
                &public.display().to_string(),
                &private.display().to_string(),
            ),
        ),
        &format!("{k}.alipay_public_key_file"),
        "not an RSA public key",
    );
    refused(
        with_provider(
            "alipay",
            &keys.replace(&public.display().to_string(), "/nonexistent/alipay.pem"),
        ),
        &format!("{k}.alipay_public_key_file"),
        "/nonexistent/alipay.pem",
    );
}

#[test]
fn every_platform_has_its_default_base_url() {
    for (platform, url) in [
        ("qq", "https://api.q.qq.com"),
        ("douyin", "https://developer.toutiao.com"),
        ("baidu", "https://spapi.baidu.com"),
    ] {
        let c = Config::from_toml(
            &with_provider(platform, "secret_env = \"WECHAT_APP_SECRET\""),
            &env,
        )
        .unwrap();
        assert_eq!(c.providers[1].platform.name(), platform);
        assert_eq!(c.providers[1].base_url, url);
    }
    let e = Config::from_toml(&GOOD.replace("\"wechat\"", "\"line\""), &env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "providers[0].platform: \"line\" is not a known platform (wechat, qq, douyin, baidu, alipay, kuaishou, feishu, wechat_web, wechat_pc, wechat_component)"
    );
}

#[test]
fn devices_and_admin() {
    let c = Config::from_toml(GOOD, &env).unwrap();
    assert_eq!(c.sessions.devices, DeviceClasses::default());
    assert_eq!(c.sessions.on_limit, OnLimit::EvictOldest);
    assert!(c.sessions.reuse_grace.is_zero());
    assert_eq!(c.sessions.idle_ttl, None);
    assert!(c.admin.is_none());
    let idle = Config::from_toml(&format!("{GOOD}[sessions]\nidle_ttl = \"7d\"\n"), &env).unwrap();
    assert_eq!(
        idle.sessions.idle_ttl,
        Some(Duration::from_secs(7 * 24 * 3600))
    );
    let text = format!(
        "{GOOD}[sessions]\non_limit = \"refuse\"\nreuse_grace = \"10s\"\n[sessions.devices]\npc = 2\ntablet = 1\n[admin]\nlisten = \"127.0.0.1:9901\"\ntoken_env = \"ADMIN\"\n"
    );
    let c = Config::from_toml(&text, &env).unwrap();
    assert_eq!(c.sessions.on_limit, OnLimit::Refuse);
    assert_eq!(c.sessions.reuse_grace, Duration::from_secs(10));
    let limits: Vec<(&str, u32)> = c
        .sessions
        .devices
        .0
        .iter()
        .map(|d| (d.name.as_str(), d.limit))
        .collect();
    assert_eq!(limits, [("phone", 0), ("pc", 2), ("web", 2), ("tablet", 1)]);
    let admin = c.admin.unwrap();
    assert_eq!(admin.listen.port(), 9901);
    assert_eq!(admin.tokens.len(), 1);
    assert_eq!(admin.tokens[0].source, "env ADMIN");
    assert_eq!(admin.tokens[0].scopes, AdminScope::ALL);
    assert!(!format!("{admin:?}").contains("an-admin-token"));
}

#[test]
fn scoped_admin_tokens() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sessions-token");
    std::fs::write(&file, "a-sessions-token-from-a-file\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = file.display().to_string();
    // A token file others may read is refused, as a private key file is.
    let readable = dir.path().join("readable-token");
    std::fs::write(&readable, "a-token-others-may-read\n").unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let readable = readable.display().to_string();
    let admin = |body: &str| format!("{GOOD}[admin]\nlisten = \"127.0.0.1:9901\"\n{body}");
    let token =
        |source: &str, scopes: &str| format!("[[admin.tokens]]\n{source}\nscopes = {scopes}\n");
    // Scoped tokens only, without a token of every scope.
    let text = admin(&format!(
        "{}{}",
        token("env = \"BROKER\"", "[\"wechat\"]"),
        token(&format!("file = {file:?}"), "[\"wechat\", \"sessions\"]")
    ));
    let c = Config::from_toml(&text, &env).unwrap();
    let tokens = c.admin.unwrap().tokens;
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].source, "env BROKER");
    assert_eq!(tokens[0].scopes, [AdminScope::Wechat]);
    assert!(tokens[0].allows(AdminScope::Wechat) && !tokens[0].allows(AdminScope::Sessions));
    assert_eq!(tokens[1].source, format!("file {file}"));
    assert_eq!(tokens[1].token.expose(), "a-sessions-token-from-a-file");
    assert_eq!(tokens[1].scopes, AdminScope::ALL, "in ALL order");
    // With the token of every scope, first.
    let text = admin(&format!(
        "token_env = \"ADMIN\"\n{}",
        token("env = \"BROKER\"", "[\"wechat\"]")
    ));
    let tokens = Config::from_toml(&text, &env)
        .unwrap()
        .admin
        .unwrap()
        .tokens;
    assert_eq!(tokens.len(), 2);
    assert_eq!(
        (tokens[0].source.as_str(), tokens[0].scopes.as_slice()),
        ("env ADMIN", &AdminScope::ALL[..])
    );
    assert!(!format!("{tokens:?}").contains("token-long-enough"));

    let cases = [
        (
            admin(&token("env = \"BROKER\"", "[\"broker\"]")),
            "admin.tokens[0].scopes: \"broker\" is not a scope (sessions, wechat)",
        ),
        (
            admin(&token("env = \"BROKER\"", "[]")),
            "admin.tokens[0].scopes: is empty: the token could call nothing (scopes: sessions, wechat)",
        ),
        (
            admin(&token("env = \"BROKER\"", "[\"wechat\", \"wechat\"]")),
            "admin.tokens[0].scopes: \"wechat\" appears twice",
        ),
        (
            admin("[[admin.tokens]]\nenv = \"BROKER\"\n"),
            "admin.tokens[0].scopes: is required",
        ),
        (
            admin(&token(&format!("env = \"BROKER\"\nfile = {file:?}"), "[\"wechat\"]")),
            "admin.tokens[0].env: exactly one of env and file is required",
        ),
        (
            admin(&token("", "[\"wechat\"]")),
            "admin.tokens[0].env: exactly one of env and file is required",
        ),
        (
            admin(&token("env = \"NOT_SET_ANYWHERE\"", "[\"wechat\"]")),
            "admin.tokens[0].env: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            admin(&token("env = \"SHORT\"", "[\"wechat\"]")),
            "admin.tokens[0].env: the admin token must be at least 16 characters",
        ),
        (
            admin(&token("file = \"/nonexistent/broker\"", "[\"wechat\"]")),
            "admin.tokens[0].file: /nonexistent/broker: No such file or directory (os error 2)",
        ),
        // The same token twice: under two names, or once with every scope.
        (
            admin(&format!(
                "{}{}",
                token("env = \"BROKER\"", "[\"wechat\"]"),
                token("env = \"BROKER\"", "[\"sessions\"]")
            )),
            "admin.tokens[1].env: holds the same token as admin.tokens[0].env: give each token once, with all its scopes",
        ),
        (
            admin(&format!(
                "token_env = \"ADMIN\"\n{}",
                token("env = \"ADMIN\"", "[\"wechat\"]")
            )),
            "admin.tokens[0].env: holds the same token as admin.token_env: give each token once, with all its scopes",
        ),
        (
            admin(&format!("token_file = {file:?}\n")).replace(&file, &readable),
            "admin.token_file: ",
        ),
        (
            admin(&token(&format!("file = {readable:?}"), "[\"wechat\"]")),
            "admin.tokens[0].file: ",
        ),
        (
            admin(""),
            "admin.token_env: the admin listener needs a token: token_env or token_file (every scope), or [[admin.tokens]] with their scopes",
        ),
        (
            admin(&format!("token_env = \"ADMIN\"\ntoken_file = {file:?}\n")),
            "admin.token_env: give one of token_env and token_file, not both",
        ),
        (
            admin("[[admin.tokens]]\nenv = \"BROKER\"\nscopes = [\"wechat\"]\nscope = 1\n"),
            "line ",
        ),
    ];
    for (text, says) in cases {
        let e = Config::from_toml(&text, &env).unwrap_err().to_string();
        assert!(e.starts_with(says), "{e}\nshould start with\n{says}");
        assert!(
            !e.contains("long-enough") && !e.contains("from-a-file"),
            "{e}"
        );
        assert!(!e.contains("others-may-read") && !e.contains('\n'), "{e}");
        if e.contains(&readable) {
            assert!(
                e.ends_with(
                    "holds an admin token but is accessible to others (mode 0644); chmod 600 it"
                ),
                "{e}"
            );
        }
    }
}

#[test]
fn web_sign_in_and_its_checks() {
    let web_provider = |platform: &str, extra: &str| {
        format!("[[providers]]\nplatform = \"{platform}\"\nappid = \"wxweb\"\nsecret_env = \"WECHAT_APP_SECRET\"\n{extra}")
    };
    let text = format!(
        "{GOOD}[web]\npublic_url = \"https://App.Example.com:443/\"\ncookies = true\n{}",
        web_provider("wechat_web", "")
    );
    let c = Config::from_toml(&text, &env).unwrap();
    let web = c.web.unwrap();
    assert_eq!(web.public_url, "https://app.example.com");
    assert!(web.cookies);
    let p = &c.providers[1];
    assert_eq!(p.platform.name(), "wechat_web");
    assert_eq!(p.base_url, "https://api.weixin.qq.com");
    assert_eq!(
        p.authorize_url.as_deref(),
        Some("https://open.weixin.qq.com")
    );
    assert_eq!(c.providers[0].authorize_url, None);
    // cookies defaults to false; http is for loopback only.
    for (url, origin) in [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("http://[::1]:9", "http://[::1]:9"),
    ] {
        let text = format!("{GOOD}[web]\npublic_url = \"{url}\"\n");
        let web = Config::from_toml(&text, &env).unwrap().web.unwrap();
        assert_eq!((web.public_url.as_str(), web.cookies), (origin, false));
    }
    let cases = [
        (format!("{GOOD}[web]\ncookies = true\n"), "web.public_url"),
        (format!("{GOOD}[web]\npublic_url = \"http://app.example.com\"\n"), "web.public_url"),
        (format!("{GOOD}[web]\npublic_url = \"https://app.example.com/app\"\n"), "web.public_url"),
        (format!("{GOOD}[web]\npublic_url = \"https://u:pw@app.example.com\"\n"), "web.public_url"),
        (format!("{GOOD}[web]\npublic_url = \"app.example.com\"\n"), "web.public_url"),
        (format!("{GOOD}[web]\npublic_url = \"https://a.example\"\nsecure = 1\n"), "line "),
        (format!("{GOOD}{}", web_provider("wechat_pc", "")), "providers[1].platform"),
        (
            format!("{GOOD}[web]\npublic_url = \"https://a.example\"\n{}", web_provider("wechat_pc", "authorize_url = \"ftp://x\"\n")),
            "providers[1].authorize_url",
        ),
        (
            GOOD.replace("secret_env = \"WECHAT_APP_SECRET\"", "secret_env = \"WECHAT_APP_SECRET\"\nauthorize_url = \"https://open.weixin.qq.com\""),
            "providers[0].authorize_url",
        ),
    ];
    for (text, key) in cases {
        let e = Config::from_toml(&text, &env).unwrap_err();
        assert!(e.to_string().starts_with(key), "{e} should name {key}");
        assert!(!e.to_string().contains("pw@"), "{e}");
    }
}

#[test]
fn sessions_and_server_sections() {
    let c = Config::from_toml(GOOD, &env).unwrap();
    assert!(c.sessions.redis_url.is_none());
    assert_eq!(c.server.max_connections, 10_000);
    let text = format!(
        "{GOOD}[sessions]\nredis_url = \"redis://:hunter2@127.0.0.1:6379/0\"\n[server]\nlogin_per_minute = 0\nshutdown_timeout = \"5s\"\n"
    );
    let c = Config::from_toml(&text, &env).unwrap();
    assert!(c.sessions.redis_url.is_some());
    assert!(!format!("{c:?}").contains("hunter2"));
    assert_eq!(c.server.login_per_minute, 0);
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(5));
}

#[test]
fn audit_section() {
    let c = Config::from_toml(GOOD, &env).unwrap();
    assert_eq!(c.audit.redis_stream, None);
    assert_eq!(c.audit.stream_maxlen, 100_000);
    let redis = "[sessions]\nredis_url = \"redis://127.0.0.1:6379/0\"\n";
    let c = Config::from_toml(
        &format!("{GOOD}{redis}[audit]\nredis_stream = \"minigate:audit\"\nstream_maxlen = 500\n"),
        &env,
    )
    .unwrap();
    assert_eq!(c.audit.redis_stream.as_deref(), Some("minigate:audit"));
    assert_eq!(c.audit.stream_maxlen, 500);
    for (text, error) in [
        (
            format!("{GOOD}[audit]\nredis_stream = \"a\"\n"),
            "audit.redis_stream: needs the session store's Redis ([sessions] redis_url or redis_cluster)",
        ),
        (
            format!("{GOOD}{redis}[audit]\nredis_stream = \"a b\"\n"),
            "audit.redis_stream: must be 1-128 visible ASCII characters",
        ),
        (
            format!("{GOOD}{redis}[audit]\nredis_stream = \"\"\n"),
            "audit.redis_stream: must be 1-128 visible ASCII characters",
        ),
        (
            format!("{GOOD}{redis}[audit]\nredis_stream = \"a\"\nstream_maxlen = 0\n"),
            "audit.stream_maxlen: must be at least 1",
        ),
        (
            format!("{GOOD}[audit]\nstream_maxlen = 10\n"),
            "audit.stream_maxlen: caps the stream of audit.redis_stream, which is not set",
        ),
    ] {
        let got = Config::from_toml(&text, &env).unwrap_err().to_string();
        assert_eq!(got, error, "{text}");
    }
}

#[test]
fn tracing_section() {
    assert_eq!(Config::from_toml(GOOD, &env).unwrap().tracing, None);
    let c = Config::from_toml(
        &format!("{GOOD}[tracing]\notlp_endpoint = \"http://otel-collector:4318\"\n"),
        &env,
    )
    .unwrap();
    assert_eq!(
        c.tracing,
        Some(TracingConfig {
            otlp_endpoint: "http://otel-collector:4318".into(),
            sample_ratio: 0.01,
            service_name: "minigate".into(),
        })
    );
    for (section, error) in [
        ("sample_ratio = 1.0", "tracing.otlp_endpoint: is required"),
        (
            "otlp_endpoint = \"otel-collector:4318\"",
            "tracing.otlp_endpoint: is not a URL like \"http://otel-collector:4318\"",
        ),
        (
            "otlp_endpoint = \"http://u:pw@otel:4318\"",
            "tracing.otlp_endpoint: must not hold credentials",
        ),
        (
            "otlp_endpoint = \"http://otel:4318\"\nsample_ratio = 1.5",
            "tracing.sample_ratio: must be from 0 to 1",
        ),
        (
            "otlp_endpoint = \"http://otel:4318\"\nservice_name = \"\"",
            "tracing.service_name: must be 1-128 characters",
        ),
    ] {
        let got = Config::from_toml(&format!("{GOOD}[tracing]\n{section}\n"), &env)
            .unwrap_err()
            .to_string();
        assert_eq!(got, error, "{section}");
    }
}

#[test]
fn risk_keys_are_a_wechat_providers_and_need_risk_scene() {
    let risky = |keys: &str| {
        GOOD.replace(
            "secret_env = \"WECHAT_APP_SECRET\"",
            &format!("secret_env = \"WECHAT_APP_SECRET\"\n{keys}"),
        )
    };
    let c = Config::from_toml(GOOD, &env).unwrap();
    assert_eq!(c.providers[0].risk, None);
    let c = Config::from_toml(&risky("risk_scene = 1\nrefuse_risk_rank = 3"), &env).unwrap();
    assert_eq!(
        c.providers[0].risk,
        Some(RiskConfig {
            scene: 1,
            refuse_at: Some(3),
            required: false
        })
    );
    assert_eq!(
        c.providers[0].risk.unwrap().to_string(),
        "risk rank asked at login (getuserriskrank, scene 1); ranks 3-4 refused; \
         a failed risk call lets the login through without a rank"
    );
    let c = Config::from_toml(&risky("risk_scene = 0\nrisk_required = true"), &env).unwrap();
    assert_eq!(
        c.providers[0].risk,
        Some(RiskConfig {
            scene: 0,
            refuse_at: None,
            required: true
        })
    );
    for (text, key, says) in [
        (
            risky("refuse_risk_rank = 3"),
            "providers[0].refuse_risk_rank",
            "needs risk_scene",
        ),
        (
            risky("risk_required = true"),
            "providers[0].risk_required",
            "needs risk_scene",
        ),
        (
            risky("risk_scene = 0\nrefuse_risk_rank = 0"),
            "providers[0].refuse_risk_rank",
            "1-4",
        ),
        (
            risky("risk_scene = 0\nrefuse_risk_rank = 5"),
            "providers[0].refuse_risk_rank",
            "1-4",
        ),
        (
            with_provider("qq", "secret_env = \"WECHAT_APP_SECRET\"\nrisk_scene = 0"),
            "providers[1].risk_scene",
            "only for platform = \"wechat\"",
        ),
    ] {
        let e = Config::from_toml(&text, &env).unwrap_err().to_string();
        assert!(e.starts_with(key) && e.contains(says), "{e}");
    }
}
