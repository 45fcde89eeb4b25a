//! A push to a WeChat third-party platform's callback, from anyone: any
//! body opens into a message or one of the refusals, never a panic. The
//! signature is made to match the body's `Encrypt` (when it has one), so
//! that what follows it, the decryption and the reading of the message,
//! is reached with any ciphertext; the same body is also tried with a
//! signature that does not match, which must be refused first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minigate::wechat::msgcrypt::{MsgCrypt, PushError, Signed, Xml};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fuzz_target!(|data: &[u8]| {
    let Some(crypt) = MsgCrypt::new("wx3rd-fuzz", "fuzzToken", KEY) else {
        return;
    };
    let unsigned = Signed {
        timestamp: "1409304348",
        nonce: "xxxxxx",
        msg_signature: "0000000000000000000000000000000000000000",
    };
    match crypt.open(&unsigned, data) {
        Err(PushError::Malformed | PushError::BadSignature) => {}
        other => panic!("an unsigned push got past the signature: {other:?}"),
    }
    let Some(encrypt) = Xml::parse(data).and_then(|x| x.get("Encrypt").map(str::to_owned)) else {
        return;
    };
    let signature = crypt.signature("1409304348", "xxxxxx", &encrypt);
    let signed = Signed {
        msg_signature: &signature,
        ..unsigned
    };
    if let Err(e) = crypt.open(&signed, data) {
        assert_ne!(e, PushError::BadSignature);
    }
});
