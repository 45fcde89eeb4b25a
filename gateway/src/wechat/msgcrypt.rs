//! WeChat's message crypto: how WeChat signs and encrypts what it pushes to
//! a third-party platform's callback (the `component_verify_ticket` every
//! 10 minutes, the authorization events), and the flat XML it pushes.
//!
//! A push is `<xml><AppId>…</AppId><Encrypt>…</Encrypt></xml>` with the
//! query `timestamp`, `nonce` and `msg_signature`. The signature is the
//! hex SHA-1 of the platform's verify token, the timestamp, the nonce and
//! the `Encrypt` text, sorted and joined: it is checked first, in constant
//! time, so nothing of an unsigned body is decrypted. `Encrypt` is base64
//! of AES-256-CBC under the key `base64(EncodingAESKey + "=")`, its first
//! 16 bytes the IV, padded PKCS#7-style to 32-byte blocks; the plaintext is
//! 16 random bytes, the message's length (4 bytes, big-endian), the message
//! (XML again) and the appid it is for, which must be the platform's own.
//!
//! The XML is read by [`Xml`], which takes only what WeChat sends: elements
//! without attributes whose content is text, one CDATA section or more
//! elements, and nothing else (no declarations, DTDs, comments or entities
//! beyond the five predefined ones). Having no DTD to expand, it is immune
//! to entity expansion by construction, and its depth and size are bounded.
//! [`seal`] makes a push as WeChat does: for the stand-ins and the tests.

use base64::alphabet::STANDARD as ALPHABET;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD as B64};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt as _, BlockModeEncrypt as _, KeyIvInit as _};
use subtle::ConstantTimeEq as _;

/// The block size WeChat pads its plaintext to (twice AES's).
const PAD_TO: usize = 32;
/// How deep a pushed document may nest.
const MAX_DEPTH: usize = 8;
/// How many elements a pushed document may hold.
const MAX_ELEMENTS: usize = 256;

/// WeChat's keys are 43 random characters of the base64 alphabet, so the
/// last one may carry bits past the 32 bytes: they are ignored, as
/// WeChat's own libraries ignore them.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &ALPHABET,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Not a push: the body is not WeChat's XML envelope, or the query
    /// lacks `timestamp`, `nonce` or `msg_signature`.
    Malformed,
    /// `msg_signature` is not the signature of this push.
    BadSignature,
    /// Signed, but `Encrypt` does not decrypt into a message.
    Undecryptable,
    /// A message for another app than this platform.
    WrongApp,
}

/// One third-party platform's message crypto: its appid, its verify token
/// and its AES key.
#[derive(Clone)]
pub struct MsgCrypt {
    appid: String,
    token: String,
    key: [u8; 32],
}

impl std::fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgCrypt")
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

/// The AES key of an `EncodingAESKey` (43 characters of base64), if it is
/// one.
pub fn aes_key(encoding_aes_key: &str) -> Option<[u8; 32]> {
    if encoding_aes_key.len() != 43 {
        return None;
    }
    LENIENT
        .decode(format!("{encoding_aes_key}="))
        .ok()?
        .try_into()
        .ok()
}

/// The parameters of a push's query that its signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// `timestamp`.
    pub timestamp: &'a str,
    /// `nonce`.
    pub nonce: &'a str,
    /// `msg_signature`: hex SHA-1.
    pub msg_signature: &'a str,
}

impl MsgCrypt {
    /// The crypto of the platform `appid` with its verify token and
    /// `EncodingAESKey`; `None` if the key is not 43 characters of base64.
    pub fn new(appid: &str, token: &str, encoding_aes_key: &str) -> Option<MsgCrypt> {
        Some(MsgCrypt {
            appid: appid.to_owned(),
            token: token.to_owned(),
            key: aes_key(encoding_aes_key)?,
        })
    }

