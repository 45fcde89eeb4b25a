//! WeChat's services after the login: the phone number, the app's access
//! token, and the legacy `encryptedData`.
//!
//! [`client`] is the one HTTP client every one of these calls goes
//! through; [`token`] keeps the app's access token (one source of truth per
//! cluster, what replicas share of it in [`share`]); [`crypt`] decrypts with the session's `session_key`, which
//! never leaves the gateway. A third-party platform's callback is opened
//! by [`msgcrypt`] (WeChat's message crypto) and its ticket kept by
//! [`component`]. [`session_key`] asks WeChat whether a session's key is
//! still good and resets it; [`risk`] asks a user's risk rank at login.

pub mod client;
pub mod component;
pub mod crypt;
pub mod msgcrypt;
pub mod phone;
pub mod risk;
pub mod session_key;
pub mod share;
pub mod token;

pub use client::{WxClient, WxError};
