//! Douyin's JSON POST, Baidu's form POST, Alipay's RSA2-signed form POST
//! and its signed answers.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use serde_json::json;

use super::{reply, Answer, Call, Checked, Credential, Outcome, Refusal, Render, StandIn};
use crate::crypto::rsa2::SigningKey;
use crate::signin::providers::alipay::{
    china_time, sign_content, ERROR_RESPONSE, METHOD, RESPONSE,
};

fn json_answer(status: StatusCode, v: &serde_json::Value) -> Answer {
    reply(status, "application/json", v.to_string())
}

/// Alipay's answer: `content` (a JSON object's exact text) under `root`,
/// and `key`'s signature over that text.
pub fn alipay_signed(root: &str, content: &str, key: &SigningKey) -> String {
    let sign = key.sign(content.as_bytes()).unwrap_or_default();
    format!(r#"{{"{root}":{content},"sign":"{sign}"}}"#)
}

impl StandIn {
    /// Douyin's `POST /api/apps/v2/jscode2session`, JSON both ways.
    pub(super) fn douyin(&self, call: &Call) -> Checked<'_> {
        if !call.content_type.starts_with("application/json") {
            return Checked::Refused(super::not_found());
        }
        let body = call.json();
        let field = |k: &str| body[k].as_str().filter(|v| !v.is_empty());
        let Some(app) = self
            .app(field("appid"), |p| p == "douyin")
            .filter(|a| a.secret_is(field("secret")))
        else {
            return Checked::Refused(render_douyin(Outcome::Refuse(Refusal::new(
                40017,
                "bad secret",
            ))));
        };
        let Some(code) = field("code") else {
            return Checked::Refused(render_douyin(Outcome::Refuse(Refusal::bad_code(
                app.platform,
            ))));
        };
        Checked::Ask(
            self.login(app, code, field("anonymous_code")),
            Render::Douyin,
        )
    }

    /// Baidu's `POST /oauth/jscode2sessionkey`, a form in, JSON out.
    pub(super) fn baidu(&self, call: &Call) -> Checked<'_> {
        if !call
            .content_type
            .starts_with("application/x-www-form-urlencoded")
        {
            return Checked::Refused(super::not_found());
        }
        let Some(app) = self
            .app(call.param("client_id").as_deref(), |p| p == "baidu")
            .filter(|a| a.secret_is(call.param("sk").as_deref()))
        else {
            let refusal =
                Refusal::new(40001, "invalid_client").with_status(StatusCode::UNAUTHORIZED);
            return Checked::Refused(render_baidu(Outcome::Refuse(refusal)));
        };
        let Some(code) = call.param("code") else {
            return Checked::Refused(render_baidu(Outcome::Refuse(Refusal::bad_code(
                app.platform,
            ))));
        };
        Checked::Ask(self.login(app, &code, None), Render::Baidu)
    }

    /// Alipay's open gateway: the call's RSA2 signature checked with the
    /// app's public key (a bad one counted and refused), its common
    /// parameters and a timestamp of now in China time; the answer signed
    /// with the stand-in's key over the exact text of its object.
    pub(super) fn alipay(&self, call: &Call) -> Checked<'_> {
        if call.content_type != "application/x-www-form-urlencoded;charset=utf-8" {
            return Checked::Refused(super::not_found());
        }
        let Some((app, app_key, key)) = self
            .app(call.param("app_id").as_deref(), |p| p == "alipay")
            .and_then(|a| match &a.credential {
                Credential::Rsa2 { app, platform } => Some((a, app, platform)),
                Credential::Secret(_) | Credential::Component(_) => None,
            })
        else {
            // No key to sign with: an unsigned refusal.
            let refusal = json!({"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id"});
            return Checked::Refused(reply(
                StatusCode::OK,
                "text/html;charset=utf-8",
                format!(r#"{{"{ERROR_RESPONSE}":{refusal}}}"#),
            ));
        };
        let params = call.params();
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let refuse = |sub_code: &str| {
            Checked::Refused(render_alipay(
                Outcome::Refuse(Refusal::new(40002, sub_code)),
                key,
            ))
        };
        let sign_ok = call
            .param("sign")
            .is_some_and(|s| app_key.verify(sign_content(&pairs).as_bytes(), &s));
        if !sign_ok {
            self.state.bad_signatures.fetch_add(1, Ordering::SeqCst);
            return refuse("isv.invalid-signature");
        }
        let now = SystemTime::now();
        let fresh = call.param("timestamp").is_some_and(|t| {
            (0..=120).any(|back| china_time(now - Duration::from_secs(back)) == t)
        });
        let expected = [
            ("method", METHOD),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
            ("grant_type", "authorization_code"),
        ];
        if !fresh
            || expected
                .iter()
                .any(|(k, v)| call.param(k).as_deref() != Some(v))
        {
            return refuse("isv.missing-or-invalid-parameter");
        }
        let Some(code) = call.param("code") else {
            return refuse("isv.code-invalid");
        };
        Checked::Ask(self.login(app, &code, None), Render::Alipay(key))
    }
}

