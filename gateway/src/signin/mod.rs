//! Opening a login session, and what keeps one going: what every sign-in
//! shares, whether a mini-program's code (`POST /auth/login`) or a browser's
//! web sign-in ([`crate::signin::web`]), and what a refresh or a new pair redoes.
//!
//! It sits below both: the endpoints and the web sign-in call it, and it
//! knows neither, so a sign-in added later has one place to start a session
//! from, with the same enrichment, device limits and session-key custody.

pub mod codes;
pub mod enrich;
pub mod providers;
pub mod risk;
pub mod web;

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::sessions::{EndReason, NewSession, Recorded, SessionStore as _};
use crate::signin::enrich::{merge_roles, Ask, EnrichError, EnrichFailure, Event};
use crate::telemetry::audit;
use crate::telemetry::metrics::SessionOp;
use crate::telemetry::traces::Step;
use crate::tokens::{random_id, Jti, SessionRef, Sid, Subject, TokenPair};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

/// The longest login code accepted, from any platform.
pub const MAX_CODE: usize = 256;

/// A span of one session-store call (`op`), when the gateway traces.
pub fn store_step(gw: &Gateway, op: &'static str) -> Step {
    Step::of(
        gw.tracing.as_ref(),
        "session store",
        SpanKind::Client,
        || {
            vec![
                KeyValue::new("db.system.name", gw.sessions.kind()),
                KeyValue::new("db.operation.name", op),
            ]
        },
    )
}

/// The session store failed during `op`: counted, and 503.
pub fn store_down(gw: &Gateway, op: SessionOp) -> ApiError {
    gw.metrics.session_errors.increment(op);
    ApiError::SessionsUnavailable
}

/// A new login session for `subject`, whoever signed in (a mini-program's
/// code, a browser's web sign-in): enrichment (which may refuse the user),
/// the session recorded within its device class's `limit` with the
/// platform's `session_key` if it gave one (and the device's name, if the
/// client sent one, for the listing), and its tokens. Returns the enriched
/// subject, the sid and the pair.
pub async fn open_session(
    gw: &Gateway,
    subject: Subject,
    limit: u32,
    session_key: Option<&str>,
    device_name: Option<&str>,
) -> Result<(Subject, String, TokenPair), ApiError> {
    let sid = random_id()?;
    let subject = identify(gw, subject, Event::Login, &sid).await?;
    let refresh_jti = random_id()?;
    let kept = Kept {
        session_key,
        device_name,
    };
    begin_session(gw, &subject, &sid, &refresh_jti, limit, kept).await?;
    let pair = gw.tokens.issue(&subject, &sid, refresh_jti)?;
    Ok((subject, sid, pair))
}

/// A new pair in the live session `sid` of `who`, without a refresh token
/// presented: the session's refresh token is replaced by the new one.
pub async fn new_pair(gw: &Gateway, who: &Subject, sid: &str) -> Result<TokenPair, ApiError> {
    let jti = random_id()?;
    let live = gw
        .sessions
        .reissue(
            SessionRef {
                user: who.user_key(),
                sid: Sid(sid),
            },
            Jti(&jti),
            gw.tokens.refresh_ttl(),
        )
        .await
        .map_err(|_| store_down(gw, SessionOp::Refresh))?;
    if !live {
        return Err(ApiError::InvalidGrant("session revoked"));
    }
    Ok(gw.tokens.issue(who, sid, jti)?)
}

