//! Hostile tokens, per RFC 8725: every one is refused with 401 before it
//! reaches an upstream, and the gateway keeps serving.
//!
//! Tokens here are forged by hand (base64url, JSON, ring) so that headers and
//! claims can be anything at all, including validly signed by the gateway's
//! own key: a refusal then proves the check, not a bad signature.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::support::*;

/// The gateway's current signing key, as ring sees it, and its kid.
fn our_key(gw: &Gateway) -> (EcdsaKeyPair, String) {
    let text = std::fs::read_to_string(gw.keys_dir.join("keyset.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let entry = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "current")
        .unwrap();
    let pkcs8 = B64.decode(entry["private_key"].as_str().unwrap()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &pkcs8,
        &SystemRandom::new(),
    )
    .unwrap();
    (pair, entry["kid"].as_str().unwrap().to_owned())
}

fn attacker_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// A compact JWS of any header and claims, ES256-signed by `key`.
fn forge(key: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
    let input = input(header, claims);
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn good_claims() -> Value {
    let now = now();
    json!({"iss": "https://auth.test", "aud": "api", "sub": "victim", "client_id": APPID,
        "iat": now, "exp": now + 600, "jti": "j", "sid": "s", "platform": "wechat"})
}

fn header(kid: &str) -> Value {
    json!({"alg": "ES256", "typ": "at+jwt", "kid": kid})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

/// Sends `authorization` to a required and an optional route: both must be
/// 401 invalid_token; returns the error_description.
async fn refused(gw: &Gateway, authorization: &str, why: &str) -> String {
    let mut desc = String::new();
    for path in ["/api/x", "/maybe/x"] {
        let res = gw
            .http
            .get(format!("{}{path}", gw.url))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            (status, body["error"].as_str().unwrap_or("")),
            (401, "invalid_token"),
            "{why}: {body} {authorization}"
        );
        assert!(challenge.contains("error=\"invalid_token\""), "{why}");
        desc = body["error_description"].as_str().unwrap().to_owned();
    }
    desc
}

async fn refused_token(gw: &Gateway, token: &str, why: &str) -> String {
    refused(gw, &format!("Bearer {token}"), why).await
}

#[tokio::test]
async fn the_forging_harness_makes_tokens_the_gateway_accepts() {
    // The control: without it, every refusal below could be a harness bug.
    let gw = start(Setup::default()).await;
    let (ours, kid) = our_key(&gw);
    let token = forge(&ours, &header(&kid), &good_claims());
    assert_eq!(gw.get("/api/x", Some(&token)).await.status(), 200);
    // RFC 7515 4.1.9: "application/" may prefix typ; media types ignore case.
    for typ in ["application/at+jwt", "AT+JWT"] {
        let h = with(header(&kid), "typ", json!(typ));
        let token = forge(&ours, &h, &good_claims());
        assert_eq!(gw.get("/api/x", Some(&token)).await.status(), 200, "{typ}");
    }
    assert_eq!(gw.upstream.count(), 3);
}

#[tokio::test]
async fn algorithm_attacks_are_refused() {
    let gw = start(Setup::default()).await;
    let (ours, kid) = our_key(&gw);
    let claims = good_claims();
    // alg none, in any spelling, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = with(header(&kid), "alg", json!(alg));
        let unsigned = format!("{}.", input(&h, &claims));
        refused_token(&gw, &unsigned, alg).await;
        refused_token(&gw, &forge(&ours, &h, &claims), alg).await;
    }
    // HMAC keyed with what an attacker knows of the public key: the JWK
    // document, its coordinates, the SPKI point.
    let jwks: Value = gw
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    let jwk = jwks["keys"][0].to_string();
    let point = ours.public_key().as_ref().to_vec();
    for (alg, hmac) in [
        ("HS256", ring::hmac::HMAC_SHA256),
        ("HS384", ring::hmac::HMAC_SHA384),
        ("HS512", ring::hmac::HMAC_SHA512),
    ] {
        for secret in [jwk.as_bytes(), &point[..], kid.as_bytes()] {
            let h = with(header(&kid), "alg", json!(alg));
            let input = input(&h, &claims);
            let tag = ring::hmac::sign(&ring::hmac::Key::new(hmac, secret), input.as_bytes());
            let token = format!("{input}.{}", B64.encode(tag.as_ref()));
            assert_eq!(
                refused_token(&gw, &token, alg).await,
                "algorithm not allowed"
            );
        }
    }
    // Any other asymmetric algorithm than the key's own, even with a valid
    // ES256 signature underneath.
    for alg in ["ES384", "ES512", "RS256", "PS256", "EdDSA", "ES256K", ""] {
        let h = with(header(&kid), "alg", json!(alg));
        assert_eq!(
            refused_token(&gw, &forge(&ours, &h, &claims), alg).await,
            "algorithm not allowed"
        );
    }
    // No alg at all, or not a string.
    refused_token(
        &gw,
        &forge(&ours, &without(header(&kid), "alg"), &claims),
        "no alg",
    )
    .await;
    let h = with(header(&kid), "alg", json!(["ES256"]));
    refused_token(&gw, &forge(&ours, &h, &claims), "alg list").await;
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn keys_named_by_the_token_are_never_used() {
    let gw = start(Setup::default()).await;
    let (ours, kid) = our_key(&gw);
    let claims = good_claims();
    let evil = attacker_key();
    let evil_point = evil.public_key().as_ref();
    let evil_jwk = json!({"kty": "EC", "crv": "P-256",
        "x": B64.encode(&evil_point[1..33]), "y": B64.encode(&evil_point[33..])});
    // The attacker's own key, embedded or pointed at, signing for itself:
    // its kid is unknown here whatever the header says.
    for (member, value) in [
        ("jwk", evil_jwk.clone()),
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!([STANDARD.encode(b"not a certificate")])),
    ] {
        for kid in [kid.as_str(), "evil"] {
            let h = with(header(kid), member, value.clone());
            refused_token(&gw, &forge(&evil, &h, &claims), member).await;
        }
        // Even signed by the gateway's own key, these members are refused:
        // a verifier that honoured them could be pointed elsewhere.
        let h = with(header(&kid), member, value.clone());
        assert_eq!(
            refused_token(&gw, &forge(&ours, &h, &claims), member).await,
            "unsupported token header"
        );
    }
    // crit: an extension this verifier cannot honour.
    let h = with(header(&kid), "crit", json!(["exp"]));
    assert_eq!(
        refused_token(&gw, &forge(&ours, &h, &claims), "crit").await,
        "unsupported token header"
    );
    // No kid, an unknown kid, a kid of the wrong type.
    for h in [
        without(header(&kid), "kid"),
        header("no-such-key"),
        header(""),
        with(header(&kid), "kid", json!(1)),
        with(header(&kid), "kid", json!(null)),
    ] {
        refused_token(&gw, &forge(&ours, &h, &claims), "kid").await;
    }
    // Our kid, the attacker's signature.
    assert_eq!(
        refused_token(&gw, &forge(&evil, &header(&kid), &claims), "sig").await,
        "bad signature"
    );
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test]
async fn types_and_claims_are_checked_exactly() {
    let gw = start(Setup::default()).await;
    let (ours, kid) = our_key(&gw);
    let now = now();
    // typ: missing, generic, the refresh type, look-alikes.
    for typ in [
        json!(null),
        json!("JWT"),
        json!("refresh+jwt"),
        json!("at+jwt "),
        json!("application/jwt"),
        json!("xat+jwt"),
        json!(["at+jwt"]),
    ] {
        let h = with(header(&kid), "typ", typ.clone());
        refused_token(&gw, &forge(&ours, &h, &good_claims()), &typ.to_string()).await;
    }
    refused_token(
        &gw,
        &forge(&ours, &without(header(&kid), "typ"), &good_claims()),
        "no typ",
    )
    .await;
    // Claims: each registered one checked (leeway is 5 s in this setup).
    let c = good_claims;
    let cases: Vec<(Value, &str)> = vec![
        (with(c(), "iss", json!("https://evil.test")), "wrong issuer"),
        (
            with(c(), "iss", json!("https://auth.test/")),
            "wrong issuer",
        ),
        (with(c(), "aud", json!("other")), "wrong audience"),
        (with(c(), "aud", json!(["other", "more"])), "wrong audience"),
        (with(c(), "aud", json!([])), "wrong audience"),
        (
            with(c(), "aud", json!("https://auth.test")),
            "wrong audience",
        ),
        (with(c(), "exp", json!(now - 60)), "token expired"),
        (with(c(), "exp", json!(now - 6)), "token expired"),
        (with(c(), "nbf", json!(now + 60)), "token not yet valid"),
        (
            with(c(), "iat", json!(now + 60)),
            "token issued in the future",
        ),
        (without(c(), "exp"), "invalid claims"),
        (without(c(), "iss"), "invalid claims"),
        (without(c(), "aud"), "invalid claims"),
        (without(c(), "sub"), "invalid claims"),
        (without(c(), "jti"), "invalid claims"),
        (without(c(), "sid"), "invalid claims"),
        (
            with(c(), "exp", json!((now + 600).to_string())),
            "invalid claims",
        ),
        (with(c(), "exp", json!(-1)), "invalid claims"),
        (with(c(), "exp", json!(1e300)), "invalid claims"),
        (with(c(), "iat", json!(null)), "invalid claims"),
        (
            with(c(), "sub", json!("line\r\nX-Auth-Subject: admin")),
            "invalid claims",
        ),
        (with(c(), "sub", json!("")), "invalid claims"),
        (json!([1, 2, 3]), "invalid claims"),
        (json!("a string"), "invalid claims"),
    ];
    for (claims, want) in cases {
        let got = refused_token(&gw, &forge(&ours, &header(&kid), &claims), want).await;
        assert_eq!(got, want, "{claims}");
    }
    // Within the leeway passes: skew is tolerated, no more.
    let skewed = with(c(), "iat", json!(now + 3));
    let token = forge(&ours, &header(&kid), &skewed);
    assert_eq!(gw.get("/api/x", Some(&token)).await.status(), 200);
    assert_eq!(gw.upstream.count(), 1);
}

#[tokio::test]
async fn malformed_and_oversized_tokens_cost_nothing_and_break_nothing() {
    let gw = start(Setup::default()).await;
    let (ours, kid) = our_key(&gw);
    // A token with a URL-safe character in it, so that the "standard
    // alphabet" case below really differs from it (ES256 signatures are
    // random: about one in sixteen has neither `-` nor `_`).
    let good = std::iter::repeat_with(|| forge(&ours, &header(&kid), &good_claims()))
        .take(200)
        .find(|t| t.contains(['-', '_']))
        .unwrap();
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let big_header = with(header(&kid), "pad", json!("x".repeat(2000)));
    let big_claims = with(good_claims(), "pad", json!("x".repeat(9000)));
    let tokens: Vec<(String, &str)> = vec![
        (format!("{h}.{p}"), "two segments"),
        (format!("{h}.{p}.{s}.{s}"), "four segments"),
        (format!("{h}.{p}.{s}.{s}.{s}"), "five segments (JWE shape)"),
        (format!("{h}.{p}.{s}="), "padding"),
        (format!("{h}=.{p}.{s}"), "padded header"),
        (
            good.replace('-', "+").replace('_', "/"),
            "standard alphabet",
        ),
        (
            format!("{h}.{p}.{}", &s[..s.len() - 4]),
            "truncated signature",
        ),
        (format!("{h}.{p}."), "empty signature"),
        (format!(".{p}.{s}"), "empty header"),
        (format!("{h}..{s}"), "empty payload"),
        (format!("{h}.{p}.{s}{s}"), "doubled signature"),
        (".".repeat(5000), "dots"),
        ("a".repeat(9000), "long garbage"),
        (forge(&ours, &big_header, &good_claims()), "huge header"),
        (forge(&ours, &header(&kid), &big_claims), "huge claims"),
        (
            format!(
                "{}.{p}.{s}",
                B64.encode("{\"alg\":\"ES256\",\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"x\"}")
            ),
            "duplicate header member",
        ),
        (
            format!("{}.{p}.{s}", B64.encode("not json")),
            "header not json",
        ),
        (
            format!("{}.{p}.{s}", B64.encode("[]")),
            "header not an object",
        ),
        (
            format!("{h}.{}.{s}", B64.encode([0xff, 0xfe, 0x00])),
            "payload not UTF-8",
        ),
    ];
    for (token, why) in &tokens {
        refused_token(&gw, token, why).await;
    }
    // A DER-encoded ECDSA signature (what some libraries emit) instead of
    // JOSE's fixed r||s.
    let der_key = {
        let rng = SystemRandom::new();
        let text = std::fs::read_to_string(gw.keys_dir.join("keyset.json")).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let pk = doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["state"] == "current")
            .unwrap()["private_key"]
            .as_str()
            .unwrap()
            .to_owned();
        EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &B64.decode(pk).unwrap(),
            &rng,
        )
        .unwrap()
    };
    let input = input(&header(&kid), &good_claims());
    let der = der_key
        .sign(&SystemRandom::new(), input.as_bytes())
        .unwrap();
    refused_token(&gw, &format!("{input}.{}", B64.encode(der.as_ref())), "DER").await;
    // JWS JSON serialization, general and flattened.
    let general = json!({"payload": p, "signatures": [{"protected": h, "signature": s}]});
    let flat = json!({"payload": p, "protected": h, "signature": s});
    for doc in [general, flat] {
        refused(&gw, &format!("Bearer {doc}"), "JSON serialization").await;
        refused_token(
            &gw,
            &B64.encode(doc.to_string()),
            "JSON serialization, encoded",
        )
        .await;
    }
    // Bearer framing: doubled, empty, several headers, bytes that are not
    // visible ASCII. (A good token in the wrong place is simply absent.)
    for auth in [
        format!("Bearer Bearer {good}"),
        format!("Bearer {good} extra"),
        "Bearer".to_owned(),
        "Bearer    ".to_owned(),
    ] {
        refused(&gw, &auth, &auth).await;
    }
    let two = gw
        .http
        .get(format!("{}/maybe/x", gw.url))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 401, "two Authorization headers");
    let raw_bytes = raw(
        gw.running.addr,
        "GET /maybe/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u{00e9}\u{00e9}\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw_bytes.starts_with("HTTP/1.1 401"), "{raw_bytes}");
    // The token in a query parameter or a cookie is not read at all.
    let res = gw
        .http
        .get(format!("{}/api/x?access_token={good}", gw.url))
        .header("cookie", format!("access_token={good}"))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthorized").await;
    // None of it reached the upstream, and the gateway still serves.
    assert_eq!(gw.upstream.count(), 0);
    assert_eq!(gw.get("/api/x", Some(&good)).await.status(), 200);
    // And nothing invalid was cached.
    assert_eq!(gw.running.gateway.tokens.cached(), 1);
}

