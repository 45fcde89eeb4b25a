//! The Redis session store, shared by every replica.
//!
//! A session is one string key, `minigate:session:{sid}`, holding the
//! redeemable jti or the revocation marker, with the refresh TTL as its
//! expiry. Redemption is one Lua script, so the compare-and-swap is atomic on
//! the server whatever the number of replicas racing. The connection manager
//! reconnects by itself; while Redis is unreachable every call fails fast with
//! [`Unavailable`] (refresh and logout answer 503), and nothing on the access
//! token path ever waits for Redis.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};

use super::{Redeemed, SessionStore, SetupError, Unavailable};

const PREFIX: &str = "minigate:session:";
const REVOKED: &str = "!revoked";
/// The longest any one store call may take before it counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS[1] session; ARGV[1] presented jti, ARGV[2] successor, ARGV[3] ttl ms,
/// ARGV[4] the revocation marker ([`REVOKED`]).
/// Returns 0 unknown, 1 revoked, 2 rotated, 3 reused (and now revoked).
const REDEEM: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if cur == ARGV[4] then return 1 end
if cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 2
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
return 3
";

/// Sessions in Redis.
pub struct RedisStore {
    manager: ConnectionManager,
    redeem: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

fn key(sid: &str) -> String {
    format!("{PREFIX}{sid}")
}

fn ms(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u64::MAX as u128) as u64
}

impl RedisStore {
    /// A store for `url` (`redis://host:port/db`). Connects lazily, so the
    /// gateway starts, and verifies access tokens, while Redis is down.
    pub fn new(url: &str) -> Result<RedisStore, SetupError> {
        // Errors are named by kind only: the URL may hold a password.
        let client = redis::Client::open(url).map_err(|e| SetupError(e.kind_str()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| SetupError(e.kind_str()))?;
        Ok(RedisStore {
            manager,
            redeem: Script::new(REDEEM),
        })
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
    async fn begin(&self, sid: &str, jti: &str, ttl: Duration) -> Result<(), Unavailable> {
        let mut con = self.manager.clone();
        self.call(
            "begin",
            con.set_ex::<_, _, ()>(key(sid), jti, ttl.as_secs().max(1)),
        )
        .await
    }

    async fn redeem(
        &self,
        sid: &str,
        jti: &str,
        next: &str,
        ttl: Duration,
    ) -> Result<Redeemed, Unavailable> {
        let mut con = self.manager.clone();
        let mut invocation = self.redeem.key(key(sid));
        invocation.arg(jti).arg(next).arg(ms(ttl)).arg(REVOKED);
        let code: i64 = self
            .call("redeem", invocation.invoke_async(&mut con))
            .await?;
        Ok(match code {
            2 => Redeemed::Rotated,
            3 => Redeemed::Reused,
            1 => Redeemed::Revoked,
            _ => Redeemed::Unknown,
        })
    }

    async fn revoke(&self, sid: &str, ttl: Duration) -> Result<(), Unavailable> {
        let mut con = self.manager.clone();
        self.call(
            "revoke",
            con.set_ex::<_, _, ()>(key(sid), REVOKED, ttl.as_secs().max(1)),
        )
        .await
    }
}
