//! Dev mode's stand-in platforms: each speaks its platform's wire format
//! (the call's method, path and encoding, the secret or the RSA2 signature
//! checked, the answer's shape) and lets any code of the dev app log in,
//! with an openid derived from the code, so the same code gives the same
//! user. Reachable only through [`super::start`].

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use tokio::net::TcpListener;

use super::{spawn_http, text, DevError};
use crate::config::CredentialKind;
use crate::config::{defaults, Credentials, KeyPair, Platform, ProviderConfig, Secret};
use crate::crypto::rsa2::SigningKey;
use crate::signin::providers::alipay::{sign_content, ERROR_RESPONSE, RESPONSE};
use crate::tokens::now_secs;

/// The appid of the dev WeChat mini-program.
pub const DEV_APPID: &str = "wxdev000000000000";
const DOUYIN_APPID: &str = "ttdev0000000000000";
const BAIDU_APPID: &str = "devAppKey000000000000000";
const ALIPAY_APPID: &str = "2021000000000000";
const DEV_SECRET: &str = "dev-mode-app-secret";
/// The appid of the dev web sign-in (`wechat_web`), beside the WeChat
/// mini-program.
pub const DEV_WEB_APPID: &str = "wxdevweb000000000";
const DEV_WEB_SECRET: &str = "dev-mode-web-secret";
/// A throwaway 2048-bit RSA key, PKCS#8 base64, made for dev mode only: it
/// signs the gateway's Alipay calls and the stand-in's answers alike (ring
/// cannot generate RSA keys). It protects nothing.
const DEV_RSA_KEY: &str = include_str!("alipay-dev-key.pk8.b64");

/// The dev mini-program's appid on `platform`, shaped like that platform's.
pub(super) fn appid(platform: Platform) -> &'static str {
    match platform.name() {
        "wechat" => DEV_APPID,
        "qq" => "1100000000",
        "douyin" => DOUYIN_APPID,
        "baidu" => BAIDU_APPID,
        "alipay" => ALIPAY_APPID,
        _ => "dev-app",
    }
}

/// What a mini-program calls on `platform` to get a code.
pub(super) fn client_call(platform: Platform) -> &'static str {
    match platform.name() {
        "wechat" => "wx.login()",
        "qq" => "qq.login()",
        "douyin" => "tt.login()",
        "baidu" => "swan.login()",
        "alipay" => "my.getAuthCode()",
        _ => "the platform's login",
    }
}

fn dev_key() -> Result<SigningKey, DevError> {
    let bad = |_| DevError::Platform("alipay", "the built-in dev key did not load");
    let der = STANDARD.decode(DEV_RSA_KEY.trim()).map_err(|_| bad(()))?;
    SigningKey::from_pkcs8(&der).map_err(|_| bad(()))
}

/// Dev mode's providers: the mini-program of `platform`, and with WeChat
/// also a `wechat_web` sign-in at the same stand-in.
pub(super) fn providers(
    platform: Platform,
    addr: SocketAddr,
) -> Result<Vec<ProviderConfig>, DevError> {
    let mut all = vec![provider(platform, addr)?];
    if platform == Platform::wechat() {
        let web = Platform::named("wechat_web")
            .ok_or(DevError::Platform("wechat_web", "is not in the registry"))?;
        all.push(ProviderConfig {
            platform: web,
            appid: DEV_WEB_APPID.into(),
            credentials: Credentials::Secret {
                secret: Secret::new(DEV_WEB_SECRET.into()),
                source: "built in (dev)".into(),
            },
            base_url: format!("http://{addr}"),
            timeout: defaults::PROVIDER_TIMEOUT,
            authorize_url: Some(format!("http://{addr}")),
        });
    }
    Ok(all)
}

