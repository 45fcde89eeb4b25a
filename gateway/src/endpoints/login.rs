//! `POST /auth/login`: the code exchange (once per code), then a new
//! login session: enrichment, the device class's limit, the session key
//! kept with it, its tokens. Also what every sign-in shares
//! ([`open_session`]) and a new pair in a live session ([`new_pair`]).

use super::*;

#[derive(Deserialize)]
struct LoginBody {
    code: Option<String>,
    appid: Option<String>,
    device_id: Option<String>,
    device_type: Option<String>,
    anonymous_code: Option<String>,
}

/// A checked login request.
#[derive(Debug)]
pub struct LoginRequest {
    /// The login code (`wx.login()`'s, `my.getAuthCode()`'s `authCode`…):
    /// 1 to [`MAX_CODE`] bytes.
    pub code: String,
    /// Which provider, when several are configured.
    pub appid: Option<String>,
    /// A device id fit for a header, if sent.
    pub device_id: Option<String>,
    /// The device class named, if any: shaped like one (whether it is
    /// configured is the login's to check).
    pub device_type: Option<String>,
    /// Douyin's `anonymousCode` (1 to [`MAX_CODE`] bytes), if sent; other
    /// platforms ignore it.
    pub anonymous_code: Option<String>,
}

impl LoginRequest {
    /// What the provider is asked to trade.
    pub fn login(&self) -> Login<'_> {
        Login {
            code: &self.code,
            anonymous_code: self.anonymous_code.as_deref(),
        }
    }
}

/// Parses and checks a login body.
pub fn parse_login(body: &[u8]) -> Result<LoginRequest, ApiError> {
    let body: LoginBody = from_json(body)?;
    let code = body.code.unwrap_or_default();
    if code.is_empty() {
        return Err(ApiError::InvalidRequest("code is required"));
    }
    if code.len() > MAX_CODE {
        return Err(ApiError::InvalidRequest("code is too long"));
    }
    if body
        .anonymous_code
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > MAX_CODE)
    {
        return Err(ApiError::InvalidRequest(
            "anonymous_code must be 1-256 bytes when sent",
        ));
    }
    if let Some(d) = &body.device_id {
        if !is_header_safe(d, 128) {
            return Err(ApiError::InvalidRequest(
                "device_id must be 1-128 visible ASCII characters",
            ));
        }
    }
    if let Some(t) = &body.device_type {
        if !crate::config::is_class_name(t) {
            return Err(ApiError::InvalidRequest("device_type is not a device type"));
        }
    }
    Ok(LoginRequest {
        code,
        appid: body.appid,
        device_id: body.device_id,
        device_type: body.device_type,
        anonymous_code: body.anonymous_code,
    })
}

/// `POST /auth/login`: code exchange, then a new login session and its tokens.
pub async fn login(
    gw: &Gateway,
    req: Request<Incoming>,
    client: IpAddr,
) -> Result<Response<Body>, ApiError> {
    require(&req, Method::POST, "POST")?;
    gw.login_limiter
        .check(client)
        .map_err(ApiError::TooManyLogins)?;
    let body = parse_login(&read_body(gw, req).await?)?;
    let (device_type, limit) = device_class(gw, body.device_type.as_deref())?;
    let provider = gw.providers.pick(body.appid.as_deref())?;
    let metrics = gw.metrics.exchange(provider.platform);
    // One platform call for concurrent logins with this code.
    let (used, session) = gw
        .codes
        .exchange(&provider.appid, &body.code, || async {
            let started = std::time::Instant::now();
            let exchanged = provider.exchange(&body.login()).await;
            if let Some(m) = metrics {
                m.latency.record(started.elapsed().as_secs_f64());
            }
            exchanged
        })
        .await
        .map_err(|e| {
            if let Some(m) = metrics {
                m.errors.increment(e);
            }
            ApiError::from(e)
        })?;
    let device_id = body.device_id;
    // The pair of the login that begins the session; retries get their own.
    let first_pair = std::sync::Mutex::new(None);
    let (began, mine) = used
        .began(|| async {
            let subject = Subject {
                openid: session.openid.clone(),
                unionid: session.unionid.clone(),
                appid: provider.appid.clone(),
                platform: provider.platform.name().to_owned(),
                device_id: device_id.clone(),
                uid: None,
                roles: Vec::new(),
                ext: BTreeMap::new(),
                device_type,
                session_user: None,
                phone: None,
            };
            let key = session
                .session_key
                .as_ref()
                .map(crate::config::Secret::expose);
            let (subject, sid, pair) = open_session(gw, subject, limit, key).await?;
            if let Ok(mut first) = first_pair.lock() {
                *first = Some(pair);
            }
            Ok::<_, ApiError>(Began {
                subject,
                sid,
                client,
                device_id: device_id.clone(),
            })
        })
        .await?;
    let pair = if mine {
        tracing::info!(appid = %began.subject.appid, sub = %began.subject.openid, sid = %began.sid, "login");
        first_pair
            .into_inner()
            .ok()
            .flatten()
            .ok_or(ApiError::Internal)?
    } else {
        // The code already began a session: only its own client and device
        // may have a pair in it again; to anyone else the code is spent.
        if began.client != client || began.device_id != device_id {
            if let Some(m) = metrics {
                m.errors
                    .increment(crate::providers::ExchangeError::InvalidCode);
            }
            return Err(ApiError::InvalidCode);
        }
        tracing::info!(appid = %began.subject.appid, sid = %began.sid, "login code retried: a new pair in its session");
        new_pair(gw, &began.subject, &began.sid).await?
    };
    let mut pair = pair;
    pair.anonymous_openid = session.anonymous_openid.clone();
    Ok(token_response(&pair))
}

