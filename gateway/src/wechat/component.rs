//! A WeChat third-party platform (a service provider, 第三方平台): the
//! `component_verify_ticket` WeChat pushes it every 10 minutes, which its
//! `component_access_token` is fetched with ([`super::token`]).
//!
//! The ticket arrives at one replica (whichever the load balancer picks)
//! but the token may be renewed by any: with Redis the ticket is kept there
//! for all, else in this process. WeChat keeps a ticket valid for 12 hours
//! and pushes a new one every 10 minutes, so the latest is always the one
//! kept; a ticket is never logged.

use std::collections::HashMap;
use std::sync::Mutex;

use super::msgcrypt::{MsgCrypt, PushError, Signed};
use super::share::{Share, TokenKind};
use crate::config::Secret;

/// How long a ticket is kept: WeChat's validity of one.
const TICKET_TTL: u64 = 12 * 3600;

/// The latest `component_verify_ticket` of each third-party platform.
#[derive(Debug)]
pub struct Tickets {
    local: Mutex<HashMap<String, Secret>>,
    share: Option<Share>,
}

impl Tickets {
    /// Tickets kept in this process, and in Redis when `share` is given.
    pub fn new(share: Option<Share>) -> Tickets {
        Tickets {
            local: Mutex::new(HashMap::new()),
            share,
        }
    }

    /// The platform's keys share the hash tag of its token's.
    fn tag(component_appid: &str) -> String {
        TokenKind::Component.tag(component_appid)
    }

    /// Keeps `ticket` as the platform's latest, for every replica. Redis
    /// being unreachable keeps it in this process only (logged): the next
    /// push, 10 minutes on, tries again.
    pub async fn keep(&self, component_appid: &str, ticket: &str) {
        if let Ok(mut local) = self.local.lock() {
            local.insert(component_appid.to_owned(), Secret::new(ticket.to_owned()));
        }
        if let Some(share) = &self.share {
            let tag = Self::tag(component_appid);
            if let Err(e) = share.set(&tag, "verify_ticket", ticket, TICKET_TTL).await {
                tracing::warn!(component_appid, error = ?e.kind(), "could not share the component_verify_ticket; kept in this process");
            }
        }
    }

    /// The platform's latest ticket: the cluster's (Redis), else this
    /// process's.
    pub async fn current(&self, component_appid: &str) -> Option<Secret> {
        if let Some(share) = &self.share {
            let tag = Self::tag(component_appid);
            if let Ok(Some(t)) = share.get(&tag, "verify_ticket").await {
                return Some(Secret::new(t));
            }
        }
        self.local
            .lock()
            .ok()
            .and_then(|l| l.get(component_appid).cloned())
    }
}

/// What a push told the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// A new `component_verify_ticket`, kept.
    Ticket,
    /// Another event (`authorized`, `unauthorized`, `updateauthorized`…):
    /// its `InfoType`, acknowledged and otherwise left alone.
    Other(String),
}

/// Opens a push to the platform of `crypt` and keeps the ticket it carries.
pub async fn receive(
    tickets: &Tickets,
    crypt: &MsgCrypt,
    component_appid: &str,
    signed: &Signed<'_>,
    body: &[u8],
) -> Result<Pushed, PushError> {
    let message = crypt.open(signed, body)?;
    match message.get("InfoType") {
        Some("component_verify_ticket") => {
            let ticket = message
                .get("ComponentVerifyTicket")
                .filter(|t| !t.is_empty() && t.len() <= 512)
                .ok_or(PushError::Undecryptable)?;
            tickets.keep(component_appid, ticket).await;
            Ok(Pushed::Ticket)
        }
        Some(other) => Ok(Pushed::Other(other.chars().take(64).collect())),
        None => Err(PushError::Undecryptable),
    }
}
