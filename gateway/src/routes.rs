//! Route matching: the longest configured prefix that starts the path.
//!
//! Routes are sorted longest first once, at start-up, so matching is a scan
//! that stops at the first hit; with the handful of routes a gateway has,
//! that beats any tree. The upstream's scheme and authority are split out of
//! the config here so that forwarding clones two cheap handles per request.

use std::time::Duration;

use http::uri::{Authority, Scheme};

use crate::config::{AuthMode, RouteConfig};

/// A proxied prefix, ready for the request path.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path prefix.
    pub prefix: String,
    /// Token policy.
    pub auth: AuthMode,
    /// Upstream scheme (`http`).
    pub scheme: Scheme,
    /// Upstream `host:port`.
    pub authority: Authority,
    /// How long the upstream may take to answer.
    pub timeout: Duration,
    /// Its place in the config: the index of its metrics.
    pub index: usize,
}

/// The route table.
#[derive(Debug, Default)]
pub struct Routes {
    longest_first: Vec<Route>,
}

impl Routes {
    /// Builds the table from validated config.
    pub fn new(configs: &[RouteConfig]) -> Routes {
        let mut longest_first: Vec<Route> = configs
            .iter()
            .enumerate()
            .filter_map(|(index, c)| {
                Some(Route {
                    index,
                    prefix: c.prefix.clone(),
                    auth: c.auth,
                    scheme: c.upstream.scheme()?.clone(),
                    authority: c.upstream.authority()?.clone(),
                    timeout: c.timeout,
                })
            })
            .collect();
        longest_first.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Routes { longest_first }
    }

    /// The route for `path`, if any.
    #[inline]
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.longest_first
            .iter()
            .find(|r| path.starts_with(r.prefix.as_str()))
    }

    /// Every route, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.longest_first.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str) -> RouteConfig {
        RouteConfig {
            prefix: prefix.into(),
            upstream: upstream.parse().unwrap(),
            auth: AuthMode::Required,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let routes = Routes::new(&[
            route("/", "http://root:1"),
            route("/api/", "http://api:1"),
            route("/api/admin/", "http://admin:1"),
        ]);
        let hit = |p: &str| routes.find(p).map(|r| r.authority.as_str().to_owned());
        assert_eq!(hit("/api/admin/x").as_deref(), Some("admin:1"));
        assert_eq!(hit("/api/adminx").as_deref(), Some("api:1"));
        assert_eq!(hit("/api").as_deref(), Some("root:1"));
        assert_eq!(hit("/other").as_deref(), Some("root:1"));
        assert!(Routes::new(&[route("/api/", "http://a:1")])
            .find("/x")
            .is_none());
    }
}
