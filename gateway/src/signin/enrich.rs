//! Where a user's roles come from: static grants in the config, and the
//! team's own user service, asked at login and at every refresh.
//!
//! Roles end up in the tokens, so verification on the request path stays
//! stateless; they are computed again at each refresh, so a change reaches
//! the tokens within `access_ttl`. The user service can also give its own
//! id for the person (`uid`, which then becomes the user key everything
//! else uses), short custom claims, or refuse a banned user.
//!
//! The call fails closed: a login or refresh that asked and got no usable
//! answer issues no token (503). An answer beyond the limits is refused
//! whole, never truncated: a truncated role list would be a different
//! authorization decision than the one the service made. The limits are
//! chosen so that every answer within them makes tokens the gateway itself
//! accepts; should static grants or the config still make a token pass the
//! 8 KiB cap, the login or refresh is refused the same way
//! ([`crate::signin::identify`]). The URL may hold credentials: the call
//! goes through [`crate::outbound`], which never logs or formats it and
//! follows no redirect.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{is_header_safe, is_role_name, EnrichConfig, RoleGrant};
use crate::outbound::{self, CallError};
use crate::telemetry::labels::{label_enum, Counters, Label};
use crate::tokens::identity::{is_claim_name, MAX_CLAIMS, MAX_ROLES, MAX_ROLES_AND_CLAIMS};

/// Static role grants, by user key.
#[derive(Debug, Default)]
pub struct Grants {
    by_user: HashMap<String, Vec<String>>,
}

impl Grants {
    /// The grants of `[[roles]]`.
    pub fn new(grants: &[RoleGrant]) -> Grants {
        let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
        for g in grants {
            for u in &g.users {
                by_user.entry(u.clone()).or_default().push(g.role.clone());
            }
        }
        Grants { by_user }
    }

    /// The roles granted to `user`.
    pub fn of(&self, user: &str) -> &[String] {
        self.by_user.get(user).map_or(&[], Vec::as_slice)
    }
}

/// Why the user service is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A new session.
    Login,
    /// A refresh of an existing one.
    Refresh,
}

/// What the user service is told.
#[derive(Debug, Serialize)]
pub struct Ask<'a> {
    /// Login or refresh.
    pub event: Event,
    /// The platform's name.
    pub platform: &'a str,
    /// The mini-program.
    pub appid: &'a str,
    /// The user's openid.
    pub openid: &'a str,
    /// The user's unionid, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<&'a str>,
    /// The user's organisation (Feishu's `tenant_key`), when the platform
    /// has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    /// The device class of the session.
    pub device_type: &'a str,
    /// The device id, when the client sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<&'a str>,
    /// The login session.
    pub sid: &'a str,
}

/// What the user service said, checked against the limits.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Enriched {
    /// The service's id for the person.
    pub uid: Option<String>,
    /// Roles to add to the static grants.
    pub roles: Vec<String>,
    /// Short custom claims.
    pub claims: BTreeMap<String, String>,
}

label_enum! {
    /// How an enrichment call failed; every kind is a 503 to the client.
    pub enum EnrichFailure {
        /// No answer within `enrich.timeout`.
        Timeout = "timeout",
        /// The service could not be reached.
        Connect = "connect",
        /// A 3xx: redirects are not followed.
        Redirect = "redirect",
        /// A status other than 200 or 403.
        Status = "status",
        /// An answer larger than the gateway reads.
        TooLarge = "too_large",
        /// Not the expected JSON object.
        BadAnswer = "bad_answer",
        /// Beyond the limits (too many roles or claims, bad names, long values).
        Limits = "limits",
    }
}

/// The user service's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrichError {
    /// 403: the user may not have a session (banned).
    Denied,
    /// No usable answer.
    Failed(EnrichFailure),
}

/// Enrichment metrics.
#[derive(Debug)]
pub struct EnrichMetrics {
    /// Time of each call, whatever its outcome.
    pub latency: metrics::Histogram,
    /// Calls without a usable answer, by kind.
    pub failures: Counters<EnrichFailure>,
    /// Calls answered 403.
    pub denied: metrics::Counter,
}

/// The client of the user service.
#[derive(Debug)]
pub struct Enricher {
    config: EnrichConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    uid: Option<String>,
    roles: Option<Vec<String>>,
    claims: Option<BTreeMap<String, String>>,
}

impl Enricher {
    /// A client for `config` over the gateway's outbound HTTPS client.
    pub fn new(config: EnrichConfig, http: reqwest::Client) -> Enricher {
        Enricher { config, http }
    }

    /// Asks the user service about `ask`.
    pub async fn ask(
        &self,
        ask: &Ask<'_>,
        metrics: &EnrichMetrics,
    ) -> Result<Enriched, EnrichError> {
        let started = Instant::now();
        let result = self.call(ask).await;
        metrics.latency.record(started.elapsed().as_secs_f64());
        match result {
            Ok(_) => {}
            Err(EnrichError::Denied) => {
                metrics.denied.increment(1);
                tracing::info!(event = ?ask.event, sid = ask.sid, "user service refused the user");
            }
            Err(EnrichError::Failed(kind)) => {
                metrics.failures.increment(kind);
                tracing::warn!(event = ?ask.event, failure = kind.label(), "enrichment failed");
            }
        }
        result
    }

    async fn call(&self, ask: &Ask<'_>) -> Result<Enriched, EnrichError> {
        let fail = |f| EnrichError::Failed(f);
        let body = serde_json::to_vec(ask).map_err(|_| fail(EnrichFailure::BadAnswer))?;
        let req = self
            .http
            .post(self.config.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        let res = outbound::send(req, self.config.timeout).await?;
        let status = res.status();
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(EnrichError::Denied);
        }
        if status.is_redirection() {
            return Err(fail(EnrichFailure::Redirect));
        }
        if status != reqwest::StatusCode::OK {
            return Err(fail(EnrichFailure::Status));
        }
        let answer = outbound::read(res).await?;
        interpret(&answer).map_err(fail)
    }

