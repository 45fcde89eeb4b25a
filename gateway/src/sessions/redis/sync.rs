//! Keeping every replica's revoked set in step through Redis: a
//! subscription to the channel `minigate:revoked`, and resyncs from the
//! sorted set of the same name in case a published message was missed.
//! Apart from the store, since it runs as a background task of its own and
//! never on a request's path.
//!
//! Both carry why each session ended. A message is `AT UNTIL \tREASON
//! SID...`: the reason's word starts with a tab, which is not a character a
//! sid can hold, so an older replica (which reads every word after UNTIL as
//! a sid, skipping any that could not be one) still reads the sids right;
//! a message from an older replica, without that word, reads as
//! `revoked`. A member of the sorted set is `SID REASON`; a bare `SID`
//! (an older replica's) reads as `revoked`. An older replica reading the
//! set finds no sid it knows in the new members: during a rolling upgrade
//! it learns the newer replicas' endings from the channel alone.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::{RedisStore, CALL_TIMEOUT, REVOKED_KEY};
use crate::sessions::revoked::RevokedSet;
use crate::sessions::{EndReason, Unavailable};
use crate::telemetry::labels::Label as _;
use crate::telemetry::metrics::Resync;

/// How often a replica re-reads the recent revocations, in case a
/// published one was missed: under the contract's 2 seconds, so a missed
/// message still reaches every replica in time while Redis answers. The
/// read is of the recent window of one sorted set: cheap at this rate.
pub const RESYNC_EVERY: Duration = Duration::from_secs(1);
/// How soon a full resync that failed is tried again.
const FULL_RETRY: Duration = Duration::from_millis(200);

/// A reason a replica sent that this one does not know (a newer
/// gateway's), or none: the operator's, the most general.
fn reason_or_revoked(label: &str) -> EndReason {
    EndReason::parse(label).unwrap_or(EndReason::Revoked)
}

/// The message announcing that `sids` ended for `why`.
pub(super) fn message(at: u64, until: u64, why: EndReason, sids: &[String]) -> String {
    format!("{at} {until} \t{} {}", why.label(), sids.join(" "))
}

/// The resync record's member for `sid`, ended for `why`.
pub(super) fn member(sid: &str, why: EndReason) -> String {
    format!("{sid} {}", why.label())
}

/// Parses a published revocation: `AT UNTIL [\tREASON] SID...`.
fn parse_message(payload: &str) -> Option<(u64, u64, EndReason, Vec<&str>)> {
    let mut parts = payload.split(' ');
    let at = parts.next()?.parse().ok()?;
    let until = parts.next()?.parse().ok()?;
    let mut why = EndReason::Revoked;
    let mut sids = Vec::new();
    for part in parts {
        if let Some(label) = part.strip_prefix('\t') {
            why = reason_or_revoked(label);
        } else if crate::config::is_header_safe(part, 128) {
            sids.push(part);
        }
    }
    Some((at, until, why, sids))
}

/// Parses a member of the resync record: `SID REASON`, or a bare `SID`.
fn parse_member(member: &str) -> (&str, EndReason) {
    match member.split_once(' ') {
        Some((sid, label)) => (sid, reason_or_revoked(label)),
        None => (member, EndReason::Revoked),
    }
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
                Ok(Ok(p)) => {
                    redis.health.up();
                    p.into_on_message()
                }
                failed => {
                    // At start too: the first warning that Redis is not
                    // there, where it was looked for, and why.
                    redis.health.down(
                        "subscribe",
                        match failed {
                            Ok(Err(e)) => super::health::reason(&e),
                            _ => super::no_answer(),
                        },
                    );
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
                        if let Some((at, until, why, sids)) = parse_message(&payload) {
                            revoked.insert_all(sids.into_iter().map(|s| (s, until, why)));
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
            revoked.insert_all(entries.iter().map(|(m, until)| {
                let (sid, why) = parse_member(m);
                (sid, *until, why)
            }));
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
    fn messages_parse() {
        // An older replica's message: no reason, read as `revoked`.
        assert_eq!(
            parse_message("1 2 a b"),
            Some((1, 2, EndReason::Revoked, vec!["a", "b"]))
        );
        assert_eq!(parse_message("x 2 a"), None);
        for why in EndReason::ALL {
            let sent = message(1, 2, *why, &["a".into(), "b".into()]);
            assert_eq!(parse_message(&sent), Some((1, 2, *why, vec!["a", "b"])));
            // What an older replica reads of it: the sids, and nothing
            // else taken for one.
            let old: Vec<&str> = sent
                .split(' ')
                .skip(2)
                .filter(|s| crate::config::is_header_safe(s, 128))
                .collect();
            assert_eq!(old, ["a", "b"]);
            assert_eq!(parse_member(&member("a", *why)), ("a", *why));
        }
        // A newer gateway's reason reads as `revoked`.
        assert_eq!(
            parse_message("1 2 \tkicked a"),
            Some((1, 2, EndReason::Revoked, vec!["a"]))
        );
        assert_eq!(parse_member("a"), ("a", EndReason::Revoked));
        assert_eq!(parse_member("a kicked"), ("a", EndReason::Revoked));
    }
}