/// The subject's roles, uid and claims, from the static grants and, when
/// `[enrich]` is configured, the user service (which may refuse the user).
pub async fn identify(
    gw: &Gateway,
    mut subject: Subject,
    event: Event,
    sid: &str,
) -> Result<Subject, ApiError> {
    let mut extra = Vec::new();
    if let Some(enricher) = &gw.enricher {
        let ask = Ask {
            event,
            platform: subject.platform.name(),
            appid: &subject.appid,
            openid: &subject.openid,
            unionid: subject.unionid.as_deref(),
            tenant: subject.tenant.as_ref().map(crate::tokens::Tenant::key),
            device_type: &subject.device_type,
            device_id: subject.device_id.as_deref(),
            sid,
        };
        let step = Step::of(
            gw.tracing.as_ref(),
            "user service",
            SpanKind::Client,
            || {
                vec![KeyValue::new(
                    "minigate.event",
                    match event {
                        Event::Login => "login",
                        Event::Refresh => "refresh",
                    },
                )]
            },
        );
        let enriched = enricher.ask(&ask, &gw.metrics.enrich).await;
        if let Err(e) = &enriched {
            step.fail(match e {
                EnrichError::Denied => "access_denied",
                EnrichError::Failed(_) => "temporarily_unavailable",
            });
        }
        drop(step);
        let enriched = enriched.map_err(|refused| match refused {
            EnrichError::Denied => {
                gw.audit.emit(audit::Event::UserBanned {
                    at: match event {
                        Event::Login => audit::Stage::Login,
                        Event::Refresh => audit::Stage::Refresh,
                    },
                    appid: &subject.appid,
                    user: subject.user(),
                    sid: (event == Event::Refresh).then_some(sid),
                });
                ApiError::AccessDenied
            }
            EnrichError::Failed(_) => ApiError::EnrichUnavailable,
        })?;
        // The uid is fixed at login: it is part of the user key the session
        // is kept under, which a refresh must not move.
        if event == Event::Login {
            subject.uid = enriched.uid;
        } else if enriched.uid != subject.uid {
            tracing::warn!(
                sid,
                "the user service gave another uid at refresh; the session keeps its own"
            );
        }
        subject.ext = enriched.claims;
        extra = enriched.roles;
    }
    subject.roles = merge_roles(&gw.grants.load(), subject.user(), &extra);
    // Static grants on top of an answer, or a long issuer or audience, could
    // still make tokens the gateway would refuse on every request: refused
    // here, like an answer beyond the limits, and nothing is issued.
    if let Some(bytes) = gw.tokens.oversized(&subject, sid)? {
        if gw.enricher.is_some() {
            gw.metrics.enrich.failures.increment(EnrichFailure::Limits);
        }
        tracing::warn!(
            sid,
            bytes,
            roles = subject.roles.len(),
            claims = subject.ext.len(),
            "the user's roles and claims would make a token larger than the gateway accepts: none issued"
        );
        return Err(ApiError::EnrichUnavailable);
    }
    Ok(subject)
}

/// The login's device class (absent: `phone`) and its limit; a class the
/// config does not name is 400.
pub fn device_class(gw: &Gateway, named: Option<&str>) -> Result<(String, u32), ApiError> {
    let name = named.unwrap_or(crate::config::defaults::DEVICE_TYPE);
    gw.sessions_config
        .devices
        .get(name)
        .map(|c| (c.name.clone(), c.limit))
        .ok_or(ApiError::InvalidRequest(
            "device_type is not one of the configured device types",
        ))
}

/// What a new session keeps beside its subject.
struct Kept<'a> {
    session_key: Option<&'a str>,
    device_name: Option<&'a str>,
}

/// Records a new session of `who` within its class's limit: the sessions
/// it evicts end everywhere (reason `replaced`); a full class under
/// `refuse` is 409.
async fn begin_session(
    gw: &Gateway,
    who: &Subject,
    sid: &str,
    jti: &str,
    limit: u32,
    kept: Kept<'_>,
) -> Result<(), ApiError> {
    let new = NewSession {
        session_key: kept.session_key,
        openid: &who.openid,
        user: who.user_key(),
        sid: Sid(sid),
        jti: Jti(jti),
        device_type: &who.device_type,
        device_id: who.device_id.as_deref(),
        platform: who.platform.name(),
        appid: &who.appid,
        device_name: kept.device_name,
        limit,
        max_per_user: gw.sessions_config.max_per_user,
        on_limit: gw.sessions_config.on_limit,
    };
    let step = store_step(gw, "begin");
    let begun = gw.sessions.begin(&new, gw.tokens.refresh_ttl()).await;
    if begun.is_err() {
        step.fail("temporarily_unavailable");
    }
    drop(step);
    let begun = begun.map_err(|_| store_down(gw, SessionOp::Login))?;
    match begun {
        Recorded::Started { evicted } => {
            if !evicted.is_empty() {
                tracing::info!(
                    sid = %sid, device_type = %who.device_type, evicted = evicted.len(),
                    "device limit: oldest session ended"
                );
                gw.sessions
                    .announce(&gw.revoked, &evicted, EndReason::Replaced)
                    .await;
                for ended in &evicted {
                    gw.audit.emit(audit::Event::SessionEnded {
                        reason: EndReason::Replaced,
                        user: who.user(),
                        sid: ended,
                        by_sid: Some(sid),
                    });
                }
            }
            Ok(())
        }
        Recorded::Refused => Err(ApiError::SessionLimit),
    }
}
