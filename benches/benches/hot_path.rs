//! The per-request costs of the hot path, one function at a time:
//! verification cold (full check) and warm (cache hit) for each algorithm,
//! token issuing (and ring's signature alone), the header rewrite and route
//! matching.

// Benchmark set-up panics on a broken fixture, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::Method;
use http::{HeaderMap, HeaderValue};
use jwks::Alg;
use minigate::config::{AllowRule, AuthMode, RouteConfig};
use minigate::pipeline::conn::ClientAddr;
use minigate::pipeline::headers::{request_id, rewrite_request_headers, RequestIds};
use minigate::pipeline::routes::Routes;
use minigate::sessions::revoked::RevokedSet;
use minigate::telemetry::metrics::RevokedMetrics;
use minigate::tokens::{Roles, Subject};
use minigate_benches::{access_token, key_set, tokens};

fn copy(set: &jwks::KeySet) -> jwks::KeySet {
    jwks::KeySet::from_json(set.to_json().as_bytes()).expect("a set reloads from its own file")
}

const ALGS: [(Alg, &str); 3] = [
    (Alg::ES256, "ES256"),
    (Alg::EdDSA, "EdDSA"),
    (Alg::RS256, "RS256"),
];

fn verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    for (alg, name) in ALGS {
        let set = key_set(alg);
        // Cold: the full check a cache miss does (header, kid, signature,
        // claims, identity headers).
        let cold = tokens(copy(&set), 16);
        let token = access_token(&set, 1, 3600);
        g.bench_function(format!("cold/{name}"), |b| {
            b.iter(|| black_box(cold.check_access(black_box(&token)).is_ok()))
        });
        // The signature check alone, in ring, on the same token: what the
        // cold check costs beyond it is base64, JSON, key lookup, claims
        // and the identity headers.
        if let Some(ring_alone) = signature_only(&set, &token) {
            g.bench_function(format!("ring_only/{name}"), |b| {
                b.iter(|| black_box(ring_alone()))
            });
        }
        let warm = tokens(set, 100_000);
        let hot = &token;
        assert!(warm.verify_access(hot).is_ok());
        g.bench_function(format!("warm/{name}"), |b| {
            b.iter(|| black_box(warm.verify_access(black_box(hot)).is_ok()))
        });
    }
    g.finish();
}

/// A closure verifying `token`'s signature with ring alone (the public key
/// parsed from the set's JWK, the signature decoded once), for ES256 and
/// EdDSA.
fn signature_only(set: &jwks::KeySet, token: &str) -> Option<impl Fn() -> bool> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine as _;
    use ring::signature::{
        UnparsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_FIXED, ED25519,
    };
    let jwk = set.current().public_jwk();
    let x = B64.decode(jwk.x.as_deref()?).ok()?;
    let (alg, public): (&'static dyn VerificationAlgorithm, Vec<u8>) = match set.current().alg() {
        Alg::ES256 => {
            let y = B64.decode(jwk.y.as_deref()?).ok()?;
            (&ECDSA_P256_SHA256_FIXED, [&[4u8][..], &x, &y].concat())
        }
        Alg::EdDSA => (&ED25519, x),
        _ => return None,
    };
    let (input, sig) = token.rsplit_once('.')?;
    let sig = B64.decode(sig).ok()?;
    let input = input.as_bytes().to_vec();
    let key = UnparsedPublicKey::new(alg, public);
    assert!(key.verify(&input, &sig).is_ok());
    Some(move || key.verify(black_box(&input), black_box(&sig)).is_ok())
}

fn issue(c: &mut Criterion) {
    let mut g = c.benchmark_group("issue");
    let who = Subject {
        openid: "openid-00000001".into(),
        unionid: Some("union-1".into()),
        appid: "wx0123456789abcdef".into(),
        platform: minigate::config::Platform::wechat(),
        component_appid: None,
        device_id: None,
        uid: Some("u_1024".into()),
        roles: vec!["user".into()],
        ext: Default::default(),
        device_type: minigate::tokens::DeviceClass::new("phone"),
        session_user: None,
        phone: None,
        risk_rank: None,
        tenant: None,
    };
    for (alg, name) in ALGS {
        let t = tokens(key_set(alg), 16);
        g.bench_function(format!("pair/{name}"), |b| {
            b.iter(|| black_box(t.issue(&who, "sid-1", "jti-1".into()).is_ok()))
        });
    }
    // One signature in ring alone, the key pair parsed once, over a
    // signing input of an access token's length: what the pair costs
    // beyond two of these is the claims' JSON, base64 and the ids.
    let input = vec![b'a'; 560];
    let rng = ring::rand::SystemRandom::new();
    let p256 = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(p256, &rng).unwrap();
    let ecdsa = ring::signature::EcdsaKeyPair::from_pkcs8(p256, pkcs8.as_ref(), &rng).unwrap();
    g.bench_function("ring_sign/ES256", |b| {
        b.iter(|| black_box(ecdsa.sign(&rng, black_box(&input)).is_ok()))
    });
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed25519 = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    g.bench_function("ring_sign/EdDSA", |b| {
        b.iter(|| black_box(ed25519.sign(black_box(&input))))
    });
    g.finish();
}

