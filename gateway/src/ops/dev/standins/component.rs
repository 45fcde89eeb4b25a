//! A WeChat third-party platform's side of WeChat: the
//! `component_verify_ticket` pushed to the platform's callback (encrypted
//! and signed as WeChat does, [`crate::wechat::msgcrypt::seal`]),
//! `api_component_token` (which takes only a ticket it pushed) and
//! `sns/component/jscode2session` (which takes only a token it issued, and
//! answers 61003 for a mini-program that has not authorized the platform).

use std::sync::atomic::Ordering;

use http::StatusCode;
use serde_json::json;

use super::{lock, reply, Answer, App, Call, Checked, Credential, Login, Render, StandIn};
use crate::wechat::msgcrypt::{seal, MsgCrypt};

/// A third-party platform's keys, as WeChat knows them.
#[derive(Clone, Debug)]
pub struct Component {
    /// Its `component_appsecret`.
    pub secret: String,
    /// Its message crypto (verify token and `EncodingAESKey`).
    pub crypt: MsgCrypt,
    /// The mini-programs that authorized it.
    pub authorized: Vec<String>,
}

/// A push as WeChat sends it: the body, and the query of the callback URL.
#[derive(Clone, Debug)]
pub struct Push {
    /// The XML envelope.
    pub body: String,
    /// `timestamp`.
    pub timestamp: String,
    /// `nonce`.
    pub nonce: String,
    /// `msg_signature`.
    pub msg_signature: String,
}

impl Push {
    /// `message` pushed to the platform of `crypt`, encrypted and signed as
    /// WeChat does, now.
    pub fn new(crypt: &MsgCrypt, message: &str) -> Push {
        let timestamp = crate::tokens::now_secs().to_string();
        // Ten digits, as WeChat's. (Digits picked out of a random id could
        // be none at all, 2 % of the time, and a push without a nonce is
        // refused.)
        let mut random = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        let nonce = format!("{:010}", u64::from_le_bytes(random) % 10_000_000_000);
        let (body, msg_signature) = seal(crypt, message, &timestamp, &nonce);
        Push {
            body,
            timestamp,
            nonce,
            msg_signature,
        }
    }

    /// WeChat's push of `ticket` to the platform of `crypt`.
    pub fn ticket(crypt: &MsgCrypt, component_appid: &str, ticket: &str) -> Push {
        Push::new(crypt, &ticket_message(component_appid, ticket))
    }

    /// The query WeChat adds to the callback URL (it signs with the
    /// message's `msg_signature`; `signature` is its older one, unused).
    pub fn query(&self) -> String {
        crate::signin::providers::form(&[
            ("signature", "0"),
            ("timestamp", &self.timestamp),
            ("nonce", &self.nonce),
            ("encrypt_type", "aes"),
            ("msg_signature", &self.msg_signature),
        ])
    }

    /// Posts it to `callback` (the platform's callback URL, no query) with
    /// `http`: the status and body of the answer.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        callback: &str,
    ) -> Result<(StatusCode, String), reqwest::Error> {
        let res = http
            .post(format!("{callback}?{}", self.query()))
            .header(http::header::CONTENT_TYPE, "text/xml")
            .body(self.body.clone())
            .send()
            .await?;
        let status = res.status();
        Ok((status, res.text().await?))
    }
}

/// The message of a `component_verify_ticket` push, as WeChat writes it.
pub fn ticket_message(component_appid: &str, ticket: &str) -> String {
    format!(
        "<xml><AppId><![CDATA[{component_appid}]]></AppId><CreateTime>{}</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket><![CDATA[{ticket}]]></ComponentVerifyTicket></xml>",
        crate::tokens::now_secs()
    )
}

fn plain(v: &serde_json::Value) -> Answer {
    reply(StatusCode::OK, "text/plain", v.to_string())
}

fn errcode(code: i64, msg: &str) -> Answer {
    plain(&json!({"errcode": code, "errmsg": msg}))
}

