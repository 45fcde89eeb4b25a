//! A sign-in's `state`: what binds the browser that started a sign-in to
//! the browser that comes back with a code (login CSRF, RFC 6749 10.12).
//!
//! `/auth/web/login` makes a random state (128 bits, hex: WeChat allows
//! `a-zA-Z0-9` only), sends it to the authorize page, and sets the state
//! cookie to a JWS signed with the gateway's current key (`typ`
//! `web-state+jwt`), holding that state, the provider's appid, where to land
//! afterwards, and an expiry ten minutes on. Nothing is stored at the start,
//! so any replica can serve the callback: it verifies the cookie with the
//! key set every replica shares, compares its state with the one in the
//! URL, and then claims the state once ([`ClaimedStates`]): in Redis when the
//! session store is Redis (`SET NX`, so every replica agrees), else in
//! process. A state claimed before is refused even with its cookie, so a
//! callback URL that leaked (a log, a proxy, browser history) cannot be
//! replayed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::sessions::Store;
use crate::tokens::{now_secs, Tokens};

/// `typ` of the state cookie's JWS: never accepted as any token.
pub const STATE_TYP: &str = "web-state+jwt";
/// How long a sign-in may take, from the redirect to the callback.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// States claimed in process at most (beyond, the oldest are forgotten).
const MAX_USED: u64 = 100_000;

/// What the state cookie says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The issuer: a cookie of another gateway's key set is refused by
    /// its signature anyway; this makes one of another issuer refused too.
    pub iss: String,
    /// The random state sent to the authorize page.
    pub state: String,
    /// The provider's appid.
    pub app: String,
    /// Where to land after signing in: a checked same-origin path.
    pub to: String,
    /// Expiry, unix seconds.
    pub exp: u64,
}

/// Why a returning browser's state is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadState {
    /// No state cookie, or one that does not verify or has expired.
    NoCookie,
    /// The URL's state is not the cookie's.
    Mismatch,
    /// The state was used before.
    Replayed,
}

impl BadState {
    /// The 400 it is answered with.
    pub fn error(self) -> ApiError {
        ApiError::InvalidRequest(match self {
            BadState::NoCookie => "no valid sign-in state cookie: start again at /auth/web/login",
            BadState::Mismatch => "the sign-in state does not match its cookie",
            BadState::Replayed => "the sign-in state was already used",
        })
    }
}

/// A fresh random state: 32 hex digits.
pub fn fresh() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ApiError::Internal)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The state cookie's value for `state`: signed with the current key.
pub fn seal(tokens: &Tokens, state: &State) -> Result<String, ApiError> {
    tokens
        .keys()
        .load()
        .set
        .sign(STATE_TYP, state)
        .map_err(|_| ApiError::Internal)
}

/// The state cookie's contents, if it verifies and has not expired.
pub fn open(tokens: &Tokens, cookie: &str, issuer: &str) -> Option<State> {
    let payload = tokens.keys().load().set.verify(cookie, STATE_TYP).ok()?;
    let state: State = serde_json::from_slice(&payload).ok()?;
    (state.iss == issuer && now_secs() < state.exp).then_some(state)
}

/// The states claimed in this process (the in-process session store's
/// stand-in for Redis's `SET NX`).
pub struct ClaimedStates {
    seen: moka::sync::Cache<Box<str>, ()>,
}

impl std::fmt::Debug for ClaimedStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedStates").finish_non_exhaustive()
    }
}

impl Default for ClaimedStates {
    fn default() -> Self {
        ClaimedStates {
            seen: moka::sync::Cache::builder()
                .max_capacity(MAX_USED)
                .time_to_live(STATE_TTL)
                .build(),
        }
    }
}

impl ClaimedStates {
    /// Claims `state`: `Ok(true)` the first time, `Ok(false)` after; an
    /// error when Redis cannot say.
    pub async fn claim(&self, store: &Store, state: &str) -> Result<bool, ApiError> {
        match store {
            Store::Redis(r) => r
                .claim_once(&format!("web-state:{state}"), STATE_TTL)
                .await
                .map_err(|_| ApiError::SessionsUnavailable),
            Store::Memory(_) => Ok(self.seen.entry(state.into()).or_insert(()).is_fresh()),
        }
    }
}
