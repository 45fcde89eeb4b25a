//! Access and refresh tokens: issuing them, and verifying them on the hot path.
//!
//! Verification of an access token runs on every proxied request, so its
//! result is cached: a digest of the token maps to the identity it yields,
//! its header values in one buffer, built once. A cache hit is a digest, one
//! hash lookup and a clock read; a miss is the full check (the characters,
//! header, kid, signature, claims) done by [`jwks`] and here. The
//! characters are checked after the cache, not before: a token found there
//! has the very bytes that passed, and a hit skips a pass over hundreds of
//! them (what it saves is in `benches/README.md`). Only valid tokens are
//! cached, never used past their `exp`, and the cache is bounded in entries.
//! Refresh tokens are checked in full every time: they are used rarely, and
//! their redemption touches session state anyway.
//!
//! Here is the issuing and the verifying ([`Tokens`]); beside it, what a
//! token is for ([`Subject`]), what a verified one says ([`Identity`]) and
//! the header names it is sent upstream under ([`header`]), why one is
//! refused ([`TokenError`]), the cache's key, and the key set ([`keys`]).

mod cache;
mod error;
pub mod header;
pub mod identity;
mod ids;
pub mod keys;
mod subject;

pub use crate::telemetry::ended::EndReason;
use cache::{token_key, TokenCache};
pub use error::{AuthFailure, Internal, TokenError};
use identity::identity;
pub use identity::{Headers, Identity, Roles};
use ids::ID_OF_RANDOM_ID_LENGTH;
pub use ids::{now_secs, random_id, Jti, SessionRef, Sid, UserKey};
pub use subject::{tenant_user, user_key, DeviceClass, Subject, Tenant};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::UnitWeighter;
use serde::{Deserialize, Serialize};

use crate::config::{Platform, TokensConfig};
use crate::tokens::keys::KeyStore;

/// `typ` of access tokens (RFC 9068).
pub const ACCESS_TYP: &str = "at+jwt";
/// `typ` of refresh tokens; never accepted as an access token.
pub const REFRESH_TYP: &str = "refresh+jwt";

/// A freshly issued access and refresh token.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// The access token.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The user's openid.
    pub openid: String,
    /// The user's unionid, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// At a Douyin login that sent `anonymous_code`: Douyin's id of the
    /// anonymous user it names, so the app can carry that user's data over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_openid: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains_any(&self, accepted: &[String]) -> bool {
        match self {
            Audience::One(a) => accepted.contains(a),
            Audience::Many(list) => list.iter().any(|a| accepted.contains(a)),
        }
    }
}

/// Claims shared by both token types; the access token adds `aud` variants.
#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: Audience,
    sub: String,
    client_id: String,
    iat: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    jti: String,
    sid: String,
    platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unionid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    did: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    ext: BTreeMap<String, String>,
    /// The device class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dvt: Option<String>,
    /// The verified phone number, once shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    /// The third-party platform that logged the user in, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    component_appid: Option<String>,
    /// WeChat's risk rank of the user at login, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    risk_rank: Option<u8>,
    /// The user's organisation (Feishu's `tenant_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    /// Refresh tokens only: the user key the session is stored under, so a
    /// refresh finds its session from the token alone (Redis Cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usr: Option<String>,
}

/// A verified refresh token's contents.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// Who it was issued to.
    pub subject: Subject,
    /// The login session it belongs to.
    pub sid: String,
    /// Its unique id.
    pub jti: String,
    /// When it expires (seconds since the epoch).
    pub exp: u64,
}

impl Refresh {
    /// The session it belongs to.
    pub fn session(&self) -> SessionRef<'_> {
        SessionRef {
            user: self.subject.user_key(),
            sid: Sid(&self.sid),
        }
    }

    /// Its id.
    pub fn jti(&self) -> Jti<'_> {
        Jti(&self.jti)
    }
}

