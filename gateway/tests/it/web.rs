//! Web and PC sign-in over TLS: the authorize redirect, the callback with
//! its state, the session cookies, cookie authentication with its origin
//! check, refresh and logout by cookie, the `Cookie` header upstreams get,
//! one person's sessions across the mini-program and the web, and the
//! whole flow in a real browser (headless Chromium).

use std::time::{Duration, Instant};

use crate::support::*;

/// A TLS gateway with `[web]` (public origin `https://localhost:{port}`),
/// a `wechat_web` and a `wechat_pc` app on the stand-in, `/app/` (required)
/// and `/open/` (optional) to the page upstream, and `/evil/` (public) to
/// it too (for a page of another origin, on another gateway).
struct Web {
    gw: Gateway,
    wx: WebWeChat,
    pages: Pages,
    /// `https://localhost:{port}`.
    base: String,
    /// Trusts the test CA; follows no redirect; keeps no cookie.
    http: reqwest::Client,
    spki: String,
    _dir: tempfile::TempDir,
}

/// `[[providers]]` of a web app at the stand-in `wx`, its secret from
/// `TEST_WEB_SECRET`.
fn web_provider(platform: &str, appid: &str, wx: &WebWeChat) -> Provider {
    Provider::new(platform, appid, "TEST_WEB_SECRET")
        .base_url(wx.url())
        .authorize_url(wx.url())
}