/// The dev mini-program's provider, calling the stand-in at `addr`.
pub(super) fn provider(platform: Platform, addr: SocketAddr) -> Result<ProviderConfig, DevError> {
    let credentials = match platform.credentials() {
        CredentialKind::AppSecret => Credentials::Secret {
            secret: Secret::new(DEV_SECRET.into()),
            source: "built in (dev)".into(),
        },
        CredentialKind::KeyPair => {
            let key = dev_key()?;
            Credentials::KeyPair(KeyPair {
                platform_key: key.verifying_key(),
                private_key: key,
                private_key_file: "(built in, dev)".into(),
                platform_key_file: "(built in, dev)".into(),
            })
        }
    };
    // Alipay's base_url is the whole gateway URL.
    let path = if platform.name() == "alipay" {
        "/gateway.do"
    } else {
        ""
    };
    Ok(ProviderConfig {
        platform,
        appid: appid(platform).into(),
        credentials,
        base_url: format!("http://{addr}{path}"),
        timeout: defaults::PROVIDER_TIMEOUT,
        authorize_url: None,
    })
}

/// Serves `platform`'s stand-in on `listener`.
pub(super) fn spawn(listener: TcpListener, platform: Platform) -> Result<(), DevError> {
    match platform.name() {
        "wechat" | "qq" => spawn_http(listener, move |req| jscode2session(req, platform)),
        "douyin" => spawn_http(listener, douyin),
        "baidu" => spawn_http(listener, baidu),
        "alipay" => {
            let key = dev_key()?;
            spawn_http(listener, move |req| alipay(req, key.clone()))
        }
        other => return Err(DevError::Platform(other, "has no dev stand-in")),
    }
    Ok(())
}

/// The dev user of `code`: openid, unionid and session key, derived from it.
fn user(code: &str) -> (String, String, String) {
    let digest = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    let id = B64.encode(&digest.as_ref()[..12]);
    (
        format!("dev-openid-{id}"),
        format!("dev-unionid-{id}"),
        // WeChat's session_key is standard base64 of 16 bytes.
        base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[12..28]),
    )
}

/// JSON answered as the platforms do: WeChat and QQ as text/plain.
fn answer(content_type: &'static str, body: serde_json::Value) -> Response<Full<Bytes>> {
    text(StatusCode::OK, content_type, body.to_string())
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "text/plain", "not found".into())
}

