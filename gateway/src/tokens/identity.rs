//! What a verified access token says, as the proxy needs it and the cache
//! keeps it.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::header;
use super::{user_key, Claims};

/// Most roles one answer of the user service may give.
pub const MAX_ROLES: usize = 32;
/// Most claims one answer of the user service may give.
pub const MAX_CLAIMS: usize = 16;
/// Most characters of an answer's roles, claim names and claim values
/// together. Everything else a token carries is bounded too (ids of at most
/// 128 characters, an issuer of at most 512), so with this the tokens of
/// any answer within the limits stay within the 8 KiB the gateway accepts
/// (see `tokens::tests::the_largest_answer_within_the_limits_makes_tokens_the_gateway_accepts`).
/// 32 roles of 64 characters alone are 2048 of them.
pub const MAX_ROLES_AND_CLAIMS: usize = 3072;

/// Is `name` a claim name the contract allows (`[a-z0-9_]{1,32}`)?
pub fn is_claim_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A verified access token, as the proxy needs it, and as the cache keeps
/// it: every value in one buffer, each header a slice of it made when a
/// request needs it.
///
/// One `HeaderValue` per header would be 40 bytes each, a dozen of them,
/// for every cached token: most of an entry. A span into one buffer is 4
/// bytes, and a slice of a shared buffer is what cloning a `HeaderValue`
/// costs anyway (a reference count).
#[derive(Debug)]
pub struct Identity {
    /// The values, back to back; the subject once (`X-Auth-Subject` and
    /// `X-Auth-Openid` share it) and the user key one of them.
    pub(super) values: Bytes,
    /// Each fixed header's value, by its place in [`header::ALL`]; sent
    /// only if its bit is set in `present`.
    known: [Span; header::ALL.len()],
    present: u16,
    /// The user: see [`user_key`].
    user: Span,
    /// One `X-Auth-Claim-<name>` per `ext` claim. Most tokens have none:
    /// a thin pointer keeps the identity small (its size and why it
    /// matters: benches/README.md).
    #[allow(clippy::box_collection)]
    claims: Option<Box<Vec<(HeaderName, Span)>>>,
    /// `exp`, in 32 bits (enough until 2106; a later one is kept as the
    /// largest), which keeps the identity in its size class.
    pub(super) exp: u32,
    /// The key-set generation that verified it, wrapped to 32 bits (which
    /// keeps the identity in its size class; 2^32 replaced key sets apart
    /// is no concern): a reload makes it stale.
    pub(super) generation: u32,
}

/// The iterator of [`Identity::headers`]: the fixed headers by the bits of
/// `present`, then the claims. Written out rather than chained adapters
/// (a filtered, enumerated zip chained to a flattened map): it runs for
/// every authenticated request, and this is measurably fewer instructions
/// for the eight headers of a WeChat user's token.
pub struct Headers<'a> {
    id: &'a Identity,
    /// The fixed headers not yet given, as bits.
    known: u16,
    claims: std::slice::Iter<'a, (HeaderName, Span)>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a HeaderName, HeaderValue);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (name, span) = if self.known != 0 {
                let at = self.known.trailing_zeros() as usize;
                self.known &= self.known - 1;
                match (header::ALL.get(at), self.id.known.get(at)) {
                    (Some(name), Some(span)) => (name, *span),
                    _ => continue,
                }
            } else {
                let (name, span) = self.claims.next()?;
                (name, *span)
            };
            // Checked when the identity was made, so never skipped here.
            if let Some(value) = self.id.value(span) {
                return Some((name, value));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.known.count_ones() as usize + self.claims.len();
        (0, Some(n))
    }
}

/// Where a value lies in [`Identity::values`]. A token whose values pass
/// 64 KiB is refused as having invalid claims; the gateway never issues one
/// (enrichment caps roles at 32 and claims at 16 of 256 bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        usize::from(self.start)..usize::from(self.end)
    }
}

impl Identity {
    /// The `X-Auth-*` headers to send upstream.
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            id: self,
            known: self.present,
            claims: self.claims.as_deref().map_or(&[][..], Vec::as_slice).iter(),
        }
    }

    /// How many headers [`Identity::headers`] gives.
    pub fn header_count(&self) -> usize {
        self.present.count_ones() as usize + self.claims.as_ref().map_or(0, |c| c.len())
    }

    /// `sub`, for logs.
    pub fn subject(&self) -> &str {
        self.text(self.known[header::AT_SUBJECT])
    }

    /// The user: see [`user_key`].
    pub fn user(&self) -> &str {
        self.text(self.user)
    }

    /// `sid`: the login session, checked against the revoked sessions.
    pub fn sid(&self) -> &str {
        self.text(self.known[header::AT_SESSION])
    }

    /// `roles`, for the route's `allow` rules.
    pub fn roles(&self) -> Roles<'_> {
        match self.present & (1 << header::AT_ROLES) {
            0 => Roles::NONE,
            _ => Roles::joined(self.text(self.known[header::AT_ROLES])),
        }
    }

    fn value(&self, span: Span) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(self.values.slice(span.range())).ok()
    }

    fn text(&self, span: Span) -> &str {
        self.values
            .get(span.range())
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("")
    }
}

