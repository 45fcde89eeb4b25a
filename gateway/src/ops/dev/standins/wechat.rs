//! WeChat's wire (QQ's `jscode2session` too): JSON answered as
//! `text/plain`, errors as `{errcode, errmsg}` with a 200.

use std::sync::atomic::Ordering;

use base64::Engine as _;
use http::StatusCode;
use serde_json::json;

use super::{
    lock, reply, Answer, App, AuthorizePage, Call, Checked, Outcome, Refusal, Render, StandIn,
};
use crate::tokens::now_secs;

/// JSON as WeChat answers it.
fn plain(v: &serde_json::Value) -> Answer {
    reply(StatusCode::OK, "text/plain", v.to_string())
}

fn errcode(code: i64, msg: &str) -> Answer {
    plain(&json!({"errcode": code, "errmsg": msg}))
}

/// The app access token of `appid` in `generation`.
fn access_token(appid: &str, generation: usize) -> String {
    format!("AT-{appid}-{generation}")
}

impl StandIn {
    /// The app of a code exchange (`appid`, `secret`,
    /// `grant_type=authorization_code`) and its code, from the query
    /// parameter `code_param`.
    fn exchange<'a>(
        &self,
        call: &Call,
        app: Option<&'a App>,
        code_param: &str,
    ) -> Result<(&'a App, String), Refusal> {
        let Some(app) = app.filter(|a| {
            a.secret_is(call.param("secret").as_deref())
                && call.param("grant_type").as_deref() == Some("authorization_code")
        }) else {
            return Err(Refusal::new(40125, "invalid appsecret"));
        };
        let code = call
            .param(code_param)
            .ok_or_else(|| Refusal::new(40029, "invalid code"))?;
        Ok((app, code))
    }

    /// `GET /sns/jscode2session`: WeChat's and QQ's code exchange.
    pub(super) fn jscode2session(&self, call: &Call) -> Checked<'_> {
        let app = self.app(call.param("appid").as_deref(), |p| {
            matches!(p, "wechat" | "qq")
        });
        match self.exchange(call, app, "js_code") {
            Ok((app, code)) => {
                let outcome = self.login(app, &code, None);
                if app.platform.name() == "wechat" {
                    self.issued(&app.appid, &outcome);
                }
                Checked::Ask(outcome, Render::Session)
            }
            Err(r) => Checked::Refused(errcode(r.code, &r.reason)),
        }
    }

    /// Keeps the `session_key` a login hands out as the user's current one
    /// (each login replaces the last, as WeChat's do).
    fn issued(&self, appid: &str, mut outcome: &Outcome) {
        while let Outcome::Delay(_, then) = outcome {
            outcome = then;
        }
        if let Outcome::User(u) = outcome {
            lock(&self.state.session_keys)
                .insert((appid.to_owned(), u.openid.clone()), u.session_key.clone());
        }
    }

    /// The WeChat mini-program whose current access token the call carries.
    fn token_app(&self, call: &Call) -> Option<&App> {
        let token = call.param("access_token").unwrap_or_default();
        let generation = self.state.generation.load(Ordering::SeqCst);
        self.state
            .apps
            .iter()
            .find(|a| a.platform.name() == "wechat" && token == access_token(&a.appid, generation))
    }

    /// The user of a call signed with a `session_key` (`openid`,
    /// `signature`, `sig_method=hmac_sha256`) as (appid, openid), if the
    /// signature is of the user's current key; else WeChat's errcode and
    /// errmsg.
    fn signed(&self, call: &Call) -> Result<(String, String), (i64, &'static str)> {
        let Some(app) = self.token_app(call) else {
            return Err((40001, "invalid credential"));
        };
        let (Some(openid), Some(signature)) = (call.param("openid"), call.param("signature"))
        else {
            return Err((40097, "invalid args"));
        };
        if call.param("sig_method").as_deref() != Some("hmac_sha256") {
            return Err((40097, "invalid args"));
        }
        match self.session_key(&app.appid, &openid) {
            Some(key) if crate::wechat::session_key::signature(&key) == signature => {
                Ok((app.appid.clone(), openid))
            }
            _ => Err((87009, "invalid signature")),
        }
    }

    /// `GET /wxa/checksession`: 0 if the signature is of the user's
    /// current `session_key`, else 87009.
    pub(super) fn checksession(&self, call: &Call) -> Answer {
        match self.signed(call) {
            Ok(_) => errcode(0, "ok"),
            Err((code, msg)) => errcode(code, msg),
        }
    }

    /// `GET /wxa/resetusersessionkey`: signed with the current key, a new
    /// one replaces it.
    pub(super) fn reset_session_key(&self, call: &Call) -> Answer {
        let (appid, openid) = match self.signed(call) {
            Ok(user) => user,
            Err((code, msg)) => return errcode(code, msg),
        };
        let n = self.state.made_up.fetch_add(1, Ordering::SeqCst);
        let seed = format!("{appid}/{openid}/reset/{n}");
        let digest = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
        let key = base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..16]);
        lock(&self.state.session_keys).insert((appid, openid.clone()), key.clone());
        plain(&json!({"errcode": 0, "errmsg": "ok", "openid": openid, "session_key": key}))
    }

    /// `POST /wxa/getuserriskrank?access_token=...`
    /// `{"appid","openid","scene","client_ip"}`: the rank set for the
    /// user (0 unless [`StandIn::set_risk_rank`]), or the failure set by
    /// [`StandIn::fail_risk`].
    pub(super) fn risk_rank(&self, call: &Call) -> Answer {
        let Some(app) = self.token_app(call) else {
            return errcode(40001, "invalid credential");
        };
        let ask = call.json();
        let openid = ask["openid"].as_str().filter(|o| !o.is_empty());
        let ip = ask["client_ip"].as_str().filter(|ip| !ip.is_empty());
        let (Some(openid), Some(_), Some(_)) = (openid, ip, ask["scene"].as_u64()) else {
            return errcode(40097, "invalid args");
        };
        if ask["appid"].as_str() != Some(app.appid.as_str()) {
            return errcode(40013, "invalid appid");
        }
        if let Some(code) = *lock(&self.state.risk_failure) {
            return errcode(code, "system error");
        }
        let rank = lock(&self.state.risk_ranks)
            .get(openid)
            .copied()
            .unwrap_or(0);
        let id = self.state.made_up.fetch_add(1, Ordering::SeqCst);
        plain(&json!({
            "errcode": 0, "errmsg": "getuserriskrank succ", "risk_rank": rank, "unoin_id": id,
        }))
    }

    /// `POST /cgi-bin/stable_token`: the app's access token, the same
    /// until `force_refresh` or [`StandIn::drop_token`].
    pub(super) fn stable_token(&self, call: &Call) -> Answer {
        self.state.token_calls.fetch_add(1, Ordering::SeqCst);
        let ask = call.json();
        let app = self.app(ask["appid"].as_str(), |p| p == "wechat");
        let Some(app) = app.filter(|a| {
            a.secret_is(ask["secret"].as_str()) && ask["grant_type"] == "client_credential"
        }) else {
            return errcode(40125, "invalid appsecret");
        };
        if ask["force_refresh"] == true {
            self.state.generation.fetch_add(1, Ordering::SeqCst);
        }
        let generation = self.state.generation.load(Ordering::SeqCst);
        plain(
            &json!({"access_token": access_token(&app.appid, generation),
            "expires_in": self.token_lifetime()}),
        )
    }

    /// `POST /wxa/business/getuserphonenumber?access_token=...`: the app
    /// is the one whose current token it is.
    pub(super) fn phone_number(&self, call: &Call) -> Checked<'_> {
        let Some(app) = self.token_app(call) else {
            return Checked::Refused(errcode(40001, "invalid credential"));
        };
        let ask = call.json();
        let Some(code) = ask["code"].as_str().filter(|c| !c.is_empty()) else {
            return Checked::Refused(errcode(40029, "invalid code"));
        };
        Checked::Ask(self.state.script.phone(&app.appid, code), Render::Phone)
    }

    /// `GET /connect/oauth2/authorize` (`snsapi_base`) and
    /// `/connect/qrconnect` (`snsapi_login`): the parameters checked
    /// against a web app of that page's scope, then a form or straight
    /// back, as [`AuthorizePage`] says.
    pub(super) fn authorize_page(&self, call: &Call) -> Answer {
        let (Some(redirect_uri), Some(state)) = (call.param("redirect_uri"), call.param("state"))
        else {
            return reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "redirect_uri and state are required\n",
            );
        };
        let scope = call.param("scope").unwrap_or_default();
        let app = self
            .app(call.param("appid").as_deref(), |_| true)
            .and_then(|a| a.platform.browser())
            .filter(|b| b.authorize_path == call.path && b.scope == scope);
        // Back to this machine only: the stand-ins are no open redirect.
        let back = reqwest::Url::parse(&redirect_uri)
            .ok()
            .filter(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost")));
        let (Some(_), Some(mut back)) = (app, back) else {
            return reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "unknown appid, scope or redirect_uri\n",
            );
        };
        if call.param("response_type").as_deref() != Some("code") {
            return reply(StatusCode::BAD_REQUEST, "text/plain", "bad response_type\n");
        }
        if self.state.authorize == AuthorizePage::Form {
            return form_page(&scope, &redirect_uri, &state);
        }
        let code = lock(&self.state.codes).pop_front().unwrap_or_else(|| {
            let n = self.state.made_up.fetch_add(1, Ordering::SeqCst);
            format!("web-user-{n}")
        });
        if code != "deny" {
            back.query_pairs_mut().append_pair("code", &code);
        }
        back.query_pairs_mut().append_pair("state", &state);
        let mut res = reply(StatusCode::FOUND, "text/html", "<html>redirecting</html>");
        if let Ok(location) = http::HeaderValue::from_str(back.as_str()) {
            res.headers_mut().insert(http::header::LOCATION, location);
        }
        res
    }

    /// `GET /sns/oauth2/access_token`: a web sign-in's code exchange.
    pub(super) fn web_access_token(&self, call: &Call) -> Checked<'_> {
        let app = self
            .app(call.param("appid").as_deref(), |_| true)
            .filter(|a| a.platform.is_web());
        match self.exchange(call, app, "code") {
            Ok((app, code)) => {
                let scope = app.platform.browser().map_or("", |b| b.scope);
                Checked::Ask(self.login(app, &code, None), Render::Web(scope))
            }
            Err(r) => Checked::Refused(errcode(r.code, &r.reason)),
        }
    }
}