/// The revoked-session check every authenticated request makes after the
/// token verified: on an empty set (the common case: one atomic load), and
/// on a set of 100,000 ended sessions (a hash lookup under a read lock),
/// alone and together with a warm verification, against which the
/// hot-token request is compared. Also the set's memory per entry.
fn revoked(c: &mut Criterion) {
    let set = key_set(Alg::ES256);
    let warm = tokens(copy(&set), 100_000);
    let token = access_token(&set, 1, 3600);
    let id = warm.verify_access(&token).unwrap();
    let lifetime = Duration::from_secs(930);
    let empty = RevokedSet::new(lifetime, RevokedMetrics::noop());
    let full = RevokedSet::new(lifetime, RevokedMetrics::noop());
    let until = minigate::sessions::revoked::now_ms() + 3_600_000;
    for i in 0..100_000 {
        full.insert(
            &format!("revoked-sid-{i:016}"),
            until,
            minigate::tokens::EndReason::Replaced,
        );
    }
    assert!(full.check(&id).is_ok());
    let mut g = c.benchmark_group("revoked");
    g.bench_function("check/empty", |b| {
        b.iter(|| black_box(empty.check(black_box(&id)).is_ok()))
    });
    g.bench_function("check/100k", |b| {
        b.iter(|| black_box(full.check(black_box(&id)).is_ok()))
    });
    g.bench_function("warm_verify+check/100k", |b| {
        b.iter(|| {
            let id = warm.verify_access(black_box(&token)).unwrap();
            black_box(full.check(&id).is_ok())
        })
    });
    g.finish();
}

fn client_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (iPhone) MicroMessenger/8.0.49 MiniProgramEnv/iOS",
        ),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        (
            "referer",
            "https://servicewechat.com/wx0123456789abcdef/12/page-frame.html",
        ),
        ("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"),
        ("connection", "keep-alive"),
        ("accept-encoding", "gzip, deflate, br"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn rewrite(c: &mut Criterion) {
    let set = key_set(Alg::ES256);
    let t = tokens(copy(&set), 16);
    let identity = t.verify_access(&access_token(&set, 1, 3600)).ok();
    let ids = RequestIds::new();
    let ip = ClientAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
    let mut g = c.benchmark_group("rewrite");
    g.bench_function("headers/authenticated", |b| {
        b.iter_batched_ref(
            client_headers,
            |h| {
                let id = request_id(h, &ids);
                rewrite_request_headers(h, identity.as_deref(), &ip, None, &id);
                black_box(h.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("headers/spoofed", |b| {
        b.iter_batched_ref(
            || {
                let mut h = client_headers();
                h.insert("x-auth-subject", HeaderValue::from_static("admin"));
                h.insert("x-auth-appid", HeaderValue::from_static("wx-evil"));
                h
            },
            |h| {
                let id = request_id(h, &ids);
                rewrite_request_headers(h, identity.as_deref(), &ip, None, &id);
                black_box(h.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn routes(c: &mut Criterion) {
    let prefixes = [
        "/api/orders/",
        "/api/catalog/",
        "/api/users/",
        "/api/pay/",
        "/api/search/",
        "/api/admin/",
        "/api/",
        "/public/",
        "/static/",
        "/",
    ];
    let configs: Vec<RouteConfig> = prefixes
        .iter()
        .map(|p| RouteConfig {
            prefix: (*p).into(),
            upstream: "http://127.0.0.1:9000".parse().unwrap(),
            auth: AuthMode::Required,
            timeout: Duration::from_secs(30),
            allow: None,
        })
        .collect();
    let table = Routes::new(&configs, 1024);
    let mut g = c.benchmark_group("routes");
    for path in ["/api/orders/123/items", "/api/unknown/x", "/favicon.ico"] {
        g.bench_function(format!("find{path}"), |b| {
            b.iter(|| black_box(table.find(black_box(path)).is_some()))
        });
    }
    g.finish();
}

/// The `allow` check of a route with three entries (the seed's role table
/// plus one), for a caller with three roles: the cost the authorize phase
/// adds to a proxied request.
fn rules(c: &mut Criterion) {
    let rule = |roles: &[&str], methods: Option<&[Method]>| AllowRule {
        roles: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
        methods: methods.map(<[Method]>::to_vec),
    };
    let route = RouteConfig {
        prefix: "/api/".into(),
        upstream: "http://127.0.0.1:9000".parse().unwrap(),
        auth: AuthMode::Required,
        timeout: Duration::from_secs(30),
        allow: Some(vec![
            rule(&["user"], Some(&[Method::GET, Method::POST])),
            rule(&["auditor"], Some(&[Method::GET])),
            rule(&["admin"], None),
        ]),
    };
    let table = Routes::new(&[route], 1024);
    let route = table.find("/api/x").unwrap();
    // As a token's `roles` claim reaches the rules: joined with `,`.
    let roles = Roles::joined("editor,tester,admin");
    let none = Roles::joined("guest");
    let mut g = c.benchmark_group("rules");
    g.bench_function("three_entries/allowed_by_last", |b| {
        b.iter(|| black_box(route.decide(black_box(&Method::DELETE), black_box(roles))))
    });
    g.bench_function("three_entries/denied", |b| {
        b.iter(|| black_box(route.decide(black_box(&Method::GET), black_box(none))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = verify, issue, revoked, rewrite, routes, rules
}
criterion_main!(benches);
