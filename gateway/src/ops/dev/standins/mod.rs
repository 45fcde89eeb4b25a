//! Stand-ins for the platforms the gateway calls, speaking each one's wire
//! format: WeChat's and QQ's `jscode2session`, WeChat's `stable_token`,
//! phone-number exchange and web authorization (its authorize pages and
//! `sns/oauth2/access_token`), a WeChat third-party platform's side (the
//! `component_verify_ticket` it pushes, `api_component_token`, component
//! `jscode2session`), WeChat's `session_key` health (`checksession`,
//! `resetusersessionkey`, signed with the key it issued) and
//! `getuserriskrank`, Douyin's JSON POST, Baidu's form POST, Alipay's
//! RSA2-signed form POST with its signed answers, Kuaishou's form POST, and
//! Feishu's `app_access_token` and the exchange made with it. Each checks the
//! call as its platform would (method, path, encoding, the app and its
//! secret or signature, the fixed parameters) and answers in its shape.
//!
//! `serve --dev` logs in at them, and so do the integration tests: one set,
//! so what dev mode shows and what the tests hold the gateway to cannot
//! drift apart. What differs is the [`Script`]: dev mode's lets any code
//! log in (`super::apps::DevUsers`), the tests' picks failures, delays and
//! users by code. The few knobs the tests need beyond that stay small and
//! generic: every call is recorded ([`StandIn::calls`]), `stable_token`
//! and Feishu's `app_access_token` calls are counted and the apps' tokens
//! can be dropped or made short-lived, Alipay's refused signatures are
//! counted, an [`Outcome`] may be raw bytes or delayed, and
//! the authorize page may send the browser straight back
//! ([`AuthorizePage::Redirect`]) instead of showing a form. The stand-ins
//! listen on loopback only and are started by `serve --dev` or by a test,
//! never by a configured gateway.

mod component;
mod feishu;
mod kuaishou;
mod others;
mod wechat;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::config::Platform;
use crate::crypto::rsa2::{SigningKey, VerifyingKey};

pub use component::{ticket_message, Component, Push};
pub use others::alipay_signed;

/// One app a stand-in knows.
pub struct App {
    /// The platform it is an app of (a web sign-in's too: `wechat_web`,
    /// `wechat_pc`).
    pub platform: Platform,
    /// Its appid (Baidu's app key, Alipay's `app_id`).
    pub appid: String,
    /// What its calls must carry.
    pub credential: Credential,
}

/// What proves a call comes from the app.
pub enum Credential {
    /// The app secret (WeChat, QQ, Douyin, Baidu, WeChat's web apps).
    Secret(String),
    /// Alipay: the app's public key checks its calls' signatures, the
    /// platform's private key signs the answers.
    Rsa2 {
        /// The app's public key.
        app: VerifyingKey,
        /// The stand-in Alipay's own private key.
        platform: SigningKey,
    },
    /// A WeChat third-party platform (its `appid` the `component_appid`).
    Component(Component),
}

impl App {
    /// An app of `platform` with an app secret.
    pub fn secret(platform: Platform, appid: &str, secret: &str) -> App {
        App {
            platform,
            appid: appid.to_owned(),
            credential: Credential::Secret(secret.to_owned()),
        }
    }

    fn secret_is(&self, given: Option<&str>) -> bool {
        matches!(&self.credential, Credential::Secret(s) if Some(s.as_str()) == given)
    }
}

/// A code to trade, as the script sees it.
pub struct Login<'a> {
    /// The app's platform (`wechat_web` or `wechat_pc` for a web sign-in's
    /// code).
    pub platform: Platform,
    /// The app.
    pub appid: &'a str,
    /// The code, as sent (never empty: an empty code is refused before).
    pub code: &'a str,
    /// Douyin's `anonymous_code`, if one was sent.
    pub anonymous_code: Option<&'a str>,
}

/// The user a code logs in as.
#[derive(Clone, Debug, Default)]
pub struct User {
    /// The openid (Alipay's `open_id`).
    pub openid: String,
    /// The unionid, where the platform has them.
    pub unionid: Option<String>,
    /// The `session_key`; Alipay's and WeChat web's `access_token`.
    pub session_key: String,
    /// Douyin's `anonymous_openid`, for an `anonymous_code`.
    pub anonymous_openid: Option<String>,
    /// Feishu's `tenant_key` (answered without one when absent).
    pub tenant: Option<String>,
}

/// A platform's refusal, in its own shape: WeChat's and QQ's
/// `{errcode, errmsg}`, Douyin's `{err_no, err_tips}`, Baidu's
/// `{errno, error}` with an HTTP status, Alipay's signed
/// `{code, sub_code}`.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The HTTP status (Baidu's errors have their own; the others answer 200).
    pub status: StatusCode,
    /// `errcode`, `err_no`, `errno`, Alipay's `code`.
    pub code: i64,
    /// `errmsg`, `err_tips`, Baidu's `error`, Alipay's `sub_code`.
    pub reason: String,
}

