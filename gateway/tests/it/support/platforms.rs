//! The test apps of Douyin, Baidu, Alipay, Kuaishou and Feishu on the gateway's own
//! stand-ins (`minigate::ops::dev::standins`, as `serve --dev` runs them),
//! and [`Codes`], the script by which a test's codes choose the answer.
//! (QQ speaks WeChat's wire, so the stand-in WeChat serves it too, for
//! `QQ_APPID`.) Every call is recorded.
//!
//! Codes common to Douyin, Baidu, Alipay, Kuaishou and Feishu: `slow` answers after 3 s;
//! `garbage` is an HTML page; `http500` is a 500; `bad` is the platform's
//! bad-code answer; `busy` its busy answer; `union:X` logs in with unionid
//! X where the platform has unionids; anything else logs in with
//! `openid_for(code)`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use http::StatusCode;
use minigate::config::Platform;
use minigate::crypto::rsa2::SigningKey;
use minigate::ops::dev::standins::{
    alipay_signed, App, AuthorizePage, Credential, Login, Outcome, Refusal, Script, User,
};
use minigate::signin::providers::alipay::{ERROR_RESPONSE, RESPONSE};

use super::{openid_for, session_key_for, web_openid, SESSION_KEY, WX_WEB_TOKEN};

pub use minigate::ops::dev::standins::StandIn;

pub const QQ_APPID: &str = "1109000001";
pub const QQ_SECRET: &str = "QQ-SECRET-must-not-leak-51e2";
pub const DOUYIN_APPID: &str = "tt0000000000000001";
pub const DOUYIN_SECRET: &str = "DOUYIN-SECRET-must-not-leak-0b77";
pub const BAIDU_APPID: &str = "baiduAppKey0000000000001";
pub const BAIDU_SECRET: &str = "BAIDU-SECRET-must-not-leak-a4c9";
pub const ALIPAY_APPID: &str = "2021000000000001";
pub const KUAISHOU_APPID: &str = "ks671234567890123456";
pub const KUAISHOU_SECRET: &str = "KUAISHOU-SECRET-must-not-leak-5d20";
pub const FEISHU_APPID: &str = "cli_a1b2c3d4e5f60001";
pub const FEISHU_SECRET: &str = "FEISHU-SECRET-must-not-leak-77c1";
/// The tenant of a Feishu code that names none.
pub const FEISHU_TENANT: &str = "736588c9260f175d";
/// Session keys and Alipay's access token: in the stand-ins' answers, never
/// in the gateway's responses or logs.
pub const PLATFORM_SESSION_KEY: &str = "PLATFORM-SESSIONKEY-must-not-leak-33aa";
pub const ALIPAY_ACCESS_TOKEN: &str = "authusrB-ALIPAY-TOKEN-must-not-leak-e1";

/// The fixtures directory of the TEST-ONLY Alipay keys.
pub fn alipay_fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/alipay")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(alipay_fixtures().join(name)).unwrap()
}

/// The app's private key (signs the gateway's calls).
pub fn app_key() -> SigningKey {
    SigningKey::parse(&fixture("app.pk8.pem")).unwrap()
}

/// The stand-in Alipay's private key (signs its answers).
pub fn alipay_key() -> SigningKey {
    SigningKey::parse(&fixture("alipay.pk8.pem")).unwrap()
}

/// A key of neither: the jwks crate's RS256 test key.
pub fn stranger_key() -> SigningKey {
    let b64 = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../jwks/testdata/rs256-2048.pk8.b64"),
    )
    .unwrap();
    let der = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64.trim())
        .unwrap();
    SigningKey::from_pkcs8(&der).unwrap()
}

async fn stand_in(app: App) -> StandIn {
    StandIn::start(vec![app], Codes::default(), AuthorizePage::Redirect)
        .await
        .unwrap()
}

fn platform(name: &str) -> Platform {
    Platform::named(name).unwrap()
}

