//! Audit events: one JSON line per security-relevant fact (a login, a
//! session ended, a ban, an operator's call, a key reload), on the log
//! target [`TARGET`], apart from the access log, so an operator or a
//! compliance review can follow who did what to which session; optionally
//! also appended to a Redis Stream (`[audit] redis_stream`) so a backend
//! service can react ("a new device signed in").
//!
//! Every event and its fields are declared once, in [`Event`]: the enum the
//! code emits, the serialized schema and [`Event::SCHEMA`] (which the
//! reference, `docs/audit.md`, is checked against) all come from that one
//! declaration. A line is `{"target", "v", "ts", "event", fields...}`, every
//! field of the event always present (`null` when it has no value), so one
//! schema per `event` holds; [`VERSION`] changes when a field changes
//! meaning or goes.
//!
//! No token, code, key or secret is ever a field; a phone number only as
//! its last four digits ([`last_four`]). Users and sessions are named by
//! the user key and the sid, as the sessions API names them.
//!
//! Lines are written whatever `RUST_LOG`'s level, unless `RUST_LOG` names
//! the target itself (`minigate::audit=off`): see [`Lines`]. The stream is
//! fed through a bounded queue by a task of its own: a slow or unreachable
//! Redis never holds up a login, and events it cannot take are dropped and
//! counted (`minigate_audit_stream_dropped_total`), never buffered without
//! bound.

use std::io::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use metrics::Counter;
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use super::ended::EndReason;
use super::labels::{label_enum, Label};

/// The log target of every audit line.
pub const TARGET: &str = "minigate::audit";

/// The schema's version, the `v` of every line.
pub const VERSION: u32 = 1;

/// Events waiting for the stream at most; past it they are dropped (and
/// counted).
pub const STREAM_QUEUE: usize = 4096;

/// Declares the events once: each variant with its `event` name and its
/// fields (their doc comments are the reference's descriptions).
macro_rules! audit_events {
    (
        $(#[$meta:meta])*
        pub enum $name:ident<$lt:lifetime> {
            $(
                $(#[doc = $doc:literal])*
                $variant:ident = $event:literal {
                    $( $(#[$fmeta:meta])* $field:ident : $ty:ty, )*
                },
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "event")]
        pub enum $name<$lt> {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $event)]
                $variant { $( $(#[$fmeta])* $field: $ty, )* },
            )+
        }

        impl $name<'_> {
            /// Every event's name and fields, in declaration order.
            pub const SCHEMA: &'static [(&'static str, &'static [&'static str])] =
                &[$( ($event, &[$(stringify!($field)),*]), )+];

            /// The `event` name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $name::$variant { .. } => $event, )+
                }
            }
        }
    };
}

label_enum! {
    /// Where the user service refused a user (`user_banned`'s `at`).
    pub enum Stage {
        /// At login: no session began.
        Login = "login",
        /// At a refresh: the session ended.
        Refresh = "refresh",
    }
}

label_enum! {
    /// What a key-set reload did (`keys_reloaded`'s `outcome`).
    pub enum KeysOutcome {
        /// A changed, valid set replaced the old one.
        Replaced = "replaced",
        /// A changed set did not load; the old one still serves.
        Refused = "refused",
    }
}

/// Serializes label enums as their label.
macro_rules! serialize_as_label {
    ($($t:ty),+) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.label())
            }
        }
    )+};
}
serialize_as_label!(Stage, KeysOutcome);