/// The parameters of a query string or form body.
fn params(encoded: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{encoded}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

async fn body(req: Request<Incoming>) -> Bytes {
    Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// WeChat's and QQ's `GET /sns/jscode2session`; for WeChat also the
/// app's `stable_token` and the phone-number exchange.
async fn jscode2session(req: Request<Incoming>, platform: Platform) -> Response<Full<Bytes>> {
    if platform == Platform::wechat() {
        match req.uri().path() {
            "/cgi-bin/stable_token" => return stable_token(req, platform).await,
            "/wxa/business/getuserphonenumber" => return phone_number(req, platform).await,
            "/connect/oauth2/authorize" | "/connect/qrconnect" => {
                return authorize_page(&params(req.uri().query().unwrap_or("")))
            }
            "/sns/oauth2/access_token" => {
                return web_access_token(&params(req.uri().query().unwrap_or("")))
            }
            _ => {}
        }
    }
    if req.uri().path() != "/sns/jscode2session" {
        return not_found();
    }
    let p = params(req.uri().query().unwrap_or(""));
    let answer = |v| answer("text/plain", v);
    if param(&p, "appid") != Some(appid(platform)) || param(&p, "secret") != Some(DEV_SECRET) {
        return answer(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    let Some(code) = param(&p, "js_code") else {
        return answer(serde_json::json!({"errcode": 40029, "errmsg": "invalid code"}));
    };
    let (openid, unionid, session_key) = user(code);
    answer(serde_json::json!({"openid": openid, "unionid": unionid, "session_key": session_key}))
}

/// Escapes text for an HTML attribute or element.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The stand-in authorize page: a form that sends the browser back to
/// `redirect_uri` with the code typed in (the user it signs in as) and the
/// state, as WeChat does once the user allows.
fn authorize_page(p: &[(String, String)]) -> Response<Full<Bytes>> {
    let (Some(redirect_uri), Some(state)) = (param(p, "redirect_uri"), param(p, "state")) else {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "redirect_uri and state are required\n".into(),
        );
    };
    if param(p, "appid") != Some(DEV_WEB_APPID) || !redirect_uri.starts_with("http://127.0.0.1:") {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "unknown appid or redirect_uri\n".into(),
        );
    }
    let page = format!(
        r#"<!doctype html><meta charset="utf-8"><title>WeChat sign-in (minigate dev stand-in)</title>
<h1>WeChat sign-in: dev stand-in</h1>
<p>In production this is WeChat's page ({scope}). Here any name signs in; the same name is the
same person (the same unionid) as a mini-program login with that code.</p>
<form method="get" action="{action}">
<input type="hidden" name="state" value="{state}">
<label>Sign in as <input id="code" name="code" value="dev-user"></label>
<button id="allow" type="submit">Allow</button>
</form>
<form method="get" action="{action}"><input type="hidden" name="state" value="{state}">
<button id="deny" type="submit">Deny</button></form>
"#,
        scope = html_escape(param(p, "scope").unwrap_or_default()),
        action = html_escape(redirect_uri),
        state = html_escape(state),
    );
    text(StatusCode::OK, "text/html; charset=utf-8", page)
}

/// `GET /sns/oauth2/access_token`: any code of the dev web app signs in;
/// the unionid is the mini-program login's for the same code.
fn web_access_token(p: &[(String, String)]) -> Response<Full<Bytes>> {
    let answer = |v| answer("text/plain", v);
    if param(p, "appid") != Some(DEV_WEB_APPID) || param(p, "secret") != Some(DEV_WEB_SECRET) {
        return answer(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    let Some(code) = param(p, "code") else {
        return answer(serde_json::json!({"errcode": 40029, "errmsg": "invalid code"}));
    };
    let (openid, unionid, _) = user(code);
    answer(serde_json::json!({
        "access_token": "dev-web-access-token", "expires_in": 7200,
        "refresh_token": "dev-web-refresh-token", "scope": "snsapi_base",
        "openid": openid.replace("dev-openid-", "dev-web-openid-"), "unionid": unionid,
    }))
}

/// The dev app's access token, from WeChat's `POST /cgi-bin/stable_token`.
const DEV_ACCESS_TOKEN: &str = "dev-access-token";

async fn stable_token(req: Request<Incoming>, platform: Platform) -> Response<Full<Bytes>> {
    let ask: serde_json::Value = serde_json::from_slice(&body(req).await).unwrap_or_default();
    let answer = |v| answer("text/plain", v);
    if ask["appid"] != appid(platform) || ask["secret"] != DEV_SECRET {
        return answer(serde_json::json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    answer(serde_json::json!({"access_token": DEV_ACCESS_TOKEN, "expires_in": 7200}))
}

/// `POST /wxa/business/getuserphonenumber`: any code gives a number derived
/// from it, with the dev app's watermark.
async fn phone_number(req: Request<Incoming>, platform: Platform) -> Response<Full<Bytes>> {
    let token_ok = params(req.uri().query().unwrap_or(""))
        .iter()
        .any(|(k, v)| k == "access_token" && v == DEV_ACCESS_TOKEN);
    let ask: serde_json::Value = serde_json::from_slice(&body(req).await).unwrap_or_default();
    let answer = |v| answer("text/plain", v);
    if !token_ok {
        return answer(serde_json::json!({"errcode": 40001, "errmsg": "invalid credential"}));
    }
    let Some(code) = ask["code"].as_str().filter(|c| !c.is_empty()) else {
        return answer(serde_json::json!({"errcode": 40029, "errmsg": "invalid code"}));
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, code.as_bytes());
    let digits: String = digest.as_ref()[..8]
        .iter()
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    let pure = format!("138{digits}");
    answer(
        serde_json::json!({"errcode": 0, "errmsg": "ok", "phone_info": {
        "phoneNumber": format!("+86 {pure}"), "purePhoneNumber": pure, "countryCode": "86",
        "watermark": {"timestamp": now_secs(), "appid": appid(platform)}}}),
    )
}

/// Douyin's `POST /api/apps/v2/jscode2session`, JSON both ways.
async fn douyin(req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/api/apps/v2/jscode2session" {
        return not_found();
    }
    let call: serde_json::Value = serde_json::from_slice(&body(req).await).unwrap_or_default();
    let field = |k: &str| call[k].as_str().filter(|v| !v.is_empty());
    let error = |no: i64, tips: &str| {
        answer(
            "application/json",
            serde_json::json!({"err_no": no, "err_tips": tips, "data": null}),
        )
    };
    if field("appid") != Some(DOUYIN_APPID) || field("secret") != Some(DEV_SECRET) {
        return error(40017, "bad secret");
    }
    let Some(code) = field("code") else {
        return error(40018, "bad code");
    };
    let (openid, unionid, session_key) = user(code);
    let anonymous = field("anonymous_code").map(|a| user(a).0.replace("openid", "anonymous"));
    answer(
        "application/json",
        serde_json::json!({"err_no": 0, "err_tips": "success", "data": {
            "openid": openid, "unionid": unionid, "session_key": session_key,
            "anonymous_openid": anonymous.unwrap_or_default(),
        }}),
    )
}

/// Baidu's `POST /oauth/jscode2sessionkey`, a form in, JSON out.
async fn baidu(req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/oauth/jscode2sessionkey" {
        return not_found();
    }
    let p = params(&String::from_utf8_lossy(&body(req).await));
    let error = |e: &str| {
        answer(
            "application/json",
            serde_json::json!({"errno": 1, "error": e, "error_description": "dev stand-in"}),
        )
    };
    if param(&p, "client_id") != Some(BAIDU_APPID) || param(&p, "sk") != Some(DEV_SECRET) {
        return error("invalid_client");
    }
    let Some(code) = param(&p, "code") else {
        return error("invalid_grant");
    };
    let (openid, _, session_key) = user(code);
    answer(
        "application/json",
        serde_json::json!({"openid": openid, "session_key": session_key}),
    )
}

/// Alipay's open gateway: the call's RSA2 signature checked, the answer
/// signed over the exact text of its object.
async fn alipay(req: Request<Incoming>, key: SigningKey) -> Response<Full<Bytes>> {
    if req.uri().path() != "/gateway.do" {
        return not_found();
    }
    let p = params(&String::from_utf8_lossy(&body(req).await));
    let pairs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let signed = |root: &str, content: serde_json::Value| {
        let content = content.to_string();
        let sign = key.sign(content.as_bytes()).unwrap_or_default();
        text(
            StatusCode::OK,
            "text/html;charset=utf-8",
            format!(r#"{{"{root}":{content},"sign":"{sign}"}}"#),
        )
    };
    let error = |sub_code: &str| {
        signed(
            ERROR_RESPONSE,
            serde_json::json!({"code": "40002", "msg": "Invalid Arguments", "sub_code": sub_code, "sub_msg": "dev stand-in"}),
        )
    };
    let sign_ok = param(&p, "sign").is_some_and(|sign| {
        key.verifying_key()
            .verify(sign_content(&pairs).as_bytes(), sign)
    });
    if !sign_ok {
        return error("isv.invalid-signature");
    }
    if param(&p, "app_id") != Some(ALIPAY_APPID)
        || param(&p, "method") != Some("alipay.system.oauth.token")
    {
        return error("isv.invalid-app-id");
    }
    let Some(code) = param(&p, "code") else {
        return error("isv.code-invalid");
    };
    let (openid, _, token) = user(code);
    signed(
        RESPONSE,
        serde_json::json!({
            "open_id": openid, "access_token": format!("authusrB{token}"),
            "expires_in": 1_296_000, "re_expires_in": 2_592_000,
        }),
    )
}