/// Douyin's `POST /api/apps/v2/jscode2session`. Codes: `bad` is err_no
/// 40018, `badanon` 40019, `busy` -1, `other` 40014.
pub async fn douyin() -> StandIn {
    stand_in(App::secret(platform("douyin"), DOUYIN_APPID, DOUYIN_SECRET)).await
}

/// Baidu's `POST /oauth/jscode2sessionkey`. Codes: `bad` is a 400
/// `invalid_grant`; `busy` a 503; `other` an `invalid_client`.
pub async fn baidu() -> StandIn {
    stand_in(App::secret(platform("baidu"), BAIDU_APPID, BAIDU_SECRET)).await
}

/// Alipay's open gateway at `/gateway.do`. The call's RSA2 signature is
/// checked with the app's public key (a bad one: a signed
/// `isv.invalid-signature`, counted); the common parameters too. Codes:
/// `bad` is a signed `error_response` `isv.code-invalid`; `bad-in-root` the
/// same inside the method's object; `busy` `isp.unknow-error`; `other`
/// `isv.invalid-app-id`; `userid` answers only the legacy `user_id`;
/// `badsign` a corrupted signature; `nosign` none; `wrongkey` signed with
/// another key; `tampered` an open_id changed after signing; `dupe` the
/// method's object twice; `unsigned-bad` an unsigned `isv.code-invalid`.
pub async fn alipay() -> StandIn {
    stand_in(App {
        platform: platform("alipay"),
        appid: ALIPAY_APPID.into(),
        credential: Credential::Rsa2 {
            app: app_key().verifying_key(),
            platform: alipay_key(),
        },
    })
    .await
}

/// Kuaishou's `POST /oauth2/mp/code2session`. Codes: `bad` is result
/// 100200100, `often` 100200104, `busy` 100200500, `other` 100200101.
pub async fn kuaishou() -> StandIn {
    stand_in(App::secret(
        platform("kuaishou"),
        KUAISHOU_APPID,
        KUAISHOU_SECRET,
    ))
    .await
}

/// Feishu's `app_access_token` and `tokenLoginValidate` (the token checked;
/// [`StandIn::drop_token`] makes it stale: 10202). Codes: `t:T:rest` logs
/// in the user of `rest` in tenant T (any other in [`FEISHU_TENANT`]);
/// `bad` is code 10213, `hidden` 10228, `often` 99991400, `other` 12345,
/// `notenant` a user without `tenant_key`.
pub async fn feishu() -> StandIn {
    stand_in(App::secret(platform("feishu"), FEISHU_APPID, FEISHU_SECRET)).await
}

/// The tests' script: codes choose the answer (see each stand-in's doc).
/// A web sign-in's code is good once per app (40163 after).
#[derive(Default)]
pub struct Codes {
    used: Mutex<HashSet<String>>,
}

fn raw(status: u16, content_type: &'static str, body: &str) -> Outcome {
    Outcome::Raw {
        status: StatusCode::from_u16(status).unwrap(),
        content_type,
        body: body.to_owned(),
    }
}

fn slow(then: Outcome) -> Outcome {
    Outcome::Delay(Duration::from_secs(3), Box::new(then))
}

fn refuse(code: i64, reason: &str) -> Outcome {
    Outcome::Refuse(Refusal::new(code, reason))
}

/// `err:N` as errcode N.
fn errcode(code: &str) -> Option<Outcome> {
    let n: i64 = code.strip_prefix("err:")?.parse().unwrap();
    Some(refuse(n, "stand-in error"))
}

fn user(openid: String, session_key: &str) -> User {
    User {
        openid,
        session_key: session_key.to_owned(),
        ..User::default()
    }
}

