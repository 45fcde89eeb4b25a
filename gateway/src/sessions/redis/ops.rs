//! The session operations on Redis: each one script (or one command),
//! called through the store's connection with its deadline, and its answer
//! read back into the store's types. The store itself (connections, keys,
//! health) is the module above.

use super::*;

impl RedisStore {
    /// Sets `field` of the live session `at` to `value` (one script, as
    /// `op`); `false`: the session is not live.
    async fn set_field(
        &self,
        op: &'static str,
        at: SessionRef<'_>,
        field: &str,
        value: &str,
    ) -> Result<bool, Unavailable> {
        let keys = Keys::of(at.user.0);
        let mut con = self.con().await?;
        let mut inv = self.scripts.set_field.prepare_invoke();
        inv.key(keys.session(at.sid.0));
        inv.arg(field).arg(value);
        let done: i64 = self.call(op, inv.invoke_async(&mut con)).await?;
        Ok(done == 1)
    }
}

impl SessionStore for RedisStore {
    async fn begin(&self, new: &NewSession<'_>, ttl: Duration) -> Result<Recorded, Unavailable> {
        let keys = Keys::of(new.user.0);
        let mut con = self.con().await?;
        let mut inv = self.scripts.begin.prepare_invoke();
        inv.key(&keys.index)
            .key(keys.class(new.device_type))
            .key(keys.session(new.sid.0))
            .key(&keys.all);
        inv.arg(new.sid.0)
            .arg(new.jti.0)
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
            .arg(&keys.class_prefix)
            .arg(new.platform)
            .arg(new.appid)
            .arg(new.device_name.unwrap_or(""))
            .arg(self.idle_ms)
            .arg(new.openid);
        let out: Vec<Value> = self.call("begin", inv.invoke_async(&mut con)).await?;
        let mut out = out.into_iter();
        match out.next() {
            Some(Value::Int(1)) => Ok(Recorded::Started {
                evicted: out
                    .filter_map(|v| redis::from_redis_value::<String>(v).ok())
                    .collect(),
            }),
            _ => Ok(Recorded::Refused),
        }
    }

    async fn redeem(
        &self,
        at: SessionRef<'_>,
        turn: Rotation<'_>,
        ttl: Duration,
    ) -> Result<Redeemed, Unavailable> {
        let (user, sid, jti, next) = (at.user.0, at.sid.0, turn.spent.0, turn.next.0);
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.redeem.prepare_invoke();
        inv.key(&keys.index).key(keys.session(sid)).key(&keys.all);
        inv.arg(sid)
            .arg(jti)
            .arg(next)
            .arg(ms(ttl))
            .arg(self.grace_ms)
            .arg(&keys.class_prefix)
            .arg(self.idle_ms);
        let out: Vec<Value> = self.call("redeem", inv.invoke_async(&mut con)).await?;
        let (code, value) = code_and(out);
        Ok(match code {
            2 => Redeemed::Rotated {
                phone: value
                    .and_then(|v| redis::from_redis_value::<String>(v).ok())
                    .filter(|p| !p.is_empty()),
            },
            3 => Redeemed::Reused,
            1 => Redeemed::Revoked(why(value)),
            _ => Redeemed::Unknown,
        })
    }

    async fn check(
        &self,
        at: SessionRef<'_>,
        jti: Jti<'_>,
        ttl: Duration,
    ) -> Result<Checked, Unavailable> {
        let (user, sid, jti) = (at.user.0, at.sid.0, jti.0);
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
            .arg(ms(REFRESH_WINDOW))
            .arg(self.idle_ms);
        let out: Vec<Value> = self.call("check", inv.invoke_async(&mut con)).await?;
        let (code, value) = code_and(out);
        Ok(match code {
            2 => Checked::Live,
            4 => {
                let wait = value
                    .and_then(|v| redis::from_redis_value::<i64>(v).ok())
                    .and_then(|ms| u64::try_from(ms).ok())
                    .unwrap_or(0);
                Checked::TooSoon(Duration::from_millis(wait))
            }
            3 => Checked::Reused,
            1 => Checked::Revoked(why(value)),
            _ => Checked::Unknown,
        })
    }

