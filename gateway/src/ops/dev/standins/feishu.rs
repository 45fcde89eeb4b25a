//! Feishu's `app_access_token` (a self-built app's) and
//! `tokenLoginValidate`, made with it: JSON both ways, `code` 0 for
//! success.

use std::sync::atomic::Ordering;

use http::StatusCode;
use serde_json::json;

use super::{reply, Answer, Call, Checked, Outcome, Refusal, Render, StandIn};
pub(super) use crate::signin::providers::feishu::{EXCHANGE_PATH, TOKEN_PATH};

/// The `app_access_token` of `appid` in `generation`.
fn app_access_token(appid: &str, generation: usize) -> String {
    format!("t-{appid}-{generation}")
}

fn json_answer(status: StatusCode, v: &serde_json::Value) -> Answer {
    reply(status, "application/json; charset=utf-8", v.to_string())
}

fn is_json(call: &Call) -> bool {
    call.content_type.starts_with("application/json")
}

impl StandIn {
    /// `POST /open-apis/auth/v3/app_access_token/internal` with
    /// `{"app_id","app_secret"}`: the app's token, the same until
    /// [`StandIn::drop_token`]; counted ([`StandIn::app_token_calls`]).
    pub(super) fn feishu_token(&self, call: &Call) -> Answer {
        self.state.app_token_calls.fetch_add(1, Ordering::SeqCst);
        let ask = call.json();
        let app = self
            .app(ask["app_id"].as_str(), |p| p == "feishu")
            .filter(|a| is_json(call) && a.secret_is(ask["app_secret"].as_str()));
        let Some(app) = app else {
            return json_answer(
                StatusCode::OK,
                &json!({"code": 10014, "msg": "app secret invalid"}),
            );
        };
        let generation = self.state.generation.load(Ordering::SeqCst);
        json_answer(
            StatusCode::OK,
            &json!({"code": 0, "msg": "ok",
                "app_access_token": app_access_token(&app.appid, generation),
                "expire": self.token_lifetime()}),
        )
    }

    /// `POST /open-apis/mina/v2/tokenLoginValidate` with
    /// `Authorization: Bearer <app_access_token>` and `{"code"}`: the app
    /// is the one whose current token it is.
    pub(super) fn feishu(&self, call: &Call) -> Checked<'_> {
        if !is_json(call) {
            return Checked::Refused(super::not_found());
        }
        let Some(token) = call.authorization.strip_prefix("Bearer ") else {
            let missing = Refusal::new(99991661, "Missing access token for authorization")
                .with_status(StatusCode::BAD_REQUEST);
            return Checked::Refused(render(Outcome::Refuse(missing)));
        };
        let generation = self.state.generation.load(Ordering::SeqCst);
        let app = self.state.apps.iter().find(|a| {
            a.platform.name() == "feishu" && token == app_access_token(&a.appid, generation)
        });
        let Some(app) = app else {
            return Checked::Refused(render(Outcome::Refuse(Refusal::new(
                10202,
                "access token invalid",
            ))));
        };
        let ask = call.json();
        let Some(code) = ask["code"].as_str().filter(|c| !c.is_empty()) else {
            return Checked::Refused(render(Outcome::Refuse(Refusal::bad_code(app.platform))));
        };
        Checked::Ask(self.login(app, code, None), Render::Feishu)
    }
}

/// An outcome in Feishu's shape; a user without a tenant is answered
/// without `tenant_key`.
pub(super) fn render(outcome: Outcome) -> Answer {
    match outcome {
        Outcome::User(u) => {
            let mut data = json!({
                "open_id": u.openid,
                "employee_id": "e-stand-in",
                // Deprecated by Feishu, and not its Union ID: never read.
                "union_id": "on_deprecated_stand_in",
                "session_key": u.session_key,
                "access_token": "u-user-token-must-not-leak",
                "expires_in": 1_565_512_680,
                "refresh_token": "ur-user-refresh-must-not-leak",
            });
            if let Some(tenant) = u.tenant {
                data["tenant_key"] = tenant.into();
            }
            json_answer(
                StatusCode::OK,
                &json!({"code": 0, "msg": "success", "data": data}),
            )
        }
        Outcome::Refuse(r) => json_answer(r.status, &json!({"code": r.code, "msg": r.reason})),
        _ => super::not_found(),
    }
}