impl Refusal {
    /// A refusal answered with 200, as most platforms do.
    pub fn new(code: i64, reason: &str) -> Refusal {
        Refusal {
            status: StatusCode::OK,
            code,
            reason: reason.to_owned(),
        }
    }

    /// The same refusal with another HTTP status.
    pub fn with_status(self, status: StatusCode) -> Refusal {
        Refusal { status, ..self }
    }

    /// `platform`'s answer to a code it does not know.
    pub fn bad_code(platform: Platform) -> Refusal {
        match platform.name() {
            "douyin" => Refusal::new(40018, "bad code"),
            "baidu" => Refusal::new(40001, "invalid_grant").with_status(StatusCode::BAD_REQUEST),
            "alipay" => Refusal::new(40002, "isv.code-invalid"),
            "kuaishou" => Refusal::new(
                crate::signin::providers::kuaishou::BAD_PARAMETER,
                "js_code invalid",
            ),
            "feishu" => Refusal::new(
                crate::signin::providers::feishu::BAD_CODE,
                "code appid not match",
            ),
            _ => Refusal::new(40029, "invalid code"),
        }
    }
}

/// What a stand-in answers a code with.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A login as this user.
    User(User),
    /// WeChat's phone-number exchange: this number, under a watermark
    /// naming `watermark` (the caller's app, or another).
    Phone {
        /// The number without country code.
        number: String,
        /// The appid in the watermark.
        watermark: String,
    },
    /// The platform's refusal.
    Refuse(Refusal),
    /// An answer as is: what a platform in trouble, or an impostor, sends.
    Raw {
        /// Its status.
        status: StatusCode,
        /// Its content type.
        content_type: &'static str,
        /// Its body.
        body: String,
    },
    /// Another outcome, after a while.
    Delay(Duration, Box<Outcome>),
}

/// Who a code is: the stand-in checks the call, the script says what the
/// code gives.
pub trait Script: Send + Sync + 'static {
    /// The answer to a login code (a mini-program's or a web sign-in's).
    fn login(&self, login: &Login<'_>) -> Outcome;
    /// The answer to a phone-number code of app `appid`.
    fn phone(&self, appid: &str, code: &str) -> Outcome;
}

/// What WeChat's authorize pages do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizePage {
    /// A page with a form: the code typed in (the user it signs in as) goes
    /// back to `redirect_uri` with the state, as when the user allows.
    Form,
    /// Straight back (302) to `redirect_uri` with the next queued code
    /// ([`StandIn::next_code`]; `deny` comes back without one), as a
    /// browser whose user allows at once.
    Redirect,
}

/// One call a stand-in received.
#[derive(Clone, Debug)]
pub struct Call {
    /// Its method.
    pub method: String,
    /// Its path.
    pub path: String,
    /// Its `Content-Type`, or empty.
    pub content_type: String,
    /// Its raw query string, or empty.
    pub query: String,
    /// Its `Authorization`, or empty.
    pub authorization: String,
    /// Its body, as text.
    pub body: String,
}

impl Call {
    /// Its query's parameters, else its form body's, decoded.
    pub fn params(&self) -> Vec<(String, String)> {
        let encoded = if self.query.is_empty() {
            &self.body
        } else {
            &self.query
        };
        form_urlencoded::parse(encoded.as_bytes())
            .into_owned()
            .collect()
    }

    /// The non-empty value of the parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v)
    }

    /// Its body as JSON (`null` if it is not).
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// A running stand-in: cheap to clone, every clone the same one.
#[derive(Clone)]
pub struct StandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    apps: Vec<App>,
    script: Box<dyn Script>,
    authorize: AuthorizePage,
    /// The latest [`RECORDED`] calls.
    calls: Mutex<VecDeque<Call>>,
    /// `stable_token` calls.
    token_calls: AtomicUsize,
    /// Feishu's `app_access_token` calls.
    app_token_calls: AtomicUsize,
    /// The current app access tokens' generation.
    generation: AtomicUsize,
    /// The seconds the app access tokens handed out live.
    token_lifetime: AtomicU64,
    /// Alipay calls refused for their signature.
    bad_signatures: AtomicUsize,
    /// Codes the redirecting authorize page hands out next.
    codes: Mutex<VecDeque<String>>,
    /// Codes it made up when none was queued; tickets and tokens made.
    made_up: AtomicUsize,
    /// The `component_verify_ticket`s pushed.
    tickets: Mutex<Vec<String>>,
    /// The `component_access_token`s issued.
    component_tokens: Mutex<Vec<String>>,
    /// WeChat's current `session_key` of each (appid, openid) it logged in.
    session_keys: Mutex<HashMap<(String, String), String>>,
    /// Risk ranks set by openid (unset: 0).
    risk_ranks: Mutex<HashMap<String, u8>>,
    /// The errcode `getuserriskrank` answers with instead of a rank, if any.
    risk_failure: Mutex<Option<i64>>,
}