/// A new login session for `subject`, whoever signed in (a mini-program's
/// code, a browser's web sign-in): enrichment (which may refuse the user),
/// the session recorded within its device class's `limit` with the
/// platform's `session_key` if it gave one, and its tokens. Returns the
/// enriched subject, the sid and the pair.
pub(crate) async fn open_session(
    gw: &Gateway,
    subject: Subject,
    limit: u32,
    session_key: Option<&str>,
) -> Result<(Subject, String, TokenPair), ApiError> {
    let sid = random_id()?;
    let subject = identify(gw, subject, Event::Login, &sid).await?;
    let refresh_jti = random_id()?;
    begin_session(gw, &subject, &sid, &refresh_jti, limit, session_key).await?;
    let pair = gw.tokens.issue(&subject, &sid, refresh_jti)?;
    Ok((subject, sid, pair))
}

/// A new pair in the live session `sid` of `who`, without a refresh token
/// presented: the session's refresh token is replaced by the new one.
pub(super) async fn new_pair(
    gw: &Gateway,
    who: &Subject,
    sid: &str,
) -> Result<TokenPair, ApiError> {
    let jti = random_id()?;
    let live = gw
        .sessions
        .reissue(who.user(), sid, &jti, gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Refresh))?;
    if !live {
        return Err(ApiError::InvalidGrant("session revoked"));
    }
    Ok(gw.tokens.issue(who, sid, jti)?)
}

/// The subject's roles, uid and claims, from the static grants and, when
/// `[enrich]` is configured, the user service (which may refuse the user).
pub(super) async fn identify(
    gw: &Gateway,
    mut subject: Subject,
    event: Event,
    sid: &str,
) -> Result<Subject, ApiError> {
    let mut extra = Vec::new();
    if let Some(enricher) = &gw.enricher {
        let ask = Ask {
            event,
            platform: &subject.platform,
            appid: &subject.appid,
            openid: &subject.openid,
            unionid: subject.unionid.as_deref(),
            device_type: &subject.device_type,
            device_id: subject.device_id.as_deref(),
            sid,
        };
        let enriched =
            enricher
                .ask(&ask, &gw.metrics.enrich)
                .await
                .map_err(|refused| match refused {
                    Refused::Denied => ApiError::AccessDenied,
                    Refused::Failed(_) => ApiError::EnrichUnavailable,
                })?;
        // The uid is fixed at login: it is part of the user key the session
        // is kept under, which a refresh must not move.
        if event == Event::Login {
            subject.uid = enriched.uid;
        } else if enriched.uid != subject.uid {
            tracing::warn!(
                sid,
                "the user service gave another uid at refresh; the session keeps its own"
            );
        }
        subject.ext = enriched.claims;
        extra = enriched.roles;
    }
    subject.roles = merge_roles(&gw.grants.load(), subject.user(), &extra);
    Ok(subject)
}

/// The login's device class (absent: `phone`) and its limit; a class the
/// config does not name is 400.
pub(crate) fn device_class(gw: &Gateway, named: Option<&str>) -> Result<(String, u32), ApiError> {
    let name = named.unwrap_or(crate::config::defaults::DEVICE_TYPE);
    gw.sessions_config
        .devices
        .get(name)
        .map(|c| (c.name.clone(), c.limit))
        .ok_or(ApiError::InvalidRequest(
            "device_type is not one of the configured device types",
        ))
}

/// Records a new session of `who` within its class's limit: the sessions
/// it evicts end everywhere; a full class under `refuse` is 409.
async fn begin_session(
    gw: &Gateway,
    who: &Subject,
    sid: &str,
    jti: &str,
    limit: u32,
    session_key: Option<&str>,
) -> Result<(), ApiError> {
    let new = NewSession {
        session_key,
        user: who.user(),
        sid,
        jti,
        device_type: &who.device_type,
        device_id: who.device_id.as_deref(),
        limit,
        on_limit: gw.sessions_config.on_limit,
    };
    let begun = gw
        .sessions
        .begin(&new, gw.tokens.refresh_ttl())
        .await
        .map_err(|_| store_down(gw, SessionOp::Login))?;
    match begun {
        Begun::Started { evicted } => {
            if !evicted.is_empty() {
                tracing::info!(
                    sid = %sid, device_type = %who.device_type, evicted = evicted.len(),
                    "device limit: oldest session ended"
                );
                gw.sessions.announce(&gw.revoked, &evicted).await;
            }
            Ok(())
        }
        Begun::Refused => Err(ApiError::SessionLimit),
    }
}
