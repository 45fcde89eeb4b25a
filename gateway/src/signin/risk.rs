//! Risk-aware login: a WeChat provider with `risk_scene` asks WeChat the
//! user's risk rank after the code exchange, before the session begins.
//!
//! The rank goes into the tokens (claim `risk_rank`, kept by refreshes) so
//! that upstreams can weigh it (`X-Auth-Risk-Rank`); a rank at or above
//! `refuse_risk_rank` ends the login with 403 `risky_user`. WeChat's risk
//! service is an extra, not the login itself: when it fails the login goes
//! on without a rank (counted), unless `risk_required` says it must not.

use std::net::IpAddr;

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::signin::providers::Provider;
use crate::telemetry::audit;
use crate::telemetry::traces::Step;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

/// The user's risk rank at `provider` (`None`: not asked, or asked and
/// failed with the failure let through), or why the login is refused.
pub async fn assess(
    gw: &Gateway,
    provider: &Provider,
    appid: &str,
    openid: &str,
    client: IpAddr,
) -> Result<Option<u8>, ApiError> {
    let Some(risk) = provider.risk else {
        return Ok(None);
    };
    let metrics = gw.metrics.risk(appid);
    let ip = client.to_string();
    let step = Step::of(
        gw.tracing.as_ref(),
        "wechat risk rank",
        SpanKind::Client,
        || vec![KeyValue::new("minigate.appid", appid.to_owned())],
    );
    let ranked = crate::wechat::risk::rank(&gw.wechat, appid, openid, risk.scene, &ip).await;
    match &ranked {
        Ok(rank) => step.set(|| KeyValue::new("minigate.risk_rank", i64::from(*rank))),
        Err(_) => step.fail("wechat_error"),
    }
    drop(step);
    match ranked {
        Ok(rank) if risk.refuse_at.is_some_and(|at| rank >= at) => {
            if let Some(m) = metrics {
                m.refused.increment(1);
            }
            tracing::info!(appid, rank, "login refused for its risk rank");
            gw.audit.emit(audit::Event::RiskyUserRefused {
                platform: provider.platform.name(),
                appid,
                client,
            });
            Err(ApiError::RiskRank)
        }
        Ok(rank) => Ok(Some(rank)),
        Err(e) => {
            if let Some(m) = metrics {
                m.failures.increment(e);
            }
            tracing::warn!(
                appid,
                failure = e.label(),
                required = risk.required,
                "WeChat getuserriskrank failed"
            );
            if risk.required {
                Err(e.into_api())
            } else {
                Ok(None)
            }
        }
    }
}
