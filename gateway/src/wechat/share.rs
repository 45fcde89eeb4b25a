//! What replicas share of WeChat's tokens through Redis. The keeping itself
//! (the token under its app's hash tag, the lock that lets one replica at a
//! time renew it) is [`crate::outbound::kept`]'s, shared with the other
//! platforms' app tokens; this names WeChat's two kinds of token, whose
//! tags the token machinery ([`super::token`]) and a third-party platform's
//! tickets ([`super::component`]) both key their state by, so neither
//! needs the other's.

pub use crate::outbound::kept::{Share, Token, MARGIN};

/// Which of WeChat's tokens an app keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A mini-program's access token, from `stable_token`.
    Stable,
    /// A third-party platform's `component_access_token`, from
    /// `api_component_token`.
    Component,
}

impl TokenKind {
    /// The platform its Redis keys are named by.
    pub(super) fn platform(self) -> &'static str {
        match self {
            TokenKind::Stable => "wechat",
            TokenKind::Component => "wechat_component",
        }
    }

    /// The hash tag of an app's keys in Redis.
    pub(super) fn tag(self, appid: &str) -> String {
        crate::outbound::kept::tag(self.platform(), appid)
    }
}