fn render_douyin(outcome: Outcome) -> Answer {
    match outcome {
        Outcome::User(u) => json_answer(
            StatusCode::OK,
            &json!({"err_no": 0, "err_tips": "success", "data": {
                "openid": u.openid, "session_key": u.session_key,
                // Douyin sends absent ids as "".
                "unionid": u.unionid.unwrap_or_default(),
                "anonymous_openid": u.anonymous_openid.unwrap_or_default(),
            }}),
        ),
        Outcome::Refuse(r) => json_answer(
            r.status,
            &json!({"err_no": r.code, "err_tips": r.reason, "data": {}}),
        ),
        _ => super::not_found(),
    }
}

fn render_baidu(outcome: Outcome) -> Answer {
    match outcome {
        Outcome::User(u) => json_answer(
            StatusCode::OK,
            &json!({"openid": u.openid, "session_key": u.session_key}),
        ),
        Outcome::Refuse(r) => json_answer(
            r.status,
            &json!({"errno": r.code, "error": r.reason, "error_description": "stand-in"}),
        ),
        _ => super::not_found(),
    }
}

fn render_alipay(outcome: Outcome, key: &SigningKey) -> Answer {
    let body = match outcome {
        // Both ids, keys in Alipay's order, and an escaped slash: the
        // signature covers the text exactly as sent.
        Outcome::User(u) => alipay_signed(
            RESPONSE,
            &format!(
                r#"{{"access_token":{},"alipay_user_id":"20880000000000000000000000000001","auth_start":"2024-05-01 12:00:00","expires_in":1296000,"open_id":{},"re_expires_in":2592000,"refresh_token":"refresh-must-not-leak","user_id":"2088000000000001","note":"a\/b"}}"#,
                serde_json::Value::from(u.session_key),
                serde_json::Value::from(u.openid),
            ),
            key,
        ),
        Outcome::Refuse(r) => alipay_signed(
            ERROR_RESPONSE,
            &json!({"code": r.code.to_string(), "msg": "Invalid Arguments", "sub_code": r.reason, "sub_msg": "\u{6388}\u{6743}\u{7801}\u{65e0}\u{6548}"}).to_string(),
            key,
        ),
        _ => return super::not_found(),
    };
    reply(StatusCode::OK, "text/html;charset=utf-8", body)
}

/// An outcome in Douyin's, Baidu's or Alipay's shape.
pub(super) fn render(render: &Render<'_>, outcome: Outcome) -> Answer {
    match render {
        Render::Douyin => render_douyin(outcome),
        Render::Baidu => render_baidu(outcome),
        Render::Alipay(key) => render_alipay(outcome, key),
        _ => super::not_found(),
    }
}