/// A caller's roles: the `roles` claim, as `X-Auth-Roles` sends it (joined
/// with `,`, which no role name holds).
#[derive(Debug, Clone, Copy)]
pub struct Roles<'a>(&'a str);

impl<'a> Roles<'a> {
    /// No roles (an anonymous caller).
    pub const NONE: Roles<'static> = Roles("");

    /// The roles in `joined`, separated by `,`.
    pub fn joined(joined: &'a str) -> Roles<'a> {
        Roles(joined)
    }

    /// Whether `role` is one of them.
    pub fn contains(self, role: &str) -> bool {
        !self.0.is_empty() && self.0.split(',').any(|r| r == role)
    }
}

/// Builds the identity headers of verified claims; `None` if a value cannot
/// be a header (never true of tokens this gateway issued).
///
/// The values are slices of one buffer. A `HeaderValue` made on its own is
/// an allocation, and a second one the first time it is cloned into a
/// request; an identity has seven to a dozen of them and is cached for its
/// token's life, so one shared buffer is most of what a cached entry saves.
pub(super) fn identity(c: &Claims, generation: u64) -> Option<Identity> {
    use header::*;
    let mut v = Values::default();
    let sub = v.add(SUBJECT, &c.sub)?;
    v.set(OPENID, sub);
    v.add(APPID, &c.client_id)?;
    v.add(SESSION, &c.sid)?;
    v.add(PLATFORM, &c.platform)?;
    v.add(TOKEN_ID, &c.jti)?;
    let unionid = match &c.unionid {
        Some(u) => Some(v.add(UNIONID, u)?),
        None => None,
    };
    if let Some(d) = &c.did {
        v.add(DEVICE, d)?;
    }
    if let Some(d) = &c.dvt {
        v.add(DEVICE_TYPE, d)?;
    }
    if let Some(p) = &c.phone_number {
        v.add(PHONE, p)?;
    }
    if let Some(r) = c.risk_rank {
        v.add(RISK_RANK, &r.to_string())?;
    }
    // A tenant's user is keyed `<tenant>:<id>`: one more value, only in
    // the tokens of such users.
    let tenant_user = match &c.tenant {
        Some(t) => {
            v.add(TENANT, t)?;
            let id = c.unionid.as_deref().unwrap_or(&c.sub);
            Some(v.push(&super::tenant_user(t, id))?)
        }
        None => None,
    };
    if !c.roles.is_empty() {
        if !c.roles.iter().all(|r| crate::config::is_role_name(r)) {
            return None;
        }
        v.add(ROLES, &c.roles.join(","))?;
    }
    let uid = match &c.uid {
        Some(u) => Some(v.add(USER, u)?),
        None => None,
    };
    let mut claims = Vec::new();
    for (name, value) in &c.ext {
        if !is_claim_name(name) {
            return None;
        }
        let name = HeaderName::from_bytes(format!("{CLAIM_PREFIX}{name}").as_bytes()).ok()?;
        claims.push((name, v.push(value)?));
    }
    // Chosen among the spans, so the user is not stored twice.
    let user = user_key(uid, tenant_user, unionid, sub);
    let Values {
        buf,
        known,
        present,
    } = v;
    // Exactly sized: the cache keeps it for the token's life.
    let values = Bytes::from(buf.into_boxed_slice());
    // Every value must be able to go out as a header.
    let mut all = known.iter().chain(claims.iter().map(|(_, s)| s));
    if all.any(|s| HeaderValue::from_bytes(&values[s.range()]).is_err()) {
        return None;
    }
    Some(Identity {
        values,
        known,
        present,
        user,
        claims: (!claims.is_empty()).then(|| Box::new(claims)),
        exp: u32::try_from(c.exp).unwrap_or(u32::MAX),
        generation: generation as u32,
    })
}

/// An identity's values as they are gathered.
#[derive(Default)]
struct Values {
    buf: Vec<u8>,
    known: [Span; header::ALL.len()],
    present: u16,
}

impl Values {
    /// A fixed header's value; `None` if the buffer outgrows its spans.
    fn add(&mut self, name: HeaderName, value: &str) -> Option<Span> {
        let span = self.push(value)?;
        self.set(name, span);
        Some(span)
    }

    /// A fixed header with a value already in the buffer.
    fn set(&mut self, name: HeaderName, span: Span) {
        if let Some(at) = header::ALL.iter().position(|n| *n == name) {
            self.known[at] = span;
            self.present |= 1 << at;
        }
    }

    fn push(&mut self, value: &str) -> Option<Span> {
        let start = u16::try_from(self.buf.len()).ok()?;
        self.buf.extend_from_slice(value.as_bytes());
        let end = u16::try_from(self.buf.len()).ok()?;
        Some(Span { start, end })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_identity_stays_within_its_allocation_class() {
        // 112 bytes, 128 with its `Arc`'s counts: one size class.
        assert!(std::mem::size_of::<super::Identity>() <= 112);
    }
}
