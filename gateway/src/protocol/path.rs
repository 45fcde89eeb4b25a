//! The one canonical form of a request path: what the route decision,
//! `/auth/verify` and the upstream all see.
//!
//! The gateway picks a route, and so a policy, by the path; an upstream
//! reads the same request with its own rules. Go's `ServeMux`, WSGI's
//! `PATH_INFO`, Jetty and nginx decode `%61` to `a`; nginx and Spring merge
//! `//`; servlet containers cut `;jsessionid=…` off a segment; some
//! upstreams decode `%2F` after routing, others read `\` as `/`. Refusing a
//! list of such spellings leaves every spelling not on the list, so instead
//! the path is put in one form before anything judges it, and the upstream
//! is sent that form ([`canonical`]):
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!   decoded (RFC 3986 §6.2.2.2), every other escape keeps its byte with
//!   upper-case hex (`%2b` → `%2B`), and an escape that is not `%` and two
//!   hex digits is refused;
//! - runs of `/` become one `/`;
//!
//! and then what no upstream may read as another path is refused, on every
//! path: dot segments (`.`, `..`, now also those that were encoded), encoded
//! slashes and backslashes (`%2F`, `%5C`), raw backslashes, and any `;`,
//! raw or encoded (`%3B`: an upstream that decodes before it cuts path
//! parameters reads one). Percent-encoded UTF-8 (a Chinese path) and raw
//! UTF-8 keep their bytes.
//!
//! Applying the form twice changes nothing, and a path already in it is
//! returned borrowed (an ordinary path, with no `%` and no `//`, without
//! even a copy), so an ordinary request allocates nothing here and its
//! request target is not rebuilt. The fuzz target `canonical_path` checks
//! both properties, and that the request the pipeline forwards carries the
//! very path that was judged.

use std::borrow::Cow;

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// A `.` or `..` segment, plain or percent-encoded.
    DotSegment,
    /// `%2F` or `%5C` (any case), or a raw backslash.
    EncodedSeparator,
    /// A `;` (a path parameter to servlet containers), raw or encoded.
    PathParameter,
    /// A `%` not followed by two hex digits.
    MalformedEscape,
}

impl BadPath {
    /// The fixed `error_description`.
    pub const fn message(self) -> &'static str {
        match self {
            BadPath::DotSegment => "dot segments are not allowed in paths",
            BadPath::EncodedSeparator => "encoded slashes and backslashes are not allowed in paths",
            BadPath::PathParameter => "semicolons (path parameters) are not allowed in paths",
            BadPath::MalformedEscape => "a % in a path must start a %XX escape",
        }
    }
}

/// RFC 3986's unreserved characters, which an escape never needs to hide.
#[inline]
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[inline]
fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The canonical form of `path` (see the module docs), or why it is
/// refused. Borrowed when the path is already canonical.
pub fn canonical(path: &str) -> Result<Cow<'_, str>, BadPath> {
    let b = path.as_bytes();
    let needs_work = b.contains(&b'%') || b.windows(2).any(|w| w == b"//");
    let form: Cow<'_, str> = if needs_work {
        let mut out: Vec<u8> = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    let (Some(hi), Some(lo)) = (
                        b.get(i + 1).copied().and_then(hex),
                        b.get(i + 2).copied().and_then(hex),
                    ) else {
                        return Err(BadPath::MalformedEscape);
                    };
                    let byte = hi << 4 | lo;
                    if unreserved(byte) {
                        out.push(byte);
                    } else {
                        out.extend_from_slice(&[
                            b'%',
                            UPPER_HEX[hi as usize],
                            UPPER_HEX[lo as usize],
                        ]);
                    }
                    i += 3;
                }
                b'/' if out.last() == Some(&b'/') => i += 1,
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        if out == b {
            // Escapes already upper-case, no `//`: nothing to rewrite.
            Cow::Borrowed(path)
        } else {
            // Only ASCII was decoded or dropped: what was UTF-8 still is.
            match String::from_utf8(out) {
                Ok(s) => Cow::Owned(s),
                Err(_) => return Err(BadPath::MalformedEscape),
            }
        }
    } else {
        Cow::Borrowed(path)
    };
    refuse(&form)?;
    Ok(form)
}

