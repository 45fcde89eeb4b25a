//! WeChat's legacy `encryptedData`: AES-128-CBC with the login's
//! `session_key`, PKCS#7 padding, and a `watermark.appid` inside.
//!
//! The split the contract draws: input that cannot be data of this kind at
//! all (bad base64, an iv that is not 16 bytes, data that is not whole
//! 16-byte blocks, a wrong watermark) is the client's mistake; well-formed
//! data that this session's key does not turn into a JSON object is almost
//! always a stale key (the user ran `wx.login` again since), which the
//! client fixes by logging in again.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt as _, KeyIvInit as _};

/// Why decryption failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptError {
    /// Not base64, or not of the right lengths.
    Malformed(&'static str),
    /// Decrypted, but the watermark names another app (or none).
    WrongWatermark,
    /// Well-formed, but the key does not decrypt it into a JSON object.
    StaleKey,
}

/// Decrypts `encrypted_data` with `session_key` and `iv` (all base64) and
/// checks that the watermark's appid is `appid`.
pub fn decrypt(
    session_key: &str,
    encrypted_data: &str,
    iv: &str,
    appid: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, DecryptError> {
    let key = B64
        .decode(session_key)
        .ok()
        .filter(|k| k.len() == 16)
        // The key came from the platform and was stored by the gateway:
        // one that is not 16 bytes cannot decrypt anything, so it is stale.
        .ok_or(DecryptError::StaleKey)?;
    let iv = B64
        .decode(iv)
        .map_err(|_| DecryptError::Malformed("iv is not base64"))?;
    if iv.len() != 16 {
        return Err(DecryptError::Malformed("iv must be 16 bytes"));
    }
    let data = B64
        .decode(encrypted_data)
        .map_err(|_| DecryptError::Malformed("encrypted_data is not base64"))?;
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(DecryptError::Malformed(
            "encrypted_data must be whole 16-byte blocks",
        ));
    }
    let cipher = cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
        .map_err(|_| DecryptError::StaleKey)?;
    let plain = cipher
        .decrypt_padded_vec::<Pkcs7>(&data)
        .map_err(|_| DecryptError::StaleKey)?;
    let serde_json::Value::Object(object) =
        serde_json::from_slice(&plain).map_err(|_| DecryptError::StaleKey)?
    else {
        return Err(DecryptError::StaleKey);
    };
    let watermark = object
        .get("watermark")
        .and_then(|w| w.get("appid"))
        .and_then(|a| a.as_str());
    if watermark != Some(appid) {
        return Err(DecryptError::WrongWatermark);
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockModeEncrypt as _;

    fn encrypt(key: &[u8; 16], iv: &[u8; 16], plain: &[u8]) -> String {
        let ct = cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into())
            .encrypt_padded_vec::<Pkcs7>(plain);
        B64.encode(ct)
    }

    #[test]
    fn data_made_with_the_key_decrypts_and_the_watermark_is_checked() {
        let (key, iv) = ([7u8; 16], [9u8; 16]);
        let plain = br#"{"openId":"o1","watermark":{"appid":"wx1","timestamp":1}}"#;
        let data = encrypt(&key, &iv, plain);
        let (k, i) = (B64.encode(key), B64.encode(iv));
        let out = decrypt(&k, &data, &i, "wx1").unwrap();
        assert_eq!(out["openId"], "o1");
        assert_eq!(
            decrypt(&k, &data, &i, "wx2"),
            Err(DecryptError::WrongWatermark)
        );
        // Another key: well-formed data the key does not decrypt.
        let other = B64.encode([8u8; 16]);
        assert_eq!(
            decrypt(&other, &data, &i, "wx1"),
            Err(DecryptError::StaleKey)
        );
        // Not a JSON object.
        let list = encrypt(&key, &iv, b"[1,2]");
        assert_eq!(decrypt(&k, &list, &i, "wx1"), Err(DecryptError::StaleKey));
    }

    #[test]
    fn malformed_input_is_told_apart_from_a_stale_key() {
        let k = B64.encode([7u8; 16]);
        let i = B64.encode([9u8; 16]);
        for (data, iv) in [
            ("!!!", i.as_str()),
            (&B64.encode([0u8; 15]) as &str, i.as_str()),
            ("", i.as_str()),
            (&B64.encode([0u8; 32]) as &str, "!!"),
            (
                &B64.encode([0u8; 32]) as &str,
                &B64.encode([0u8; 12]) as &str,
            ),
        ] {
            assert!(
                matches!(
                    decrypt(&k, data, iv, "wx1"),
                    Err(DecryptError::Malformed(_))
                ),
                "{data} {iv}"
            );
        }
    }
}
