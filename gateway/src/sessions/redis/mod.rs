//! The Redis session store, shared by every replica: one Redis
//! (`redis_url`) or a Redis Cluster (`redis_cluster`).
//!
//! Every key of one user carries the hash tag `{u:USER}`, so each of the
//! scripts below touches one cluster slot (USER is the user key with `%`,
//! `{` and `}` percent-encoded, so no user can close the tag early):
//!
//! | key | type | what |
//! |---|---|---|
//! | `minigate:{u:USER}:sessions` | sorted set | the user's live sessions: sid → when it stops being live unless refreshed (unix ms: the refresh TTL, or `idle_ttl` when shorter, past its last refresh) |
//! | `minigate:{u:USER}:class:CLASS` | sorted set | the user's sessions of one limited device class: sid → login time (unix µs) |
//! | `minigate:{u:USER}:all` | sorted set | with a ceiling (`max_per_user`), the user's sessions counted against it: sid → login time (unix µs) |
//! | `minigate:{u:USER}:s:SID` | hash | one session: `jti` (redeemable next), `state` (`live`/`revoked`), `why` (the reason a revoked one ended; absent, from an older gateway: `revoked`), `dvt`, `did`, `pf` (platform), `app` (appid), `dn` (device name), `created` (unix µs), `refreshed` (unix ms), `prev`/`prev_at` (reuse grace), `sk` (platform session key), `oid` (the openid it is of), `ph` (phone number), `rl` (the last minute's refreshes, unix ms) |
//! | `minigate:revoked` | sorted set | ended sessions: `SID REASON` (or a bare `SID`, from an older gateway, read as `revoked`) → when its last access token expires (unix ms), for replicas' resyncs |
//!
//! Every time in these keys is the Redis server's (`TIME`): one user's keys
//! are on one server, so replicas with skewed clocks agree on expiry, the
//! reuse grace and the order of logins. Each key expires with the refresh
//! TTL past its last write. A login drops index entries past their expiry
//! (at most 1024 a call) and, for a class with a limit and for the ceiling,
//! the set's entries that are no longer live (each set holds at most its
//! limit plus what ended since), then counts it. A listing reads at most the
//! store's bound of the index, the latest expiry first. A login (limit
//! checks and record), a check before a refresh, a redemption and ending
//! sessions are each one Lua script ([`scripts`], a `.lua` file each),
//! atomic on the server whatever the number of replicas racing. Ended
//! sessions are then added to `minigate:revoked` and published on the
//! channel `minigate:revoked`; that second step is separate (in a cluster
//! it is another slot). [`sync`] keeps every replica's revoked set in step
//! from that channel and that set.
//!
//! The connection reconnects by itself; while Redis is unreachable every
//! call fails fast with [`Unavailable`] (login, refresh and logout answer
//! 503), and nothing on the access-token path ever waits for Redis. A call
//! to one Redis that gets no answer in time also replaces the connection
//! ([`One`]): a partition closes nothing, and the old connection would wait
//! on TCP's retransmissions for minutes after the network is back.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

pub mod health;
mod ops;
pub mod scripts;
pub mod sync;

use health::{reason, Health};
use scripts::Scripts;
pub use sync::{spawn_sync, Synced, RESYNC_EVERY};

use super::revoked::now_ms;
use super::{
    Checked, EndReason, EndedAll, KeptKey, NewSession, Recorded, Redeemed, Rotation, SessionInfo,
    SessionRef, SessionStore, StoreSetupError, Unavailable, MAX_LISTED, REFRESHES_PER_WINDOW,
    REFRESH_WINDOW,
};
use crate::config::{OnLimit, Secret};
use crate::telemetry::labels::Label as _;
use crate::tokens::{Jti, Sid, UserKey};

/// The sorted set of ended sessions, and the channel announcing them.
pub const REVOKED_KEY: &str = "minigate:revoked";
/// The longest any one store call may take before it counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// What the periodic resync re-reads: revocations of the last this long.
const RESYNC_WINDOW: Duration = Duration::from_secs(120);
/// Most entries one resync reads.
const RESYNC_MAX: usize = 1_000_000;