fn web_client(pki: &Pki) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(pki.ca.pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([root])
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET path` on the web gateway with only `cookie` for credentials.
async fn get_with_cookie(w: &Web, path: &str, cookie: impl AsRef<str>) -> reqwest::Response {
    w.http
        .get(format!("{}{path}", w.base))
        .header("cookie", cookie.as_ref())
        .send()
        .await
        .unwrap()
}

async fn web_gateway(pki: &Pki, cookies: bool, sessions: Option<Sessions>) -> Web {
    let wx = web_wechat().await;
    let pages = pages().await;
    let dir = tempfile::tempdir().unwrap();
    let spki = pki.issue_spki(dir.path());
    let port = free_port();
    let base = format!("https://localhost:{port}");
    let provider =
        |platform: &str, appid: &str| web_provider(platform, appid, &wx).timeout(secs(1));
    let p = pages.addr;
    let setup = Setup {
        listen: format!("127.0.0.1:{port}"),
        routes: vec![
            Route::new("/app/").upstream(p),
            Route::optional("/open/").upstream(p),
            Route::public("/evil/").upstream(p),
        ],
        sessions,
        ..Setup::default()
            .web(
                crate::support::Web::default()
                    .public_url(base.clone())
                    .cookies(cookies),
            )
            .provider(provider("wechat_web", WEB_APPID))
            .provider(provider("wechat_pc", PC_APPID))
    };
    let gw = tls_gateway_with(pki, dir.path(), None, setup).await;
    assert_eq!(gw.running.addr.port(), port);
    Web {
        gw,
        wx,
        pages,
        base,
        http: web_client(pki),
        spki,
        _dir: dir,
    }
}

/// The gateway's `/metrics`, over its TLS port.
async fn scrape(w: &Web) -> String {
    let res = w
        .http
        .get(format!("{}/metrics", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The `name=value` of each `Set-Cookie`, with its attributes.
fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value a `Set-Cookie` list gives `name`, and the whole line.
fn cookie_of(set: &[String], name: &str) -> Option<(String, String)> {
    set.iter().find_map(|line| {
        let value = line.strip_prefix(&format!("{name}="))?;
        Some((value.split(';').next().unwrap().to_owned(), line.clone()))
    })
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// A sign-in's start: the authorize page's URL and the state cookie.
async fn start(w: &Web, query: &str) -> (String, String) {
    let res = w
        .http
        .get(format!("{}/auth/web/login?{query}", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "{query}");
    let set = set_cookies(&res);
    let (state, _) = cookie_of(&set, "__Host-minigate_state").expect("no state cookie");
    (location(&res), state)
}

/// The authorize page's answer: the callback URL it sends the browser to.
async fn authorize(w: &Web, page: &str) -> String {
    let res = w.http.get(page).send().await.unwrap();
    assert_eq!(res.status(), 302, "the authorize page refused {page}");
    location(&res)
}

async fn callback(w: &Web, url: &str, state_cookie: Option<&str>) -> reqwest::Response {
    let mut req = w.http.get(url);
    if let Some(c) = state_cookie {
        req = req.header("cookie", format!("__Host-minigate_state={c}"));
    }
    req.send().await.unwrap()
}

/// A signed-in browser's cookies.
struct Session {
    at: String,
    rt: String,
}

impl Session {
    fn access(&self) -> String {
        format!("__Host-minigate_at={}", self.at)
    }
    fn refresh(&self) -> String {
        format!("__Secure-minigate_rt={}", self.rt)
    }
}

/// The whole sign-in of `appid` with the stand-in handing out `code`.
async fn sign_in(w: &Web, appid: &str, code: &str) -> Session {
    w.wx.next_code(code);
    let (page, state) = start(w, &format!("appid={appid}&redirect=/app/page")).await;
    let back = authorize(w, &page).await;
    let res = callback(w, &back, Some(&state)).await;
    assert_eq!(res.status(), 302, "{}", res.text().await.unwrap());
    let set = set_cookies(&res);
    Session {
        at: cookie_of(&set, "__Host-minigate_at").unwrap().0,
        rt: cookie_of(&set, "__Secure-minigate_rt").unwrap().0,
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn the_whole_sign_in_over_tls_sets_the_contracts_cookies() {
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;
    let port = w.gw.running.addr.port();

    // The start: 302 to the authorize page, parameters in WeChat's order.
    w.wx.next_code("first-user");
    let res = w
        .http
        .get(format!(
            "{}/auth/web/login?appid={WEB_APPID}&redirect=%2Fapp%2Fpage%3Ftab%3D2",
            w.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = location(&res);
    let state = query_param(&page, "state").unwrap();
    let callback_uri = format!("https://localhost:{port}/auth/web/callback");
    assert_eq!(
        page,
        format!(
            "{}/connect/oauth2/authorize?appid={WEB_APPID}&redirect_uri={}&response_type=code&scope=snsapi_base&state={state}#wechat_redirect",
            w.wx.url(),
            callback_uri.replace(':', "%3A").replace('/', "%2F")
        )
    );
    assert!(state.len() == 32 && state.bytes().all(|b| b.is_ascii_hexdigit()));
    let set = set_cookies(&res);
    let (state_cookie, line) = cookie_of(&set, "__Host-minigate_state").unwrap();
    assert_eq!(
        line,
        format!("__Host-minigate_state={state_cookie}; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax")
    );

    // The authorize page sends the browser back; the callback signs in.
    let back = authorize(&w, &page).await;
    assert_eq!(query_param(&back, "state").unwrap(), state);
    let res = callback(&w, &back, Some(&state_cookie)).await;
    assert_eq!(res.status(), 302);
    assert_eq!(
        location(&res),
        format!("https://localhost:{port}/app/page?tab=2#")
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let set = set_cookies(&res);
    let (at, line) = cookie_of(&set, "__Host-minigate_at").unwrap();
    assert_eq!(
        line,
        format!("__Host-minigate_at={at}; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Lax")
    );
    let (rt, line) = cookie_of(&set, "__Secure-minigate_rt").unwrap();
    assert_eq!(
        line,
        format!("__Secure-minigate_rt={rt}; Path=/auth/; Max-Age=2592000; HttpOnly; Secure; SameSite=Strict")
    );
    let (cleared, line) = cookie_of(&set, "__Host-minigate_state").unwrap();
    assert_eq!(cleared, "");
    assert!(line.contains("Max-Age=0"), "{line}");
    // The exchange: WeChat's wire format, once; its token goes nowhere.
    let exchanges = w.wx.exchanges();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(
        exchanges[0],
        format!(
            "appid={WEB_APPID}&secret={WEB_SECRET}&code=first-user&grant_type=authorization_code"
        )
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains("eyJ") && !body.contains(WX_WEB_TOKEN));

    // The access cookie alone reaches a required route; the upstream gets
    // the identity, and every cookie but minigate's.
    let res = w
        .http
        .get(format!("{}/app/page?tab=2", w.base))
        .header(
            "cookie",
            format!("theme=dark; __Host-minigate_at={at}; __Secure-minigate_rt={rt}; lang=zh"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let openid = web_openid(WEB_APPID, "first-user");
    assert!(
        html.contains(&format!("<p id=\"who\">{openid}</p>")),
        "{html}"
    );
    let seen = w.pages.seen("GET", "/app/page").pop().unwrap();
    assert_eq!(seen.headers["cookie"], "theme=dark; lang=zh");
    assert_eq!(seen.headers["x-auth-platform"], "wechat_web");
    assert_eq!(seen.headers["x-auth-device-type"], "web");
    assert_eq!(seen.headers["x-auth-appid"], WEB_APPID);
    assert!(seen.headers.get("authorization").is_none());
    // Only minigate's cookies: a request with none of them keeps its
    // header whole, and one with only them loses the header.
    w.http
        .get(format!("{}/open/plain", w.base))
        .header("cookie", "a=1; b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        w.pages.seen("GET", "/open/plain")[0].headers["cookie"],
        "a=1; b=2"
    );
    let res = get_with_cookie(&w, "/open/only", format!("__Host-minigate_at={at}")).await;
    assert_eq!(res.status(), 200);
    let seen = w.pages.seen("GET", "/open/only").pop().unwrap();
    assert!(seen.headers.get("cookie").is_none());
    assert_eq!(seen.headers["x-auth-subject"], openid.as_str());

    // PC: the QR-code page, snsapi_login, device type pc.
    let pc = sign_in(&w, PC_APPID, "pc-user").await;
    let page = w.wx.authorizes().last().unwrap().clone();
    assert!(page.contains("scope=snsapi_login"), "{page}");
    w.http
        .get(format!("{}/app/page", w.base))
        .header("cookie", pc.access())
        .send()
        .await
        .unwrap();
    let seen = w.pages.seen("GET", "/app/page").pop().unwrap();
    assert_eq!(seen.headers["x-auth-platform"], "wechat_pc");
    assert_eq!(seen.headers["x-auth-device-type"], "pc");

    let text = scrape(&w).await;
    assert_eq!(series(&text, "minigate_web_login_starts_total"), 2.0);
    assert_eq!(
        series(&text, "minigate_web_logins_total{outcome=\"ok\"}"),
        2.0
    );
    assert_eq!(
        series(
            &text,
            "minigate_requests_total{route=\"/auth/web/callback\",class=\"3xx\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn forged_replayed_and_declined_states_are_refused() {
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;

    // No state cookie: 400, and no code is exchanged.
    let (page, state_cookie) = start(&w, "redirect=/app/page&appid=wxweb000000000001").await;
    let back = authorize(&w, &page).await;
    let res = callback(&w, &back, None).await;
    let headers = assert_error(res, 400, "invalid_request").await;
    assert!(headers
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("__Host-minigate_state=;")));
    // Another sign-in's state cookie (the attacker's own, say): 400.
    let (_, other_cookie) = start(&w, &format!("appid={WEB_APPID}")).await;
    assert_error(
        callback(&w, &back, Some(&other_cookie)).await,
        400,
        "invalid_request",
    )
    .await;
    // A forged cookie, and the state pasted into the cookie: 400.
    let state = query_param(&back, "state").unwrap();
    for forged in [
        state.clone(),
        "eyJhbGciOiJub25lIn0.eyJzdGF0ZSI6IngifQ.".to_owned(),
        format!("{state_cookie}x"),
    ] {
        assert_error(
            callback(&w, &back, Some(&forged)).await,
            400,
            "invalid_request",
        )
        .await;
    }
    // A state of the right cookie but changed in the URL: 400.
    let tampered = back.replace(&state, &"0".repeat(32));
    assert_error(
        callback(&w, &tampered, Some(&state_cookie)).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(
        w.wx.exchange_count(),
        0,
        "a code was exchanged for a bad state"
    );
    // The genuine pair signs in once; replayed, even with its cookie, 400.
    let res = callback(&w, &back, Some(&state_cookie)).await;
    assert_eq!(res.status(), 302);
    let res = callback(&w, &back, Some(&state_cookie)).await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    assert_eq!(w.wx.exchange_count(), 1);
    // The user declines: back without a code, 400.
    w.wx.next_code("deny");
    let (page, cookie) = start(&w, &format!("appid={WEB_APPID}")).await;
    let back = authorize(&w, &page).await;
    assert!(query_param(&back, "code").is_none());
    assert_error(
        callback(&w, &back, Some(&cookie)).await,
        400,
        "invalid_request",
    )
    .await;

    let text = scrape(&w).await;
    assert_eq!(
        series(&text, "minigate_web_logins_total{outcome=\"bad_state\"}"),
        6.0
    );
    assert_eq!(
        series(
            &text,
            "minigate_web_logins_total{outcome=\"replayed_state\"}"
        ),
        1.0
    );
    assert_eq!(
        series(&text, "minigate_web_logins_total{outcome=\"denied\"}"),
        1.0
    );
    assert_eq!(
        series(&text, "minigate_web_logins_total{outcome=\"ok\"}"),
        1.0
    );
}

#[tokio::test]
async fn open_redirects_are_refused() {
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;
    for bad in [
        "%2F%2Fevil.example",
        "%2F%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example%2F",
        "evil.example",
        "javascript%3Aalert(1)",
        "%2F%5Cevil.example",
        "%5C%5Cevil.example",
        "%2F%252F%252Fevil.example",
        "%2F%255Cevil.example",
        "%2F%2509%2Fevil.example",
        "%2F%0D%0ALocation%3A%20https%3A%2F%2Fevil.example",
        "%2F%09%2Fevil.example",
        "%2Fapp%2F..%2F..%2F%2Fevil.example",
        "%2Fapp%2F%252e%252e%2F",
        "%2F%E4%B8%AD",
        "%2F%20%2Fevil.example",
    ] {
        let res = w
            .http
            .get(format!(
                "{}/auth/web/login?appid={WEB_APPID}&redirect={bad}",
                w.base
            ))
            .send()
            .await
            .unwrap();
        assert!(
            res.headers().get("set-cookie").is_none(),
            "{bad}: a state was made"
        );
        assert_error(res, 400, "invalid_request").await;
    }
    // A parameter twice is refused rather than guessed at.
    let res = w
        .http
        .get(format!(
            "{}/auth/web/login?appid={WEB_APPID}&redirect=/app/&redirect=//evil.example",
            w.base
        ))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_request").await;
    // Same-origin paths land on the public origin, whatever Host said, with
    // a fragment of their own (else the browser would keep the authorize
    // page's `#wechat_redirect`).
    for (good, landing) in [
        ("", "/#"),
        ("%2Fapp%2Forders%3Fid%3D7%23top", "/app/orders?id=7#top"),
        ("%2Fapp%2F%25E4%25B8%25AD", "/app/%E4%B8%AD#"),
    ] {
        let query = if good.is_empty() {
            format!("appid={WEB_APPID}")
        } else {
            format!("appid={WEB_APPID}&redirect={good}")
        };
        let (page, cookie) = start(&w, &query).await;
        let back = authorize(&w, &page).await;
        let res = callback(&w, &back, Some(&cookie)).await;
        assert_eq!(res.status(), 302);
        assert_eq!(location(&res), format!("{}{landing}", w.base));
    }
}

