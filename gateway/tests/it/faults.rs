//! Faults under load (the quick ones of benches/faults.sh): a Redis Cluster
//! master killed so that its replica takes over, a gateway replica killed
//! behind nginx, SIGTERM. Load runs through each: proxied requests, logins
//! and a refresh of each login's session. What must hold: no proxied
//! request fails, a login or refresh that fails is a 503 with
//! `Retry-After` (never a 500, never a hang), and afterwards reuse
//! detection and revocation work across the replicas. Time is bounded only
//! generously, to catch a hang; how long each fault lasts is measured by
//! the script, not asserted here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

/// No answer within this is a hang.
const HANG: Duration = Duration::from_secs(8);
/// The contract's bound on a revocation reaching every replica.
const WITHIN: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Proxied,
    Login,
    Refresh,
}

#[derive(Debug)]
enum Outcome {
    /// A status, and whether it carried `Retry-After`.
    Status(u16, bool),
    Hang,
    Refused,
    Cut,
}

#[derive(Debug)]
struct Answer {
    kind: Kind,
    started: Instant,
    outcome: Outcome,
}

/// Load on some gateways until stopped: each worker in turn a proxied
/// request, a login with a new code, another proxied request and a refresh
/// of that login's session, round-robin over the gateways.
struct Load {
    stop: Arc<AtomicBool>,
    logins: Arc<AtomicU64>,
    workers: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

async fn send(req: reqwest::RequestBuilder) -> (Outcome, Option<Tokens>) {
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after = res.headers().contains_key("retry-after");
            match res.bytes().await {
                Ok(body) => (
                    Outcome::Status(status, retry_after),
                    serde_json::from_slice(&body).ok(),
                ),
                Err(e) if e.is_timeout() => (Outcome::Hang, None),
                Err(_) => (Outcome::Cut, None),
            }
        }
        Err(e) if e.is_timeout() => (Outcome::Hang, None),
        Err(e) if e.is_connect() => (Outcome::Refused, None),
        Err(_) => (Outcome::Cut, None),
    }
}

impl Load {
    fn start(urls: Vec<String>, access: String, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let logins = Arc::new(AtomicU64::new(0));
        let http = reqwest::Client::builder().timeout(HANG).build().unwrap();
        let workers = (0..workers)
            .map(|w| {
                let (stop, logins, http) = (stop.clone(), logins.clone(), http.clone());
                let (urls, access) = (urls.clone(), access.clone());
                tokio::spawn(async move {
                    let mut answers = Vec::new();
                    let mut refresh: Option<String> = None;
                    let mut i = w;
                    while !stop.load(Ordering::Relaxed) {
                        let url = &urls[i % urls.len()];
                        let kind =
                            [Kind::Proxied, Kind::Login, Kind::Proxied, Kind::Refresh][i % 4];
                        let started = Instant::now();
                        let req = match kind {
                            Kind::Proxied => http.get(format!("{url}/api/x")).bearer_auth(&access),
                            Kind::Login => http
                                .post(format!("{url}/auth/login"))
                                .header("content-type", "application/json")
                                .body(login_body("fault", None).to_string()),
                            Kind::Refresh => match refresh.take() {
                                Some(t) => http
                                    .post(format!("{url}/auth/refresh"))
                                    .header("content-type", "application/json")
                                    .body(serde_json::json!({ "refresh_token": t }).to_string()),
                                None => {
                                    i += 1;
                                    continue;
                                }
                            },
                        };
                        let (outcome, tokens) = send(req).await;
                        if kind == Kind::Login {
                            if let Some(t) = tokens {
                                logins.fetch_add(1, Ordering::Relaxed);
                                refresh = Some(t.refresh_token);
                            }
                        }
                        answers.push(Answer {
                            kind,
                            started,
                            outcome,
                        });
                        i += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    answers
                })
            })
            .collect();
        Load {
            stop,
            logins,
            workers,
        }
    }

    /// Waits until `n` more logins than now have succeeded (the gateways
    /// serve logins again), failing the test past `within`.
    async fn logins_succeed(&self, n: u64, within: Duration, what: &str) {
        let from = self.logins.load(Ordering::Relaxed);
        eventually(what, within, || async {
            self.logins.load(Ordering::Relaxed) >= from + n
        })
        .await;
    }

    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for w in self.workers {
            all.extend(w.await.unwrap());
        }
        all
    }
}

/// What must hold of any load through a fault: no hang, no 500, every 503
/// with `Retry-After`, and no proxied request failed unless `excused`.
fn survived(answers: &[Answer], excused: impl Fn(&Answer) -> bool) {
    assert!(
        answers.iter().filter(|a| a.kind == Kind::Login).count() > 10,
        "too little load to say anything"
    );
    for a in answers {
        match a.outcome {
            Outcome::Status(200, _) => {}
            Outcome::Status(503, retry_after) if a.kind != Kind::Proxied => {
                assert!(retry_after, "a 503 without Retry-After: {a:?}");
            }
            _ if excused(a) => {}
            _ => panic!("not survived: {a:?}"),
        }
    }
}

