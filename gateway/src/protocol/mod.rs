//! The HTTP vocabulary every layer shares: the one canonical form of a
//! request path, and the credentials a request presents.
//!
//! Both are read before anything judges a request, by the pipeline, the
//! gateway's own endpoints and the config (a route's prefix must already be
//! canonical), so they sit below all of them and depend on nothing of the
//! gateway's.

pub mod credentials;
pub mod path;