/// Issues and verifies tokens for one issuer.
pub struct Tokens {
    keys: Arc<KeyStore>,
    config: TokensConfig,
    /// Keyed by the first 128 bits of the token's SHA-256: 16 bytes instead
    /// of the whole token (hundreds of bytes), and as safe a key. To be taken
    /// for someone else's token, a forged one would need that token's key: a
    /// second preimage (2^128 work, for a token the forger has not even
    /// seen). A collision between two tokens of the forger's own making
    /// (2^64) gains nothing: only tokens the gateway signed are ever cached,
    /// and the forger's own can only say who the forger is. Hashed with
    /// foldhash (randomly seeded per process, so keys an attacker picks
    /// cannot be aimed at one bucket) rather than SipHash, which cost more
    /// than the rest of a cache hit.
    ///
    /// quick_cache rather than moka (which the gateway's other caches use):
    /// moka's own bookkeeping is about 325 bytes an entry, most of the 400
    /// an entry may cost here; quick_cache's is tens of bytes. It keeps no
    /// clock: an entry past its `exp` is refused and dropped when looked
    /// up, and until then counts against the capacity like any other.
    cache: TokenCache,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// `token` as text, if it is RFC 6750's `b64token` (section 2.1):
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. A bearer
/// token in anything else is malformed, never passed on to be parsed.
pub fn b64token(token: &[u8]) -> Option<&str> {
    if !is_b64token(token) {
        return None;
    }
    // Every byte of it is ASCII, so this is never an error.
    std::str::from_utf8(token).ok()
}

/// Every byte is looked at, without an early exit and without branches,
/// so the compiler checks a whole vector of them at a time: a token is
/// hundreds of bytes long, and a byte-by-byte loop with branches showed in
/// the profile when every request was checked.
fn is_b64token(token: &[u8]) -> bool {
    let body = match token.iter().rposition(|&b| b != b'=') {
        Some(last) => &token[..=last],
        None => return false,
    };
    body.iter().fold(true, |ok, &b| ok & is_b64token_byte(b))
}

#[inline(always)]
fn is_b64token_byte(b: u8) -> bool {
    let lower = b | 0x20;
    (lower.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

impl Tokens {
    /// Tokens for `config`, signed and verified with `keys`.
    pub fn new(config: TokensConfig, keys: Arc<KeyStore>) -> Tokens {
        let capacity = config.cache_capacity;
        let cache = Cache::with(
            usize::try_from(capacity).unwrap_or(usize::MAX),
            capacity,
            UnitWeighter,
            foldhash::fast::RandomState::default(),
            DefaultLifecycle::default(),
        );
        Tokens {
            keys,
            config,
            cache,
            hits: metrics::Counter::noop(),
            misses: metrics::Counter::noop(),
        }
    }

    /// Counts cache hits and misses in these counters.
    pub fn with_cache_counters(mut self, hits: metrics::Counter, misses: metrics::Counter) -> Self {
        self.hits = hits;
        self.misses = misses;
        self
    }

    /// `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The key store these tokens use.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// How many verified tokens the cache holds now.
    pub fn cached(&self) -> u64 {
        self.cache.len() as u64
    }

    /// Forgets every cached verification, after the key set changed.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Issues an access and a refresh token for `who` in login session `sid`;
    /// the refresh token's id is `refresh_jti`, which the session store has
    /// recorded as the one to redeem next.
    pub fn issue(
        &self,
        who: &Subject,
        sid: &str,
        refresh_jti: String,
    ) -> Result<TokenPair, Internal> {
        let (access_claims, refresh_claims) =
            self.pair_claims(who, sid, now_secs(), random_id()?, refresh_jti);
        let keys = self.keys.load();
        let sign = |typ, c: &Claims| keys.set.sign(typ, c).map_err(|_| Internal);
        let access = sign(ACCESS_TYP, &access_claims)?;
        let refresh = sign(REFRESH_TYP, &refresh_claims)?;
        Ok(TokenPair {
            token_type: "Bearer",
            access_token: access,
            expires_in: self.config.access_ttl.as_secs(),
            refresh_token: refresh,
            refresh_expires_in: self.config.refresh_ttl.as_secs(),
            openid: who.openid.clone(),
            unionid: who.unionid.clone(),
            anonymous_openid: None,
        })
    }

    /// The length of the longer token of the pair [`Tokens::issue`] would
    /// make for `who` in `sid` now, if it passes [`jwks::MAX_TOKEN_LEN`]:
    /// a token the gateway itself would refuse on every request, so one
    /// never to issue. Measured without signing.
    pub fn oversized(&self, who: &Subject, sid: &str) -> Result<Option<usize>, Internal> {
        // Ids of the length `random_id` makes: the length is what counts,
        // so no random bytes are drawn for them.
        let id = || ID_OF_RANDOM_ID_LENGTH.to_owned();
        let (access, refresh) = self.pair_claims(who, sid, now_secs(), id(), id());
        let keys = self.keys.load();
        let len = |typ, c: &Claims| keys.set.signed_len(typ, c).map_err(|_| Internal);
        let longer = len(ACCESS_TYP, &access)?.max(len(REFRESH_TYP, &refresh)?);
        Ok((longer > jwks::MAX_TOKEN_LEN).then_some(longer))
    }

    /// The claims of the access and the refresh token of `who` in `sid`,
    /// issued at `now`.
    fn pair_claims(
        &self,
        who: &Subject,
        sid: &str,
        now: u64,
        access_jti: String,
        refresh_jti: String,
    ) -> (Claims, Claims) {
        let aud = match self.config.audience.as_slice() {
            [one] => Audience::One(one.clone()),
            many => Audience::Many(many.to_vec()),
        };
        let claims = |aud, ttl: Duration, jti| Claims {
            iss: self.config.issuer.clone(),
            aud,
            sub: who.openid.clone(),
            client_id: who.appid.clone(),
            iat: now,
            exp: now + ttl.as_secs(),
            nbf: None,
            jti,
            sid: sid.to_owned(),
            platform: who.platform.name().to_owned(),
            unionid: who.unionid.clone(),
            did: who.device_id.clone(),
            roles: who.roles.clone(),
            uid: who.uid.clone(),
            ext: who.ext.clone(),
            dvt: Some(who.device_type.to_string()),
            phone_number: who.phone.clone(),
            component_appid: who.component_appid.clone(),
            risk_rank: who.risk_rank,
            tenant: who.tenant.as_ref().map(|t| t.key().to_owned()),
            usr: None,
        };
        let access = claims(aud, self.config.access_ttl, access_jti);
        let refresh_aud = Audience::One(self.config.issuer.clone());
        let mut refresh = claims(refresh_aud, self.config.refresh_ttl, refresh_jti);
        refresh.usr = Some(who.user().to_owned());
        (access, refresh)
    }

    /// Verifies an access token, as sent (its characters are checked here);
    /// the hot path of every authenticated request.
    pub fn verify_access(
        &self,
        token: &(impl AsRef<[u8]> + ?Sized),
    ) -> Result<Arc<Identity>, TokenError> {
        let token = token.as_ref();
        let key = token_key(token);
        if let Some(id) = self.cache.get(&key) {
            if now_secs() < u64::from(id.exp) && id.generation == self.keys.generation() as u32 {
                self.hits.increment(1);
                return Ok(id);
            }
            // Expired, or verified by keys since replaced: checked again
            // below, and cached again only if it still passes.
            self.cache.remove(&key);
        }
        let token = b64token(token).ok_or(TokenError::MALFORMED)?;
        self.misses.increment(1);
        let id = Arc::new(self.check_access(token)?);
        if now_secs() < u64::from(id.exp) {
            self.cache.insert(key, id.clone());
        }
        Ok(id)
    }

    /// The refresh TTL: how long session state must be remembered.
    pub fn refresh_ttl(&self) -> Duration {
        self.config.refresh_ttl
    }

    /// The full check of an access token, without the cache: what a cache
    /// miss costs.
    pub fn check_access(&self, token: &str) -> Result<Identity, TokenError> {
        let (claims, generation) = self.check(token, ACCESS_TYP, |aud| {
            aud.contains_any(&self.config.audience)
        })?;
        identity(&claims, generation).ok_or(TokenError::InvalidClaims)
    }

    /// Verifies a refresh token.
    pub fn verify_refresh(&self, token: &str) -> Result<Refresh, TokenError> {
        let issuer = &self.config.issuer;
        let (c, _) = self.check(
            token,
            REFRESH_TYP,
            |aud| matches!(aud, Audience::One(a) if a == issuer),
        )?;
        into_refresh(c)
    }

    /// Verifies an access token in full (no cache) and gives what it says
    /// of its subject and session: for the endpoints that act on the
    /// caller's session (phone number, decrypt), which are rare.
    pub fn access_subject(&self, token: &[u8]) -> Result<Refresh, TokenError> {
        let token = b64token(token).ok_or(TokenError::MALFORMED)?;
        let (c, _) = self.check(token, ACCESS_TYP, |aud| {
            aud.contains_any(&self.config.audience)
        })?;
        into_refresh(c)
    }
    /// Signature, type and the registered claims, with the generation of the
    /// key set that verified them.
    fn check(
        &self,
        token: &str,
        typ: &str,
        aud_ok: impl Fn(&Audience) -> bool,
    ) -> Result<(Claims, u64), TokenError> {
        let keys = self.keys.load();
        let payload = keys.set.verify(token, typ).map_err(TokenError::Verify)?;
        let c: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::InvalidClaims)?;
        if [&c.sub, &c.client_id, &c.jti, &c.sid, &c.platform]
            .iter()
            .any(|s| s.is_empty())
        {
            return Err(TokenError::InvalidClaims);
        }
        let now = now_secs();
        let leeway = self.config.leeway.as_secs();
        if c.iss != self.config.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if !aud_ok(&c.aud) {
            return Err(TokenError::WrongAudience);
        }
        if now >= c.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(TokenError::NotYetValid);
        }
        if c.iat > now.saturating_add(leeway) {
            return Err(TokenError::IssuedInFuture);
        }
        Ok((c, keys.generation))
    }
}

/// The subject and session of verified claims; a platform the gateway
/// does not know makes them invalid.
fn into_refresh(c: Claims) -> Result<Refresh, TokenError> {
    let platform = Platform::named(&c.platform).ok_or(TokenError::InvalidClaims)?;
    let tenant = c
        .tenant
        .map(|key| Tenant::new(key, c.unionid.as_deref().unwrap_or(&c.sub)));
    Ok(Refresh {
        subject: Subject {
            openid: c.sub,
            unionid: c.unionid,
            appid: c.client_id,
            platform,
            component_appid: c.component_appid,
            device_id: c.did,
            uid: c.uid,
            roles: c.roles,
            ext: c.ext,
            device_type: DeviceClass::new(
                c.dvt
                    .unwrap_or_else(|| crate::config::defaults::DEVICE_TYPE.to_owned()),
            ),
            session_user: c.usr,
            phone: c.phone_number,
            risk_rank: c.risk_rank,
            tenant,
        },
        sid: c.sid,
        jti: c.jti,
        exp: c.exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine as _;
    use http::HeaderValue;
    use std::time::SystemTime;

    #[test]
    fn the_branchless_byte_check_is_rfc_6750s_b64token_alphabet() {
        for b in 0..=255u8 {
            let rfc =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_byte(b), rfc, "byte {b:#04x}");
        }
        assert_eq!(b64token(b"a.b-c_d~e+f/g=="), Some("a.b-c_d~e+f/g=="));
        assert_eq!(b64token(b"a=b"), None);
        assert_eq!(b64token("é".as_bytes()), None);
        assert_eq!(b64token(b"=="), None);
        assert_eq!(b64token(b""), None);
    }

    fn tokens(capacity: u64, leeway: u64) -> Tokens {
        let set = jwks::KeySet::generate(jwks::Alg::ES256, SystemTime::now()).unwrap();
        let config = TokensConfig {
            issuer: "https://iss".into(),
            audience: vec!["api".into()],
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(600),
            leeway: Duration::from_secs(leeway),
            cache_capacity: capacity,
        };
        Tokens::new(config, Arc::new(KeyStore::new(set, "https://iss")))
    }

    fn token(t: &Tokens, sub: &str, exp: u64) -> String {
        let now = now_secs();
        let claims = serde_json::json!({"iss": "https://iss", "aud": "api", "sub": sub, "client_id": "wx",
            "iat": now, "exp": exp, "jti": sub, "sid": "s", "platform": "wechat"});
        t.keys().load().set.sign(ACCESS_TYP, &claims).unwrap()
    }

    #[test]
    fn identity_headers_are_slices_of_one_buffer_and_say_what_the_token_says() {
        let t = tokens(100, 0);
        let now = now_secs();
        let claims = serde_json::json!({"iss": "https://iss", "aud": "api", "sub": "o-1",
            "client_id": "wx1", "iat": now, "exp": now + 60, "jti": "j-1", "sid": "s-1",
            "platform": "wechat", "unionid": "u-1", "roles": ["admin", "ops"], "uid": "42"});
        let tok = t.keys().load().set.sign(ACCESS_TYP, &claims).unwrap();
        let id = t.verify_access(&tok).unwrap();
        let owned: Vec<(&str, String)> = id
            .headers()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap().to_owned()))
            .collect();
        let got: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("x-auth-subject", "o-1"),
                ("x-auth-openid", "o-1"),
                ("x-auth-appid", "wx1"),
                ("x-auth-session", "s-1"),
                ("x-auth-platform", "wechat"),
                ("x-auth-token-id", "j-1"),
                ("x-auth-unionid", "u-1"),
                ("x-auth-roles", "admin,ops"),
                ("x-auth-user", "42"),
            ]
        );
        assert_eq!(id.subject(), "o-1");
        assert_eq!(id.sid(), "s-1");
        assert_eq!(id.user(), "42", "uid first");
        assert!(id.roles().contains("admin") && id.roles().contains("ops"));
        assert!(!id.roles().contains("adm") && !id.roles().contains(""));
        assert_eq!(id.header_count(), got.len());
        // One buffer holds every value, the subject once.
        let buf = id.values.as_ptr_range();
        let values: Vec<HeaderValue> = id.headers().map(|(_, v)| v).collect();
        for v in &values {
            let r = v.as_bytes().as_ptr_range();
            assert!(buf.start <= r.start && r.end <= buf.end);
        }
        assert_eq!(values[0].as_bytes().as_ptr(), values[1].as_bytes().as_ptr());
        assert_eq!(id.values.len(), "o-1wx1s-1wechatj-1u-1admin,ops42".len());
    }

    #[test]
    fn the_places_the_identity_reads_back_name_their_headers() {
        assert_eq!(header::ALL[header::AT_SUBJECT], header::SUBJECT);
        assert_eq!(header::ALL[header::AT_SESSION], header::SESSION);
        assert_eq!(header::ALL[header::AT_ROLES], header::ROLES);
        assert!(header::ALL.len() <= 16, "present is a u16");
    }

    #[test]
    fn the_user_is_the_uid_else_the_unionid_else_the_openid_and_roles_may_be_none() {
        let t = tokens(100, 0);
        let now = now_secs();
        let mut claims = serde_json::json!({"iss": "https://iss", "aud": "api", "sub": "o-2",
            "client_id": "wx1", "iat": now, "exp": now + 60, "jti": "j-2", "sid": "s-2",
            "platform": "wechat", "ext": {"tier": "gold"}});
        let id = t
            .verify_access(&t.keys().load().set.sign(ACCESS_TYP, &claims).unwrap())
            .unwrap();
        assert_eq!(id.user(), "o-2");
        assert!(!id.roles().contains("user"));
        let tier: Vec<_> = id
            .headers()
            .filter(|(n, _)| n.as_str() == "x-auth-claim-tier")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(tier, ["gold"]);
        claims["unionid"] = "u-2".into();
        let id = t
            .verify_access(&t.keys().load().set.sign(ACCESS_TYP, &claims).unwrap())
            .unwrap();
        assert_eq!(id.user(), "u-2");
        assert_eq!(
            id.user(),
            user_key(None, None, Some("u-2"), "o-2"),
            "the same choice as user_key"
        );
    }

    #[test]
    fn invalid_tokens_are_never_cached() {
        let t = tokens(100, 0);
        let good = token(&t, "a", now_secs() + 60);
        let mut bad = good.clone();
        bad.pop();
        for _ in 0..3 {
            assert!(t.verify_access(&bad).is_err());
            assert!(t.verify_access("x.y.z").is_err());
        }
        assert_eq!(t.cached(), 0);
        assert!(t.verify_access(&good).is_ok());
        assert_eq!(t.cached(), 1);
        // A hit returns the very same identity.
        let a = t.verify_access(&good).unwrap();
        let b = t.verify_access(&good).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // The characters are checked on a miss, so a cached token with one
        // more byte, in the alphabet or not, is verified afresh and refused.
        for extra in ["!", "\t", " ", "\u{e9}", "A", "="] {
            let err = t.verify_access(&format!("{good}{extra}")).unwrap_err();
            let expected = match extra {
                "A" | "=" => TokenError::Verify(jwks::VerifyError::BadSignature),
                _ => TokenError::MALFORMED,
            };
            assert_eq!(err, expected, "{extra:?}");
        }
        assert_eq!(t.cached(), 1);
    }

    #[test]
    fn the_cache_is_bounded_in_entries() {
        let t = tokens(50, 0);
        let exp = now_secs() + 60;
        for i in 0..500 {
            assert!(t.verify_access(&token(&t, &format!("u{i}"), exp)).is_ok());
        }
        assert!(t.cached() <= 50, "{} cached", t.cached());
    }

    #[test]
    fn any_configured_capacity_works_even_none_or_a_huge_one() {
        let exp = now_secs() + 60;
        let none = tokens(0, 0);
        let tok = token(&none, "a", exp);
        assert!(none.verify_access(&tok).is_ok());
        assert!(none.verify_access(&tok).is_ok());
        assert_eq!(none.cached(), 0);
        let huge = tokens(u64::MAX, 0);
        let tok = token(&huge, "a", exp);
        assert!(huge.verify_access(&tok).is_ok());
        assert!(huge.verify_access(&tok).is_ok());
        assert_eq!(huge.cached(), 1);
    }

    #[test]
    fn a_cached_token_is_refused_once_expired() {
        let t = tokens(100, 0);
        let exp = now_secs() + 2;
        let tok = token(&t, "short", exp);
        assert!(t.verify_access(&tok).is_ok());
        assert_eq!(t.cached(), 1);
        while now_secs() < exp {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(t.verify_access(&tok).unwrap_err(), TokenError::Expired);
        assert_eq!(t.cached(), 0);
    }

    #[test]
    fn a_far_future_exp_does_not_overflow() {
        let t = tokens(100, 0);
        let tok = token(&t, "far", u64::MAX);
        assert!(t.verify_access(&tok).is_ok());
        assert!(t.verify_access(&tok).is_ok());
    }

    #[test]
    fn a_replaced_key_set_with_a_cleared_cache_refuses_old_tokens() {
        let t = tokens(100, 0);
        let tok = token(&t, "a", now_secs() + 60);
        assert!(t.verify_access(&tok).is_ok());
        t.keys()
            .replace(jwks::KeySet::generate(jwks::Alg::ES256, SystemTime::now()).unwrap());
        t.clear_cache();
        assert_eq!(
            t.verify_access(&tok).unwrap_err(),
            TokenError::Verify(jwks::VerifyError::UnknownKey)
        );
    }

    /// The longest value every part of a token can have: ids at the 128
    /// the providers and the login allow, the longest issuer, the longest
    /// platform name, phone number and device class.
    fn largest_subject(roles: Vec<String>, ext: BTreeMap<String, String>) -> Subject {
        Subject {
            openid: "o".repeat(128),
            unionid: Some("u".repeat(128)),
            appid: "a".repeat(64),
            platform: Platform::wechat_component(),
            component_appid: Some("c".repeat(64)),
            device_id: Some("d".repeat(128)),
            uid: Some("i".repeat(128)),
            roles,
            ext,
            device_type: DeviceClass::new("t".repeat(32)),
            phone: Some("p".repeat(32)),
            session_user: None,
            risk_rank: Some(4),
            tenant: Some(Tenant::new("t".repeat(128), &"u".repeat(128))),
        }
    }

    #[test]
    fn the_largest_answer_within_the_limits_makes_tokens_the_gateway_accepts() {
        use crate::tokens::identity::{MAX_CLAIMS, MAX_ROLES, MAX_ROLES_AND_CLAIMS};
        let issuer = format!("https://{}", "i".repeat(512 - 8));
        let config = TokensConfig {
            issuer: issuer.clone(),
            audience: vec!["a".repeat(64)],
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(600),
            leeway: Duration::ZERO,
            cache_capacity: 10,
        };
        let rsa = include_str!("../../../jwks/testdata/rs256-2048.pk8.b64").trim();
        let kid = jwks::Key::from_pkcs8(jwks::Alg::RS256, B64.decode(rsa).unwrap())
            .unwrap()
            .kid()
            .to_owned();
        let rsa_set = jwks::KeySet::from_json(
            serde_json::json!({"format": "minigate-keyset/1", "keys": [{
                "kid": kid, "alg": "RS256", "state": "current",
                "created": "2026-01-01T00:00:00Z", "private_key": rsa}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let sets = [
            jwks::KeySet::generate(jwks::Alg::ES256, SystemTime::now()).unwrap(),
            jwks::KeySet::generate(jwks::Alg::EdDSA, SystemTime::now()).unwrap(),
            rsa_set,
        ];
        let name =
            |i: usize, c: char, len: usize| format!("{i:02}{}", c.to_string().repeat(len - 2));
        // Every role at 64, the claims sharing what is left; and the most
        // claims at 256, a few roles sharing what is left.
        let roles: Vec<String> = (0..MAX_ROLES).map(|i| name(i, 'r', 64)).collect();
        let value = (MAX_ROLES_AND_CLAIMS - 64 * MAX_ROLES) / MAX_CLAIMS - 32;
        let ext = (0..MAX_CLAIMS)
            .map(|i| (format!("c{}", name(i, 'n', 31)), "v".repeat(value)))
            .collect();
        let wide = largest_subject(roles, ext);
        let claims = (MAX_ROLES_AND_CLAIMS - 3 * 64) / (32 + 256);
        let ext = (0..claims)
            .map(|i| (format!("c{}", name(i, 'n', 31)), "v".repeat(256)))
            .collect();
        let deep = largest_subject((0..3).map(|i| name(i, 'r', 64)).collect(), ext);
        for who in [&wide, &deep] {
            let size = who.roles.iter().map(String::len).sum::<usize>()
                + who
                    .ext
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>();
            assert!(size <= MAX_ROLES_AND_CLAIMS && size > MAX_ROLES_AND_CLAIMS - 300);
        }
        for set in sets {
            let alg = set.current().alg();
            let t = Tokens::new(config.clone(), Arc::new(KeyStore::new(set, &issuer)));
            for who in [&wide, &deep] {
                assert_eq!(t.oversized(who, "s").unwrap(), None, "{alg:?}");
                let pair = t.issue(who, "s", random_id().unwrap()).unwrap();
                // RSA keys of 4096 bits sign with 341 more characters than
                // this 2048-bit one: they fit too.
                let room = if alg == jwks::Alg::RS256 { 341 } else { 0 };
                for token in [&pair.access_token, &pair.refresh_token] {
                    assert!(
                        token.len() + room <= jwks::MAX_TOKEN_LEN,
                        "{alg:?}: {}",
                        token.len()
                    );
                }
                let id = t.verify_access(&pair.access_token).unwrap();
                assert!(who.roles.iter().all(|r| id.roles().contains(r)));
                assert_eq!(
                    t.verify_refresh(&pair.refresh_token).unwrap().subject.ext,
                    who.ext
                );
            }
        }
    }

    #[test]
    fn a_pair_that_would_pass_the_cap_is_found_before_it_is_signed() {
        // The answer of issue 27: 32 roles of 64, 16 claims of 256, a uid of
        // 128 (beyond MAX_ROLES_AND_CLAIMS, as static grants could make it).
        let t = tokens(10, 0);
        let roles = (0..32)
            .map(|i| format!("{i:02}{}", "r".repeat(62)))
            .collect();
        let ext = (0..16)
            .map(|i| (format!("c{i:02}{}", "n".repeat(29)), "v".repeat(256)))
            .collect();
        let mut who = largest_subject(roles, ext);
        who.unionid = None;
        who.device_id = None;
        let size = t.oversized(&who, "s").unwrap().unwrap();
        let pair = t.issue(&who, "s", random_id().unwrap()).unwrap();
        assert_eq!(size, pair.access_token.len().max(pair.refresh_token.len()));
        assert_eq!(
            t.verify_access(&pair.access_token).unwrap_err(),
            TokenError::Verify(jwks::VerifyError::TooLarge),
            "what such a token would meet"
        );
        who.ext.clear();
        assert_eq!(t.oversized(&who, "s").unwrap(), None);
    }
}
