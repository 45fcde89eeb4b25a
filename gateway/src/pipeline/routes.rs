//! Route matching: the longest configured prefix that starts the path.
//!
//! The path matched is always the canonical one ([`crate::protocol::path`]), the
//! same the upstream is sent: a spelling an upstream would read as another
//! path never picks a more lenient route than that path's own.
//!
//! Routes are sorted longest first once, at start-up, so matching is a scan
//! that stops at the first hit; with the handful of routes a gateway has,
//! that beats any tree. The upstream's scheme and authority are split out of
//! the config here so that forwarding clones cheap handles per request.
//!
//! Routes that name the same upstream share one set of upstream connection
//! slots: the cap protects the upstream (and the gateway's descriptors),
//! not the route.
//!
//! A route's `allow` rules decide, after authentication, whether the caller
//! may use it ([`Route::decide`]). They are compiled once: methods into a
//! bit set, roles into a short list; a decision is a few comparisons with
//! no allocation, on every proxied request and every forward-auth check.

use std::sync::Arc;

use tokio::sync::Semaphore;

use http::uri::Authority;

use http::Method;

use crate::config::{AllowRule, AuthMode, RouteConfig};
use crate::forward::proxy::Target;
use crate::tokens::Roles;

pub use crate::telemetry::metrics::Decision;

/// One compiled `allow` entry.
#[derive(Debug, Clone)]
struct Rule {
    /// Any of these; `None` is any caller.
    roles: Option<Box<[Box<str>]>>,
    /// A bit per standard method; [`ANY_METHOD`] when absent.
    methods: u16,
}

const ANY_METHOD: u16 = u16::MAX;

/// The bit of a standard method; 0 for an extension method, which only an
/// entry without `methods` matches.
#[inline]
fn method_bit(m: &Method) -> u16 {
    let i = match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => return 0,
    };
    1 << i
}

impl Rule {
    fn compile(rule: &AllowRule) -> Rule {
        Rule {
            roles: rule
                .roles
                .as_ref()
                .map(|r| r.iter().map(|r| r.as_str().into()).collect()),
            methods: rule.methods.as_ref().map_or(ANY_METHOD, |m| {
                m.iter().fold(0, |bits, m| bits | method_bit(m))
            }),
        }
    }
}

/// A proxied prefix, ready for the request path.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path prefix.
    pub prefix: String,
    /// Token policy.
    pub auth: AuthMode,
    /// Where its requests are sent.
    pub target: Target,
    /// Its place in the config: the index of its metrics.
    pub index: usize,
    /// The compiled `allow` rules; `None` lets every authenticated caller in.
    allow: Option<Box<[Rule]>>,
}

impl Route {
    /// Whether a caller holding `roles` may use this route with `method`.
    #[inline]
    pub fn decide(&self, method: &Method, roles: Roles<'_>) -> Decision {
        let Some(rules) = &self.allow else {
            return Decision::Allowed;
        };
        let bit = method_bit(method);
        let mut role_matched = false;
        for rule in rules.iter() {
            let holds = rule
                .roles
                .as_ref()
                .is_none_or(|want| want.iter().any(|w| roles.contains(w)));
            if !holds {
                continue;
            }
            role_matched = true;
            if rule.methods == ANY_METHOD || rule.methods & bit != 0 {
                return Decision::Allowed;
            }
        }
        if role_matched {
            Decision::DeniedMethod
        } else {
            Decision::DeniedRole
        }
    }

    /// Whether the route has `allow` rules at all.
    pub fn has_rules(&self) -> bool {
        self.allow.is_some()
    }
}

/// The route table.
#[derive(Debug, Default)]
pub struct Routes {
    longest_first: Vec<Route>,
}