#[tokio::test]
async fn cookie_requests_from_another_origin_are_refused() {
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;
    let s = sign_in(&w, WEB_APPID, "csrf-user").await;
    let port = w.gw.running.addr.port();
    let post = |origin: Option<String>, referer: Option<String>, cookie: String| {
        let mut req = w
            .http
            .post(format!("{}/app/orders", w.base))
            .header("cookie", cookie)
            .body("{}");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        req.send()
    };
    let refused = [
        (Some("https://evil.example".to_owned()), None),
        // Same site, another origin: SameSite lets the cookie through,
        // the origin check does not.
        (Some(format!("https://localhost:{}", port + 1)), None),
        (Some(format!("http://localhost:{port}")), None),
        (Some("null".to_owned()), Some(format!("{}/app/", w.base))),
        (None, Some("https://evil.example/page".to_owned())),
        (None, Some("not a url".to_owned())),
        (None, None),
    ];
    for (origin, referer) in refused.clone() {
        let res = post(origin.clone(), referer.clone(), s.access())
            .await
            .unwrap();
        assert_error(res, 403, "csrf_rejected").await;
    }
    assert!(
        w.pages.seen("POST", "/app/orders").is_empty(),
        "a forged request got through"
    );
    let text = scrape(&w).await;
    assert_eq!(
        series(
            &text,
            "minigate_csrf_refusals_total{reason=\"foreign_origin\"}"
        ),
        4.0
    );
    assert_eq!(
        series(&text, "minigate_csrf_refusals_total{reason=\"no_origin\"}"),
        3.0
    );
    // The gateway's own origin, by Origin or (without one) by Referer.
    for (origin, referer) in [
        (Some(w.base.clone()), None),
        (Some(w.base.to_uppercase()), None),
        (None, Some(format!("{}/app/page?x=1", w.base))),
    ] {
        let res = post(origin, referer, s.access()).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(w.pages.seen("POST", "/app/orders").len(), 3);
    // Safe methods need no origin; a bearer token is no ambient credential.
    let res = w
        .http
        .get(format!("{}/app/x", w.base))
        .header("cookie", s.access())
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = w
        .http
        .delete(format!("{}/app/x", w.base))
        .bearer_auth(&s.at)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A WebSocket handshake is a GET, but by cookie it must come from the
    // gateway's origin too (cross-site WebSocket hijacking).
    let root = reqwest::Certificate::from_pem(pki.ca.pem().as_bytes()).unwrap();
    let h1 = reqwest::Client::builder()
        .tls_certs_only([root])
        .resolve("localhost", "127.0.0.1:0".parse().unwrap())
        .http1_only()
        .build()
        .unwrap();
    let handshake = |origin: String| {
        h1.get(format!("{}/app/socket", w.base))
            .header("cookie", s.access())
            .header("origin", origin)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    let res = handshake(format!("https://localhost:{}", port + 1))
        .await
        .unwrap();
    assert_error(res, 403, "csrf_rejected").await;
    assert!(w.pages.seen("GET", "/app/socket").is_empty());
    let res = handshake(w.base.clone()).await.unwrap();
    assert_ne!(res.status(), 403);
    assert_eq!(w.pages.seen("GET", "/app/socket").len(), 1);
    // A cookie that is no token is a bad token; twice, malformed.
    let res = post(Some(w.base.clone()), None, "__Host-minigate_at=nope".into())
        .await
        .unwrap();
    assert_error(res, 401, "invalid_token").await;
    let res = post(
        Some(w.base.clone()),
        None,
        format!("{}; {}", s.access(), s.access()),
    )
    .await
    .unwrap();
    assert_error(res, 401, "invalid_token").await;

    // Forward-auth honours the cookie, with the same origin rule for the
    // original method.
    let verify = |method: &'static str, origin: &'static str| {
        w.http
            .get(format!("{}/auth/verify", w.base))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", "/app/orders")
            .header(
                "origin",
                if origin == "self" {
                    w.base.clone()
                } else {
                    origin.into()
                },
            )
            .header("cookie", s.access())
            .send()
    };
    let res = verify("POST", "self").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["x-auth-subject"],
        web_openid(WEB_APPID, "csrf-user").as_str()
    );
    assert_error(
        verify("POST", "https://evil.example").await.unwrap(),
        403,
        "csrf_rejected",
    )
    .await;
    assert_eq!(
        verify("GET", "https://evil.example")
            .await
            .unwrap()
            .status(),
        200
    );
    // A proxy does not pass the hop-by-hop Upgrade to its check; when it
    // says the original is a WebSocket handshake, the origin rule holds.
    for name in ["x-forwarded-upgrade", "x-original-upgrade"] {
        let ws = |origin: String| {
            w.http
                .get(format!("{}/auth/verify", w.base))
                .header("x-original-method", "GET")
                .header("x-original-uri", "/app/socket")
                .header(name, "websocket")
                .header("origin", origin)
                .header("cookie", s.access())
                .send()
        };
        let res = ws("https://evil.example".into()).await.unwrap();
        assert_error(res, 403, "csrf_rejected").await;
        assert_eq!(ws(w.base.clone()).await.unwrap().status(), 200, "{name}");
    }

    // With cookies = false the cookie authenticates nothing.
    let off = web_gateway(&pki, false, None).await;
    let s = sign_in(&off, WEB_APPID, "cookies-off").await;
    let res = get_with_cookie(&off, "/app/page", s.access()).await;
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn refresh_and_logout_by_cookie() {
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;
    let s = sign_in(&w, WEB_APPID, "refresh-user").await;
    let auth_post = |path: &str, cookie: String, origin: &str, body: &'static str| {
        w.http
            .post(format!("{}{path}", w.base))
            .header("cookie", cookie)
            .header("origin", origin)
            .body(body)
            .send()
    };
    // From another origin: refused, nothing rotated.
    let res = auth_post("/auth/refresh", s.refresh(), "https://evil.example", "")
        .await
        .unwrap();
    assert_error(res, 403, "csrf_rejected").await;
    // No body, the refresh cookie: new cookies, no token in the body.
    let res = auth_post("/auth/refresh", s.refresh(), &w.base, "")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let set = set_cookies(&res);
    let (at2, _) = cookie_of(&set, "__Host-minigate_at").unwrap();
    let (rt2, line) = cookie_of(&set, "__Secure-minigate_rt").unwrap();
    assert!(line.ends_with("Path=/auth/; Max-Age=2592000; HttpOnly; Secure; SameSite=Strict"));
    assert_ne!(rt2, s.rt);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 900);
    assert_eq!(
        body["openid"],
        web_openid(WEB_APPID, "refresh-user").as_str()
    );
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    let s2 = Session { at: at2, rt: rt2 };
    // The old refresh cookie again: reuse, the session ends, cookies cleared.
    let res = auth_post("/auth/refresh", s.refresh(), &w.base, "")
        .await
        .unwrap();
    let set = set_cookies(&res);
    assert_eq!(cookie_of(&set, "__Host-minigate_at").unwrap().0, "");
    assert_eq!(cookie_of(&set, "__Secure-minigate_rt").unwrap().0, "");
    assert_error(res, 400, "invalid_grant").await;
    let res = get_with_cookie(&w, "/app/page", s2.access()).await;
    assert_error(res, 401, "invalid_token").await;

    // Logout by cookie: 204, cookies cleared, the access cookie refused.
    let s = sign_in(&w, WEB_APPID, "logout-user").await;
    let res = auth_post("/auth/logout", s.refresh(), "https://evil.example", "")
        .await
        .unwrap();
    assert_error(res, 403, "csrf_rejected").await;
    let res = auth_post("/auth/logout", s.refresh(), &w.base, "")
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let set = set_cookies(&res);
    assert!(cookie_of(&set, "__Host-minigate_at")
        .unwrap()
        .1
        .contains("Max-Age=0"));
    assert!(cookie_of(&set, "__Secure-minigate_rt")
        .unwrap()
        .1
        .contains("Path=/auth/; Max-Age=0"));
    let res = get_with_cookie(&w, "/app/page", s.access()).await;
    assert_error(res, 401, "invalid_token").await;
    // Logging out again is still 204 (and clears again).
    let res = auth_post("/auth/logout", s.refresh(), &w.base, "")
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    // A body with the token keeps the JSON contract; without either, 400.
    let s = sign_in(&w, WEB_APPID, "json-user").await;
    let res = post_refresh(&w.http, &w.base, "/auth/refresh", &s.rt).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none());
    let res = w
        .http
        .post(format!("{}/auth/refresh", w.base))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_request").await;
    // Logout everywhere by cookie ends this user's other sessions too.
    let a = sign_in(&w, WEB_APPID, "union:everywhere-1").await;
    let b = sign_in(&w, PC_APPID, "union:everywhere-1").await;
    let res = auth_post(
        "/auth/logout",
        a.refresh(),
        &w.base,
        "{\"everywhere\": true}",
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    let res = get_with_cookie(&w, "/app/page", b.access()).await;
    assert_error(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn web_exchange_errors_map_like_the_mini_programs() {
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;
    for (code, status, error) in [
        ("err:40029", 400, "invalid_code"),
        ("err:40163", 400, "invalid_code"),
        ("err:45011", 429, "rate_limited"),
        ("err:40226", 403, "risky_user"),
        ("err:-1", 503, "provider_unavailable"),
        ("err:40125", 502, "provider_error"),
        ("notjson", 502, "provider_error"),
        ("slow", 504, "provider_timeout"),
    ] {
        w.wx.next_code(code);
        let (page, cookie) = start(&w, &format!("appid={WEB_APPID}")).await;
        let back = authorize(&w, &page).await;
        let res = callback(&w, &back, Some(&cookie)).await;
        assert!(cookie_of(&set_cookies(&res), "__Host-minigate_at").is_none());
        assert_error(res, status, error).await;
    }
    let text = scrape(&w).await;
    assert_eq!(
        series(&text, "minigate_web_logins_total{outcome=\"failed\"}"),
        8.0
    );
    assert_eq!(
        series(
            &text,
            "minigate_code_exchange_errors_total{platform=\"wechat_web\",error=\"invalid_code\"}"
        ),
        2.0
    );
    // The mini-program login never takes a web app.
    let res = w
        .http
        .post(format!("{}/auth/login", w.base))
        .body(format!("{{\"code\":\"x\",\"appid\":\"{WEB_APPID}\"}}"))
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_mini_program_and_a_web_sign_in_of_one_unionid_list_each_other() {
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;
    let mp = login_at(&w.http, &w.base, "union:U-shared-42").await;
    assert_eq!(mp.unionid.as_deref(), Some("U-shared-42"));
    let web = sign_in(&w, WEB_APPID, "union:U-shared-42").await;
    let pc = sign_in(&w, PC_APPID, "union:U-shared-42").await;
    let listed = |req: reqwest::RequestBuilder| async move {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        body["sessions"].as_array().unwrap().clone()
    };
    // By the mini-program's bearer token: all three, newest first.
    let by_bearer = listed(
        w.http
            .get(format!("{}/auth/sessions", w.base))
            .bearer_auth(&mp.access_token),
    )
    .await;
    let types: Vec<&str> = by_bearer
        .iter()
        .map(|s| s["device_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["pc", "web", "phone"]);
    assert_eq!(by_bearer[2]["current"], true);
    // By the web's access cookie: the same three, the web one current.
    let by_cookie = listed(
        w.http
            .get(format!("{}/auth/sessions", w.base))
            .header("cookie", web.access()),
    )
    .await;
    assert_eq!(by_cookie.len(), 3);
    assert_eq!(by_cookie[1]["device_type"], "web");
    assert_eq!(by_cookie[1]["current"], true);
    // The PC session ends from the phone, by sid; its cookie stops working.
    let pc_sid = by_bearer[0]["sid"].as_str().unwrap();
    let res = w
        .http
        .delete(format!("{}/auth/sessions/{pc_sid}", w.base))
        .bearer_auth(&mp.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = get_with_cookie(&w, "/app/page", pc.access()).await;
    assert_error(res, 401, "invalid_token").await;
    // DELETE by cookie is an unsafe method: the origin rule applies.
    let mp_sid = by_bearer[2]["sid"].as_str().unwrap();
    let res = w
        .http
        .delete(format!("{}/auth/sessions/{mp_sid}", w.base))
        .header("cookie", web.access())
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "csrf_rejected").await;
}

#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_used_state_is_refused_by_every_replica_sharing_redis() {
    let redis = Redis::start().await;
    let pki = Pki::new();
    let w = web_gateway(&pki, true, Some(redis.sessions())).await;
    // A second replica: same keys, same Redis, same public origin.
    let (page, cookie) = start(&w, &format!("appid={WEB_APPID}")).await;
    let back = authorize(&w, &page).await;
    let res = callback(&w, &back, Some(&cookie)).await;
    assert_eq!(res.status(), 302);
    let other = Setup {
        keys_dir: Some(w.gw.keys_dir.clone()),
        ..Setup::default()
    };
    let dir = tempfile::tempdir().unwrap();
    pki.issue(dir.path());
    let port = free_port();
    let replica = tls_gateway_with(
        &pki,
        dir.path(),
        None,
        Setup {
            listen: format!("127.0.0.1:{port}"),
            ..other
                .sessions(redis.sessions())
                .web(
                    crate::support::Web::default()
                        .public_url(w.base.clone())
                        .cookies(true),
                )
                .provider(web_provider("wechat_web", WEB_APPID, &w.wx))
        },
    )
    .await;
    let replayed = back.replace(
        &format!("localhost:{}", w.gw.running.addr.port()),
        &format!("localhost:{}", replica.running.addr.port()),
    );
    let res = callback(&w, &replayed, Some(&cookie)).await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    assert_eq!(w.wx.exchange_count(), 1);
}

/// The whole flow in headless Chromium: sign-in through the redirects,
/// the cookies held by the browser (HttpOnly, out of script's reach), the
/// upstream's page showing who signed in, a same-origin `fetch` POST
/// accepted, the same POST from a page of another origin refused, refresh
/// and logout by cookie from the page.
#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_real_browser_signs_in_and_only_its_own_origin_may_post() {
    let started = Instant::now();
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;
    // Another origin of the same site (another port of localhost), served
    // through a second gateway whose public route reaches the same pages.
    let other_dir = tempfile::tempdir().unwrap();
    let other_spki = pki.issue_spki(other_dir.path());
    let other = tls_gateway_with(
        &pki,
        other_dir.path(),
        None,
        Setup {
            routes: vec![Route::public("/evil/").upstream(w.pages.addr)],
            ..Setup::default()
        },
    )
    .await;
    let b = browser(&format!("{},{other_spki}", w.spki)).await;
    let c = &b.client;

    w.wx.next_code("union:browser-person");
    c.goto(&format!(
        "{}/auth/web/login?appid={WEB_APPID}&redirect=/app/page",
        w.base
    ))
    .await
    .unwrap();
    // Redirected through the authorize page and the callback, landed on
    // the upstream's page, which names the signed-in user.
    assert_eq!(
        b.text_of("who").await,
        web_openid(WEB_APPID, "union:browser-person")
    );
    assert_eq!(b.text_of("device").await, "web");
    assert_eq!(b.text_of("unionid").await, "browser-person");
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{}/app/page#", w.base)
    );
    // The browser holds the session cookies as the contract sets them; the
    // state cookie is gone, and script sees none of them.
    let cookies = c.get_all_cookies().await.unwrap();
    let names: Vec<&str> = cookies.iter().map(|c| c.name()).collect();
    assert!(names.contains(&"__Host-minigate_at"), "{names:?}");
    assert!(!names.contains(&"__Host-minigate_state"), "{names:?}");
    let at = cookies
        .iter()
        .find(|c| c.name() == "__Host-minigate_at")
        .unwrap();
    assert_eq!((at.http_only(), at.secure()), (Some(true), Some(true)));
    assert_eq!(format!("{:?}", at.same_site()), "Some(Lax)");
    assert_eq!(b.run("return document.cookie;").await, "");

    // A same-origin fetch POST with the cookies: accepted, and the upstream
    // gets the identity but none of minigate's cookies.
    let status = b
        .run("const r = await fetch('/app/api/echo', {method: 'POST', credentials: 'include', body: 'same origin'}); return r.status;")
        .await;
    assert_eq!(status, 200);
    let seen = w.pages.seen("POST", "/app/api/echo");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_ref(), b"same origin");
    assert_eq!(
        seen[0].headers["x-auth-subject"],
        web_openid(WEB_APPID, "union:browser-person").as_str()
    );
    assert!(seen[0]
        .headers
        .get("cookie")
        .is_none_or(|c| !c.to_str().unwrap().contains("minigate")));
    assert_eq!(seen[0].headers["origin"], w.base.as_str());

    // A page of another origin (same site: its requests carry the Lax
    // cookie) POSTs to the app: the gateway refuses it, the upstream never
    // sees it.
    let target = format!("{}/app/api/echo", w.base);
    c.goto(&format!(
        "https://localhost:{}/evil/attack.html?target={}",
        other.running.addr.port(),
        target.replace(':', "%3A").replace('/', "%2F")
    ))
    .await
    .unwrap();
    assert_eq!(b.wait_change("sent", "pending").await, "sent");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(&w).await;
        if series(
            &text,
            "minigate_csrf_refusals_total{reason=\"foreign_origin\"}",
        ) >= 1.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cross-origin POST never reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        w.pages.seen("POST", "/app/api/echo").len(),
        1,
        "a cross-origin POST got through"
    );

    // Back on the app: refresh and logout by cookie from the page.
    c.goto(&format!("{}/app/page", w.base)).await.unwrap();
    assert_eq!(b.text_of("device").await, "web");
    let refreshed = b
        .run("const r = await fetch('/auth/refresh', {method: 'POST', credentials: 'include'}); return [r.status, await r.text()];")
        .await;
    assert_eq!(refreshed[0], 200, "{refreshed}");
    assert!(
        !refreshed[1].as_str().unwrap().contains("eyJ"),
        "a token reached the page"
    );
    let new_at = c.get_named_cookie("__Host-minigate_at").await.unwrap();
    assert_ne!(new_at.value(), at.value());
    let out = b
        .run("const r = await fetch('/auth/logout', {method: 'POST', credentials: 'include'}); return r.status;")
        .await;
    assert_eq!(out, 204);
    let names: Vec<String> = c
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("minigate")), "{names:?}");
    let status = b
        .run("const r = await fetch('/app/page', {credentials: 'include'}); return r.status;")
        .await;
    assert_eq!(status, 401);
    eprintln!("browser flow took {:?}", started.elapsed());
    b.close().await;
}