impl Script for Codes {
    fn login(&self, login: &Login<'_>) -> Outcome {
        let code = login.code;
        match login.platform.name() {
            "wechat" | "qq" | "wechat_component" => wechat_code(code),
            "wechat_web" | "wechat_pc" => self.web_code(login.appid, code),
            name => {
                let answer = || match name {
                    "douyin" => douyin_code(code, login.anonymous_code),
                    "baidu" => baidu_code(code),
                    "kuaishou" => kuaishou_code(code),
                    "feishu" => feishu_code(code),
                    _ => alipay_code(code),
                };
                match code {
                    "slow" => slow(answer()),
                    "garbage" => raw(200, "text/html", "<html>busy</html>"),
                    "http500" => raw(500, "text/html", "oops"),
                    _ => answer(),
                }
            }
        }
    }

    fn phone(&self, appid: &str, code: &str) -> Outcome {
        let phone = |number: &str, watermark: &str| Outcome::Phone {
            number: number.to_owned(),
            watermark: watermark.to_owned(),
        };
        match code {
            c if c.starts_with("phone:") => phone(&c[6..], appid),
            "phone-other-app" => phone("13800000000", "wx-some-other-app"),
            c => errcode(c).unwrap_or_else(|| refuse(40029, "invalid code")),
        }
    }
}

/// WeChat's and QQ's codes (everything from a `#` on ignored).
fn wechat_code(code: &str) -> Outcome {
    let code = code.split('#').next().unwrap_or_default();
    let ok = |unionid: Option<&str>| {
        let key = if code.starts_with("aes:") {
            session_key_for(code)
        } else {
            SESSION_KEY.to_owned()
        };
        Outcome::User(User {
            unionid: unionid.map(str::to_owned),
            ..user(openid_for(code), &key)
        })
    };
    match code {
        "slow" => slow(ok(None)),
        "notjson" => raw(200, "text/html", "<html>system busy</html>"),
        "noopenid" => raw(
            200,
            "text/plain",
            &serde_json::json!({"session_key": SESSION_KEY}).to_string(),
        ),
        "http500" => raw(500, "text/html", "oops"),
        "badopenid" => Outcome::User(user("bad id\u{7f}".into(), SESSION_KEY)),
        c if c.starts_with("err:") => errcode(c).unwrap(),
        c if c.starts_with("union:") => ok(Some(&c[6..])),
        _ => ok(None),
    }
}

fn douyin_code(code: &str, anonymous_code: Option<&str>) -> Outcome {
    match code {
        "bad" => refuse(40018, "stand-in"),
        "badanon" => refuse(40019, "stand-in"),
        "busy" => refuse(-1, "stand-in"),
        "other" => refuse(40014, "stand-in"),
        c => Outcome::User(User {
            unionid: c.strip_prefix("union:").map(str::to_owned),
            anonymous_openid: anonymous_code.map(|a| format!("anon-{}", openid_for(a))),
            ..user(openid_for(c), PLATFORM_SESSION_KEY)
        }),
    }
}

fn kuaishou_code(code: &str) -> Outcome {
    match code {
        "bad" => refuse(100_200_100, "js_code invalid"),
        "often" => refuse(100_200_104, "too often"),
        "busy" => refuse(100_200_500, "internal error"),
        "other" => refuse(100_200_101, "app_secret invalid"),
        c => Outcome::User(user(openid_for(c), PLATFORM_SESSION_KEY)),
    }
}

fn feishu_code(code: &str) -> Outcome {
    let in_tenant = |tenant: Option<&str>, rest: &str| {
        Outcome::User(User {
            tenant: tenant.map(str::to_owned),
            ..user(openid_for(rest), PLATFORM_SESSION_KEY)
        })
    };
    match code {
        "bad" => refuse(10213, "code appid not match"),
        "hidden" => refuse(10228, "user to app has no visibility"),
        "often" => refuse(99_991_400, "request trigger frequency limit"),
        "other" => refuse(12345, "stand-in"),
        "notenant" => in_tenant(None, code),
        // `openid_for` ignores a `#…` tail: `t:T:x#2` is x again.
        c => match c.strip_prefix("t:").and_then(|r| r.split_once(':')) {
            Some((tenant, rest)) => in_tenant(Some(tenant), rest),
            None => in_tenant(Some(FEISHU_TENANT), c),
        },
    }
}