    /// The hex SHA-1 of the token, `timestamp`, `nonce` and `encrypt`,
    /// sorted and joined.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypt];
        parts.sort_unstable();
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            parts.concat().as_bytes(),
        );
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The message of a push (its `body` and its query's signed
    /// parameters): the envelope read, the signature checked, `Encrypt`
    /// decrypted, and every appid in it checked to be this platform's.
    pub fn open(&self, signed: &Signed<'_>, body: &[u8]) -> Result<Xml, PushError> {
        let envelope = Xml::parse(body).ok_or(PushError::Malformed)?;
        let encrypt = envelope.get("Encrypt").ok_or(PushError::Malformed)?;
        let expected = self.signature(signed.timestamp, signed.nonce, encrypt);
        if !bool::from(expected.as_bytes().ct_eq(signed.msg_signature.as_bytes())) {
            return Err(PushError::BadSignature);
        }
        if envelope.get("AppId").is_some_and(|a| a != self.appid) {
            return Err(PushError::WrongApp);
        }
        let (message, appid) = self.decrypt(encrypt)?;
        if appid != self.appid.as_bytes() {
            return Err(PushError::WrongApp);
        }
        let message = Xml::parse(&message).ok_or(PushError::Undecryptable)?;
        if message.get("AppId").is_some_and(|a| a != self.appid) {
            return Err(PushError::WrongApp);
        }
        Ok(message)
    }

    /// `Encrypt` decrypted: the message and the appid after it.
    fn decrypt(&self, encrypt: &str) -> Result<(Vec<u8>, Vec<u8>), PushError> {
        let data = B64
            .decode(encrypt.trim())
            .map_err(|_| PushError::Undecryptable)?;
        if data.is_empty() || data.len() % PAD_TO != 0 {
            return Err(PushError::Undecryptable);
        }
        let plain = cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.key, &self.key[..16])
            .map_err(|_| PushError::Undecryptable)?
            .decrypt_padded_vec::<NoPadding>(&data)
            .map_err(|_| PushError::Undecryptable)?;
        let pad = usize::from(*plain.last().ok_or(PushError::Undecryptable)?);
        if !(1..=PAD_TO).contains(&pad)
            || plain[plain.len() - pad..]
                .iter()
                .any(|&b| usize::from(b) != pad)
        {
            return Err(PushError::Undecryptable);
        }
        let plain = &plain[..plain.len() - pad];
        let rest = plain.get(16..).ok_or(PushError::Undecryptable)?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(PushError::Undecryptable)?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            return Err(PushError::Undecryptable);
        }
        let (message, appid) = rest.split_at(len);
        Ok((message.to_vec(), appid.to_vec()))
    }
}

/// A push of `message` to the platform of `crypt`, as WeChat makes it: the
/// XML body and its `msg_signature`, for `timestamp` and `nonce`. For the
/// stand-ins and the tests; the gateway itself only opens pushes.
pub fn seal(crypt: &MsgCrypt, message: &str, timestamp: &str, nonce: &str) -> (String, String) {
    let mut random = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    let mut plain = random.to_vec();
    plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
    plain.extend_from_slice(message.as_bytes());
    plain.extend_from_slice(crypt.appid.as_bytes());
    let pad = PAD_TO - plain.len() % PAD_TO;
    plain.extend(std::iter::repeat_n(pad as u8, pad));
    let encrypt = match cbc::Encryptor::<aes::Aes256>::new_from_slices(&crypt.key, &crypt.key[..16])
    {
        Ok(cipher) => B64.encode(cipher.encrypt_padded_vec::<NoPadding>(&plain)),
        // 32 and 16 bytes: the lengths AES-256-CBC takes.
        Err(_) => String::new(),
    };
    let signature = crypt.signature(timestamp, nonce, &encrypt);
    let body = format!(
        "<xml>\n    <AppId><![CDATA[{}]]></AppId>\n    <Encrypt><![CDATA[{encrypt}]]></Encrypt>\n</xml>",
        crypt.appid
    );
    (body, signature)
}

/// A pushed XML document: its root's child elements that hold text, by
/// name (elements holding elements are read, bounded, and left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xml {
    fields: Vec<(String, String)>,
}

impl Xml {
    /// The document in `input`, if it is one of the shape WeChat pushes.
    pub fn parse(input: &[u8]) -> Option<Xml> {
        let text = std::str::from_utf8(input).ok()?;
        let mut reader = Reader {
            rest: text.trim_start(),
            elements: 0,
        };
        let (_, content) = reader.element(0)?;
        if !reader.rest.trim().is_empty() {
            return None;
        }
        let Content::Children(children) = content else {
            return None;
        };
        let mut fields: Vec<(String, String)> = Vec::with_capacity(children.len());
        for (name, content) in children {
            if let Content::Text(text) = content {
                // Two of one name would leave which one counts to the reader.
                if fields.iter().any(|(n, _)| *n == name) {
                    return None;
                }
                fields.push((name, text));
            }
        }
        Some(Xml { fields })
    }

