//! The fault scenarios' load generator (benches/faults.sh): a steady mix
//! of proxied requests, logins and refreshes, with every answer counted by
//! status each second, so that a fault shows as which requests failed, how
//! and for how long. wrk counts statuses but cannot chain a login's or a
//! refresh's tokens into later requests, nor tell a refused connection from
//! a timeout or a cut one.
//!
//! ```text
//! mixload run --gw URL [--gw URL...] [--rate 200] [--mix 8:1:1] [--seconds 60]
//!             [--timeout-ms 5000] [--path /api/load] [--users 50] [--out PREFIX]
//! mixload check --gw A --gw B [--path P]   reuse detection and revocation across A and B
//! mixload login GW                          a new session: access and refresh token, a line each
//! mixload refresh GW REFRESH                the status of one refresh
//! mixload await GW TOKEN STATUS MS [PATH]   polls GET PATH with TOKEN until STATUS; the ms it took
//! mixload upstream ADDR [DELAY_MS]          an upstream answering `200 ok` after DELAY_MS
//! mixload delay LISTEN TARGET FILE          a TCP relay holding each chunk back the ms in FILE
//! ```
//!
//! `delay` stands in for `tc netem delay` where the kernel has no netem: it
//! relays every connection to TARGET and holds each chunk, in each
//! direction, for the number of milliseconds FILE holds when the chunk
//! arrives (re-read every 100 ms), keeping the chunks' order.
//!
//! `run` is open-loop: requests start at `--rate` per second whatever the
//! answers (a stalled gateway shows as timeouts, not as a slower client),
//! in the proportions of `--mix` (proxied:login:refresh), round-robin over
//! the gateways. Logins use codes never sent before (the stand-in platform
//! makes one user per code); a refresh redeems a refresh token a login or
//! an earlier refresh returned, at least 7 s old, so that no session passes
//! the 10 refreshes a minute; a token whose refresh failed with 503, 429 or
//! no answer goes back in the queue, as a client would retry it. It writes
//! PREFIX.csv (a row per second and kind: the answers by status, timeouts,
//! refused connections, other transport errors, the slowest answer) and
//! PREFIX.json (the totals, the failures and the first and last second
//! with one, and the 503s without `Retry-After`).

use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Proxy,
    Login,
    Refresh,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Proxy, Kind::Login, Kind::Refresh];
    fn name(self) -> &'static str {
        match self {
            Kind::Proxy => "proxy",
            Kind::Login => "login",
            Kind::Refresh => "refresh",
        }
    }
}

/// What became of one request.
enum Outcome {
    /// A status, and whether a 503 carried `Retry-After`.
    Status(u16, bool),
    Timeout,
    /// The connection was refused (or never made).
    Connect,
    /// Cut or reset after it was made.
    Transport,
}

/// One second's answers of one kind.
#[derive(Default, Clone)]
struct Counts {
    status: BTreeMap<u16, u64>,
    no_retry_after: u64,
    timeout: u64,
    connect: u64,
    transport: u64,
    max_ms: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.status.values().sum::<u64>() + self.timeout + self.connect + self.transport
    }
    fn failed(&self) -> u64 {
        self.total() - self.status.get(&200).copied().unwrap_or(0)
    }
    fn add(&mut self, o: &Counts) {
        for (s, n) in &o.status {
            *self.status.entry(*s).or_default() += n;
        }
        self.no_retry_after += o.no_retry_after;
        self.timeout += o.timeout;
        self.connect += o.connect;
        self.transport += o.transport;
        self.max_ms = self.max_ms.max(o.max_ms);
    }
    fn status(&self, s: u16) -> u64 {
        self.status.get(&s).copied().unwrap_or(0)
    }
}

fn unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

struct Tokens {
    access: String,
    refresh: String,
}

fn tokens_of(body: &[u8]) -> Option<Tokens> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some(Tokens {
        access: v["access_token"].as_str()?.to_owned(),
        refresh: v["refresh_token"].as_str()?.to_owned(),
    })
}

/// Sends one request; its outcome, the body of a 200, and the time taken.
async fn send(req: reqwest::RequestBuilder) -> (Outcome, Option<Vec<u8>>, u64) {
    let t0 = Instant::now();
    let res = req.send().await;
    let (outcome, body) = match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after = res.headers().contains_key("retry-after");
            match res.bytes().await {
                Ok(b) => (
                    Outcome::Status(status, retry_after),
                    (status == 200).then(|| b.to_vec()),
                ),
                Err(e) if e.is_timeout() => (Outcome::Timeout, None),
                Err(_) => (Outcome::Transport, None),
            }
        }
        Err(e) if e.is_timeout() => (Outcome::Timeout, None),
        Err(e) if e.is_connect() => (Outcome::Connect, None),
        Err(_) => (Outcome::Transport, None),
    };
    let ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    (outcome, body, ms)
}