impl Routes {
    /// Builds the table from validated config; at most
    /// `upstream_max_connections` requests in flight to each upstream.
    pub fn new(configs: &[RouteConfig], upstream_max_connections: usize) -> Routes {
        let mut slots: Vec<(Authority, Arc<Semaphore>)> = Vec::new();
        let mut longest_first: Vec<Route> = configs
            .iter()
            .enumerate()
            .filter_map(|(index, c)| {
                let authority = host_port(c.upstream.authority()?)?;
                let upstream_slots = match slots.iter().find(|(a, _)| *a == authority) {
                    Some((_, s)) => s.clone(),
                    None => {
                        let s = Arc::new(Semaphore::new(upstream_max_connections));
                        slots.push((authority.clone(), s.clone()));
                        s
                    }
                };
                Some(Route {
                    index,
                    prefix: c.prefix.clone(),
                    auth: c.auth,
                    target: Target {
                        authority,
                        timeout: c.timeout,
                        upstream_slots,
                    },
                    allow: c
                        .allow
                        .as_ref()
                        .map(|rules| rules.iter().map(Rule::compile).collect()),
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

/// An upstream's `host:port`, without any `user:password@` the config
/// wrote before it. The gateway never sends such credentials (it adds no
/// `Authorization` of its own), and the authority is what `config check`
/// and the proxy's log lines show, which must hold no credentials.
fn host_port(authority: &Authority) -> Option<Authority> {
    match authority.as_str().rsplit_once('@') {
        Some((_, host)) => host.parse().ok(),
        None => Some(authority.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn route(prefix: &str, upstream: &str) -> RouteConfig {
        RouteConfig {
            prefix: prefix.into(),
            upstream: upstream.parse().unwrap(),
            auth: AuthMode::Required,
            timeout: Duration::from_secs(1),
            allow: None,
        }
    }

    #[test]
    fn the_seeds_role_table_decides_as_written() {
        let rule = |roles: Option<&[&str]>, methods: Option<&[Method]>| AllowRule {
            roles: roles.map(|r| r.iter().map(|s| s.to_string()).collect()),
            methods: methods.map(|m| m.to_vec()),
        };
        let mut logs = route("/api/logs", "http://logs:1");
        logs.allow = Some(vec![
            rule(Some(&["auditor"]), Some(&[Method::GET])),
            rule(Some(&["admin"]), None),
        ]);
        let mut profile = route("/api/profile", "http://p:1");
        profile.allow = Some(vec![rule(
            Some(&["user"]),
            Some(&[Method::GET, Method::POST]),
        )]);
        let routes = Routes::new(&[logs, profile, route("/api/", "http://api:1")], 8);
        let decide = |path: &str, m: Method, roles: &[&str]| {
            let roles = roles.join(",");
            routes.find(path).unwrap().decide(&m, Roles::joined(&roles))
        };
        assert_eq!(
            decide("/api/logs", Method::GET, &["auditor"]),
            Decision::Allowed
        );
        assert_eq!(
            decide("/api/logs", Method::DELETE, &["auditor"]),
            Decision::DeniedMethod
        );
        assert_eq!(
            decide("/api/logs", Method::DELETE, &["x", "admin"]),
            Decision::Allowed
        );
        assert_eq!(decide("/api/logs", Method::GET, &[]), Decision::DeniedRole);
        assert_eq!(
            decide("/api/logs", Method::GET, &["user"]),
            Decision::DeniedRole
        );
        assert_eq!(
            decide("/api/profile", Method::POST, &["user"]),
            Decision::Allowed
        );
        assert_eq!(
            decide("/api/profile", Method::PUT, &["user"]),
            Decision::DeniedMethod
        );
        let ext = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(
            decide("/api/profile", ext.clone(), &["user"]),
            Decision::DeniedMethod
        );
        assert_eq!(decide("/api/logs", ext, &["admin"]), Decision::Allowed);
        // No rules: everyone who passed auth.
        assert_eq!(decide("/api/other", Method::DELETE, &[]), Decision::Allowed);
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let routes = Routes::new(
            &[
                route("/", "http://root:1"),
                route("/api/", "http://api:1"),
                route("/api/admin/", "http://admin:1"),
            ],
            8,
        );
        let hit = |p: &str| {
            routes
                .find(p)
                .map(|r| r.target.authority.as_str().to_owned())
        };
        assert_eq!(hit("/api/admin/x").as_deref(), Some("admin:1"));
        assert_eq!(hit("/api/adminx").as_deref(), Some("api:1"));
        assert_eq!(hit("/api").as_deref(), Some("root:1"));
        assert_eq!(hit("/other").as_deref(), Some("root:1"));
        assert!(Routes::new(&[route("/api/", "http://a:1")], 8)
            .find("/x")
            .is_none());
    }

    #[test]
    fn routes_to_one_upstream_share_its_slots() {
        let routes = Routes::new(
            &[
                route("/a/", "http://one:1"),
                route("/b/", "http://one:1"),
                route("/c/", "http://two:1"),
            ],
            3,
        );
        let slots = |p: &str| {
            routes
                .find(p)
                .map(|r| r.target.upstream_slots.clone())
                .unwrap()
        };
        assert!(Arc::ptr_eq(&slots("/a/"), &slots("/b/")));
        assert!(!Arc::ptr_eq(&slots("/a/"), &slots("/c/")));
        assert_eq!(slots("/c/").available_permits(), 3);
    }

    #[test]
    fn upstream_credentials_are_not_kept() {
        let routes = Routes::new(&[route("/a/", "http://svc:hunter2@one:1")], 1);
        assert_eq!(
            routes.find("/a/x").unwrap().target.authority.as_str(),
            "one:1"
        );
    }
}
