//! A WeChat provider's risk-aware login: `risk_scene`, `refuse_risk_rank`,
//! `risk_required`.

use super::*;
use crate::config::RiskConfig;

/// The risk keys of a provider (`risk_scene`, `refuse_risk_rank`,
/// `risk_required`): only a `wechat` mini-program has them
/// (WeChat does not answer `getuserriskrank` for a third-party platform),
/// and the companions need `risk_scene`.
pub(super) fn risk(
    key: &dyn Fn(&str) -> String,
    (scene, refuse_risk_rank, risk_required): (Option<u32>, Option<u8>, Option<bool>),
    platform: Platform,
) -> Result<Option<RiskConfig>, ConfigError> {
    let Some(scene) = scene else {
        let companion = [
            ("refuse_risk_rank", refuse_risk_rank.is_some()),
            ("risk_required", risk_required.is_some()),
        ]
        .into_iter()
        .find_map(|(k, set)| set.then_some(k));
        return match companion {
            Some(k) => Err(err(
                key(k),
                "needs risk_scene, which turns the risk call on",
            )),
            None => Ok(None),
        };
    };
    if platform.name() != "wechat" {
        return Err(err(
            key("risk_scene"),
            "is only for platform = \"wechat\" (WeChat's getuserriskrank, which third-party platforms cannot call)",
        ));
    }
    if let Some(rank) = refuse_risk_rank {
        if !(1..=4).contains(&rank) {
            return Err(err(
                key("refuse_risk_rank"),
                "must be 1-4 (WeChat's ranks run 0-4; ranks at or above it are refused)",
            ));
        }
    }
    Ok(Some(RiskConfig {
        scene,
        refuse_at: refuse_risk_rank,
        required: risk_required.unwrap_or(false),
    }))
}
