//! One exchange per login code.
//!
//! A login code is single-use at the platform (WeChat answers a second
//! exchange with 40163), and clients retry: a request that timed out on a
//! weak mobile network, a double tap. So concurrent logins with one code
//! share one platform call, and a login repeating, within 60 seconds, a code
//! that already succeeded — from the same client address and with the same
//! `device_id` — gets a new token pair in the session the code began,
//! instead of `invalid_code`. Anyone else presenting the code gets
//! `invalid_code`, as the platform would have said.
//!
//! Entries live 60 seconds and are bounded in number; a failed exchange
//! leaves nothing behind. Codes are kept only as SHA-256 digests.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use tokio::sync::OnceCell;

use crate::signin::providers::{ExchangeError, Exchanged};
use crate::tokens::Subject;

/// How long a code that succeeded is remembered.
pub const RETRY_WINDOW: Duration = Duration::from_secs(60);
/// Most codes remembered at once.
const CAPACITY: u64 = 10_000;

/// The session a code began, for retries.
#[derive(Debug, Clone)]
pub struct CodeSession {
    /// The login's subject.
    pub subject: Subject,
    /// Its session.
    pub sid: String,
    /// Who began it.
    pub client: IpAddr,
    /// With which device id.
    pub device_id: Option<String>,
}

/// One code: its exchange, then the session it began.
#[derive(Debug, Default)]
pub struct CodeUse {
    exchanged: OnceCell<Arc<Exchanged>>,
    began: OnceCell<CodeSession>,
}

impl CodeUse {
    /// The session this code began, beginning it with `begin` if no login
    /// has yet. Concurrent callers wait for one `begin`; if it fails, the
    /// next one tries its own. The flag says whether this call began it.
    pub async fn began<F, Fut, E>(&self, begin: F) -> Result<(CodeSession, bool), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<CodeSession, E>>,
    {
        let mine = std::sync::atomic::AtomicBool::new(false);
        let began = self
            .began
            .get_or_try_init(|| async {
                let b = begin().await?;
                mine.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(b)
            })
            .await?;
        Ok((began.clone(), mine.into_inner()))
    }
}

/// The codes seen in the last [`RETRY_WINDOW`].
#[derive(Debug)]
pub struct Codes {
    seen: Cache<[u8; 32], Arc<CodeUse>, foldhash::fast::RandomState>,
}

impl Default for Codes {
    fn default() -> Self {
        Codes::new()
    }
}

impl Codes {
    /// An empty memory of codes.
    pub fn new() -> Codes {
        Codes {
            seen: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(RETRY_WINDOW)
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }

    fn key(appid: &str, code: &str) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(appid.as_bytes());
        ctx.update(b"\n");
        ctx.update(code.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }

    /// The code's exchange: `exchange` runs once for concurrent callers
    /// (and again only after a failure, which is not remembered).
    pub async fn exchange<F, Fut>(
        &self,
        appid: &str,
        code: &str,
        exchange: F,
    ) -> Result<(Arc<CodeUse>, Arc<Exchanged>), ExchangeError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Exchanged, ExchangeError>>,
    {
        let key = Codes::key(appid, code);
        let used = self.seen.get_with(key, || Arc::new(CodeUse::default()));
        let exchanged = used
            .exchanged
            .get_or_try_init(|| async { exchange().await.map(Arc::new) })
            .await;
        match exchanged {
            Ok(session) => {
                let session = session.clone();
                Ok((used, session))
            }
            Err(e) => {
                // Nothing to retry into; a later login asks the platform,
                // which will say what it says.
                if used.exchanged.get().is_none() {
                    self.seen.invalidate(&key);
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn session() -> Exchanged {
        Exchanged {
            openid: "o1".into(),
            unionid: None,
            session_key: Some(Secret::new("k".into())),
            anonymous_openid: None,
            tenant: None,
        }
    }

    #[tokio::test]
    async fn concurrent_exchanges_of_one_code_make_one_call() {
        let codes = Arc::new(Codes::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (codes, calls) = (codes.clone(), calls.clone());
                tokio::spawn(async move {
                    codes
                        .exchange("wx", "c1", || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(session())
                        })
                        .await
                        .map(|(_, s)| s.openid.clone())
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "o1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_exchange_is_not_remembered() {
        let codes = Codes::new();
        let r = codes
            .exchange("wx", "c2", || async { Err(ExchangeError::Unavailable) })
            .await;
        assert_eq!(r.unwrap_err(), ExchangeError::Unavailable);
        let (_, s) = codes
            .exchange("wx", "c2", || async { Ok(session()) })
            .await
            .unwrap();
        assert_eq!(s.openid, "o1");
        // Another app's identical code is another code.
        let calls = AtomicUsize::new(0);
        codes
            .exchange("wx2", "c2", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(session())
            })
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
