//! Why a token was refused, and the gateway's own failures.

use super::EndReason;
use crate::telemetry::labels::Label;

/// The system failed the gateway (no randomness, a key that would not
/// sign): a fault of the gateway itself, never of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Internal;

/// Why a token was refused: the verifier's reasons, then the claims'.
///
/// The `message` is a fixed sentence fit for an `error_description` and the
/// `reason` a short stable label for metrics; neither ever holds any part of
/// the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Signature, header or framing: see [`jwks::VerifyError`].
    Verify(jwks::VerifyError),
    /// A required claim is missing, empty or cannot travel in a header.
    InvalidClaims,
    /// `iss` is not this gateway.
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    WrongAudience,
    /// Past `exp` (beyond the leeway).
    Expired,
    /// Before `nbf` (beyond the leeway).
    NotYetValid,
    /// `iat` in the future (beyond the leeway).
    IssuedInFuture,
    /// The token's login session has ended, for this reason (told to the
    /// client beside the error).
    Revoked(EndReason),
}

impl TokenError {
    /// Every reason, for metrics.
    pub const ALL: [TokenError; 14] = [
        TokenError::Verify(jwks::VerifyError::TooLarge),
        TokenError::Verify(jwks::VerifyError::Malformed),
        TokenError::Verify(jwks::VerifyError::WrongType),
        TokenError::Verify(jwks::VerifyError::ForbiddenHeader),
        TokenError::Verify(jwks::VerifyError::UnknownKey),
        TokenError::Verify(jwks::VerifyError::AlgorithmMismatch),
        TokenError::Verify(jwks::VerifyError::BadSignature),
        TokenError::InvalidClaims,
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
        TokenError::Revoked(EndReason::Revoked),
    ];

    /// A malformed token: also what an `Authorization` header that is not
    /// `Bearer <token>` counts as.
    pub const MALFORMED: TokenError = TokenError::Verify(jwks::VerifyError::Malformed);

    /// The fixed sentence for `error_description`.
    pub const fn message(self) -> &'static str {
        match self {
            TokenError::Verify(e) => e.message(),
            TokenError::InvalidClaims => "invalid claims",
            TokenError::WrongIssuer => "wrong issuer",
            TokenError::WrongAudience => "wrong audience",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::IssuedInFuture => "token issued in the future",
            TokenError::Revoked(_) => "session revoked",
        }
    }

    /// The metric label.
    pub const fn reason(self) -> &'static str {
        match self {
            TokenError::Verify(e) => e.reason(),
            TokenError::InvalidClaims => "invalid_claims",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::Revoked(_) => "revoked",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TokenError {}

/// Why authentication failed: no token, or the token's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No bearer token on a route that needs one.
    Missing,
    /// A token that did not verify.
    Token(TokenError),
}

impl AuthFailure {
    /// The failure a refused token counts as: one series for every reason
    /// a session ended.
    #[inline]
    pub fn of(e: TokenError) -> AuthFailure {
        AuthFailure::Token(match e {
            TokenError::Revoked(_) => TokenError::Revoked(EndReason::Revoked),
            e => e,
        })
    }
}

impl Label for AuthFailure {
    const ALL: &'static [AuthFailure] = &{
        let mut all = [AuthFailure::Missing; 1 + TokenError::ALL.len()];
        let mut i = 0;
        while i < TokenError::ALL.len() {
            all[i + 1] = AuthFailure::Token(TokenError::ALL[i]);
            i += 1;
        }
        all
    };
    fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Token(e) => e.reason(),
        }
    }
}