fn login_req(http: &reqwest::Client, gw: &str, code: &str) -> reqwest::RequestBuilder {
    http.post(format!("{gw}/auth/login"))
        .header("content-type", "application/json")
        .body(json!({ "code": code }).to_string())
}

fn refresh_req(
    http: &reqwest::Client,
    gw: &str,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    http.post(format!("{gw}{path}"))
        .header("content-type", "application/json")
        .body(json!({ "refresh_token": token }).to_string())
}

/// The shared state of a run.
struct Run {
    http: reqwest::Client,
    gws: Vec<String>,
    path: String,
    /// Access tokens the proxied requests use.
    pool: Mutex<Vec<String>>,
    /// Refresh tokens and when they were issued.
    queue: Mutex<VecDeque<(String, Instant)>>,
    counts: Mutex<BTreeMap<(u64, Kind), Counts>>,
    codes: AtomicU64,
    /// The pool's slot the next token replaces.
    slot: AtomicU64,
    tag: u128,
    skipped_refreshes: AtomicU64,
}

/// How old a refresh token must be before the run redeems it.
const REFRESH_AGE: Duration = Duration::from_secs(7);
/// Most refresh tokens kept waiting.
const QUEUE_MAX: usize = 100_000;

impl Run {
    fn record(&self, kind: Kind, outcome: &Outcome, ms: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let c = counts.entry((unix(), kind)).or_default();
        match outcome {
            Outcome::Status(s, ra) => {
                *c.status.entry(*s).or_default() += 1;
                if *s == 503 && !ra {
                    c.no_retry_after += 1;
                }
            }
            Outcome::Timeout => c.timeout += 1,
            Outcome::Connect => c.connect += 1,
            Outcome::Transport => c.transport += 1,
        }
        c.max_ms = c.max_ms.max(ms);
    }