audit_events! {
    /// A security-relevant fact. `user` is always the user key (see
    /// `tokens::Subject::user`), `client` the client's address as
    /// the gateway judged it (the forwarded one from a trusted proxy).
    pub enum Event<'a> {
        /// A login began a session (mini-program code or web sign-in).
        Login = "login" {
            /// The platform (`wechat`, `qq`, `wechat_web`...).
            platform: &'a str,
            /// The mini-program or app.
            appid: &'a str,
            /// The session's device class.
            device_type: &'a str,
            /// The user key.
            user: &'a str,
            /// The session.
            sid: &'a str,
            /// The client's address.
            client: IpAddr,
            /// A login code sent again by the same client: a new pair in the
            /// session the code began, not a new session.
            retried: bool,
        },
        /// A refresh token was redeemed for a new pair.
        Refresh = "refresh" {
            /// The platform.
            platform: &'a str,
            /// The mini-program or app.
            appid: &'a str,
            /// The session's device class.
            device_type: &'a str,
            /// The user key.
            user: &'a str,
            /// The session.
            sid: &'a str,
        },
        /// A logout: one session, or with `everywhere` every session of the user.
        Logout = "logout" {
            /// The mini-program or app of the session logging out.
            appid: &'a str,
            /// The user key.
            user: &'a str,
            /// The session whose refresh token was presented.
            sid: &'a str,
            /// Every session of the user.
            everywhere: bool,
            /// How many sessions ended (each also has its `session_ended`).
            ended: usize,
        },
        /// A session ended, for `reason`.
        SessionEnded = "session_ended" {
            /// Why: `replaced`, `logged_out`, `revoked`, `reused`, `banned`
            /// (never `idle`: a timeout is no act, see `docs/audit.md`).
            reason: EndReason,
            /// The user key.
            user: &'a str,
            /// The session that ended.
            sid: &'a str,
            /// The session whose act ended it: the new login (`replaced`),
            /// the one logging out or calling `DELETE` (`logged_out`); null
            /// for an operator, reuse or a ban.
            by_sid: Option<&'a str>,
        },
        /// A refresh token already redeemed was presented again: theft or
        /// a replay. Its session ends (`session_ended`, `reused`).
        RefreshReused = "refresh_reused" {
            /// The mini-program or app.
            appid: &'a str,
            /// The user key.
            user: &'a str,
            /// The session whose token was reused.
            sid: &'a str,
        },
        /// The user service refused the user (403): a ban.
        UserBanned = "user_banned" {
            /// `login` or `refresh`.
            at: Stage,
            /// The mini-program or app.
            appid: &'a str,
            /// The user key.
            user: &'a str,
            /// The session that ended (at a refresh); null at a login.
            sid: Option<&'a str>,
        },
        /// The platform refused a login as a risky user (WeChat's 40226),
        /// or ranked its risk at or above the provider's `refuse_risk_rank`.
        RiskyUserRefused = "risky_user_refused" {
            /// The platform.
            platform: &'a str,
            /// The mini-program or app.
            appid: &'a str,
            /// The client's address.
            client: IpAddr,
        },
        /// A phone number was verified and bound to a session (`/auth/phone`).
        PhoneBound = "phone_bound" {
            /// The mini-program or app.
            appid: &'a str,
            /// The user key.
            user: &'a str,
            /// The session.
            sid: &'a str,
            /// The number's last four digits, no more.
            phone_last4: &'a str,
            /// The country calling code, without `+`.
            country_code: &'a str,
        },
        /// A call of the admin listener, allowed or not.
        Admin = "admin" {
            /// The method.
            method: &'a str,
            /// The path, without the query.
            path: &'a str,
            /// The scope the endpoint needs; null for a path that is no endpoint.
            scope: Option<&'static str>,
            /// The scopes of the token presented; null for a missing or
            /// wrong token.
            token_scopes: Option<Vec<&'static str>>,
            /// The answer's status.
            status: u16,
            /// The caller's address.
            client: IpAddr,
        },
        /// The key set on disk changed and was loaded, or refused.
        KeysReloaded = "keys_reloaded" {
            /// `replaced` or `refused`.
            outcome: KeysOutcome,
            /// The kid of the key that signs now.
            current: Option<&'a str>,
            /// The kid of the next key, if the set has one.
            next: Option<&'a str>,
            /// Keys in the set serving now.
            keys: usize,
            /// Whether the signing key changed (a rotation).
            rotated: bool,
            /// Why a set was refused; null when replaced.
            reason: Option<&'a str>,
        },
    }
}

/// The last four characters of a phone number: all an audit line shows.
pub fn last_four(phone: &str) -> &str {
    let start = phone.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    &phone[start..]
}

/// One line: the envelope, then the event.
#[derive(Serialize)]
struct Line<'e, 'a> {
    target: &'static str,
    v: u32,
    ts: String,
    #[serde(flatten)]
    event: &'e Event<'a>,
}

/// The line of `event` at `at`.
pub fn line(event: &Event<'_>, at: SystemTime) -> Option<String> {
    serde_json::to_string(&Line {
        target: TARGET,
        v: VERSION,
        ts: humantime::format_rfc3339_millis(at).to_string(),
        event,
    })
    .ok()
}

