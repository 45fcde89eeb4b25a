//! Reading a config file, whole (for `serve` and `config check`) or in
//! part: the commands and reloads that need one value of it (the refresh
//! TTL to prune keys, the admin address, the role grants) read just that,
//! and never resolve the app secrets.

use std::path::Path;
use std::time::Duration;

use super::parse::duration_or;
use super::raw::RawRolesOnly;
use super::{defaults, err, Config, ConfigError, RoleGrant};

/// A config file's text; the error names the file.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| err(path.display().to_string(), e.to_string()))
}

impl Config {
    /// Reads and validates a config file. Errors name the file or the key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read(path)?;
        let mut config = Self::from_toml(&text, &|name| std::env::var(name).ok())?;
        config.source = Some(path.to_owned());
        Ok(config)
    }
}

/// The `[[roles]]` of a config file, checked like at start: what a reload
/// of static grants reads. Nothing else of the file is resolved (no secret
/// is read again).
pub fn grants_of(path: &Path) -> Result<Vec<RoleGrant>, ConfigError> {
    let text = read(path)?;
    let raw: RawRolesOnly =
        toml::from_str(&text).map_err(|e| err("config", e.message().replace('\n', " ")))?;
    super::parse::grants(raw.roles)
}

/// The refresh TTL of a config file, read without resolving anything else:
/// key pruning needs only that, and must not need the app secrets.
pub fn refresh_ttl_of(path: &Path) -> Result<Duration, ConfigError> {
    let text = read(path)?;
    let value: toml::Table =
        toml::from_str(&text).map_err(|e| err("config", e.message().replace('\n', " ")))?;
    let ttl = value
        .get("tokens")
        .and_then(|t| t.get("refresh_ttl"))
        .and_then(|v| v.as_str());
    duration_or("tokens.refresh_ttl", ttl, defaults::REFRESH_TTL)
}

/// `[admin] listen` of a config file, read without resolving anything
/// else: `minigate sessions` needs only that, not the app secrets.
pub fn admin_listen_of(path: &Path) -> Result<std::net::SocketAddr, ConfigError> {
    let text = read(path)?;
    let value: toml::Table =
        toml::from_str(&text).map_err(|e| err("config", e.message().replace('\n', " ")))?;
    let listen = value
        .get("admin")
        .and_then(|t| t.get("listen"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| err("admin.listen", "is not set: there is no admin listener"))?;
    listen
        .parse()
        .map_err(|_| err("admin.listen", format!("{listen:?} is not an address")))
}