/// One Redis or a cluster, behind one [`ConnectionLike`].
#[derive(Clone)]
enum Con {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::One(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::One(c) => c.req_packed_commands(pipeline, offset, count),
            Con::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::One(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
        }
    }
}

enum Backend {
    One(Box<One>),
    /// Connected on first use: the gateway starts while the cluster is down.
    Cluster(Box<(redis::cluster::ClusterClient, OnceCell<ClusterConnection>)>),
}

/// The connection to one Redis, and what makes another. The manager
/// reconnects when a connection drops, but not when it only stops
/// answering (a partition, a lossy link): its commands then time out one
/// after the other while TCP, retransmitting with growing backoff, may
/// take minutes to notice the network is back. So a call that timed out
/// swaps in a fresh manager, at most once per [`CALL_TIMEOUT`] however
/// many calls timed out together; dropping the old one once its last
/// caller is done closes its socket and the commands queued on it.
struct One {
    client: redis::Client,
    config: redis::aio::ConnectionManagerConfig,
    manager: arc_swap::ArcSwap<ConnectionManager>,
    renewed: std::sync::Mutex<std::time::Instant>,
}

impl One {
    fn renew(&self) {
        let mut renewed = self
            .renewed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if renewed.elapsed() < CALL_TIMEOUT {
            return;
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(m) => {
                self.manager.store(Arc::new(m));
                *renewed = std::time::Instant::now();
                tracing::warn!("session store connection replaced after a timeout");
            }
            Err(e) => {
                tracing::warn!(error = %e.kind_str(), "session store connection not replaced")
            }
        }
    }
}

/// Sessions in Redis.
pub struct RedisStore {
    backend: Backend,
    /// Where the revocation subscriber connects: the URL, or each seed in
    /// turn. Never shown: they may hold a password.
    subscribe: Arc<Vec<redis::Client>>,
    grace_ms: u64,
    /// `idle_ttl` in ms; 0: none.
    idle_ms: u64,
    listed: usize,
    /// Boxed: the store sits in [`crate::sessions::Store`] beside the small
    /// in-process one.
    scripts: Box<Scripts>,
    /// Where it is and how it last answered, for logs and `/readyz`.
    health: Box<Health>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// The user's part of a key, hash tag included.
pub fn user_tag(user: &str) -> String {
    /// What could close the tag early, and the escape itself (the crate
    /// escapes non-ASCII bytes too, which user keys, being header-safe,
    /// never hold).
    const TAG: &percent_encoding::AsciiSet = &percent_encoding::AsciiSet::EMPTY
        .add(b'%')
        .add(b'{')
        .add(b'}');
    format!(
        "minigate:{{u:{}}}",
        percent_encoding::utf8_percent_encode(user, TAG)
    )
}

/// The keys of one user.
struct Keys {
    index: String,
    /// The sessions counted against `max_per_user`.
    all: String,
    session_prefix: String,
    class_prefix: String,
}

impl Keys {
    fn of(user: &str) -> Keys {
        let tag = user_tag(user);
        Keys {
            index: format!("{tag}:sessions"),
            all: format!("{tag}:all"),
            session_prefix: format!("{tag}:s:"),
            class_prefix: format!("{tag}:class:"),
        }
    }

    fn session(&self, sid: &str) -> String {
        format!("{}{sid}", self.session_prefix)
    }