    /// The configured timeout, for start-up logs.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }
}

/// Checks an answer body against the contract's limits.
pub fn interpret(body: &[u8]) -> Result<Enriched, EnrichFailure> {
    let a: Answer = serde_json::from_slice(body).map_err(|_| EnrichFailure::BadAnswer)?;
    if a.uid.as_deref().is_some_and(|u| !is_header_safe(u, 128)) {
        return Err(EnrichFailure::Limits);
    }
    let mut roles = a.roles.unwrap_or_default();
    if roles.len() > MAX_ROLES || !roles.iter().all(|r| is_role_name(r)) {
        return Err(EnrichFailure::Limits);
    }
    roles.sort();
    roles.dedup();
    let claims = a.claims.unwrap_or_default();
    if claims.len() > MAX_CLAIMS
        || !claims
            .iter()
            .all(|(k, v)| is_claim_name(k) && is_header_safe(v, 256))
    {
        return Err(EnrichFailure::Limits);
    }
    let size = roles.iter().map(String::len).sum::<usize>()
        + claims.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if size > MAX_ROLES_AND_CLAIMS {
        return Err(EnrichFailure::Limits);
    }
    Ok(Enriched {
        uid: a.uid,
        roles,
        claims,
    })
}

impl From<CallError> for EnrichError {
    fn from(e: CallError) -> EnrichError {
        EnrichError::Failed(match e {
            CallError::Timeout => EnrichFailure::Timeout,
            CallError::Connect | CallError::Other => EnrichFailure::Connect,
            CallError::Body => EnrichFailure::BadAnswer,
            CallError::TooLarge => EnrichFailure::TooLarge,
        })
    }
}

/// The roles of a subject: static grants of `user` and `extra`, sorted, no
/// duplicates.
pub fn merge_roles(grants: &Grants, user: &str, extra: &[String]) -> Vec<String> {
    let mut roles: Vec<String> = grants.of(user).iter().chain(extra).cloned().collect();
    roles.sort();
    roles.dedup();
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_within_the_limits_pass_and_others_are_refused_whole() {
        let ok = interpret(
            br#"{"uid":"u_1024","roles":["b","a","a"],"claims":{"tier":"gold"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(ok.uid.as_deref(), Some("u_1024"));
        assert_eq!(ok.roles, ["a", "b"]);
        assert_eq!(ok.claims["tier"], "gold");
        assert_eq!(interpret(b"{}").unwrap(), Enriched::default());
        let many: Vec<String> = (0..33).map(|i| format!("r{i}")).collect();
        let too_many = serde_json::json!({ "roles": many }).to_string();
        // Each within its own limit, together past MAX_ROLES_AND_CLAIMS:
        // the answer of issue 27, whose tokens no request could use.
        let roles: Vec<String> = (0..32)
            .map(|i| format!("{i:02}{}", "r".repeat(62)))
            .collect();
        let claims: BTreeMap<String, String> = (0..16)
            .map(|i| (format!("c{i:02}{}", "n".repeat(29)), "v".repeat(256)))
            .collect();
        let issue_27 =
            serde_json::json!({ "uid": "u".repeat(128), "roles": roles, "claims": claims })
                .to_string();
        // Exactly at the limit: 2048 + 16 * (32 + 32) = 3072.
        let at_limit: BTreeMap<String, String> = (0..16)
            .map(|i| (format!("c{i:02}{}", "n".repeat(29)), "v".repeat(32)))
            .collect();
        let full = interpret(
            serde_json::json!({ "uid": "u".repeat(128), "roles": roles, "claims": at_limit })
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!((full.roles.len(), full.claims.len()), (32, 16));
        let mut over = at_limit.clone();
        over.insert("c00".to_owned() + &"n".repeat(29), "v".repeat(33));
        let one_over = serde_json::json!({ "roles": roles, "claims": over }).to_string();
        let long = "x".repeat(257);
        for bad in [
            too_many.as_str(),
            r#"{"roles":["a,b"]}"#,
            r#"{"roles":[""]}"#,
            r#"{"claims":{"Bad":"x"}}"#,
            r#"{"claims":{"ok":""}}"#,
            &format!(r#"{{"claims":{{"ok":"{long}"}}}}"#),
            r#"{"uid":"has space"}"#,
            &issue_27,
            &one_over,
        ] {
            assert_eq!(
                interpret(bad.as_bytes()),
                Err(EnrichFailure::Limits),
                "{bad}"
            );
        }
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"roles":"admin"}"#,
            br#"{"uid":7}"#,
        ] {
            assert_eq!(interpret(bad), Err(EnrichFailure::BadAnswer));
        }
    }

    #[test]
    fn static_grants_merge_with_enrichment() {
        let g = Grants::new(&[
            RoleGrant {
                role: "admin".into(),
                users: vec!["u_1".into(), "o_2".into()],
            },
            RoleGrant {
                role: "auditor".into(),
                users: vec!["u_1".into()],
            },
        ]);
        assert_eq!(
            merge_roles(&g, "u_1", &["editor".into(), "admin".into()]),
            ["admin", "auditor", "editor"]
        );
        assert!(merge_roles(&g, "nobody", &[]).is_empty());
    }

    #[test]
    fn claim_names() {
        for ok in ["tier", "a_1", "x".repeat(32).as_str()] {
            assert!(is_claim_name(ok), "{ok}");
        }
        for bad in ["", "Tier", "a-b", "x".repeat(33).as_str()] {
            assert!(!is_claim_name(bad), "{bad}");
        }
    }
}
