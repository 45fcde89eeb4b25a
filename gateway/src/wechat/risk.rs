//! The user's risk rank at login: `getuserriskrank` (WeChat's security
//! risk control), asked with the app's access token after the code
//! exchange, for the scene the provider names. The rank (0 the safest, 4
//! the riskiest) is what WeChat knows of the account and the address: the
//! gateway passes it on (claim `risk_rank`, `X-Auth-Risk-Rank`) and may
//! refuse ranks at or above a threshold.

use serde::{Deserialize, Serialize};

use super::client::WxError;
use super::token::AccessTokens;
use crate::telemetry::labels::Counters;

/// The risk-rank counters of one app.
#[derive(Debug)]
pub struct RiskMetrics {
    /// Risk calls that failed, by kind (the login went on without a rank,
    /// or with `risk_required` failed).
    pub failures: Counters<WxError>,
    /// Logins refused for a rank at or above `refuse_risk_rank`.
    pub refused: metrics::Counter,
}

#[derive(Serialize)]
struct Ask<'a> {
    appid: &'a str,
    openid: &'a str,
    scene: u32,
    client_ip: &'a str,
}

/// WeChat's answer: `{"errcode":0,"errmsg":"getuserriskrank succ",
/// "risk_rank":N,"unoin_id":...}` (`unoin_id`, sic, names the request and
/// is not kept).
#[derive(Deserialize)]
struct Answer {
    risk_rank: u8,
}

/// The risk rank of user `openid` of app `appid`, signing in from
/// `client_ip`, for `scene` (0 sign-up/login, 1 marketing fraud, ...).
pub async fn rank(
    tokens: &AccessTokens,
    appid: &str,
    openid: &str,
    scene: u32,
    client_ip: &str,
) -> Result<u8, WxError> {
    let answer: Answer = tokens
        .call(
            appid,
            "/wxa/getuserriskrank",
            &Ask {
                appid,
                openid,
                scene,
                client_ip,
            },
        )
        .await?;
    Ok(answer.risk_rank)
}