/// An event on its way to the stream: its name and its line.
pub type Queued = (&'static str, Box<str>);

/// Where audit events go: the log target always, the stream's queue when
/// one is configured.
#[derive(Debug)]
pub struct Audit {
    stream: Option<mpsc::Sender<Queued>>,
    dropped: Counter,
}

impl Audit {
    /// Events to the log only.
    pub fn log_only() -> Audit {
        Audit {
            stream: None,
            dropped: Counter::noop(),
        }
    }

    /// Events to the log and a bounded queue for the stream: the receiver
    /// is the stream writer's; what the queue cannot take counts in
    /// `dropped`.
    pub fn with_stream(dropped: Counter) -> (Audit, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        (
            Audit {
                stream: Some(tx),
                dropped,
            },
            rx,
        )
    }

    /// Records `event`: its line to the log target, and to the stream's
    /// queue. Nothing is serialized when neither takes it.
    pub fn emit(&self, event: Event<'_>) {
        let logged = tracing::enabled!(target: TARGET, tracing::Level::INFO);
        if !logged && self.stream.is_none() {
            return;
        }
        let Some(text) = line(&event, SystemTime::now()) else {
            return;
        };
        if logged {
            tracing::info!(target: TARGET, line = text.as_str());
        }
        if let Some(tx) = &self.stream {
            if tx.try_send((event.name(), text.into())).is_err() {
                self.dropped.increment(1);
            }
        }
    }
}

/// The subscriber layer that writes audit lines: each event of [`TARGET`]
/// as its JSON line alone, to stderr, whatever the log format (text or
/// JSON) of the other lines, which leave this target to it.
#[derive(Debug, Default)]
pub struct Lines;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut found = LineField(None);
        event.record(&mut found);
        if let Some(mut text) = found.0 {
            text.push('\n');
            // One write of the whole line: lines of concurrent events never
            // interleave.
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

/// Finds the `line` field of an audit event.
struct LineField(Option<String>);

impl Visit for LineField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "line" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_envelope_then_every_field() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let text = line(
            &Event::SessionEnded {
                reason: EndReason::Replaced,
                user: "o_1",
                sid: "s1",
                by_sid: None,
            },
            at,
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{"target":"minigate::audit","v":1,"ts":"2023-11-14T22:13:20.123Z","event":"session_ended","reason":"replaced","user":"o_1","sid":"s1","by_sid":null}"#
        );
    }

    #[test]
    fn the_schema_names_every_field_as_serialized() {
        let event = Event::Admin {
            method: "GET",
            path: "/admin/x",
            scope: Some("sessions"),
            token_scopes: Some(vec!["sessions"]),
            status: 200,
            client: IpAddr::from([127, 0, 0, 1]),
        };
        let value: serde_json::Value =
            serde_json::from_str(&line(&event, SystemTime::now()).unwrap()).unwrap();
        let (_, fields) = Event::SCHEMA
            .iter()
            .find(|(name, _)| *name == "admin")
            .unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        let mut expected = vec!["target", "v", "ts", "event"];
        expected.extend(fields.iter());
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn last_four_digits_only() {
        assert_eq!(last_four("13800138000"), "8000");
        assert_eq!(last_four("+8613800138000"), "8000");
        assert_eq!(last_four("123"), "123");
        assert_eq!(last_four(""), "");
    }

    /// docs/audit.md has a section per event, and each names every field.
    #[test]
    fn the_reference_lists_every_event_and_field() {
        let doc = include_str!("../../../docs/audit.md");
        for (event, fields) in Event::SCHEMA {
            let heading = format!("### `{event}`");
            let section = doc
                .split(&heading)
                .nth(1)
                .unwrap_or_else(|| panic!("docs/audit.md has no {heading}"));
            let section = section.split("\n### ").next().unwrap_or(section);
            for field in *fields {
                assert!(
                    section.contains(&format!("| `{field}` |")),
                    "docs/audit.md: `{event}` does not list `{field}`"
                );
            }
        }
        for values in [
            EndReason::ALL.iter().map(|v| v.label()).collect::<Vec<_>>(),
            Stage::ALL.iter().map(|v| v.label()).collect(),
            KeysOutcome::ALL.iter().map(|v| v.label()).collect(),
        ] {
            for v in values {
                assert!(doc.contains(&format!("`{v}`")), "docs/audit.md: `{v}`");
            }
        }
    }
}