/// How many calls a stand-in keeps ([`StandIn::calls`]): far more than any
/// test makes, and a bound on a long-running `serve --dev`.
pub const RECORDED: usize = 10_000;

/// A lock, poisoned or not: a panicking test must not hide what was seen.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

type Answer = Response<Full<Bytes>>;

impl StandIn {
    /// Serves `apps` on `listener`, codes answered by `script`.
    pub fn serve(
        listener: TcpListener,
        apps: Vec<App>,
        script: impl Script,
        authorize: AuthorizePage,
    ) -> std::io::Result<StandIn> {
        let addr = listener.local_addr()?;
        let standin = StandIn {
            addr,
            state: Arc::new(State {
                apps,
                script: Box::new(script),
                authorize,
                calls: Mutex::default(),
                token_calls: AtomicUsize::new(0),
                app_token_calls: AtomicUsize::new(0),
                generation: AtomicUsize::new(1),
                token_lifetime: AtomicU64::new(7200),
                bad_signatures: AtomicUsize::new(0),
                codes: Mutex::default(),
                made_up: AtomicUsize::new(0),
                tickets: Mutex::default(),
                component_tokens: Mutex::default(),
                session_keys: Mutex::default(),
                risk_ranks: Mutex::default(),
                risk_failure: Mutex::default(),
            }),
        };
        let me = standin.clone();
        super::spawn_http(listener, move |req| {
            let me = me.clone();
            async move { me.answer(req).await }
        });
        Ok(standin)
    }

