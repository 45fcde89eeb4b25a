//! Why a login session ended: what a client is told beside the error when
//! it presents a token of an ended session, kept with the revocation in the
//! store, in the revoked set and in what replicas exchange, so every
//! replica tells the same.
//!
//! At the ground, beside the labels, because every layer names it: a refused
//! token carries it (`tokens::TokenError::Revoked`), the sessions
//! keep and exchange it, and the audit log's `session_ended` reports it.

use super::labels::{label_enum, Label as _};

label_enum! {
    /// Why a session ended, as the `reason` member of an error answer.
    /// One byte ([`EndReason::byte`]), so the revoked set keeps it beside
    /// the expiry at no cost to the lookup.
    #[repr(u8)]
    pub enum EndReason {
        /// A device class's limit or the per-user ceiling ended it for a
        /// newer login.
        Replaced = "replaced",
        /// Its user logged out (`/auth/logout`, `DELETE /auth/sessions/{sid}`,
        /// logout everywhere).
        LoggedOut = "logged_out",
        /// An operator ended it (the admin API or `minigate sessions`); also
        /// what an ending recorded without a reason (by an older gateway)
        /// reads as.
        Revoked = "revoked",
        /// One of its refresh tokens was redeemed twice (reuse detection).
        Reused = "reused",
        /// The user service refused the user at a refresh.
        Banned = "banned",
        /// It was not refreshed for `sessions.idle_ttl`.
        Idle = "idle",
    }
}

impl EndReason {
    /// The reason labelled `label`; `None` for a label this gateway does
    /// not know (a newer one's).
    pub fn parse(label: &str) -> Option<EndReason> {
        EndReason::ALL.iter().copied().find(|r| r.label() == label)
    }

    /// As a byte, for compact storage.
    #[inline]
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// The reason stored as `byte`; an unknown byte reads as
    /// [`EndReason::Revoked`].
    #[inline]
    pub fn from_byte(byte: u8) -> EndReason {
        EndReason::ALL
            .get(usize::from(byte))
            .copied()
            .unwrap_or(EndReason::Revoked)
    }

    /// Of two reasons recorded for one session (a logout presenting the
    /// token of a session that had already ended another way, a replica
    /// hearing of both), the one every replica keeps, whatever the order
    /// they arrive in: the graver.
    #[inline]
    pub fn graver(self, other: EndReason) -> EndReason {
        const fn rank(r: EndReason) -> u8 {
            match r {
                EndReason::LoggedOut => 0,
                EndReason::Idle => 1,
                EndReason::Replaced => 2,
                EndReason::Revoked => 3,
                EndReason::Banned => 4,
                EndReason::Reused => 5,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl serde::Serialize for EndReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_as_labels_and_bytes() {
        for r in EndReason::ALL {
            assert_eq!(EndReason::parse(r.label()), Some(*r));
            assert_eq!(EndReason::from_byte(r.byte()), *r);
            assert_eq!(r.graver(*r), *r);
        }
        assert_eq!(EndReason::parse("kicked"), None);
        assert_eq!(EndReason::from_byte(200), EndReason::Revoked);
        // The graver wins whichever comes first.
        for a in EndReason::ALL {
            for b in EndReason::ALL {
                assert_eq!(a.graver(*b), b.graver(*a));
            }
        }
        assert_eq!(
            EndReason::LoggedOut.graver(EndReason::Reused),
            EndReason::Reused
        );
    }
}
