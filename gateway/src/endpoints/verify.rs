//! `/auth/verify`: the forward-auth decision for another proxy.

use super::*;
use crate::pipeline::headers::METHOD_OVERRIDE;

/// The original request a forward-auth check is about: Traefik's
/// `X-Forwarded-Method`/`X-Forwarded-Uri`, else nginx's
/// `X-Original-Method`/`X-Original-URI`, else the request itself with the
/// `/auth/verify` prefix taken off (Envoy's `path_prefix`).
fn original_request(req: &Request<Incoming>) -> Result<(Method, &str), ApiError> {
    let header = |name: &str| req.headers().get(name);
    let (method, uri) = match (
        header("x-forwarded-method").or(header("x-original-method")),
        header("x-forwarded-uri").or(header("x-original-uri")),
    ) {
        (method, Some(uri)) => {
            let method = match method {
                Some(m) => Method::from_bytes(m.as_bytes())
                    .map_err(|_| ApiError::InvalidRequest("the original method is not a method"))?,
                None => req.method().clone(),
            };
            let uri = uri
                .to_str()
                .map_err(|_| ApiError::InvalidRequest("the original URI is not visible ASCII"))?;
            (method, uri)
        }
        (_, None) => {
            let rest = req.uri().path().strip_prefix(VERIFY).unwrap_or("");
            (req.method().clone(), rest)
        }
    };
    let path = uri.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(ApiError::InvalidRequest(
            "no original request: send X-Forwarded-Uri or X-Original-URI, or a path after /auth/verify",
        ));
    }
    Ok((method, path))
}

/// `/auth/verify`: may the original request pass? 200 with the identity
/// headers, or the 401/403 a proxied request would get. No body is read and
/// the token goes through the same verified-token cache as a proxied one.
pub fn verify(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (method, raw) = original_request(req)?;
    // Judged in the canonical form, as a proxied request is.
    let path = canonical(raw).map_err(|bad| {
        gw.metrics.refusals.increment(Refusal::PathRefused);
        ApiError::InvalidRequest(bad.message())
    })?;
    // Every path must be someone's: one no route claims is nobody's to pass.
    let route = gw.routes.find(&path).ok_or(ApiError::InsufficientScope)?;
    let identity = crate::pipeline::auth::check(gw, route, &method, req.headers())?;
    // The proxy in front may pass a method override header on to a service
    // that acts on it: the method it names must be allowed too.
    for name in METHOD_OVERRIDE {
        for value in req.headers().get_all(name) {
            let named = Method::from_bytes(value.as_bytes()).map_err(|_| {
                ApiError::InvalidRequest("a method override header does not name a method")
            })?;
            crate::pipeline::auth::authorize(gw, route, &named, identity.as_deref())?;
        }
    }
    let mut res = full(StatusCode::OK, "text/plain", Bytes::new());
    res.headers_mut().remove(http::header::CONTENT_TYPE);
    if let Some(id) = &identity {
        for (name, value) in id.headers() {
            res.headers_mut().insert(name.clone(), value);
        }
    }
    // A proxy copies the identity headers it is told to onto the original
    // request, but keeps any other `x-auth-*` the client sent. Envoy removes
    // those named here (its ext_authz HTTP service protocol).
    let spoofed: Vec<&str> = req
        .headers()
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|k| k.starts_with("x-auth-") && !res.headers().contains_key(*k))
        .collect();
    if !spoofed.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&spoofed.join(",")) {
            res.headers_mut().insert(ENVOY_REMOVE, v);
        }
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Envoy's ext_authz response header naming request headers to remove.
const ENVOY_REMOVE: http::HeaderName =
    http::HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// The prefix of the forward-auth endpoint.
pub const VERIFY: &str = "/auth/verify";
