//! The public documents and probes: JWKS, discovery, metrics, health,
//! readiness.

use super::*;

/// GET or HEAD only, for the documents and metrics.
fn require_get(req: &Request<Incoming>) -> Result<(), ApiError> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed("GET, HEAD"))
    }
}

fn document(
    req: &Request<Incoming>,
    body: Bytes,
    max_age: u64,
) -> Result<Response<Body>, ApiError> {
    require_get(req)?;
    let mut res = full(StatusCode::OK, "application/json", body);
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        res.headers_mut().insert(CACHE_CONTROL, v);
    }
    Ok(res)
}

/// `GET /.well-known/jwks.json`: every published public key.
pub fn jwks(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    document(req, gw.tokens.keys().load().jwks_json.clone(), JWKS_MAX_AGE)
}

/// `GET /.well-known/openid-configuration`: issuer, jwks_uri, algorithms.
pub fn discovery(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    document(
        req,
        gw.tokens.keys().load().discovery_json.clone(),
        JWKS_MAX_AGE,
    )
}

/// `GET /metrics`: the Prometheus text exposition.
pub fn metrics(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    require_get(req)?;
    let body = gw.metrics.render(gw.tokens.keys());
    let mut res = full(StatusCode::OK, "text/plain; version=0.0.4", body);
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /healthz`: the process answers.
pub fn healthz() -> Response<Body> {
    full(
        StatusCode::OK,
        "application/json",
        &b"{\"status\":\"ok\"}"[..],
    )
}

/// `GET /readyz`: a key set is loaded, so tokens can be issued and verified.
/// A refused reload does not make the gateway unready (it keeps serving the
/// previous set) but is reported here, and so is a session store that does
/// not answer (`session_store`): sign-ins fail while it is down, but
/// proxying goes on, and a readiness probe must not take the proxy out of
/// service for it.
pub fn readyz(gw: &Gateway) -> Response<Body> {
    use std::sync::atomic::Ordering::Relaxed;
    let store = gw.tokens.keys();
    let keys = store.load();
    let body = serde_json::json!({
        "status": "ready",
        "current_kid": keys.set.current().kid(),
        "keys": keys.set.entries().iter().map(|e| serde_json::json!({
            "kid": e.key.kid(), "alg": e.key.alg().name(), "state": e.state.to_string(),
        })).collect::<Vec<_>>(),
        "reloads": store.stats.replaced.load(Relaxed),
        "reload_failures": store.stats.refused.load(Relaxed),
        "last_reload_error": store.last_error(),
        "sessions": gw.sessions.kind(),
        "session_store": gw.sessions.readiness(),
        "revoked_sessions": gw.revoked.len(),
    });
    json(StatusCode::OK, &body)
}

// Device classes and the user's sessions: the login's class and limit,
// recording a session within it, logout's body, and `/auth/sessions`.
