//! What each client holds while its requests and tunnels are forwarded:
//! a place per request in flight and per WebSocket tunnel open.
//!
//! A client that opens many slow requests, or many idle tunnels, would
//! otherwise take every upstream slot or connection slot there is.
//! [`Occupancy`] counts what each key holds now and refuses the one over
//! the cap (admission, in the pipeline, asks); the count goes down when the
//! [`Held`] guard is dropped, which for a proxied request is when the
//! forwarded response body is done ([`crate::forward::body`]) and for a
//! tunnel when it closes. Entries at zero are removed, so the table holds
//! only clients that hold something.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// What one key may hold at once, counted.
#[derive(Debug)]
pub struct Occupancy<K> {
    max: u32,
    shards: Arc<Shards<K>>,
}

const SHARDS: usize = 16;

#[derive(Debug)]
struct Shards<K> {
    hasher: foldhash::fast::RandomState,
    maps: [Mutex<HashMap<K, u32>>; SHARDS],
}

impl<K: Hash + Eq> Shards<K> {
    fn shard(&self, key: &K) -> &Mutex<HashMap<K, u32>> {
        &self.maps[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn leave(&self, key: &K) {
        let Ok(mut map) = self.shard(key).lock() else {
            return;
        };
        if let Some(n) = map.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                map.remove(key);
            }
        }
    }
}

/// A place held in an [`Occupancy`]; given back when dropped.
pub struct Held<K: Hash + Eq> {
    shards: Arc<Shards<K>>,
    key: K,
}

impl<K: Hash + Eq> Drop for Held<K> {
    fn drop(&mut self) {
        self.shards.leave(&self.key);
    }
}

impl<K: Hash + Eq> std::fmt::Debug for Held<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

/// A key already holds as many places as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtCapacity;

/// A request in flight from one client address.
pub type InFlight = Held<IpAddr>;

impl<K: Hash + Eq + Clone> Occupancy<K> {
    /// At most `max` places per key; 0 means no limit (and no counting).
    pub fn new(max: u32) -> Occupancy<K> {
        Occupancy {
            max,
            shards: Arc::new(Shards {
                hasher: foldhash::fast::RandomState::default(),
                maps: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            }),
        }
    }

    /// A place for `key`: `Ok(None)` when there is no limit, `Err` when
    /// `key` holds `max` already.
    #[inline]
    pub fn enter(&self, key: &K) -> Result<Option<Held<K>>, AtCapacity> {
        if self.max == 0 {
            return Ok(None);
        }
        let Ok(mut map) = self.shards.shard(key).lock() else {
            // A poisoned shard counts nothing rather than refusing everyone.
            return Ok(None);
        };
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return Err(AtCapacity);
        }
        *n += 1;
        Ok(Some(Held {
            shards: self.shards.clone(),
            key: key.clone(),
        }))
    }

    /// How many keys hold something now.
    pub fn keys(&self) -> usize {
        self.shards
            .maps
            .iter()
            .map(|m| m.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occupancy_refuses_past_the_cap_and_forgets_empty_keys() {
        let o: Occupancy<IpAddr> = Occupancy::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = o.enter(&ip).unwrap();
        let b = o.enter(&ip).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(o.enter(&ip).is_err());
        assert!(o.enter(&"192.0.2.2".parse().unwrap()).unwrap().is_some());
        drop(a);
        let c = o.enter(&ip).unwrap();
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(o.keys(), 0);
        let off: Occupancy<IpAddr> = Occupancy::new(0);
        for _ in 0..10 {
            assert!(off.enter(&ip).unwrap().is_none());
        }
    }
}
