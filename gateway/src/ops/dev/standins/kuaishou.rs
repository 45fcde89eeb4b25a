//! Kuaishou's `code2session`: a form POST in, JSON out, `result` 1 for
//! success.

use http::StatusCode;
use serde_json::json;

use super::{reply, Answer, Call, Checked, Outcome, Refusal, Render, StandIn};
use crate::signin::providers::kuaishou::BAD_APP;

impl StandIn {
    /// `POST /oauth2/mp/code2session` with the form
    /// `app_id&app_secret&js_code`.
    pub(super) fn kuaishou(&self, call: &Call) -> Checked<'_> {
        if !call
            .content_type
            .starts_with("application/x-www-form-urlencoded")
        {
            return Checked::Refused(super::not_found());
        }
        let Some(app) = self
            .app(call.param("app_id").as_deref(), |p| p == "kuaishou")
            .filter(|a| a.secret_is(call.param("app_secret").as_deref()))
        else {
            let refusal = Refusal::new(BAD_APP, "app_id or app_secret invalid");
            return Checked::Refused(render(Outcome::Refuse(refusal)));
        };
        let Some(code) = call.param("js_code") else {
            return Checked::Refused(render(Outcome::Refuse(Refusal::bad_code(app.platform))));
        };
        Checked::Ask(self.login(app, &code, None), Render::Kuaishou)
    }
}

/// An outcome in Kuaishou's shape.
pub(super) fn render(outcome: Outcome) -> Answer {
    let (status, body) = match outcome {
        Outcome::User(u) => (
            StatusCode::OK,
            json!({"result": 1, "open_id": u.openid, "session_key": u.session_key}),
        ),
        Outcome::Refuse(r) => (
            r.status,
            json!({"result": r.code, "error": "stand-in", "error_msg": r.reason}),
        ),
        _ => return super::not_found(),
    };
    reply(status, "application/json;charset=UTF-8", body.to_string())
}
