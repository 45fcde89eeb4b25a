//! The verified-token cache: its memory per entry, and its hit ratio on the
//! load comparison's "100k tokens" pattern, the gateway's cache (quick_cache)
//! beside moka's two eviction policies.
//!
//! `cargo run --release -p minigate-benches --bin token_cache [-- N]`
//!
//! Memory: verifies N distinct ES256 tokens (default 100,000) through the
//! gateway's cache, each once used for a request (its identity headers
//! cloned into a header map), and reads the resident memory they took: the
//! load test's tokens, tokens shaped as the gateway issues them (longer
//! ids), and those again through a cache a quarter their number, full and
//! evicting. Then a bare moka entry, for comparison.
//! Hit ratio: replays wrk's walk (each connection steps through the token
//! list from a random start) against a cache of each capacity: the
//! gateway's, and moka with TinyLFU (its default) and with plain LRU.

// A measuring tool: a broken fixture stops it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use minigate::tokens::Tokens;
use moka::policy::EvictionPolicy;

/// The gateway's allocator, so that its size classes are the ones measured.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use moka::sync::Cache;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// A cache as the walk sees it: look up, insert on a miss.
trait Walked {
    fn hit(&self, k: u64) -> bool;
}

impl Walked for Cache<u64, ()> {
    fn hit(&self, k: u64) -> bool {
        self.get(&k).is_some() || {
            self.insert(k, ());
            false
        }
    }
}

impl Walked for quick_cache::sync::Cache<u64, ()> {
    fn hit(&self, k: u64) -> bool {
        self.get(&k).is_some() || {
            self.insert(k, ());
            false
        }
    }
}

/// moka with `policy`.
fn moka(policy: EvictionPolicy, capacity: u64) -> Cache<u64, ()> {
    Cache::builder()
        .max_capacity(capacity)
        .eviction_policy(policy)
        .build()
}

/// Hit ratio of `requests` requests spread over 64 connections, each
/// walking the pool of `pool` tokens from its own start (as `pool.lua`).
fn hit_ratio(cache: impl Walked, pool: u64, requests: u64) -> f64 {
    let conns = 64u64;
    // A fixed spread of starts (wrk's math.random, without the randomness).
    let mut pos: Vec<u64> = (0..conns)
        .map(|c| c.wrapping_mul(0x9E37_79B9_7F4A_7C15) % pool)
        .collect();
    let mut hits = 0u64;
    for r in 0..requests {
        let c = (r % conns) as usize;
        pos[c] = (pos[c] + 1) % pool;
        if cache.hit(pos[c]) {
            hits += 1;
        }
    }
    hits as f64 / requests as f64
}

/// Verifies every token of `list` through a cache of `capacity` entries,
/// each once used for a request (its identity headers cloned into a header
/// map), and prints the resident memory per cached entry. The cache is
/// given back, so that the next measurement cannot reuse its memory.
fn per_entry(what: &str, set: &jwks::KeySet, list: &[String], capacity: u64) -> Tokens {
    let n = list.len();
    let tokens = minigate_benches::tokens(
        jwks::KeySet::from_json(set.to_json().as_bytes()).expect("a set reloads"),
        capacity,
    );
    let token_len = list.iter().map(String::len).sum::<usize>() / n;
    let before = rss_bytes();
    for t in list {
        let id = tokens.verify_access(t).expect("a valid token");
        // As a proxied request does: the values cloned into its headers
        // (a value's first clone can allocate, and that stays with the entry).
        let mut request = http::HeaderMap::new();
        for (name, value) in id.headers() {
            request.insert(name.clone(), value);
        }
    }
    let cached = tokens.cached();
    let after = rss_bytes();
    println!(
        "{what}: {n} tokens (about {token_len} bytes each) through a cache of {capacity}: \
         {cached} cached, {:.1} MiB resident, {:.0} bytes per cached entry",
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) as f64 / cached.max(1) as f64
    );
    tokens
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let set = minigate_benches::key_set(jwks::Alg::ES256);
    let signer = jwks::KeySet::from_json(set.to_json().as_bytes()).expect("a set reloads");
    // Made first, so their memory is not counted.
    let list: Vec<String> = (0..n)
        .map(|i| minigate_benches::access_token(&signer, i, 7200))
        .collect();
    let issued: Vec<String> = (0..n)
        .map(|i| minigate_benches::issued_access_token(&signer, i, 7200))
        .collect();
    let _kept = [
        per_entry("load test's tokens", &set, &list, 2 * n as u64),
        per_entry("tokens as issued", &set, &issued, 2 * n as u64),
        // A full cache: evicting, and keeping what it evicted as ghosts.
        per_entry("tokens as issued, cache full", &set, &issued, n as u64 / 4),
    ];

    // The key alone, in a moka cache of the same size: the whole token (as
    // before) against its SHA-256.
    let before = rss_bytes();
    let by_token: Cache<Box<str>, ()> = Cache::new(2 * n as u64);
    for t in &list {
        by_token.insert(t.as_str().into(), ());
    }
    by_token.run_pending_tasks();
    let mid = rss_bytes();
    let by_hash: Cache<[u8; 32], ()> = Cache::new(2 * n as u64);
    for t in &list {
        let mut k = [0u8; 32];
        k.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()).as_ref());
        by_hash.insert(k, ());
    }
    by_hash.run_pending_tasks();
    let after = rss_bytes();
    println!(
        "moka entry with no value, keyed by the token: {:.0} bytes; by its SHA-256: {:.0} bytes",
        (mid - before) as f64 / n as f64,
        (after - mid) as f64 / n as f64
    );
    drop((by_token, by_hash));

    let pool = 100_000;
    println!("hit ratio, 100,000-token pool walked by 64 connections:");
    println!(
        "| cache capacity | requests | quick_cache (the gateway's) | moka TinyLFU | moka LRU |"
    );
    println!("|---|---|---|---|---|");
    for (capacity, requests) in [
        (200_000, 100_000),
        (200_000, 300_000),
        (100_000, 300_000),
        (50_000, 300_000),
    ] {
        let quick = hit_ratio(
            quick_cache::sync::Cache::new(capacity as usize),
            pool,
            requests,
        );
        let tiny = hit_ratio(moka(EvictionPolicy::tiny_lfu(), capacity), pool, requests);
        let lru = hit_ratio(moka(EvictionPolicy::lru(), capacity), pool, requests);
        println!(
            "| {capacity} | {requests} | {:.1} % | {:.1} % | {:.1} % |",
            quick * 100.0,
            tiny * 100.0,
            lru * 100.0
        );
    }
}