    fn class(&self, class: &str) -> String {
        format!("{}{class}", self.class_prefix)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn setup(key: &'static str) -> impl Fn(redis::RedisError) -> StoreSetupError {
    move |e| StoreSetupError {
        key,
        kind: e.kind_str(),
    }
}

impl RedisStore {
    /// A store on one Redis at `url` (`redis://host:port/db`). Connects
    /// lazily, so the gateway starts, and verifies access tokens, while
    /// Redis is down.
    pub fn new(url: &str, grace: Duration) -> Result<RedisStore, StoreSetupError> {
        // Errors are named by kind only: the URL may hold a password.
        let client = redis::Client::open(url).map_err(setup("sessions.redis_url"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(setup("sessions.redis_url"))?;
        let one = One {
            client: client.clone(),
            config,
            manager: arc_swap::ArcSwap::from_pointee(manager),
            renewed: std::sync::Mutex::new(std::time::Instant::now()),
        };
        Ok(Self::with(
            Backend::One(Box::new(one)),
            vec![client],
            Health::new([url]),
            grace,
        ))
    }

    /// A store on the Redis Cluster of these seed URLs.
    pub fn cluster(seeds: &[&str], grace: Duration) -> Result<RedisStore, StoreSetupError> {
        let client = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(CALL_TIMEOUT)
            .retries(2)
            .build()
            .map_err(setup("sessions.redis_cluster"))?;
        let subscribe = seeds
            .iter()
            .map(|s| redis::Client::open(*s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(setup("sessions.redis_cluster"))?;
        Ok(Self::with(
            Backend::Cluster(Box::new((client, OnceCell::new()))),
            subscribe,
            Health::new(seeds.iter().copied()),
            grace,
        ))
    }

    fn with(
        backend: Backend,
        subscribe: Vec<redis::Client>,
        health: Health,
        grace: Duration,
    ) -> RedisStore {
        RedisStore {
            health: Box::new(health),
            backend,
            subscribe: Arc::new(subscribe),
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            idle_ms: 0,
            listed: MAX_LISTED,
            scripts: Box::new(Scripts::load()),
        }
    }

    /// Lists at most `n` sessions of a user (see [`super::listed`]).
    pub fn listing(mut self, n: usize) -> RedisStore {
        self.listed = n;
        self
    }

    /// Ends sessions not refreshed for `idle` (`sessions.idle_ttl`).
    pub fn idle(mut self, idle: Option<Duration>) -> RedisStore {
        self.idle_ms = idle.map_or(0, ms);
        self
    }

    /// `redis` or `redis-cluster`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::One(_) => "redis",
            Backend::Cluster(_) => "redis-cluster",
        }
    }

    async fn con(&self) -> Result<Con, Unavailable> {
        match &self.backend {
            Backend::One(one) => Ok(Con::One(ConnectionManager::clone(&one.manager.load()))),
            Backend::Cluster(cluster) => {
                let (client, cell) = &**cluster;
                let connect = || async {
                    match tokio::time::timeout(CALL_TIMEOUT, client.get_async_connection()).await {
                        Ok(Ok(c)) => Ok(c),
                        Ok(Err(e)) => {
                            self.health.down("connect", reason(&e));
                            Err(Unavailable)
                        }
                        Err(_) => {
                            self.health.down("connect", no_answer());
                            Err(Unavailable)
                        }
                    }
                };
                cell.get_or_try_init(connect)
                    .await
                    .cloned()
                    .map(Con::Cluster)
            }
        }
    }

    async fn call<T>(
        &self,
        what: &'static str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        let timed_out = match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(Ok(v)) => {
                self.health.up();
                return Ok(v);
            }
            Ok(Err(e)) => {
                let why = reason(&e);
                tracing::warn!(op = what, at = %self.health.target(), error = %why,
                    "session store unavailable");
                self.health.down(what, why);
                e.is_timeout()
            }
            Err(_) => {
                tracing::warn!(op = what, at = %self.health.target(), "session store timed out");
                self.health.down(what, no_answer());
                true
            }
        };
        if let (true, Backend::One(one)) = (timed_out, &self.backend) {
            one.renew();
        }
        Err(Unavailable)
    }

    /// Where the store is and how it last answered.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Asks the store for a `PING`: how long the answer took, or why none
    /// came (see [`health::reason`]).
    pub async fn ping(&self) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        let mut con = self
            .con()
            .await
            .map_err(|Unavailable| match self.health.state() {
                health::State::Down { reason, .. } => reason,
                _ => no_answer(),
            })?;
        match tokio::time::timeout(
            CALL_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut con),
        )
        .await
        {
            Ok(Ok(_)) => {
                self.health.up();
                Ok(started.elapsed())
            }
            Ok(Err(e)) => {
                let why = reason(&e);
                self.health.down("ping", why.clone());
                Err(why)
            }
            Err(_) => {
                self.health.down("ping", no_answer());
                Err(no_answer())
            }
        }
    }

