//! `POST /auth/login`: the code exchange (once per code), then a new
//! login session ([`crate::signin`]): enrichment, the device class's limit,
//! the session key kept with it, its tokens.

use super::*;
use crate::signin::providers::ExchangeError;
use crate::telemetry::audit;
use crate::telemetry::traces::{self, Step};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

#[derive(Deserialize)]
struct LoginBody {
    code: Option<String>,
    appid: Option<String>,
    device_id: Option<String>,
    device_type: Option<String>,
    device_name: Option<String>,
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
    /// The device's name for the session listing ("iPhone 15", "Xiaomi
    /// 14"), if sent: [`is_device_name`].
    pub device_name: Option<String>,
}

/// The longest device name kept.
pub const MAX_DEVICE_NAME: usize = 64;

/// Is `s` a device name the listing may show: 1 to [`MAX_DEVICE_NAME`]
/// printable ASCII characters (spaces allowed, not at either end), so it
/// is safe in a header, a log line and a terminal.
pub fn is_device_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DEVICE_NAME
        && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && !s.starts_with(' ')
        && !s.ends_with(' ')
}

impl LoginRequest {
    /// What the provider is asked to trade, for the mini-program `appid`
    /// (with the platform's access token, where its exchange needs one).
    pub fn login<'a>(&'a self, appid: &'a str, platform_token: Option<&'a str>) -> Login<'a> {
        Login {
            appid,
            platform_token,
            code: &self.code,
            anonymous_code: self.anonymous_code.as_deref(),
            app_token: None,
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
    if body
        .device_name
        .as_deref()
        .is_some_and(|n| !is_device_name(n))
    {
        return Err(ApiError::InvalidRequest(
            "device_name must be 1-64 printable ASCII characters",
        ));
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
        device_name: body.device_name,
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
    let picked = gw.providers.pick(body.appid.as_deref())?;
    let provider = picked.provider;
    traces::annotate(gw.tracing.as_ref(), || {
        KeyValue::new("minigate.platform", provider.platform.name())
    });
    traces::annotate(gw.tracing.as_ref(), || {
        KeyValue::new("minigate.device_type", device_type.clone())
    });
    let metrics = gw.metrics.exchange(provider.platform);
    // One platform call for concurrent logins with this code.
    let (used, session) = gw
        .codes
        .exchange(picked.appid, &body.code, || async {
            let started = std::time::Instant::now();
            let step = Step::of(
                gw.tracing.as_ref(),
                "platform code exchange",
                SpanKind::Client,
                || {
                    vec![
                        KeyValue::new("minigate.platform", provider.platform.name()),
                        KeyValue::new("minigate.appid", picked.appid.to_owned()),
                    ]
                },
            );
            let exchanged = async {
                // A third-party platform's exchange carries its token; one
                // WeChat refused (replaced, revoked early) is renewed once.
                let Some(component) = picked.component_appid() else {
                    return provider.exchange(&body.login(picked.appid, None)).await;
                };
                let token = gw.wechat.component(component).await?;
                match provider
                    .exchange(&body.login(picked.appid, Some(token.expose())))
                    .await
                {
                    Err(ExchangeError::TokenRefused) => {
                        tracing::info!(component_appid = %component, "WeChat refused the component_access_token; renewing it once");
                        let token = gw.wechat.component_rejected(component, &token).await?;
                        provider
                            .exchange(&body.login(picked.appid, Some(token.expose())))
                            .await
                    }
                    other => other,
                }
            }
            .await;
            if let Err(e) = &exchanged {
                step.fail(ApiError::from(*e).code());
            }
            drop(step);
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
            if e == ExchangeError::RiskyUser {
                gw.audit.emit(audit::Event::RiskyUserRefused {
                    platform: provider.platform.name(),
                    appid: picked.appid,
                    client,
                });
            }
            ApiError::from(e)
        })?;
    let device_id = body.device_id;
    // The pair of the login that begins the session; retries get their own.
    let first_pair = std::sync::Mutex::new(None);
    let (began, mine) = used
        .began(|| async {
            let risk_rank =
                crate::signin::risk::assess(gw, provider, picked.appid, &session.openid, client)
                    .await?;
            let subject = Subject {
                openid: session.openid.clone(),
                unionid: session.unionid.clone(),
                appid: picked.appid.to_owned(),
                platform: provider.platform,
                component_appid: picked.component_appid().map(str::to_owned),
                device_id: device_id.clone(),
                uid: None,
                roles: Vec::new(),
                ext: BTreeMap::new(),
                device_type: DeviceClass::new(device_type),
                session_user: None,
                phone: None,
                risk_rank,
                tenant: session.tenant.as_ref().map(|key| {
                    let id = session.unionid.as_deref().unwrap_or(&session.openid);
                    crate::tokens::Tenant::new(key.clone(), id)
                }),
            };
            let key = session
                .session_key
                .as_ref()
                .map(crate::config::Secret::expose);
            let (subject, sid, pair) =
                open_session(gw, subject, limit, key, body.device_name.as_deref()).await?;
            if let Ok(mut first) = first_pair.lock() {
                *first = Some(pair);
            }
            Ok::<_, ApiError>(CodeSession {
                subject,
                sid,
                client,
                device_id: device_id.clone(),
            })
        })
        .await?;
    let audit_login = |retried| {
        gw.audit.emit(audit::Event::Login {
            platform: began.subject.platform.name(),
            appid: &began.subject.appid,
            device_type: &began.subject.device_type,
            user: began.subject.user(),
            sid: &began.sid,
            client,
            retried,
        })
    };
    let pair = if mine {
        tracing::info!(appid = %began.subject.appid, sub = %began.subject.openid, sid = %began.sid, "login");
        audit_login(false);
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
                    .increment(crate::signin::providers::ExchangeError::InvalidCode);
            }
            return Err(ApiError::InvalidCode);
        }
        tracing::info!(appid = %began.subject.appid, sid = %began.sid, "login code retried: a new pair in its session");
        let pair = new_pair(gw, &began.subject, &began.sid).await?;
        audit_login(true);
        pair
    };
    let mut pair = pair;
    pair.anonymous_openid = session.anonymous_openid.clone();
    Ok(token_response(&pair))
}
