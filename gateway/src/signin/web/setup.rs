//! `[web]` as the running gateway holds it: the origin browsers see, the
//! web providers and the states already used.
//!
//! Apart from the handlers in [`crate::signin::web`] because the gateway's shared
//! state holds it while the handlers take that state: kept here, it needs
//! nothing of the gateway and the two do not import each other.

use crate::config::{ProviderConfig, WebConfig};
use crate::error::ApiError;
use crate::signin::providers::ProviderSetupError;

use super::state::ClaimedStates;
use super::wechat::WebProvider;

/// The path of the sign-in's start.
pub const LOGIN: &str = "/auth/web/login";
/// The path the authorize page sends the browser back to.
pub const CALLBACK: &str = "/auth/web/callback";
/// `[web]` as the running gateway holds it.
#[derive(Debug)]
pub struct Web {
    /// The origin browsers see.
    public_url: String,
    /// `{public_url}/auth/web/callback`.
    pub(super) callback: String,
    /// Whether the access cookie authenticates proxied requests.
    cookies: bool,
    providers: Vec<WebProvider>,
    pub(super) used: ClaimedStates,
}

impl Web {
    /// `[web]` with the web providers among `providers`.
    pub fn new(
        config: &WebConfig,
        providers: &[ProviderConfig],
    ) -> Result<Web, ProviderSetupError> {
        let http = crate::signin::providers::outbound_client()?;
        let providers = providers
            .iter()
            .filter(|p| p.platform.is_web())
            .map(|p| WebProvider::new(p, http.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Web {
            callback: format!("{}{CALLBACK}", config.public_url),
            public_url: config.public_url.clone(),
            cookies: config.cookies,
            providers,
            used: ClaimedStates::default(),
        })
    }

    /// Does the access cookie authenticate proxied requests?
    pub fn cookies(&self) -> bool {
        self.cookies
    }

    /// The origin browsers see.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The web provider named by `appid`, or the only one.
    pub(super) fn pick(&self, appid: Option<&str>) -> Result<&WebProvider, ApiError> {
        crate::signin::providers::pick(
            &self.providers,
            appid,
            |p| &p.appid,
            [
                "no web sign-in (wechat_web, wechat_pc) is configured",
                "appid is required: several web sign-ins are configured",
            ],
        )
    }
}
