//! The Redis session store, shared by every replica: one Redis
//! (`redis_url`) or a Redis Cluster (`redis_cluster`).
//!
//! Every key of one user carries the hash tag `{u:USER}`, so each of the
//! scripts below touches one cluster slot (USER is the user key with `%`,
//! `{` and `}` percent-encoded, so no user can close the tag early):
//!
//! | key | type | what |
//! |---|---|---|
//! | `minigate:{u:USER}:sessions` | sorted set | the user's live sessions: sid → expiry (unix ms) |
//! | `minigate:{u:USER}:class:CLASS` | sorted set | the user's sessions of one limited device class: sid → login time (unix µs) |
//! | `minigate:{u:USER}:all` | sorted set | with a ceiling (`max_per_user`), the user's sessions counted against it: sid → login time (unix µs) |
//! | `minigate:{u:USER}:s:SID` | hash | one session: `jti` (redeemable next), `state` (`live`/`revoked`), `dvt`, `did`, `created` (unix µs), `refreshed` (unix ms), `prev`/`prev_at` (reuse grace), `sk` (platform session key), `ph` (phone number), `rl` (the last minute's refreshes, unix ms) |
//! | `minigate:revoked` | sorted set | ended sessions: sid → when its last access token expires (unix ms), for replicas' resyncs |
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
//! sessions are each one Lua script, atomic on the server whatever the
//! number of replicas racing. Ended sessions are then
//! added to `minigate:revoked` and published on the channel
//! `minigate:revoked`; that second step is separate (in a cluster it is
//! another slot).
//!
//! The connection reconnects by itself; while Redis is unreachable every
//! call fails fast with [`Unavailable`] (login, refresh and logout answer
//! 503), and nothing on the access-token path ever waits for Redis.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};
use tokio::sync::{watch, OnceCell};

use super::revoked::{now_ms, RevokedSet};
use super::{
    Begun, Checked, NewSession, Redeemed, SessionInfo, SessionStore, SetupError, Unavailable,
    MAX_LISTED, REFRESHES_PER_WINDOW, REFRESH_WINDOW,
};
use crate::config::{OnLimit, Secret};
use crate::ops::metrics::Resync;

/// The sorted set of ended sessions, and the channel announcing them.
pub const REVOKED_KEY: &str = "minigate:revoked";
/// The longest any one store call may take before it counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a replica re-reads the recent revocations, in case a
/// published one was missed: under the contract's 2 seconds, so a missed
/// message still reaches every replica in time while Redis answers. The
/// read is of the recent window of one sorted set: cheap at this rate.
pub const RESYNC_EVERY: Duration = Duration::from_secs(1);
/// How soon a full resync that failed is tried again.
const FULL_RETRY: Duration = Duration::from_millis(200);
/// What the periodic resync re-reads: revocations of the last this long.
const RESYNC_WINDOW: Duration = Duration::from_secs(120);
/// Most entries one resync reads.
const RESYNC_MAX: usize = 1_000_000;

/// KEYS[1] index, KEYS[2] class set, KEYS[3] session, KEYS[4] the user's
/// ceiling set.
/// ARGV: 1 sid, 2 jti, 3 class, 4 device id ('' none), 5 ttl ms, 6 limit
/// (0 none), 7 '1' to refuse, 8 session key prefix, 9 platform session key
/// ('' none), 10 ceiling (0 none), 11 class key prefix.
/// Returns {0} refused, or {1, evicted sid...}.
///
/// Expired sessions leave the index here (at most 1024 a call) and leave a
/// limited class's set, or the ceiling set, when that set is counted: each
/// holds only what its limit allows plus what ended since, so it is small.
const BEGIN: &str = r"
-- Every time here is the server's: one user's keys are on one server, so
-- logins and refreshes from replicas with skewed clocks still agree, and
-- logins order by the microsecond.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local created = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[5])
local limit = tonumber(ARGV[6])
local max = tonumber(ARGV[10])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1024)
for _, sid in ipairs(gone) do
  redis.call('ZREM', KEYS[1], sid)