    /// The text of the root's child element `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Content {
    Text(String),
    Children(Vec<(String, Content)>),
}

struct Reader<'a> {
    rest: &'a str,
    elements: usize,
}

impl Reader<'_> {
    fn eat(&mut self, prefix: &str) -> Option<()> {
        self.rest = self.rest.strip_prefix(prefix)?;
        Some(())
    }

    /// `<name>content</name>`, at `depth`.
    fn element(&mut self, depth: usize) -> Option<(String, Content)> {
        self.elements += 1;
        if depth > MAX_DEPTH || self.elements > MAX_ELEMENTS {
            return None;
        }
        self.eat("<")?;
        let end = self.rest.find('>')?;
        let name = &self.rest[..end];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return None;
        }
        let name = name.to_owned();
        self.rest = &self.rest[end + 1..];
        let content = if self.rest.trim_start().starts_with("<![CDATA[") {
            self.rest = self.rest.trim_start();
            self.eat("<![CDATA[")?;
            let end = self.rest.find("]]>")?;
            let text = self.rest[..end].to_owned();
            self.rest = self.rest[end + 3..].trim_start();
            Content::Text(text)
        } else if self.rest.trim_start().starts_with("</") {
            // Empty, or only whitespace.
            let end = self.rest.find('<')?;
            let text = self.rest[..end].to_owned();
            self.rest = &self.rest[end..];
            Content::Text(text)
        } else if self.rest.trim_start().starts_with('<') {
            let mut children = Vec::new();
            loop {
                self.rest = self.rest.trim_start();
                if self.rest.starts_with("</") {
                    break;
                }
                children.push(self.element(depth + 1)?);
            }
            Content::Children(children)
        } else {
            let end = self.rest.find('<')?;
            let text = unescape(&self.rest[..end])?;
            self.rest = &self.rest[end..];
            Content::Text(text)
        };
        self.eat("</")?;
        self.eat(&name)?;
        self.eat(">")?;
        Some((name, content))
    }
}