/// `serve --dev` on plain http://127.0.0.1, clicked through in Chromium:
/// its stand-in's authorize page, the `Allow` button, the demo upstream
/// reached with the access cookie. Chromium keeps `Secure` and `__Host-`
/// cookies for http://127.0.0.1 (a potentially trustworthy origin), which
/// is what makes the contract's cookies work in development without TLS.
#[tokio::test]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn serve_dev_offers_the_web_sign_in_on_loopback_http() {
    use std::io::BufRead as _;
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let walkthrough: String = lines
        .by_ref()
        .take_while(|l| !l.as_ref().unwrap().starts_with("### end"))
        .map(|l| l.unwrap() + "\n")
        .collect();
    std::thread::spawn(move || lines.for_each(drop));
    assert!(walkthrough.contains("### walkthrough"), "{walkthrough}");
    let base = format!("http://127.0.0.1:{port}");
    let b = browser("").await;
    let c = &b.client;
    c.goto(&format!("{base}/auth/web/login?redirect=/api/hello"))
        .await
        .unwrap();
    let code = c.find(fantoccini::Locator::Id("code")).await.unwrap();
    code.clear().await.unwrap();
    code.send_keys("alice").await.unwrap();
    c.find(fantoccini::Locator::Id("allow"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_url(&reqwest::Url::parse(&format!("{base}/api/hello#")).unwrap())
        .await
        .unwrap();
    let shown: serde_json::Value = serde_json::from_str(
        &c.find(fantoccini::Locator::Css("body"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(shown["authenticated"], true, "{shown}");
    assert_eq!(shown["identity"]["x-auth-platform"], "wechat_web");
    assert_eq!(shown["identity"]["x-auth-device-type"], "web");
    assert!(shown["identity"]["x-auth-unionid"]
        .as_str()
        .unwrap()
        .starts_with("dev-unionid-"));
    b.close().await;
}

/// The binary at `RUST_LOG=trace` through a whole web sign-in, a cookie
/// request, a refresh and a logout by cookie: its logs hold neither the web
/// app's secret, nor WeChat's access token, nor a token or the signed state
/// of the gateway's own, nor the state or the code.
#[tokio::test]
async fn logs_carry_no_web_secret_token_or_state_even_at_trace_level() {
    let wx = web_wechat().await;
    let mini = wechat().await;
    let up = upstream().await;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("web-secret");
    std::fs::write(&secret_file, WEB_SECRET).unwrap();
    let public = "http://127.0.0.1:1";
    let setup = Setup::default()
        .web(
            crate::support::Web::default()
                .public_url(public.into())
                .cookies(true),
        )
        .provider(
            Provider::default()
                .platform("wechat_web")
                .appid(WEB_APPID)
                .secret_file(&secret_file)
                .base_url(wx.url())
                .authorize_url(wx.url()),
        );
    let gw = spawn_binary_with(&setup, mini.addr, up.addr, "trace").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    wx.next_code("union:trace-person");
    let res = http
        .get(format!("{}/auth/web/login?redirect=/api/x", gw.url))
        .send()
        .await
        .unwrap();
    let state_cookie = cookie_of(&set_cookies(&res), "__Host-minigate_state")
        .unwrap()
        .0;
    let back = http.get(location(&res)).send().await.unwrap();
    let back = location(&back);
    // The callback as public_url names it, on the port the binary serves.
    let back = back.replace(public, &gw.url);
    let state = query_param(&back, "state").unwrap();
    let res = http
        .get(&back)
        .header("cookie", format!("__Host-minigate_state={state_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let set = set_cookies(&res);
    let s = Session {
        at: cookie_of(&set, "__Host-minigate_at").unwrap().0,
        rt: cookie_of(&set, "__Secure-minigate_rt").unwrap().0,
    };
    let res = http
        .post(format!("{}/api/x", gw.url))
        .header("cookie", s.access())
        .header("origin", public)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .post(format!("{}/auth/refresh", gw.url))
        .header("cookie", s.refresh())
        .header("origin", public)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rt = cookie_of(&set_cookies(&res), "__Secure-minigate_rt")
        .unwrap()
        .0;
    let res = http
        .post(format!("{}/auth/logout", gw.url))
        .header("cookie", format!("__Secure-minigate_rt={rt}"))
        .header("origin", public)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let logs = gw.stop();
    assert!(logs.contains("web sign-in"), "the trace logs are empty?");
    for (secret, what) in [
        (WEB_SECRET, "the web app secret"),
        (WX_WEB_TOKEN, "WeChat's access token"),
        ("eyJ", "a token or the signed state"),
        (state.as_str(), "the state"),
        ("union:trace-person", "the code"),
        ("access_token?", "the exchange URL"),
    ] {
        assert!(!logs.contains(secret), "{what} in the logs");
    }
}

/// `config check` says what `[web]` and a web provider mean.
#[test]
fn config_check_shows_the_web_sign_in() {
    let keys = key_dir(jwks::Alg::ES256);
    let setup = Setup::default()
        .web(
            crate::support::Web::default()
                .public_url("https://App.Example.com".into())
                .cookies(true),
        )
        .provider(Provider::new("wechat_pc", "wxpc", "TEST_WEB_SECRET"));
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let text = config_text(&setup, keys.path(), addr, addr, "127.0.0.1:8080");
    let cfg = keys.path().join("minigate.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .env("TEST_WECHAT_SECRET", SECRET)
        .env("TEST_WEB_SECRET", WEB_SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("provider  wechat_pc wxpc via https://api.weixin.qq.com"),
        "{stdout}"
    );
    assert!(
        stdout.contains("browser sign-in, authorize page at https://open.weixin.qq.com"),
        "{stdout}"
    );
    assert!(stdout.contains("web       public origin https://app.example.com; callback https://app.example.com/auth/web/callback; access cookie on proxied routes: accepted"), "{stdout}");
    assert!(!stdout.contains(WEB_SECRET));
}

/// The audit lines of this thread's gateway: a subscriber that keeps each
/// `minigate::audit` event's line (the test runtime runs the in-process
/// gateway's tasks on the test's own thread).
#[derive(Clone, Default)]
struct AuditLines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AuditLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Line<'a>(&'a AuditLines);
        impl tracing::field::Visit for Line<'_> {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "line" {
                    self.0 .0.lock().unwrap().push(value.to_owned());
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        if event.metadata().target() == minigate::telemetry::audit::TARGET {
            event.record(&mut Line(self));
        }
    }
}

/// A web sign-in is a `login` audit event like a mini-program's, every
/// field checked.
#[tokio::test]
async fn a_web_sign_in_is_an_audited_login() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let lines = AuditLines::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(lines.clone()));
    let pki = Pki::new();
    let w = web_gateway(&pki, true, None).await;
    // Other tests' gateways, on other threads with no subscriber, may have
    // registered the audit callsites as this one's subscriber was being
    // set: tracing-core can then keep them at "never" for every thread (a
    // race between a callsite's registration and a dispatcher's). Asking
    // every live subscriber again, long after both, settles it.
    tracing::callsite::rebuild_interest_cache();
    let s = sign_in(&w, WEB_APPID, "audit-web").await;
    let sid = claims(&s.at)["sid"].as_str().unwrap().to_owned();
    let logins: Vec<serde_json::Value> = lines
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == "login")
        .collect();
    assert_eq!(logins.len(), 1, "{logins:?}");
    let mut login = logins[0].clone();
    assert!(login["ts"].as_str().unwrap().ends_with('Z'));
    login.as_object_mut().unwrap().remove("ts");
    assert_eq!(
        login,
        serde_json::json!({"target": "minigate::audit", "v": 1, "event": "login",
            "platform": "wechat_web", "appid": WEB_APPID, "device_type": "web",
            "user": web_openid(WEB_APPID, "audit-web"), "sid": sid, "client": "127.0.0.1",
            "retried": false})
    );
}
