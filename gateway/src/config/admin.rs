//! The `[admin]` section: the operators' listener and its scoped tokens.

use std::net::SocketAddr;

use super::Secret;

/// `[admin]`: the operators' listener, on its own socket.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Where it listens; never the public `listen`.
    pub listen: SocketAddr,
    /// The tokens it accepts, each with its scopes: at least one, no two
    /// alike. `token_env`/`token_file` (every scope) comes first, then
    /// `[[admin.tokens]]` in order.
    pub tokens: Vec<AdminToken>,
}

/// One admin token and the endpoints it may call.
#[derive(Debug, Clone)]
pub struct AdminToken {
    /// The bearer token.
    pub token: Secret,
    /// Where it came from (`env NAME` or `file PATH`), for `config check`.
    pub source: String,
    /// What it may call: no duplicates, in [`AdminScope::ALL`] order.
    pub scopes: Vec<AdminScope>,
}

impl AdminToken {
    /// Does this token hold `scope`?
    pub fn allows(&self, scope: AdminScope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A part of the admin API a token may be given (`[[admin.tokens]] scopes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminScope {
    /// The sessions API, `/admin/users/{user}/sessions...` (what `minigate
    /// sessions` calls): list and end any user's sessions.
    Sessions,
    /// `/admin/wechat/access_token`: the WeChat access token, for backend
    /// services.
    Wechat,
}

impl AdminScope {
    /// Every scope: what `token_env`/`token_file` holds.
    pub const ALL: [AdminScope; 2] = [AdminScope::Sessions, AdminScope::Wechat];

    /// The config name.
    pub const fn name(self) -> &'static str {
        match self {
            AdminScope::Sessions => "sessions",
            AdminScope::Wechat => "wechat",
        }
    }

    /// The scope of a config name.
    pub fn named(name: &str) -> Option<AdminScope> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}