#[tokio::test]
async fn refresh_and_logout_hold_against_the_same_forgeries() {
    let gw = start(Setup::default()).await;
    let (ours, kid) = our_key(&gw);
    let t = gw.login("victim").await;
    let refresh_claims = json!({"iss": "https://auth.test", "aud": "https://auth.test",
        "sub": "victim", "client_id": APPID, "iat": now(), "exp": now() + 600,
        "jti": "j", "sid": "s", "platform": "wechat"});
    let refresh_header = json!({"alg": "ES256", "typ": "refresh+jwt", "kid": kid});
    let forged: Vec<String> = vec![
        format!(
            "{}.",
            input(
                &with(refresh_header.clone(), "alg", json!("none")),
                &refresh_claims
            )
        ),
        forge(&attacker_key(), &refresh_header, &refresh_claims),
        forge(
            &ours,
            &with(refresh_header.clone(), "jku", json!("https://evil")),
            &refresh_claims,
        ),
        forge(
            &ours,
            &header(&kid),
            &with(refresh_claims.clone(), "aud", json!("api")),
        ),
        t.access_token.clone(),
    ];
    for token in &forged {
        for path in ["/auth/refresh", "/auth/logout"] {
            let res = post_refresh(&gw.http, &gw.url, path, token).await;
            assert_error(res, 400, "invalid_grant").await;
        }
    }
    // Validly signed, but for a session the gateway never began.
    let unknown = forge(&ours, &refresh_header, &refresh_claims);
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &unknown).await;
    assert_error(res, 400, "invalid_grant").await;
    // The real session was not disturbed by any of it.
    let res = post_refresh(&gw.http, &gw.url, "/auth/refresh", &t.refresh_token).await;
    assert_eq!(res.status(), 200);
}