end
-- Drops the entries of a counted set that are no longer live; its size.
local function live(set)
  for _, sid in ipairs(redis.call('ZRANGE', set, 0, -1)) do
    local exp = redis.call('ZSCORE', KEYS[1], sid)
    if not exp or tonumber(exp) <= now then redis.call('ZREM', set, sid) end
  end
  return redis.call('ZCARD', set)
end
-- Ends one session: out of every set, its record revoked.
local function revoke(sid)
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', KEYS[4], sid)
  local h = ARGV[8] .. sid
  local dvt = redis.call('HGET', h, 'dvt')
  if dvt then
    redis.call('ZREM', ARGV[11] .. dvt, sid)
    redis.call('HSET', h, 'state', 'revoked')
    redis.call('PEXPIRE', h, ttl)
  end
end
local out = {1}
-- Both limits are checked before anything ends, so a refused login
-- changes nothing.
local in_class = 0
local in_all = 0
if limit > 0 then in_class = live(KEYS[2]) end
if max > 0 then in_all = live(KEYS[4]) end
if ARGV[7] == '1' and ((limit > 0 and in_class >= limit) or (max > 0 and in_all >= max)) then
  return {0}
end
if limit > 0 and in_class >= limit then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, in_class - limit)) do
    revoke(sid)
    out[#out + 1] = sid
  end
end
if max > 0 then
  local n = redis.call('ZCARD', KEYS[4])
  if n >= max then
    for _, sid in ipairs(redis.call('ZRANGE', KEYS[4], 0, n - max)) do
      revoke(sid)
      out[#out + 1] = sid
    end
  end
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'jti', ARGV[2], 'state', 'live', 'dvt', ARGV[3], 'did', ARGV[4],
  'created', created, 'refreshed', now)
if ARGV[9] ~= '' then redis.call('HSET', KEYS[3], 'sk', ARGV[9]) end
redis.call('PEXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
if limit > 0 then
  redis.call('ZADD', KEYS[2], created, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if max > 0 then
  redis.call('ZADD', KEYS[4], created, ARGV[1])
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return out
";

/// A new redeemable token for a live session, the current one counting as
/// just redeemed. KEYS[1] index, KEYS[2] session, KEYS[3] ceiling set.
/// ARGV: 1 sid, 2 successor, 3 ttl ms, 4 class key prefix. Returns 1, or 0
/// if not live.
const REISSUE: &str = r"
local h = redis.call('HMGET', KEYS[2], 'state', 'jti', 'dvt')
if h[1] ~= 'live' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'prev', h[2], 'prev_at', now, 'jti', ARGV[2], 'refreshed', now)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', ARGV[4] .. (h[3] or ''), ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
";

/// A function of the scripts below: whether token `jti` may be redeemed in
/// a session whose HMGET of state, jti, prev, prev_at... is `h`: `nil` no,
/// `false` it is the current token, `true` the one redeemed last, within
/// `grace` ms.
const REDEEMABLE: &str = r"
local function redeemable(h, jti, grace, now)
  if h[2] == jti then return false end
  if grace > 0 and h[3] and h[3] == jti and h[4] and now - tonumber(h[4]) < grace then
    return true
  end
  return nil
end
";

/// Revokes the session of KEYS[2] (a token already used): out of the
/// index (KEYS[1]), its class's set and the ceiling set (KEYS[3]).
const REUSED: &str = r"
local function reused(sid, class, ttl)
  redis.call('HSET', KEYS[2], 'state', 'revoked')
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', class, sid)
  redis.call('ZREM', KEYS[3], sid)
end
";

/// KEYS[1] index, KEYS[2] session, KEYS[3] ceiling set.
/// ARGV: 1 sid, 2 presented jti, 3 successor, 4 ttl ms, 5 grace ms, 6 class
/// key prefix.
/// Returns {0} unknown, {1} revoked, {2, phone} rotated, {3} reused (and now
/// revoked).
const REDEEM: &str = r"
local h = redis.call('HMGET', KEYS[2], 'state', 'jti', 'prev', 'prev_at', 'dvt', 'ph')
if not h[1] then return {0} end
if h[1] == 'revoked' then return {1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local class = ARGV[6] .. (h[5] or '')
local in_grace = redeemable(h, ARGV[2], tonumber(ARGV[5]), now)
if in_grace ~= nil then
  if in_grace then
    redis.call('HDEL', KEYS[2], 'prev', 'prev_at')
  else
    redis.call('HSET', KEYS[2], 'prev', ARGV[2], 'prev_at', now)
  end
  redis.call('HSET', KEYS[2], 'jti', ARGV[3], 'refreshed', now)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', class, ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
  return {2, h[6] or ''}
end
reused(ARGV[1], class, ttl)
return {3}
";

/// Before a refresh asks the user service: is the presented token
/// redeemable, and may the session refresh again so soon?
/// KEYS[1] index, KEYS[2] session, KEYS[3] ceiling set.
/// ARGV: 1 sid, 2 presented jti, 3 ttl ms, 4 grace ms, 5 class key prefix,
/// 6 refreshes per window, 7 window ms.
/// Returns {0} unknown, {1} revoked, {2} live (counted), {3} reused (and now
/// revoked), {4, ms to wait} too soon.
///
/// The session's field `rl` holds the times (ms) of its refreshes within
/// the window, oldest first, at most ARGV[6] of them.
const CHECK: &str = r"
local h = redis.call('HMGET', KEYS[2], 'state', 'jti', 'prev', 'prev_at', 'dvt', 'rl')
if not h[1] then return {0} end
if h[1] == 'revoked' then return {1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
if redeemable(h, ARGV[2], tonumber(ARGV[4]), now) == nil then
  reused(ARGV[1], ARGV[5] .. (h[5] or ''), ttl)
  return {3}
end
local most = tonumber(ARGV[6])
local window = tonumber(ARGV[7])
local recent = {}
for at in string.gmatch(h[6] or '', '%d+') do
  if now - tonumber(at) < window then recent[#recent + 1] = at end
end
if #recent >= most then
  return {4, tonumber(recent[#recent - most + 1]) + window - now}
end
recent[#recent + 1] = tostring(now)
redis.call('HSET', KEYS[2], 'rl', table.concat(recent, ' '))
return {2}
";

/// KEYS[1] index, KEYS[2] ceiling set. ARGV: 1 sid ('' for all), 2 ttl ms,
/// 3 session key prefix, 4 class key prefix; to end all only for a
/// redeemable token: 5 its jti ('' no such condition), 6 grace ms, 7 its
/// session's sid. Returns {1, sid ended...}, or {0}: the token is not
/// redeemable, nothing ended.
const END: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[5] ~= '' then
  local h = redis.call('HMGET', ARGV[3] .. ARGV[7], 'state', 'jti', 'prev', 'prev_at')
  if h[1] ~= 'live' or redeemable(h, ARGV[5], tonumber(ARGV[6]), now) == nil then
    return {0}
  end
end
local sids
if ARGV[1] ~= '' then
  local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not exp or tonumber(exp) <= now then return {1} end
  sids = {ARGV[1]}
else
  sids = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
end
local out = {1}
for _, sid in ipairs(sids) do
  local h = ARGV[3] .. sid
  local dvt = redis.call('HGET', h, 'dvt')
  if dvt then
    redis.call('ZREM', ARGV[4] .. dvt, sid)
    redis.call('HSET', h, 'state', 'revoked')
    redis.call('PEXPIRE', h, ttl)
  end
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', KEYS[2], sid)
  out[#out + 1] = sid
end
return out
";

/// KEYS[1] session. ARGV: 1 phone number. Returns 1, or 0 if not live.
const SET_PHONE: &str = r"
if redis.call('HGET', KEYS[1], 'state') ~= 'live' then return 0 end
redis.call('HSET', KEYS[1], 'ph', ARGV[1])
return 1
";

/// KEYS[1] index. ARGV: 1 session key prefix, 2 most to read.
/// Returns sid, dvt, did, created, refreshed for each live session, of the
/// ARGV[2] used most recently (latest expiry): the work is bounded by
/// ARGV[2], however many sessions the index holds.
const LIST: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, sid in ipairs(sids) do
  local h = redis.call('HMGET', ARGV[1] .. sid, 'dvt', 'did', 'created', 'refreshed', 'state')
  if h[1] and h[5] == 'live' then
    out[#out + 1] = sid
    out[#out + 1] = h[1]
    out[#out + 1] = h[2] or ''
    out[#out + 1] = h[3] or '0'
    out[#out + 1] = h[4] or '0'
  end
end
return out
";

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
    One(ConnectionManager),
    /// Connected on first use: the gateway starts while the cluster is down.
    Cluster(Box<(redis::cluster::ClusterClient, OnceCell<ClusterConnection>)>),
}

/// Sessions in Redis.
pub struct RedisStore {
    backend: Backend,
    /// Where the revocation subscriber connects: the URL, or each seed in
    /// turn. Never shown: they may hold a password.
    subscribe: Arc<Vec<redis::Client>>,
    grace_ms: u64,
    listed: usize,
    /// Boxed: the store sits in [`crate::sessions::Store`] beside the small
    /// in-process one.
    scripts: Box<Scripts>,
}

/// The Lua scripts, with their hashes.
struct Scripts {
    begin: Script,
    check: Script,
    redeem: Script,
    reissue: Script,
    end: Script,
    set_phone: Script,
    list: Script,
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
    let mut out = String::with_capacity(user.len() + 8);
    out.push_str("minigate:{u:");
    for c in user.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out.push('}');
    out
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

fn setup(key: &'static str) -> impl Fn(redis::RedisError) -> SetupError {
    move |e| SetupError {
        key,
        kind: e.kind_str(),
    }
}

impl RedisStore {
    /// A store on one Redis at `url` (`redis://host:port/db`). Connects
    /// lazily, so the gateway starts, and verifies access tokens, while
    /// Redis is down.
    pub fn new(url: &str, grace: Duration) -> Result<RedisStore, SetupError> {
        // Errors are named by kind only: the URL may hold a password.
        let client = redis::Client::open(url).map_err(setup("sessions.redis_url"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(setup("sessions.redis_url"))?;
        Ok(Self::with(Backend::One(manager), vec![client], grace))
    }

    /// A store on the Redis Cluster of these seed URLs.
    pub fn cluster(seeds: &[&str], grace: Duration) -> Result<RedisStore, SetupError> {
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
            grace,
        ))
    }

    fn with(backend: Backend, subscribe: Vec<redis::Client>, grace: Duration) -> RedisStore {
        RedisStore {
            backend,
            subscribe: Arc::new(subscribe),
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            listed: MAX_LISTED,
            scripts: Box::new(Scripts {
                begin: Script::new(BEGIN),
                check: Script::new(&format!("{REDEEMABLE}{REUSED}{CHECK}")),
                redeem: Script::new(&format!("{REDEEMABLE}{REUSED}{REDEEM}")),
                reissue: Script::new(REISSUE),
                end: Script::new(&format!("{REDEEMABLE}{END}")),
                set_phone: Script::new(SET_PHONE),
                list: Script::new(LIST),
            }),
        }
    }

    /// Lists at most `n` sessions of a user (see [`super::listed`]).
    pub fn listing(mut self, n: usize) -> RedisStore {
        self.listed = n;
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
            Backend::One(m) => Ok(Con::One(m.clone())),
            Backend::Cluster(cluster) => {
                let (client, cell) = &**cluster;
                let connect = || async {
                    match tokio::time::timeout(CALL_TIMEOUT, client.get_async_connection()).await {
                        Ok(Ok(c)) => Ok(c),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e.kind_str(), "redis cluster unreachable");
                            Err(Unavailable)
                        }
                        Err(_) => {
                            tracing::warn!("redis cluster did not answer");
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
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                tracing::warn!(op = what, error = %e.kind_str(), "session store unavailable");
                Err(Unavailable)
            }
            Err(_) => {
                tracing::warn!(op = what, "session store timed out");
                Err(Unavailable)
            }
        }
    }

    /// Records ended sessions for the other replicas' resyncs and publishes
    /// them. Best effort: a failure is logged, and the others still learn
    /// it at their next full resync only if the record made it.
    pub async fn publish(&self, sids: &[String], at: u64, until: u64) {
        let Ok(mut con) = self.con().await else {
            return;
        };
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(REVOKED_KEY);
        for sid in sids {
            zadd.arg(until).arg(sid);
        }
        let mut trim = redis::cmd("ZREMRANGEBYSCORE");
        trim.arg(REVOKED_KEY).arg("-inf").arg(at);
        let message = format!("{at} {until} {}", sids.join(" "));
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(REVOKED_KEY).arg(message);
        let _ = self.call("revoke", zadd.query_async::<()>(&mut con)).await;
        let _ = self.call("revoke", trim.query_async::<()>(&mut con)).await;
        let _ = self
            .call("revoke", publish.query_async::<()>(&mut con))
            .await;
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

/// A short name for an error kind, with nothing from the server's reply.
trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for redis::RedisError {
    fn kind_str(&self) -> String {
        format!("{:?}", self.kind())
    }
}

impl SessionStore for RedisStore {
    async fn begin(&self, new: &NewSession<'_>, ttl: Duration) -> Result<Begun, Unavailable> {
        let keys = Keys::of(new.user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.begin.prepare_invoke();
        inv.key(&keys.index)
            .key(keys.class(new.device_type))
            .key(keys.session(new.sid))
            .key(&keys.all);
        inv.arg(new.sid)
            .arg(new.jti)
            .arg(new.device_type)
            .arg(new.device_id.unwrap_or(""))
            .arg(ms(ttl))
            .arg(new.limit)
            .arg(if new.on_limit == OnLimit::Refuse {
                "1"
            } else {
                "0"
            })
            .arg(&keys.session_prefix)
            .arg(new.session_key.unwrap_or(""))
            .arg(new.max_per_user)
            .arg(&keys.class_prefix);
        let out: Vec<Value> = self.call("begin", inv.invoke_async(&mut con)).await?;
        let mut out = out.into_iter();
        match out.next() {
            Some(Value::Int(1)) => Ok(Begun::Started {
                evicted: out
                    .filter_map(|v| redis::from_redis_value::<String>(v).ok())
                    .collect(),
            }),
            _ => Ok(Begun::Refused),
        }
    }

    async fn redeem(
        &self,
        user: &str,
        sid: &str,
        jti: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<Redeemed, Unavailable> {
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.redeem.prepare_invoke();
        inv.key(&keys.index).key(keys.session(sid)).key(&keys.all);
        inv.arg(sid)
            .arg(jti)
            .arg(next)
            .arg(ms(ttl))
            .arg(self.grace_ms)
            .arg(&keys.class_prefix);
        let out: Vec<Value> = self.call("redeem", inv.invoke_async(&mut con)).await?;
        let (code, phone) = code_and(out);
        Ok(match code {
            2 => Redeemed::Rotated {
                phone: phone
                    .and_then(|v| redis::from_redis_value::<String>(v).ok())
                    .filter(|p| !p.is_empty()),
            },
            3 => Redeemed::Reused,
            1 => Redeemed::Revoked,
            _ => Redeemed::Unknown,
        })
    }

    async fn check(
        &self,
        user: &str,
        sid: &str,
        jti: &str,
        ttl: Duration,
    ) -> Result<Checked, Unavailable> {
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.check.prepare_invoke();
        inv.key(&keys.index).key(keys.session(sid)).key(&keys.all);
        inv.arg(sid)
            .arg(jti)
            .arg(ms(ttl))
            .arg(self.grace_ms)
            .arg(&keys.class_prefix)
            .arg(REFRESHES_PER_WINDOW)
            .arg(ms(REFRESH_WINDOW));
        let out: Vec<Value> = self.call("check", inv.invoke_async(&mut con)).await?;
        let (code, wait) = code_and(out);
        Ok(match code {
            2 => Checked::Live,
            4 => {
                let wait = wait
                    .and_then(|v| redis::from_redis_value::<i64>(v).ok())
                    .and_then(|ms| u64::try_from(ms).ok())
                    .unwrap_or(0);
                Checked::TooSoon(Duration::from_millis(wait))
            }
            3 => Checked::Reused,
            1 => Checked::Revoked,
            _ => Checked::Unknown,
        })
    }

    async fn end_everywhere(
        &self,
        user: &str,
        sid: &str,
        jti: &str,
        ttl: Duration,
    ) -> Result<Option<Vec<String>>, Unavailable> {
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.end.prepare_invoke();
        inv.key(&keys.index).key(&keys.all);
        inv.arg("")
            .arg(ms(ttl))
            .arg(&keys.session_prefix)
            .arg(&keys.class_prefix)
            .arg(jti)
            .arg(self.grace_ms)
            .arg(sid);
        let out: Vec<Value> = self.call("end", inv.invoke_async(&mut con)).await?;
        Ok(ended(out))
    }

    async fn set_phone(&self, user: &str, sid: &str, phone: &str) -> Result<bool, Unavailable> {
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.set_phone.prepare_invoke();
        inv.key(keys.session(sid));
        inv.arg(phone);
        let done: i64 = self.call("set_phone", inv.invoke_async(&mut con)).await?;
        Ok(done == 1)
    }

    async fn reissue(
        &self,
        user: &str,
        sid: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.reissue.prepare_invoke();
        inv.key(&keys.index).key(keys.session(sid)).key(&keys.all);
        inv.arg(sid).arg(next).arg(ms(ttl)).arg(&keys.class_prefix);
        let done: i64 = self.call("reissue", inv.invoke_async(&mut con)).await?;
        Ok(done == 1)
    }

    async fn session_key(&self, user: &str, sid: &str) -> Result<Option<Secret>, Unavailable> {
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(keys.session(sid)).arg("state").arg("sk");
        let (state, key): (Option<String>, Option<String>) =
            self.call("session_key", cmd.query_async(&mut con)).await?;
        Ok(match (state.as_deref(), key) {
            (Some("live"), Some(k)) if !k.is_empty() => Some(Secret::new(k)),
            _ => None,
        })
    }

    async fn end(
        &self,
        user: &str,
        sid: Option<&str>,
        ttl: Duration,
    ) -> Result<Vec<String>, Unavailable> {
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.end.prepare_invoke();
        inv.key(&keys.index).key(&keys.all);
        inv.arg(sid.unwrap_or(""))
            .arg(ms(ttl))
            .arg(&keys.session_prefix)
            .arg(&keys.class_prefix)
            .arg("")
            .arg(0)
            .arg("");
        let out: Vec<Value> = self.call("end", inv.invoke_async(&mut con)).await?;
        Ok(ended(out).unwrap_or_default())
    }

    async fn list(&self, user: &str) -> Result<Vec<SessionInfo>, Unavailable> {
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.list.prepare_invoke();
        inv.key(&keys.index);
        inv.arg(&keys.session_prefix).arg(self.listed);
        let flat: Vec<String> = self.call("list", inv.invoke_async(&mut con)).await?;
        let mut list: Vec<(u64, SessionInfo)> = flat
            .chunks_exact(5)
            .map(|c| {
                let created_us = c[3].parse::<u64>().unwrap_or(0);
                let info = SessionInfo {
                    sid: c[0].clone(),
                    device_type: c[1].clone(),
                    device_id: (!c[2].is_empty()).then(|| c[2].clone()),
                    created_at: created_us / 1_000_000,
                    refreshed_at: c[4].parse::<u64>().unwrap_or(0) / 1000,
                };
                (created_us, info)
            })
            .collect();
        // Newest first, by the login's microsecond.
        list.sort_by(|a, b| (b.0, &b.1.sid).cmp(&(a.0, &a.1.sid)));
        Ok(list.into_iter().map(|(_, i)| i).collect())
    }
}

/// A script's `{code, value}` answer: the code, and the value if any.
fn code_and(out: Vec<Value>) -> (i64, Option<Value>) {
    let mut out = out.into_iter();
    let code = out
        .next()
        .and_then(|v| redis::from_redis_value::<i64>(v).ok())
        .unwrap_or(0);
    (code, out.next())
}

/// The `END` script's answer: the sids ended, or `None` when it refused.
fn ended(out: Vec<Value>) -> Option<Vec<String>> {
    let mut out = out.into_iter();
    match out.next() {
        Some(Value::Int(1)) => Some(
            out.filter_map(|v| redis::from_redis_value::<String>(v).ok())
                .collect(),
        ),
        _ => None,
    }
}

/// Parses a published revocation: `AT UNTIL SID...`.
fn parse_message(payload: &str) -> Option<(u64, u64, Vec<&str>)> {
    let mut parts = payload.split(' ');
    let at = parts.next()?.parse().ok()?;
    let until = parts.next()?.parse().ok()?;
    let sids: Vec<&str> = parts
        .filter(|s| crate::config::is_header_safe(s, 128))
        .collect();
    Some((at, until, sids))
}

/// What holds a store and the revoked set that [`spawn_sync`] keeps in step
/// (the gateway's shared state).
pub trait Synced: Send + Sync + 'static {
    /// The session store.
    fn store(&self) -> &crate::sessions::Store;
    /// The revoked-session set.
    fn revoked(&self) -> &RevokedSet;
}

/// Keeps `revoked` in step with the other replicas until `stopped`: a
/// subscription to `minigate:revoked` (its own connection, reconnected
/// with a backoff), a full resync after every (re)subscription, and a
/// resync of the recent entries every [`RESYNC_EVERY`]. While Redis is
/// unreachable the set keeps what it knows; entries only ever leave it by
/// expiring.
pub fn spawn_sync<S: Synced>(shared: Arc<S>, mut stopped: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let crate::sessions::Store::Redis(redis) = shared.store() else {
            return;
        };
        let revoked = shared.revoked();
        let mut backoff = Duration::from_millis(100);
        let mut seed = 0usize;
        loop {
            if *stopped.borrow() {
                return;
            }
            let Some(client) = redis.subscribe.get(seed % redis.subscribe.len().max(1)) else {
                return;
            };
            seed = seed.wrapping_add(1);
            let subscribed = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(REVOKED_KEY).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = tokio::select! {
                _ = stopped.changed() => return,
                r = tokio::time::timeout(CALL_TIMEOUT, subscribed) => r,
            };
            let mut messages = match pubsub {
                Ok(Ok(p)) => p.into_on_message(),
                _ => {
                    revoked.resynced(Resync::Failed);
                    tokio::select! {
                        _ = stopped.changed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            // Subscribed first, then read: nothing falls between the two.
            // The command connection may come back later than this one:
            // the full read is retried until it succeeds.
            let mut full_pending = !resync(redis, revoked, true).await;
            let mut tick = tokio::time::interval(RESYNC_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(FULL_RETRY), if full_pending => {
                        full_pending = !resync(redis, revoked, true).await;
                    }
                    _ = stopped.changed() => return,
                    msg = messages.next() => {
                        let Some(msg) = msg else {
                            tracing::warn!("revocation subscription lost; reconnecting");
                            break;
                        };
                        let Ok(payload) = msg.get_payload::<String>() else { continue };
                        if let Some((at, until, sids)) = parse_message(&payload) {
                            revoked.insert_all(sids.into_iter().map(|s| (s, until)));
                            revoked.arrived(at);
                        }
                    }
                    _ = tick.tick() => {
                        revoked.sweep();
                        resync(redis, revoked, false).await;
                    }
                }
            }
        }
    });
}

/// One resync; whether it succeeded.
async fn resync(redis: &RedisStore, revoked: &RevokedSet, full: bool) -> bool {
    match redis.read_revoked(revoked.lifetime_ms(), full).await {
        Ok(entries) => {
            revoked.insert_all(entries.iter().map(|(s, u)| (s.as_str(), *u)));
            revoked.resynced(if full { Resync::Full } else { Resync::Periodic });
            true
        }
        Err(Unavailable) => {
            revoked.resynced(Resync::Failed);
            false
        }
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

    #[test]
    fn messages_parse() {
        assert_eq!(parse_message("1 2 a b"), Some((1, 2, vec!["a", "b"])));
        assert_eq!(parse_message("x 2 a"), None);
    }
}