fn baidu_code(code: &str) -> Outcome {
    match code {
        "bad" => Outcome::Refuse(
            Refusal::new(40001, "invalid_grant").with_status(StatusCode::BAD_REQUEST),
        ),
        "busy" => raw(503, "text/html", "<html>503</html>"),
        "other" => refuse(40001, "invalid_client"),
        c => Outcome::User(user(openid_for(c), PLATFORM_SESSION_KEY)),
    }
}

/// Alipay's codes; the answers a real Alipay never signs are built here.
fn alipay_code(code: &str) -> Outcome {
    let key = alipay_key();
    let answer = |body: String| Outcome::Raw {
        status: StatusCode::OK,
        content_type: "text/html;charset=utf-8",
        body,
    };
    let ok_content = |id_field: &str| {
        let mut v = serde_json::json!({
            "access_token": ALIPAY_ACCESS_TOKEN, "expires_in": 1_296_000,
            "refresh_token": "refresh-must-not-leak", "re_expires_in": 2_592_000,
            "auth_start": "2024-05-01 12:00:00",
        });
        v[id_field] = openid_for(code).into();
        v.to_string()
    };
    match code {
        "bad" => refuse(40002, "isv.code-invalid"),
        "busy" => refuse(20000, "isp.unknow-error"),
        "other" => refuse(40002, "isv.invalid-app-id"),
        "bad-in-root" => {
            let content = r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid","sub_msg":"\u6388\u6743\u7801\u65e0\u6548"}"#;
            answer(alipay_signed(RESPONSE, content, &key))
        }
        "userid" => answer(alipay_signed(RESPONSE, &ok_content("user_id"), &key)),
        "badsign" => {
            let body = alipay_signed(RESPONSE, &ok_content("open_id"), &key);
            let at = body.len() - 10;
            let flipped = if &body[at..at + 1] == "A" { "B" } else { "A" };
            answer(format!("{}{flipped}{}", &body[..at], &body[at + 1..]))
        }
        "nosign" => answer(format!(r#"{{"{RESPONSE}":{}}}"#, ok_content("open_id"))),
        "unsigned-bad" => answer(format!(
            r#"{{"{ERROR_RESPONSE}":{{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid"}}}}"#
        )),
        "wrongkey" => answer(alipay_signed(
            RESPONSE,
            &ok_content("open_id"),
            &stranger_key(),
        )),
        "tampered" => {
            let body = alipay_signed(RESPONSE, &ok_content("open_id"), &key);
            answer(body.replace(&openid_for(code), "openid-of-someone-else"))
        }
        "dupe" => {
            // A second object before the signed one: which would be believed?
            let body = alipay_signed(RESPONSE, &ok_content("open_id"), &key);
            answer(format!(
                r#"{{"{RESPONSE}":{{"open_id":"evil"}},{}"#,
                &body[1..]
            ))
        }
        // Both ids, keys in Alipay's order, and an escaped slash (the
        // stand-in's own answer).
        c => Outcome::User(user(openid_for(c), ALIPAY_ACCESS_TOKEN)),
    }
}

impl Codes {
    /// A web sign-in's code: `union:X` gives unionid X, `err:N` errcode N,
    /// `notjson`, `slow` (3 s), anything else an openid of the app and
    /// code; good once per app.
    fn web_code(&self, appid: &str, code: &str) -> Outcome {
        if !self.used.lock().unwrap().insert(format!("{appid}:{code}")) {
            return refuse(40163, "code been used");
        }
        let ok = |unionid: Option<&str>| {
            Outcome::User(User {
                unionid: unionid.map(str::to_owned),
                ..user(web_openid(appid, code), WX_WEB_TOKEN)
            })
        };
        match code {
            "notjson" => raw(200, "text/html", "<html>system busy</html>"),
            "slow" => slow(ok(None)),
            c if c.starts_with("err:") => errcode(c).unwrap(),
            c if c.starts_with("union:") => ok(Some(&c[6..])),
            _ => ok(None),
        }
    }
}