    /// Serves `apps` on a fresh loopback port.
    pub async fn start(
        apps: Vec<App>,
        script: impl Script,
        authorize: AuthorizePage,
    ) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        StandIn::serve(listener, apps, script, authorize)
    }

    /// `http://` and its address: the base URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The calls received so far, in order: the latest [`RECORDED`] of
    /// them, so that a long `serve --dev` keeps a bounded log.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state.calls).iter().cloned().collect()
    }

    /// The raw query string of every call so far.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.state.calls)
            .iter()
            .map(|c| c.query.clone())
            .collect()
    }

    /// The latest call.
    pub fn last_call(&self) -> Option<Call> {
        lock(&self.state.calls).back().cloned()
    }

    /// `stable_token` calls so far.
    pub fn stable_token_calls(&self) -> usize {
        self.state.token_calls.load(Ordering::SeqCst)
    }

    /// Feishu's `app_access_token` calls so far.
    pub fn app_token_calls(&self) -> usize {
        self.state.app_token_calls.load(Ordering::SeqCst)
    }

    /// Forgets the apps' current access tokens, as when another caller
    /// forced new ones: calls with them get WeChat's 40001, Feishu's 10202.
    pub fn drop_token(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Makes the app access tokens handed out from now on live `secs`
    /// seconds instead of the platforms' 7200.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.state.token_lifetime.store(secs, Ordering::SeqCst);
    }

    /// The seconds an app access token handed out now lives.
    fn token_lifetime(&self) -> u64 {
        self.state.token_lifetime.load(Ordering::SeqCst)
    }

    /// Alipay calls refused for their signature so far.
    pub fn bad_signatures(&self) -> usize {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }

    /// WeChat's current `session_key` of user `openid` of app `appid`:
    /// the one its last login (or reset) handed out.
    pub fn session_key(&self, appid: &str, openid: &str) -> Option<String> {
        lock(&self.state.session_keys)
            .get(&(appid.to_owned(), openid.to_owned()))
            .cloned()
    }

    /// Forgets the user's current `session_key`, as WeChat does when the
    /// user logs in again elsewhere: calls signed with it get 87009.
    pub fn expire_session_key(&self, appid: &str, openid: &str) {
        lock(&self.state.session_keys).remove(&(appid.to_owned(), openid.to_owned()));
    }

    /// The rank `getuserriskrank` gives user `openid` (unset: 0).
    pub fn set_risk_rank(&self, openid: &str, rank: u8) {
        lock(&self.state.risk_ranks).insert(openid.to_owned(), rank);
    }

    /// Makes `getuserriskrank` answer with `errcode` (`None`: ranks again).
    pub fn fail_risk(&self, errcode: Option<i64>) {
        *lock(&self.state.risk_failure) = errcode;
    }

    /// Queues the code the redirecting authorize page hands out next.
    pub fn next_code(&self, code: &str) {
        lock(&self.state.codes).push_back(code.to_owned());
    }

    /// The app `appid` if it is of a platform `accept` takes.
    fn app(&self, appid: Option<&str>, accept: impl Fn(&str) -> bool) -> Option<&App> {
        let appid = appid?;
        self.state
            .apps
            .iter()
            .find(|a| a.appid == appid && accept(a.platform.name()))
    }

    /// The script's answer to `code` of `app`.
    fn login(&self, app: &App, code: &str, anonymous_code: Option<&str>) -> Outcome {
        self.state.script.login(&Login {
            platform: app.platform,
            appid: &app.appid,
            code,
            anonymous_code,
        })
    }

    /// Records the call, then routes it by path (the platforms' paths do
    /// not collide, so one stand-in may serve several).
    async fn answer(&self, req: Request<Incoming>) -> Answer {
        let (parts, body) = req.into_parts();
        let body = Limited::new(body, 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let call = Call {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            authorization: parts
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        {
            let mut calls = lock(&self.state.calls);
            if calls.len() == RECORDED {
                calls.pop_front();
            }
            calls.push_back(call.clone());
        }
        let outcome = match (call.method.as_str(), call.path.as_str()) {
            ("GET", "/sns/jscode2session") => self.jscode2session(&call),
            ("POST", "/cgi-bin/stable_token") => return self.stable_token(&call),
            ("POST", "/wxa/business/getuserphonenumber") => self.phone_number(&call),
            ("GET", "/wxa/checksession") => return self.checksession(&call),
            ("GET", "/wxa/resetusersessionkey") => return self.reset_session_key(&call),
            ("POST", "/wxa/getuserriskrank") => return self.risk_rank(&call),
            ("POST", "/cgi-bin/component/api_component_token") => {
                return self.component_token(&call)
            }
            ("GET", "/sns/component/jscode2session") => self.component_jscode2session(&call),
            ("GET", "/connect/oauth2/authorize" | "/connect/qrconnect") => {
                return self.authorize_page(&call)
            }
            ("GET", "/sns/oauth2/access_token") => self.web_access_token(&call),
            ("POST", "/api/apps/v2/jscode2session") => self.douyin(&call),
            ("POST", "/oauth/jscode2sessionkey") => self.baidu(&call),
            ("POST", "/gateway.do") => self.alipay(&call),
            ("POST", "/oauth2/mp/code2session") => self.kuaishou(&call),
            ("POST", feishu::TOKEN_PATH) => return self.feishu_token(&call),
            ("POST", feishu::EXCHANGE_PATH) => self.feishu(&call),
            _ => Checked::Refused(not_found()),
        };
        match outcome {
            Checked::Ask(outcome, render) => self.render(outcome, render).await,
            Checked::Refused(answer) => answer,
        }
    }

    /// Waits out delays, then renders the outcome in the shape `render`
    /// names.
    async fn render(&self, mut outcome: Outcome, render: Render<'_>) -> Answer {
        while let Outcome::Delay(wait, then) = outcome {
            tokio::time::sleep(wait).await;
            outcome = *then;
        }
        match outcome {
            Outcome::Raw {
                status,
                content_type,
                body,
            } => reply(status, content_type, body),
            Outcome::Delay(..) => not_found(),
            outcome => render.answer(outcome),
        }
    }
}

/// How an outcome is written: the platform's, for this call.
enum Render<'a> {
    /// WeChat's or QQ's `jscode2session`.
    Session,
    /// WeChat's web `access_token`, for an app of this scope.
    Web(&'static str),
    /// WeChat's phone-number exchange.
    Phone,
    /// Douyin.
    Douyin,
    /// Baidu.
    Baidu,
    /// Alipay, signed with this key.
    Alipay(&'a SigningKey),
    /// Kuaishou.
    Kuaishou,
    /// Feishu.
    Feishu,
}

impl Render<'_> {
    fn answer(&self, outcome: Outcome) -> Answer {
        match self {
            Render::Session | Render::Web(_) | Render::Phone => wechat::render(self, outcome),
            Render::Douyin | Render::Baidu | Render::Alipay(_) => others::render(self, outcome),
            Render::Kuaishou => kuaishou::render(outcome),
            Render::Feishu => feishu::render(outcome),
        }
    }
}

/// A call checked: a code for the script, or an answer at once.
enum Checked<'a> {
    /// The script's outcome, to render so.
    Ask(Outcome, Render<'a>),
    /// The call's own fault, answered as the platform would.
    Refused(Answer),
}

/// A response of `status` with `content_type`.
fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Answer {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

fn not_found() -> Answer {
    reply(StatusCode::NOT_FOUND, "text/html", "<html>404</html>")
}
