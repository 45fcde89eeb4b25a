//! The gateway's own calls out: the platforms' code exchanges, the browser
//! sign-in's, the team's user service and WeChat's services all go through
//! here, so the rules every such call must keep are kept in one place.
//!
//! - One HTTPS client ([`client`]): rustls over ring, redirects refused,
//!   no `Referer`. A platform that answers 3xx is broken or impersonated;
//!   following it would send the next request (and, with a `Referer`, a
//!   URL holding an app secret) wherever it points. The 3xx comes back to
//!   the caller as an answer, which each refuses in its own terms.
//! - Every call has a deadline ([`send`] takes one).
//! - Answers are read up to [`MAX_ANSWER`] and refused whole beyond it
//!   ([`read`]), whatever their Content-Type.
//! - A reqwest error carries the request's URL, which may hold a secret
//!   (an app secret, an access token, a user service's credentials): it is
//!   classified into a [`CallError`] and dropped, never formatted.
//!
//! What an answer means (its status, its body, the errors of the caller's
//! contract) stays with each caller: this module knows HTTP, not platforms.

pub mod kept;

use std::time::Duration;

/// The largest answer read from any call; real answers are far smaller.
pub const MAX_ANSWER: usize = 64 * 1024;

/// The outbound HTTPS client could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("could not build the HTTP client for outbound calls")]
pub struct ClientError;

/// The HTTPS client of every outbound call the gateway makes: rustls over
/// ring, no redirects followed, no `Referer` sent. Cheap to clone; one is
/// shared by the calls of a part of the gateway.
pub fn client() -> Result<reqwest::Client, ClientError> {
    crate::crypto::install_crypto_provider();
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|_| ClientError)
}

/// Why an outbound call gave no answer to read: a reqwest error classified
/// without its URL, or an answer over [`MAX_ANSWER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No answer (or no whole answer) within the call's deadline.
    Timeout,
    /// The other side could not be reached.
    Connect,
    /// The answer's body could not be read or decoded.
    Body,
    /// Any other failure of the request.
    Other,
    /// An answer larger than [`MAX_ANSWER`].
    TooLarge,
}

impl From<reqwest::Error> for CallError {
    /// Classifies `e` without ever formatting it: it holds the URL.
    fn from(e: reqwest::Error) -> CallError {
        if e.is_timeout() {
            CallError::Timeout
        } else if e.is_connect() {
            CallError::Connect
        } else if e.is_decode() || e.is_body() {
            CallError::Body
        } else {
            CallError::Other
        }
    }
}

/// Sends `req` with `deadline` for the whole call, its body's reading
/// included; the answer's status is the caller's to judge.
pub async fn send(
    req: reqwest::RequestBuilder,
    deadline: Duration,
) -> Result<reqwest::Response, CallError> {
    Ok(req.timeout(deadline).send().await?)
}

/// Reads `res`'s body, refused whole past [`MAX_ANSWER`].
pub async fn read(mut res: reqwest::Response) -> Result<Vec<u8>, CallError> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(CallError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