    fn keep(&self, t: Tokens) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        // Each new token takes the place of the oldest: with a short
        // access_ttl no proxied request goes out with an expired one.
        let n = self.slot.fetch_add(1, Ordering::Relaxed) as usize;
        if pool.len() < 1000 {
            pool.push(t.access);
        } else {
            let i = n % pool.len();
            pool[i] = t.access;
        }
        drop(pool);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < QUEUE_MAX {
            q.push_back((t.refresh, Instant::now()));
        }
    }

    fn code(&self) -> String {
        let n = self.codes.fetch_add(1, Ordering::Relaxed);
        format!("ml-{}-{n}", self.tag)
    }

    async fn one(self: Arc<Self>, kind: Kind, gw: usize) {
        let gw = &self.gws[gw % self.gws.len()];
        match kind {
            Kind::Proxy => {
                let token = {
                    let pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                    let i = self.codes.load(Ordering::Relaxed) as usize ^ rand_index();
                    pool.get(i % pool.len().max(1)).cloned().unwrap_or_default()
                };
                let req = self
                    .http
                    .get(format!("{gw}{}", self.path))
                    .bearer_auth(token);
                let (o, _, ms) = send(req).await;
                self.record(kind, &o, ms);
            }
            Kind::Login => {
                let (o, body, ms) = send(login_req(&self.http, gw, &self.code())).await;
                self.record(kind, &o, ms);
                if let Some(t) = body.as_deref().and_then(tokens_of) {
                    self.keep(t);
                }
            }
            Kind::Refresh => {
                let token = {
                    let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                    match q.front() {
                        Some((_, at)) if at.elapsed() >= REFRESH_AGE => q.pop_front(),
                        _ => None,
                    }
                };
                let Some((token, at)) = token else {
                    self.skipped_refreshes.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let (o, body, ms) =
                    send(refresh_req(&self.http, gw, "/auth/refresh", &token)).await;
                self.record(kind, &o, ms);
                match (&o, body.as_deref().and_then(tokens_of)) {
                    (_, Some(t)) => self.keep(t),
                    (
                        Outcome::Status(503 | 429, _)
                        | Outcome::Timeout
                        | Outcome::Connect
                        | Outcome::Transport,
                        _,
                    ) => {
                        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                        q.push_back((token, at));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A cheap varying index (the proxied requests spread over the pool).
fn rand_index() -> usize {
    static X: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = X.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    X.store(x, Ordering::Relaxed);
    x as usize
}

struct Args {
    gws: Vec<String>,
    rate: u64,
    mix: [u64; 3],
    seconds: u64,
    timeout: Duration,
    path: String,
    users: usize,
    out: Option<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        gws: Vec::new(),
        rate: 200,
        mix: [8, 1, 1],
        seconds: 60,
        timeout: Duration::from_secs(5),
        path: "/api/load".into(),
        users: 50,
        out: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--gw" => a.gws.push(v.trim_end_matches('/').to_owned()),
            "--rate" => a.rate = num()?.max(1),
            "--seconds" => a.seconds = num()?,
            "--timeout-ms" => a.timeout = Duration::from_millis(num()?),
            "--users" => a.users = num()? as usize,
            "--path" => a.path = v.clone(),
            "--out" => a.out = Some(v.clone()),
            "--mix" => {
                let parts: Vec<u64> = v.split(':').filter_map(|p| p.parse().ok()).collect();
                let [p, l, r] = parts[..] else {
                    return Err("--mix is proxied:login:refresh".into());
                };
                a.mix = [p, l, r];
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.gws.is_empty() {
        return Err("at least one --gw".into());
    }
    if a.mix.iter().sum::<u64>() == 0 {
        return Err("--mix sums to 0".into());
    }
    Ok(a)
}

fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    // reqwest is built with the gateway's rustls features: it needs ring
    // installed as the provider even for plain HTTP.
    minigate::crypto::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| format!("client: {e}"))
}

async fn run(a: Args) -> Result<(), String> {
    let run = Arc::new(Run {
        http: client(a.timeout)?,
        gws: a.gws.clone(),
        path: a.path.clone(),
        pool: Mutex::new(Vec::new()),
        queue: Mutex::new(VecDeque::new()),
        counts: Mutex::new(BTreeMap::new()),
        codes: AtomicU64::new(0),
        slot: AtomicU64::new(0),
        tag: unix_ms(),
        skipped_refreshes: AtomicU64::new(0),
    });
    // The first sessions, for the first proxied requests and refreshes.
    for i in 0..a.users {
        let gw = &a.gws[i % a.gws.len()];
        let mut done = false;
        for _ in 0..50 {
            let (_, body, _) = send(login_req(&run.http, gw, &run.code())).await;
            if let Some(t) = body.as_deref().and_then(tokens_of) {
                run.keep(t);
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !done {
            return Err(format!("no login at {gw}"));
        }
    }
    let start = unix();
    eprintln!("mixload: {} req/s for {} s from {start}", a.rate, a.seconds);
    let total: u64 = a.mix.iter().sum();
    let period = Duration::from_nanos(1_000_000_000 / a.rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let end = Instant::now() + Duration::from_secs(a.seconds);
    let mut n: u64 = 0;
    let mut last_report = unix();
    while Instant::now() < end {
        tick.tick().await;
        let slot = n % total;
        let kind = if slot < a.mix[0] {
            Kind::Proxy
        } else if slot < a.mix[0] + a.mix[1] {
            Kind::Login
        } else {
            Kind::Refresh
        };
        tasks.spawn(run.clone().one(kind, n as usize));
        n += 1;
        while tasks.try_join_next().is_some() {}
        if unix() >= last_report + 5 {
            last_report = unix();
            report_progress(&run, last_report - 1);
        }
    }
    while tasks.join_next().await.is_some() {}
    let counts = run.counts.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let summary = summarize(
        &counts,
        start,
        run.skipped_refreshes.load(Ordering::Relaxed),
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    if let Some(out) = a.out {
        std::fs::write(format!("{out}.json"), format!("{summary:#}\n"))
            .map_err(|e| format!("{out}.json: {e}"))?;
        std::fs::write(format!("{out}.csv"), csv(&counts, start))
            .map_err(|e| format!("{out}.csv: {e}"))?;
    }
    Ok(())
}

fn report_progress(run: &Run, second: u64) {
    let counts = run.counts.lock().unwrap_or_else(|p| p.into_inner());
    let line: Vec<String> = Kind::ALL
        .iter()
        .map(|k| {
            let c = counts.get(&(second, *k)).cloned().unwrap_or_default();
            format!("{} {}/{}", k.name(), c.total() - c.failed(), c.total())
        })
        .collect();
    eprintln!("mixload {second}: {}", line.join("  "));
}

/// The statuses the CSV has a column for; any other is under `other`.
const COLUMNS: [u16; 7] = [200, 400, 401, 429, 500, 502, 503];

fn csv(counts: &BTreeMap<(u64, Kind), Counts>, start: u64) -> String {
    let mut out = String::from("t,second,kind,total,");
    for s in COLUMNS {
        out.push_str(&format!("s{s},"));
    }
    out.push_str("other,s503_no_retry_after,timeout,connect,transport,max_ms\n");
    for ((t, kind), c) in counts {
        out.push_str(&format!(
            "{t},{},{},{},",
            t.saturating_sub(start),
            kind.name(),
            c.total()
        ));
        for s in COLUMNS {
            out.push_str(&format!("{},", c.status(s)));
        }
        let other: u64 = c
            .status
            .iter()
            .filter(|(s, _)| !COLUMNS.contains(s))
            .map(|(_, n)| n)
            .sum();
        out.push_str(&format!(
            "{other},{},{},{},{},{}\n",
            c.no_retry_after, c.timeout, c.connect, c.transport, c.max_ms
        ));
    }
    out
}

fn summarize(counts: &BTreeMap<(u64, Kind), Counts>, start: u64, skipped: u64) -> Value {
    let mut kinds = serde_json::Map::new();
    for kind in Kind::ALL {
        let mut all = Counts::default();
        let mut first = None;
        let mut last = None;
        for ((t, k), c) in counts {
            if *k != kind {
                continue;
            }
            all.add(c);
            if c.failed() > 0 {
                first.get_or_insert(*t);
                last = Some(*t);
            }
        }
        let status: serde_json::Map<String, Value> = all
            .status
            .iter()
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect();
        kinds.insert(
            kind.name().into(),
            json!({
                "total": all.total(),
                "failed": all.failed(),
                "status": status,
                "s500": all.status(500),
                "s503": all.status(503),
                "s503_no_retry_after": all.no_retry_after,
                "timeout": all.timeout,
                "connect": all.connect,
                "transport": all.transport,
                "max_ms": all.max_ms,
                "first_failure": first,
                "last_failure": last,
                "window_s": first.zip(last).map(|(f, l)| l - f + 1).unwrap_or(0),
            }),
        );
    }
    json!({ "start": start, "skipped_refreshes": skipped, "kinds": kinds })
}

/// Logs in at `gw` with a new code, retrying 503s for up to 10 s.
async fn new_session(http: &reqwest::Client, gw: &str) -> Result<Tokens, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let code = format!("ml-check-{}-{}", unix_ms(), rand_index());
        let (o, body, _) = send(login_req(http, gw, &code)).await;
        if let Some(t) = body.as_deref().and_then(tokens_of) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            return Err(format!("no login at {gw}: {}", describe(&o)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Status(s, _) => s.to_string(),
        Outcome::Timeout => "timeout".into(),
        Outcome::Connect => "refused".into(),
        Outcome::Transport => "cut".into(),
    }
}

/// A refresh at `gw`, retrying 503s for up to 10 s: its status and tokens.
async fn refresh_once(http: &reqwest::Client, gw: &str, token: &str) -> (String, Option<Tokens>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (o, body, _) = send(refresh_req(http, gw, "/auth/refresh", token)).await;
        let retry = matches!(
            o,
            Outcome::Status(503, _) | Outcome::Timeout | Outcome::Transport
        );
        if !retry || Instant::now() > deadline {
            return (describe(&o), body.as_deref().and_then(tokens_of));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `GET gw path` with `token` until it answers `want`: the ms it
/// took, or None past `within`.
async fn await_status(
    http: &reqwest::Client,
    gw: &str,
    path: &str,
    token: &str,
    want: u16,
    within: Duration,
) -> Option<u128> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        let (o, _, _) = send(http.get(format!("{gw}{path}")).bearer_auth(token)).await;
        if matches!(o, Outcome::Status(s, _) if s == want) {
            return Some(t0.elapsed().as_millis());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Reuse detection and revocation across two gateways: a refresh token
/// redeemed at A and then again at B must be refused and end the session
/// (its next token refused too, its access token refused at B within
/// seconds); a logout at A must reach B.
async fn check(a: Args) -> Result<Value, String> {
    let http = client(a.timeout)?;
    let (ga, gb) = match &a.gws[..] {
        [one] => (one.clone(), one.clone()),
        [x, y, ..] => (x.clone(), y.clone()),
        [] => return Err("check needs --gw".into()),
    };
    let within = Duration::from_secs(10);
    let first = new_session(&http, &ga).await?;
    let (st, second) = refresh_once(&http, &ga, &first.refresh).await;
    let second = second.ok_or(format!("refresh at A: {st}"))?;
    let (reuse, _) = refresh_once(&http, &gb, &first.refresh).await;
    let (after, _) = refresh_once(&http, &ga, &second.refresh).await;
    let reuse_ms = await_status(&http, &gb, &a.path, &second.access, 401, within).await;
    let other = new_session(&http, &ga).await?;
    let (logout, _) = {
        let deadline = Instant::now() + within;
        loop {
            let (o, _, _) = send(refresh_req(&http, &ga, "/auth/logout", &other.refresh)).await;
            if !matches!(o, Outcome::Status(503, _)) || Instant::now() > deadline {
                break (describe(&o), ());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let logout_ms = await_status(&http, &gb, &a.path, &other.access, 401, within).await;
    let ok = reuse == "400"
        && after == "400"
        && reuse_ms.is_some()
        && logout == "204"
        && logout_ms.is_some();
    Ok(json!({
        "ok": ok,
        "reuse_at_b": reuse,
        "next_token_after_reuse": after,
        "reuse_revocation_seen_at_b_ms": reuse_ms,
        "logout_at_a": logout,
        "logout_seen_at_b_ms": logout_ms,
    }))
}

/// An upstream on `addr` answering every request `200 ok` after `delay`
/// (HTTP/1.1 keep-alive; requests without bodies, as the load sends).
async fn upstream(addr: &str, delay: Duration) -> Result<(), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(4096);
            let mut chunk = [0u8; 4096];
            loop {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let end = buf
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(buf.len(), |p| p + 4);
                buf.drain(..end);
                tokio::time::sleep(delay).await;
                let answer =
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                if s.write_all(answer).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Relays `from` to `to`, each chunk sent `delay` after it arrived.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at.into()).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = Instant::now() + Duration::from_millis(delay.load(Ordering::Relaxed));
                if tx.send((at, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The `delay` relay (see the module's doc).
async fn delay_relay(listen: &str, target: &str, file: &str) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("{listen}: {e}"))?;
    let delay = Arc::new(AtomicU64::new(0));
    {
        let (delay, file) = (delay.clone(), file.to_owned());
        tokio::spawn(async move {
            loop {
                if let Ok(text) = tokio::fs::read_to_string(&file).await {
                    if let Ok(ms) = text.trim().parse() {
                        delay.store(ms, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let (target, delay) = (target.to_owned(), delay.clone());
        tokio::spawn(async move {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(
                delayed_copy(cr, sw, delay.clone()),
                delayed_copy(sr, cw, delay)
            );
        });
    }
}

async fn main_async(args: Vec<String>) -> Result<(), String> {
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("run") => run(parse(rest)?).await,
        Some("check") => {
            let v = check(parse(rest)?).await?;
            println!("{v:#}");
            if v["ok"] == json!(true) {
                Ok(())
            } else {
                Err("check failed".into())
            }
        }
        Some("login") => {
            let gw = rest.first().ok_or("login GW")?;
            let t = new_session(&client(Duration::from_secs(5))?, gw).await?;
            println!("{}\n{}", t.access, t.refresh);
            Ok(())
        }
        Some("refresh") => {
            let (Some(gw), Some(token)) = (rest.first(), rest.get(1)) else {
                return Err("refresh GW TOKEN".into());
            };
            let (status, _) = refresh_once(&client(Duration::from_secs(5))?, gw, token).await;
            println!("{status}");
            Ok(())
        }
        Some("await") => {
            let (Some(gw), Some(token), Some(want), Some(ms)) =
                (rest.first(), rest.get(1), rest.get(2), rest.get(3))
            else {
                return Err("await GW TOKEN STATUS MS [PATH]".into());
            };
            let want: u16 = want.parse().map_err(|_| "STATUS")?;
            let ms: u64 = ms.parse().map_err(|_| "MS")?;
            let path = rest.get(4).map_or("/api/load", String::as_str);
            let http = client(Duration::from_secs(5))?;
            match await_status(&http, gw, path, token, want, Duration::from_millis(ms)).await {
                Some(took) => {
                    println!("{took}");
                    Ok(())
                }
                None => Err(format!("no {want} within {ms} ms")),
            }
        }
        Some("upstream") => {
            let addr = rest.first().ok_or("upstream ADDR [DELAY_MS]")?;
            let delay = rest.get(1).and_then(|d| d.parse().ok()).unwrap_or(0);
            upstream(addr, Duration::from_millis(delay)).await
        }
        Some("delay") => {
            let (Some(listen), Some(target), Some(file)) = (rest.first(), rest.get(1), rest.get(2))
            else {
                return Err("delay LISTEN TARGET FILE".into());
            };
            delay_relay(listen, target, file).await
        }
        _ => Err(
            "usage: mixload run|check|login|refresh|await|upstream|delay ... (see the source)"
                .into(),
        ),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mixload: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(main_async(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mixload: {e}");
            ExitCode::FAILURE
        }
    }
}