/// Refuses a canonical path that an upstream could still read as another.
fn refuse(path: &str) -> Result<(), BadPath> {
    let b = path.as_bytes();
    if !b.iter().any(|&c| matches!(c, b'.' | b'%' | b'\\' | b';')) {
        return Ok(());
    }
    if b.contains(&b'\\') {
        return Err(BadPath::EncodedSeparator);
    }
    // Escapes are upper-case here.
    if path.contains("%2F") || path.contains("%5C") {
        return Err(BadPath::EncodedSeparator);
    }
    if b.contains(&b';') || path.contains("%3B") {
        return Err(BadPath::PathParameter);
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(BadPath::DotSegment);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_form_by_example() {
        for (raw, want) in [
            // Already canonical: borrowed, unchanged.
            ("/", "/"),
            ("/api/v1.2/file.txt", "/api/v1.2/file.txt"),
            ("/api/...", "/api/..."),
            ("/a/b..c/x.y", "/a/b..c/x.y"),
            // Unreserved characters decoded, any case of hex.
            ("/api/%61dmin/users", "/api/admin/users"),
            ("/api/%41%7a%30%2D%2e%5F%7E", "/api/Az0-._~"),
            ("/api/%61%64%6D%69%6E/", "/api/admin/"),
            // Other escapes kept, upper-cased.
            ("/a%20b", "/a%20b"),
            ("/a%2bb", "/a%2Bb"),
            ("/a%2Bb", "/a%2Bb"),
            ("/q%3fx", "/q%3Fx"),
            ("/p%25", "/p%25"),
            ("/%252e", "/%252e"),
            ("/%00", "/%00"),
            // Percent-encoded UTF-8: bytes kept (upper-cased).
            ("/api/%E5%95%86%E5%93%81", "/api/%E5%95%86%E5%93%81"),
            ("/api/%e5%95%86%e5%93%81", "/api/%E5%95%86%E5%93%81"),
            ("/api/商品", "/api/商品"),
            // Runs of slashes merged.
            ("//api//admin///users", "/api/admin/users"),
            ("/api//admin/users", "/api/admin/users"),
            ("/api/%2561dmin", "/api/%2561dmin"),
        ] {
            assert_eq!(canonical(raw).as_deref(), Ok(want), "{raw}");
            // Canonical twice is canonical once.
            assert!(matches!(canonical(want), Ok(Cow::Borrowed(_))), "{want}");
        }
        assert!(matches!(canonical("/api/x"), Ok(Cow::Borrowed(_))));
        assert!(matches!(canonical("/a%20b"), Ok(Cow::Borrowed(_))));
        assert!(canonical("/a%2fb").is_err());
    }

    #[test]
    fn paths_that_an_upstream_could_read_as_another_are_refused() {
        for (bad, why) in [
            ("/api/../admin", BadPath::DotSegment),
            ("/api/./x", BadPath::DotSegment),
            ("/api/%2e%2E/admin", BadPath::DotSegment),
            ("/a/.%2e", BadPath::DotSegment),
            ("/..", BadPath::DotSegment),
            ("/api/%2e", BadPath::DotSegment),
            ("/api//..//admin", BadPath::DotSegment),
            ("/ng/public/..%2fsecret", BadPath::EncodedSeparator),
            ("/ng/public/..%2Fsecret", BadPath::EncodedSeparator),
            ("/a%5cb", BadPath::EncodedSeparator),
            ("/a%5Cb", BadPath::EncodedSeparator),
            ("/a\\b", BadPath::EncodedSeparator),
            ("/public/..;/secret", BadPath::PathParameter),
            ("/public/.;/secret", BadPath::PathParameter),
            ("/public/..;jsessionid=1/secret", BadPath::PathParameter),
            ("/public/%2e%2e;/secret", BadPath::PathParameter),
            ("/public/..%3b/secret", BadPath::PathParameter),
            ("/public/%2e%3B/secret", BadPath::PathParameter),
            ("/api/admin;x/users", BadPath::PathParameter),
            ("/a;b/c", BadPath::PathParameter),
            ("/a/b..;c", BadPath::PathParameter),
            ("/api/admin%3bx/users", BadPath::PathParameter),
            ("/a%", BadPath::MalformedEscape),
            ("/a%4", BadPath::MalformedEscape),
            ("/a%zz", BadPath::MalformedEscape),
            ("/a%%41", BadPath::MalformedEscape),
        ] {
            assert_eq!(canonical(bad), Err(why), "{bad}");
        }
    }
}