/// Escapes text for an HTML attribute or element.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The authorize page as a form: the code typed in is the user.
fn form_page(scope: &str, redirect_uri: &str, state: &str) -> Answer {
    let page = format!(
        r#"<!doctype html><meta charset="utf-8"><title>WeChat sign-in (minigate stand-in)</title>
<h1>WeChat sign-in: stand-in</h1>
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
        scope = html_escape(scope),
        action = html_escape(redirect_uri),
        state = html_escape(state),
    );
    reply(StatusCode::OK, "text/html; charset=utf-8", page)
}

/// An outcome in WeChat's shapes.
pub(super) fn render(render: &Render<'_>, outcome: Outcome) -> Answer {
    match (outcome, render) {
        (Outcome::Refuse(r), _) => errcode(r.code, &r.reason),
        (Outcome::User(u), Render::Web(scope)) => {
            let mut v = json!({
                "access_token": u.session_key, "expires_in": 7200,
                "refresh_token": "stand-in-web-refresh-token", "openid": u.openid,
                "scope": scope,
            });
            if let Some(unionid) = u.unionid {
                v["unionid"] = unionid.into();
            }
            plain(&v)
        }
        (Outcome::User(u), _) => {
            let mut v = json!({"openid": u.openid, "session_key": u.session_key});
            if let Some(unionid) = u.unionid {
                v["unionid"] = unionid.into();
            }
            plain(&v)
        }
        (Outcome::Phone { number, watermark }, _) => plain(&json!({
            "errcode": 0, "errmsg": "ok", "phone_info": {
                "phoneNumber": format!("+86 {number}"), "purePhoneNumber": number,
                "countryCode": "86", "watermark": {"timestamp": now_secs(), "appid": watermark}}
        })),
        (Outcome::Raw { .. } | Outcome::Delay(..), _) => super::not_found(),
    }
}