impl StandIn {
    /// The third-party platform `component_appid` and its keys.
    fn component(&self, component_appid: Option<&str>) -> Option<(&App, &Component)> {
        self.app(component_appid, |p| p == "wechat_component")
            .and_then(|a| match &a.credential {
                Credential::Component(c) => Some((a, c)),
                _ => None,
            })
    }

    /// Pushes a new `component_verify_ticket` of `component_appid` to
    /// `callback`, as WeChat does every 10 minutes: the ticket is one
    /// `api_component_token` takes from then on. The answer's status and
    /// body.
    pub async fn push_ticket(
        &self,
        http: &reqwest::Client,
        component_appid: &str,
        callback: &str,
    ) -> Result<(StatusCode, String), reqwest::Error> {
        let n = self.state.made_up.fetch_add(1, Ordering::SeqCst);
        let ticket = format!("ticket@@@{component_appid}-{n}");
        let crypt = self
            .component(Some(component_appid))
            .map(|(_, c)| c.crypt.clone());
        lock(&self.state.tickets).push(ticket.clone());
        let Some(crypt) = crypt else {
            return Ok((StatusCode::NOT_FOUND, "no such platform here".into()));
        };
        Push::ticket(&crypt, component_appid, &ticket)
            .send(http, callback)
            .await
    }

    /// Forgets every `component_access_token` handed out so far, as WeChat
    /// does when it replaces or revokes one before its expiry: the next
    /// exchange made with one is refused (40001).
    pub fn revoke_component_tokens(&self) {
        lock(&self.state.component_tokens).clear();
    }

    /// `api_component_token` calls so far.
    pub fn component_token_calls(&self) -> usize {
        lock(&self.state.calls)
            .iter()
            .filter(|c| c.path == "/cgi-bin/component/api_component_token")
            .count()
    }

    /// `POST /cgi-bin/component/api_component_token`: a new token for a
    /// platform, its secret and a ticket WeChat pushed it.
    pub(super) fn component_token(&self, call: &Call) -> Answer {
        let ask = call.json();
        let Some((app, keys)) = self.component(ask["component_appid"].as_str()) else {
            return errcode(40013, "invalid appid");
        };
        if ask["component_appsecret"].as_str() != Some(keys.secret.as_str()) {
            return errcode(40125, "invalid appsecret");
        }
        let ticket = ask["component_verify_ticket"].as_str().unwrap_or_default();
        if ticket.is_empty() || !lock(&self.state.tickets).iter().any(|t| t == ticket) {
            return errcode(61006, "component ticket is invalid");
        }
        let n = self.state.made_up.fetch_add(1, Ordering::SeqCst);
        let token = format!("CAT-{}-{n}", app.appid);
        lock(&self.state.component_tokens).push(token.clone());
        plain(&json!({"component_access_token": token, "expires_in": self.token_lifetime()}))
    }

    /// `GET /sns/component/jscode2session`: a code of a mini-program that
    /// authorized the platform, with the platform's current token.
    pub(super) fn component_jscode2session(&self, call: &Call) -> Checked<'_> {
        let refuse = |code, msg| Checked::Refused(errcode(code, msg));
        let Some((app, keys)) = self.component(call.param("component_appid").as_deref()) else {
            return refuse(40013, "invalid component appid");
        };
        let token = call.param("component_access_token").unwrap_or_default();
        if !lock(&self.state.component_tokens)
            .iter()
            .any(|t| *t == token && t.starts_with(&format!("CAT-{}-", app.appid)))
        {
            return refuse(
                40001,
                "invalid credential, access_token is invalid or not latest",
            );
        }
        if call.param("grant_type").as_deref() != Some("authorization_code") {
            return refuse(40002, "invalid grant_type");
        }
        let Some(appid) = call.param("appid") else {
            return refuse(40013, "invalid appid");
        };
        if !keys.authorized.contains(&appid) {
            return refuse(61003, "component is not authorized by this account");
        }
        let Some(code) = call.param("js_code") else {
            return refuse(40029, "invalid code");
        };
        let outcome = self.state.script.login(&Login {
            platform: app.platform,
            appid: &appid,
            code: &code,
            anonymous_code: None,
        });
        Checked::Ask(outcome, Render::Session)
    }
}