    async fn end_everywhere(
        &self,
        at: SessionRef<'_>,
        jti: Jti<'_>,
        ttl: Duration,
    ) -> Result<EndedAll, Unavailable> {
        let (user, sid, jti) = (at.user.0, at.sid.0, jti.0);
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
            .arg(sid)
            .arg(EndReason::LoggedOut.label())
            .arg(self.idle_ms);
        let out: Vec<Value> = self.call("end", inv.invoke_async(&mut con)).await?;
        Ok(match ended(out) {
            Ok(sids) => EndedAll::Ended(sids),
            Err(why) => EndedAll::Refused(
                why.and_then(|v| redis::from_redis_value::<String>(v).ok())
                    .filter(|l| !l.is_empty())
                    .map(|l| EndReason::parse(&l).unwrap_or(EndReason::Revoked)),
            ),
        })
    }

    async fn set_phone(&self, at: SessionRef<'_>, phone: &str) -> Result<bool, Unavailable> {
        self.set_field("set_phone", at, "ph", phone).await
    }

    async fn set_session_key(&self, at: SessionRef<'_>, key: &Secret) -> Result<bool, Unavailable> {
        self.set_field("set_session_key", at, "sk", key.expose())
            .await
    }

    async fn reissue(
        &self,
        at: SessionRef<'_>,
        next: Jti<'_>,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let (user, sid, next) = (at.user.0, at.sid.0, next.0);
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.reissue.prepare_invoke();
        inv.key(&keys.index).key(keys.session(sid)).key(&keys.all);
        inv.arg(sid)
            .arg(next)
            .arg(ms(ttl))
            .arg(&keys.class_prefix)
            .arg(self.idle_ms);
        let done: i64 = self.call("reissue", inv.invoke_async(&mut con)).await?;
        Ok(done == 1)
    }

    async fn session_key(&self, at: SessionRef<'_>) -> Result<Option<KeptKey>, Unavailable> {
        let (user, sid) = (at.user.0, at.sid.0);
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(keys.session(sid))
            .arg("state")
            .arg("sk")
            .arg("oid")
            .arg("app");
        type Fields = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (state, key, openid, appid): Fields =
            self.call("session_key", cmd.query_async(&mut con)).await?;
        Ok(match (state.as_deref(), key) {
            (Some("live"), Some(k)) if !k.is_empty() => Some(KeptKey {
                key: Secret::new(k),
                openid: openid.unwrap_or_default(),
                appid: appid.unwrap_or_default(),
            }),
            _ => None,
        })
    }

    async fn end(
        &self,
        user: UserKey<'_>,
        sid: Option<Sid<'_>>,
        why: EndReason,
        ttl: Duration,
    ) -> Result<Vec<String>, Unavailable> {
        let (user, sid) = (user.0, sid.map(|s| s.0));
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
            .arg("")
            .arg(why.label())
            .arg(self.idle_ms);
        let out: Vec<Value> = self.call("end", inv.invoke_async(&mut con)).await?;
        Ok(ended(out).unwrap_or_default())
    }

    async fn list(&self, user: UserKey<'_>) -> Result<Vec<SessionInfo>, Unavailable> {
        let user = user.0;
        let keys = Keys::of(user);
        let mut con = self.con().await?;
        let mut inv = self.scripts.list.prepare_invoke();
        inv.key(&keys.index);
        inv.arg(&keys.session_prefix).arg(self.listed);
        let flat: Vec<String> = self.call("list", inv.invoke_async(&mut con)).await?;
        let mut list: Vec<(u64, SessionInfo)> = flat
            .chunks_exact(8)
            .map(|c| {
                let created_us = c[3].parse::<u64>().unwrap_or(0);
                let given = |v: &String| (!v.is_empty()).then(|| v.clone());
                let info = SessionInfo {
                    sid: c[0].clone(),
                    device_type: c[1].clone(),
                    device_id: given(&c[2]),
                    platform: given(&c[5]),
                    appid: given(&c[6]),
                    device_name: given(&c[7]),
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

/// The reason a script answered beside "revoked": none or an unknown one
/// (a record of an older or a newer gateway) reads as
/// [`EndReason::Revoked`].
fn why(value: Option<Value>) -> EndReason {
    value
        .and_then(|v| redis::from_redis_value::<String>(v).ok())
        .and_then(|l| EndReason::parse(&l))
        .unwrap_or(EndReason::Revoked)
}

/// The `END` script's answer: the sids ended, or, when it refused, the
/// value beside its code (why the session ended).
fn ended(out: Vec<Value>) -> Result<Vec<String>, Option<Value>> {
    let mut out = out.into_iter();
    match out.next() {
        Some(Value::Int(1)) => Ok(out
            .filter_map(|v| redis::from_redis_value::<String>(v).ok())
            .collect()),
        _ => Err(out.next()),
    }
}