    /// Records ended sessions, and why, for the other replicas' resyncs
    /// and publishes them (see [`sync`] for the formats). Best effort: a
    /// failure is logged, and the others still learn it at their next full
    /// resync only if the record made it.
    pub async fn publish(&self, sids: &[String], at: u64, until: u64, why: EndReason) {
        let Ok(mut con) = self.con().await else {
            return;
        };
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(REVOKED_KEY);
        for sid in sids {
            zadd.arg(until).arg(sync::member(sid, why));
        }
        let mut trim = redis::cmd("ZREMRANGEBYSCORE");
        trim.arg(REVOKED_KEY).arg("-inf").arg(at);
        let message = sync::message(at, until, why, sids);
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(REVOKED_KEY).arg(message);
        let _ = self.call("revoke", zadd.query_async::<()>(&mut con)).await;
        let _ = self.call("revoke", trim.query_async::<()>(&mut con)).await;
        let _ = self
            .call("revoke", publish.query_async::<()>(&mut con))
            .await;
    }

    /// Appends one entry of `fields` to the stream `stream`, trimmed to
    /// about `maxlen` entries (`XADD stream MAXLEN ~ maxlen * ...`): the
    /// audit events' stream.
    pub async fn append(
        &self,
        stream: &str,
        maxlen: u64,
        fields: &[(&str, &str)],
    ) -> Result<(), Unavailable> {
        let mut con = self.con().await?;
        let mut xadd = redis::cmd("XADD");
        xadd.arg(stream).arg("MAXLEN").arg("~").arg(maxlen).arg("*");
        for (k, v) in fields {
            xadd.arg(*k).arg(*v);
        }
        self.call("audit", xadd.query_async::<Value>(&mut con))
            .await
            .map(drop)
    }

    /// Claims the one-time value `key` for `ttl`: true the first time, false
    /// while an earlier claim lives. Every replica sees the same answer (a
    /// web sign-in's `state` is used once, whichever replica its browser
    /// returns to).
    pub async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, Unavailable> {
        let mut con = self.con().await?;
        let mut set = redis::cmd("SET");
        set.arg(format!("minigate:once:{key}"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ms(ttl));
        let done: Option<String> = self
            .call("claim", set.query_async::<Option<String>>(&mut con))
            .await?;
        Ok(done.is_some())
    }

    /// The revocations whose tokens may still live, or (periodic) only
    /// those made in the last [`RESYNC_WINDOW`].
    async fn read_revoked(
        &self,
        lifetime_ms: u64,
        full: bool,
    ) -> Result<Vec<(String, u64)>, Unavailable> {
        let mut con = self.con().await?;
        let now = now_ms();
        let from = if full {
            now
        } else {
            (now + lifetime_ms).saturating_sub(ms(RESYNC_WINDOW))
        };
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(REVOKED_KEY)
            .arg(from)
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(RESYNC_MAX);
        self.call("resync", cmd.query_async::<Vec<(String, u64)>>(&mut con))
            .await
    }
}

/// Why a call that never came back failed.
fn no_answer() -> String {
    format!(
        "no answer within {}",
        humantime::format_duration(CALL_TIMEOUT)
    )
}

/// A short name for an error kind, with nothing from the server's reply.
trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for redis::RedisError {
    fn kind_str(&self) -> String {
        format!("{:?}", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_tags_cannot_be_closed_early() {
        assert_eq!(user_tag("o_1"), "minigate:{u:o_1}");
        assert_eq!(user_tag("a}b{c%"), "minigate:{u:a%7Db%7Bc%25}");
        assert_ne!(user_tag("a}"), user_tag("a%7D"));
    }
}