/// Text with the five predefined entities decoded; any other `&` refused.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (entity, ch) = [
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&amp;", '&'),
            ("&quot;", '"'),
            ("&apos;", '\''),
        ]
        .into_iter()
        .find(|(e, _)| rest.starts_with(e))?;
        out.push(ch);
        rest = &rest[entity.len()..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of WeChat's message-crypto documentation: its key, token
    /// and appid.
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const TOKEN: &str = "pamtest";
    const APPID: &str = "wxb11529c136998cb6";

    fn crypt() -> MsgCrypt {
        MsgCrypt::new(APPID, TOKEN, KEY).unwrap()
    }

    const TICKET: &str = "<xml><AppId><![CDATA[wxb11529c136998cb6]]></AppId><CreateTime>1413192605</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket><![CDATA[ticket@@@abc]]></ComponentVerifyTicket></xml>";

    fn signed<'a>(signature: &'a str) -> Signed<'a> {
        Signed {
            timestamp: "1409304348",
            nonce: "xxxxxx",
            msg_signature: signature,
        }
    }

    /// WeChat's own published sample of a signed, encrypted message (the
    /// demo of its message-crypto libraries): what WeChat made, opened.
    #[test]
    fn wechats_published_sample_opens() {
        let crypt = MsgCrypt::new("wx2c2769f8efd9abc2", "spamtest", KEY).unwrap();
        let body = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>";
        let signed = Signed {
            timestamp: "1409735669",
            nonce: "1320562132",
            msg_signature: "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
        };
        let message = crypt.open(&signed, body.as_bytes()).unwrap();
        assert_eq!(message.get("ToUserName"), Some("gh_10f6c3c3ac5a"));
        assert_eq!(message.get("Content"), Some("abcdteT"));
        assert_eq!(message.get("MsgId"), Some("6054768590064713728"));
        // One character of the signature off: refused before decryption.
        let off = Signed {
            msg_signature: "5d197aaffba7e9b25a30732f161a50dee96bd5fb",
            ..signed
        };
        assert_eq!(
            crypt.open(&off, body.as_bytes()),
            Err(PushError::BadSignature)
        );
    }

    #[test]
    fn the_key_is_wechats_43_characters_with_any_trailing_bits() {
        let key = aes_key(KEY).unwrap();
        assert_eq!(&key[..3], b"i\xb7\x1d");
        // "G" leaves bits past the 32 bytes: WeChat's keys do, and work.
        assert!(aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFH").is_some());
        assert_eq!(aes_key(&KEY[..42]), None);
        assert_eq!(aes_key("!bcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"), None);
    }

    #[test]
    fn the_signature_is_sha1_of_the_sorted_parts() {
        // sorted: "1409304348", "encrypted", "pamtest", "xxxxxx"
        let want = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            b"1409304348encryptedpamtestxxxxxx",
        );
        let want: String = want.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(crypt().signature("1409304348", "xxxxxx", "encrypted"), want);
        assert_eq!(want.len(), 40);
    }

    #[test]
    fn a_sealed_push_opens_and_anything_else_is_refused() {
        let c = crypt();
        let (body, sig) = seal(&c, TICKET, "1409304348", "xxxxxx");
        let msg = c.open(&signed(&sig), body.as_bytes()).unwrap();
        assert_eq!(msg.get("InfoType"), Some("component_verify_ticket"));
        assert_eq!(msg.get("ComponentVerifyTicket"), Some("ticket@@@abc"));
        assert_eq!(msg.get("CreateTime"), Some("1413192605"));
        // Another signature, another timestamp.
        let bad = "0".repeat(40);
        assert_eq!(
            c.open(&signed(&bad), body.as_bytes()),
            Err(PushError::BadSignature)
        );
        let other = Signed {
            timestamp: "1409304349",
            ..signed(&sig)
        };
        assert_eq!(
            c.open(&other, body.as_bytes()),
            Err(PushError::BadSignature)
        );
        // Another platform's key and token: its pushes are not ours.
        let stranger = MsgCrypt::new(
            "wx-other",
            TOKEN,
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg",
        )
        .unwrap();
        let (body2, sig2) = seal(&stranger, TICKET, "1409304348", "xxxxxx");
        assert_eq!(
            c.open(&signed(&sig2), body2.as_bytes()),
            Err(PushError::WrongApp)
        );
        // Signed with our token, encrypted with another key.
        let keyless = MsgCrypt {
            key: stranger.key,
            ..c.clone()
        };
        let (body3, sig3) = seal(&keyless, TICKET, "1409304348", "xxxxxx");
        assert_eq!(
            c.open(&signed(&sig3), body3.as_bytes()),
            Err(PushError::Undecryptable)
        );
        // Our key, but sealed for another appid.
        let misaddressed = MsgCrypt {
            appid: "wx-other".into(),
            ..c.clone()
        };
        let (body4, sig4) = seal(&misaddressed, TICKET, "1409304348", "xxxxxx");
        let body4 = body4.replace("wx-other", APPID);
        assert_eq!(
            c.open(&signed(&sig4), body4.as_bytes()),
            Err(PushError::WrongApp)
        );
        // Not XML, or no Encrypt.
        for junk in [
            "",
            "<xml>",
            "{\"Encrypt\":1}",
            "<xml><AppId>x</AppId></xml>",
        ] {
            assert_eq!(
                c.open(&signed(&sig), junk.as_bytes()),
                Err(PushError::Malformed),
                "{junk}"
            );
        }
    }

    #[test]
    fn the_reader_takes_wechats_shapes_only() {
        let doc = Xml::parse(
            b"<xml>\n <A><![CDATA[x<y]]></A>\n <B>1&amp;2</B><C></C><D><E>n</E></D>\n</xml>\n",
        )
        .unwrap();
        assert_eq!(doc.get("A"), Some("x<y"));
        assert_eq!(doc.get("B"), Some("1&2"));
        assert_eq!(doc.get("C"), Some(""));
        assert_eq!(doc.get("D"), None);
        assert_eq!(doc.get("E"), None);
        for bad in [
            "<?xml version=\"1.0\"?><xml><A>1</A></xml>",
            "<!DOCTYPE x [<!ENTITY e \"boom\">]><xml><A>&e;</A></xml>",
            "<xml><A>&e;</A></xml>",
            "<xml><A x=\"1\">1</A></xml>",
            "<xml><A>1</B></xml>",
            "<xml><A>1</A><A>2</A></xml>",
            "<xml><A>1</A></xml>trailing",
            "<xml>text</xml>",
            "<xml><A><![CDATA[open</A></xml>",
        ] {
            assert_eq!(Xml::parse(bad.as_bytes()), None, "{bad}");
        }
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        assert_eq!(Xml::parse(deep.as_bytes()), None);
    }
}
