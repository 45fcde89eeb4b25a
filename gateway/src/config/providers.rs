//! The `[[providers]]` and `[web]` sections: the apps users sign in to, and their credentials.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `[web]`: where browsers see the gateway, and whether the access cookie
/// authenticates proxied requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// The origin browsers see, `scheme://host[:port]` (lowercase, no
    /// default port, no path): the base of `redirect_uri`, what the CSRF
    /// check compares `Origin` with, and where sign-ins land.
    pub public_url: String,
    /// Whether `__Host-minigate_at` authenticates proxied requests (and
    /// `/auth/verify`, `/auth/sessions`) that send no `Authorization`.
    pub cookies: bool,
}

/// The mini-program platforms: named by the registry in
/// [`crate::signin::providers`], so a new platform needs no change here.
pub use crate::signin::providers::Platform;

/// What a platform needs of the config to prove the app to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An app secret sent with each call: `secret_env` or `secret_file`.
    AppSecret,
    /// An RSA2 key pair: `private_key_file` signs each call,
    /// `alipay_public_key_file` verifies each answer.
    KeyPair,
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// `[[providers]]`: one mini-program's code exchange.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Which platform's API.
    pub platform: Platform,
    /// The mini-program's appid; `client_id` of its tokens.
    pub appid: String,
    /// What the gateway proves itself to the platform with: the kind its
    /// platform names (see [`CredentialKind`]).
    pub credentials: Credentials,
    /// The platform API's base URL.
    pub base_url: String,
    /// How long one code exchange may take.
    pub timeout: Duration,
    /// Web providers only: the base URL of the platform's authorize page.
    pub authorize_url: Option<String>,
    /// A WeChat third-party platform's own keys (`appid` is then its
    /// `component_appid`, not a mini-program's).
    pub component: Option<super::ComponentConfig>,
    /// WeChat mini-programs only: ask the user's risk rank at login.
    pub risk: Option<RiskConfig>,
}

/// `risk_scene` and its companions: WeChat's `getuserriskrank` at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskConfig {
    /// `risk_scene`: the scene asked about (0 sign-up/login, 1 marketing
    /// fraud, 2 UGC...).
    pub scene: u32,
    /// `refuse_risk_rank`: ranks at or above it are refused (403
    /// `risky_user`); `None`: none is.
    pub refuse_at: Option<u8>,
    /// `risk_required`: a failed risk call fails the login (else it passes
    /// without a rank, counted).
    pub required: bool,
}

/// What `config check` says of it.
impl fmt::Display for RiskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "risk rank asked at login (getuserriskrank, scene {})",
            self.scene
        )?;
        match self.refuse_at {
            Some(at) => write!(f, "; ranks {at}-4 refused")?,
            None => f.write_str("; no rank refused")?,
        }
        f.write_str(if self.required {
            "; a failed risk call fails the login"
        } else {
            "; a failed risk call lets the login through without a rank"
        })
    }
}

impl ProviderConfig {
    /// The app secret, for platforms that use one.
    pub fn secret(&self) -> Option<&Secret> {
        match &self.credentials {
            Credentials::Secret { secret, .. } => Some(secret),
            Credentials::KeyPair(_) => None,
        }
    }

    /// The RSA key pair, for platforms that sign their calls (Alipay).
    pub fn key_pair(&self) -> Option<&KeyPair> {
        match &self.credentials {
            Credentials::Secret { .. } => None,
            Credentials::KeyPair(keys) => Some(keys),
        }
    }
}

/// A provider's credentials, resolved at start. `Display` says where they
/// came from, never what they are: what `config check` shows.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// An app secret, from `secret_env` or `secret_file`.
    Secret {
        /// The secret.
        secret: Secret,
        /// Where it came from: `env NAME` or `file PATH`.
        source: String,
    },
    /// An RSA2 key pair, from `private_key_file` and `alipay_public_key_file`.
    KeyPair(KeyPair),
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Secret { source, .. } => write!(f, "secret from {source}"),
            Credentials::KeyPair(k) => write!(
                f,
                "requests signed RSA2 with the key in {}, answers verified with the platform key in {}",
                k.private_key_file.display(),
                k.platform_key_file.display()
            ),
        }
    }
}

/// The app's private key, which signs each call, and the platform's public
/// key, which every answer must be signed with.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// The app's private key.
    pub private_key: crate::crypto::rsa2::SigningKey,
    /// The file it was read from.
    pub private_key_file: PathBuf,
    /// The platform's public key.
    pub platform_key: crate::crypto::rsa2::VerifyingKey,
    /// The file it was read from.
    pub platform_key_file: PathBuf,
}