async fn status(http: &reqwest::Client, base: &str, access: &str) -> u16 {
    http.get(format!("{base}/api/x"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Reuse detection and revocation across two gateways: a refresh token
/// redeemed at `a` and again at `b` is refused and ends the session
/// everywhere; a logout at `a` reaches `b` within the contract's bound.
async fn revocation_works_across(http: &reqwest::Client, a: &str, b: &str) {
    let first = login_at(http, a, &fresh("after-fault")).await;
    let res = post_refresh(http, a, "/auth/refresh", &first.refresh_token).await;
    assert_eq!(res.status(), 200);
    let second: Tokens = res.json().await.unwrap();
    let res = post_refresh(http, b, "/auth/refresh", &first.refresh_token).await;
    assert_error(res, 400, "invalid_grant").await;
    let res = post_refresh(http, a, "/auth/refresh", &second.refresh_token).await;
    assert_error(res, 400, "invalid_grant").await;
    eventually("reuse seen at the other replica", WITHIN, || async {
        status(http, b, &second.access_token).await == 401
    })
    .await;
    let other = login_at(http, a, &fresh("after-fault")).await;
    assert_eq!(status(http, b, &other.access_token).await, 200);
    let res = post_refresh(http, a, "/auth/logout", &other.refresh_token).await;
    assert_eq!(res.status(), 204);
    eventually("a logout seen at the other replica", WITHIN, || async {
        status(http, b, &other.access_token).await == 401
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_cluster_master_killed_under_load_fails_no_proxied_request() {
    let mut cluster = RedisCluster::start_replicated().await;
    let a = start(Setup::default().sessions(cluster.sessions())).await;
    let b = start(Setup {
        keys_dir: Some(a.keys_dir.clone()),
        ..Setup::default().sessions(cluster.sessions())
    })
    .await;
    let seed = a.login("seed").await;
    let load = Load::start(vec![a.url.clone(), b.url.clone()], seed.access_token, 6);
    load.logins_succeed(20, Duration::from_secs(20), "logins before the fault")
        .await;

    // The first seed: a master, and where both gateways subscribed to
    // revocations.
    let victim = cluster.ports[0];
    let other = cluster.ports[1];
    let id = cluster.cli_at(victim, &["CLUSTER", "MYID"]).await;
    let nodes = cluster.cli_at(other, &["CLUSTER", "NODES"]).await;
    let replica = nodes
        .lines()
        .find(|l| l.split(' ').nth(3) == Some(id.trim()))
        .and_then(|l| l.split(' ').next())
        .expect("the victim has a replica")
        .to_owned();
    cluster.kill(victim);
    eventually("the replica promoted", Duration::from_secs(30), || async {
        cluster
            .cli_at(other, &["CLUSTER", "NODES"])
            .await
            .lines()
            .any(|l| l.starts_with(&replica) && l.contains("master"))
    })
    .await;
    load.logins_succeed(20, Duration::from_secs(30), "logins after the failover")
        .await;
    let answers = load.finish().await;
    survived(&answers, |_| false);

    revocation_works_across(&a.http, &a.url, &b.url).await;
    revocation_works_across(&a.http, &b.url, &a.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn a_replica_killed_behind_nginx_fails_only_what_was_in_flight_and_resyncs() {
    let redis = Redis::start().await;
    let wechat = wechat().await;
    let upstream = upstream().await;
    let keys = key_dir(jwks::Alg::ES256);
    let setup = Setup {
        keys_dir: Some(keys.path().to_path_buf()),
        ..Setup::default().sessions(redis.sessions())
    };
    let a = spawn_binary_with(&setup, wechat.addr, upstream.addr, "warn").await;
    let b = spawn_binary_with(&setup, wechat.addr, upstream.addr, "warn").await;
    let addr = |p: &Process| p.url.trim_start_matches("http://").parse().unwrap();
    let nginx =
        Nginx::start_with("nginx_two_replicas.conf", addr(&a), &[("second", addr(&b))]).await;
    let http = client();
    let seed = login_at(&http, &nginx.url(), &fresh("seed")).await;
    // A session begun on the replica about to be killed.
    let begun = login_at(&http, &b.url, &fresh("begun")).await;

    let load = Load::start(vec![nginx.url()], seed.access_token, 4);
    load.logins_succeed(20, Duration::from_secs(20), "logins before the fault")
        .await;
    let killed = Instant::now();
    let b_logs = b.stop();
    load.logins_succeed(20, Duration::from_secs(20), "logins after the kill")
        .await;
    let settled = Instant::now();

    // Sessions begun on it go on at the other.
    assert_eq!(status(&http, &a.url, &begun.access_token).await, 200);
    let res = post_refresh(&http, &a.url, "/auth/refresh", &begun.refresh_token).await;
    assert_eq!(res.status(), 200, "{b_logs}");
    // A logout at the survivor while the other is down.
    let gone = login_at(&http, &a.url, &fresh("gone")).await;
    let res = post_refresh(&http, &a.url, "/auth/logout", &gone.refresh_token).await;
    assert_eq!(res.status(), 204);

    let answers = load.finish().await;
    // Only requests under way when it died may have failed, as nginx's
    // 502: those it had sent to the dead replica, and, until nginx has
    // found every kept-alive connection to it dead, a login or refresh
    // written on one (a POST is not resent to the other replica: nginx
    // cannot know it was not carried out). Proxied requests are resent,
    // and everything after that answered.
    survived(&answers, |x| {
        let in_flight = x.started < killed || (x.started < settled && x.kind != Kind::Proxied);
        in_flight && matches!(x.outcome, Outcome::Status(502, _))
    });

    // Back: it knows of the logout before it serves that session.
    let b = spawn_binary_with(&setup, wechat.addr, upstream.addr, "warn").await;
    assert_eq!(status(&http, &b.url, &gone.access_token).await, 401);
    revocation_works_across(&http, &a.url, &b.url).await;
    drop(nginx);
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn sigterm_under_load_drains_refuses_new_connections_and_exits() {
    let wechat = wechat().await;
    let upstream = upstream().await;
    let setup = Setup {
        upstream_timeout: "10s",
        ..Setup::default().server(Server::default().shutdown_timeout(secs(8)))
    };
    let gw = spawn_binary_with(&setup, wechat.addr, upstream.addr, "info").await;
    let http = client();
    let seed = login_at(&http, &gw.url, &fresh("seed")).await;
    // Slow requests (the harness upstream answers /public/slow after a
    // while) in flight when the signal comes, beside the load.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (http.clone(), gw.url.clone());
            tokio::spawn(async move {
                let res = http.get(format!("{url}/public/slow")).send().await;
                res.map(|r| r.status().as_u16()).ok()
            })
        })
        .collect();
    let load = Load::start(vec![gw.url.clone()], seed.access_token, 4);
    load.logins_succeed(20, Duration::from_secs(20), "logins before the signal")
        .await;
    eventually(
        "the slow requests upstream",
        Duration::from_secs(10),
        || async { upstream.count() >= 4 },
    )
    .await;
    let url = gw.url.clone();
    let signalled = Instant::now();
    let (code, logs) = tokio::task::spawn_blocking(move || gw.terminate(HANG))
        .await
        .unwrap();
    let answers = load.finish().await;
    assert_eq!(code, Some(0), "no exit within {HANG:?}: {logs}");
    for s in slow {
        assert_eq!(
            s.await.unwrap(),
            Some(200),
            "an in-flight request cut: {logs}"
        );
    }
    // After the signal, requests are answered, refused at connect, or --
    // one written onto an idle keep-alive connection just as the drain
    // closes it -- see that connection closed: none hangs, and the
    // requests in flight at the signal (the slow ones above) all finish.
    // (Under a loaded machine the last race does happen; a client retries
    // such a request on a new connection, which is refused.)
    survived(&answers, |x| {
        x.started >= signalled && matches!(x.outcome, Outcome::Refused | Outcome::Cut)
    });
    assert!(http.get(format!("{url}/healthz")).send().await.is_err());
}

/// A TCP relay to Redis that can black-hole its connections: frozen, it
/// forwards nothing and closes nothing, as a partition does; healed, it
/// forwards again on connections made since, while the ones from before
/// stay silent, as TCP connections do that are still backing off their
/// retransmissions long after the network is back.
struct Blackhole {
    addr: std::net::SocketAddr,
    frozen: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    _task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    async fn start(target: u16) -> Blackhole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (f, g) = (frozen.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let born = g.load(Ordering::SeqCst);
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [(cr, sw), (sr, cw)] {
                    let (f, g) = (f.clone(), g.clone());
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            while f.load(Ordering::SeqCst) || g.load(Ordering::SeqCst) != born {
                                if g.load(Ordering::SeqCst) != born && !f.load(Ordering::SeqCst) {
                                    // Healed, but this connection is from
                                    // before: silent for good, never closed.
                                    let _keep = (&from, &to);
                                    std::future::pending::<()>().await;
                                }
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Blackhole {
            addr,
            frozen,
            generation,
            _task: task,
        }
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn heal(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs tools outside Rust: ./test runs it"
)]
async fn logins_come_back_after_a_partition_from_redis_without_waiting_on_tcp() {
    let redis = Redis::start().await;
    let hole = Blackhole::start(redis.port).await;
    let gw = start(
        Setup::default()
            .sessions(Sessions::default().redis_url(format!("redis://{}/0", hole.addr))),
    )
    .await;
    let before = gw.login("partitioned").await;

    hole.freeze();
    let asked = Instant::now();
    let res = gw.try_login(login_body("partitioned", None)).await;
    let headers = assert_error(res, 503, "temporarily_unavailable").await;
    assert!(headers.contains_key("retry-after"));
    assert!(asked.elapsed() < HANG, "a login hung through the partition");
    // The request path never waits for Redis.
    assert_eq!(
        gw.get("/api/x", Some(&before.access_token)).await.status(),
        200
    );

    hole.heal();
    eventually(
        "a login after the partition",
        Duration::from_secs(15),
        || async { gw.try_login(login_body("partitioned", None)).await.status() == 200 },
    )
    .await;
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &before.refresh_token).await;
    assert_eq!(res.status(), 200);
}
