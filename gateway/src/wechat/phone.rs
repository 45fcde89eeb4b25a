//! The phone number a user agreed to share: `getPhoneNumber`'s one-time
//! code, exchanged at `wxa/business/getuserphonenumber` with the app's
//! access token. The answer's watermark must name the caller's app: a code
//! from another app (or a stand-in that lies) gives no verified number.

use serde::{Deserialize, Serialize};

use super::client::WxError;
use super::token::AccessTokens;

/// A verified phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Phone {
    /// With the country code, as the user sees it (`+86 138...`).
    pub phone_number: String,
    /// Without it.
    pub pure_phone_number: String,
    /// The country code.
    pub country_code: String,
}

/// Why the exchange gave no number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneError {
    /// WeChat's answer or failure.
    Wx(WxError),
    /// The watermark names another app.
    WrongWatermark,
}

#[derive(Deserialize)]
struct Answer {
    phone_info: Info,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    phone_number: String,
    pure_phone_number: String,
    country_code: CountryCode,
    watermark: Watermark,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CountryCode {
    Text(String),
    Number(u64),
}

#[derive(Deserialize)]
struct Watermark {
    appid: String,
}

/// Exchanges a `getPhoneNumber` code for the number, for app `appid`.
pub async fn phone_number(
    tokens: &AccessTokens,
    appid: &str,
    code: &str,
) -> Result<Phone, PhoneError> {
    #[derive(Serialize)]
    struct Ask<'a> {
        code: &'a str,
    }
    let answer: Answer = tokens
        .call(appid, "/wxa/business/getuserphonenumber", &Ask { code })
        .await
        .map_err(PhoneError::Wx)?;
    let info = answer.phone_info;
    if info.watermark.appid != appid {
        tracing::warn!(appid, "phone number answer's watermark names another app");
        return Err(PhoneError::WrongWatermark);
    }
    let ok = |s: &str| crate::config::is_header_safe(s, 32) || s.is_empty();
    let country_code = match info.country_code {
        CountryCode::Text(t) => t,
        CountryCode::Number(n) => n.to_string(),
    };
    // A number travels in tokens and headers: refuse what cannot.
    if !(ok(&info.pure_phone_number) && ok(&country_code))
        || info.pure_phone_number.is_empty()
        || info.phone_number.len() > 32
        || !info
            .phone_number
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(PhoneError::Wx(WxError::Unusable));
    }
    Ok(Phone {
        phone_number: info.phone_number,
        pure_phone_number: info.pure_phone_number,
        country_code,
    })
}
