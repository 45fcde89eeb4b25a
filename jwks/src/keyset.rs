//! The key set: every signing key with its rotation state, in one file.
//!
//! # Why one file
//! A set is only meaningful whole: exactly one current key, its successor,
//! and the retired keys whose tokens may still be alive. Keeping the whole set
//! in one file (`keyset.json` in the key directory) means one `rename` replaces
//! it atomically, so a reader (the gateway reloading, or a Kubernetes Secret
//! volume swapping its `..data` link) sees the old set or the new one, never a
//! mix. The file is written mode 0600 because it holds private keys.
//!
//! # Format (`minigate-keyset/1`)
//! ```json
//! {
//!   "format": "minigate-keyset/1",
//!   "keys": [
//!     { "kid": "<RFC 7638 thumbprint>", "alg": "ES256", "state": "current",
//!       "created": "2026-11-24T10:00:00Z", "activated": "2026-11-24T10:00:00Z",
//!       "private_key": "<base64url of the PKCS#8 DER private key>" },
//!     { "kid": "...", "alg": "ES256", "state": "next",
//!       "created": "2026-11-24T10:00:00Z", "private_key": "..." },
//!     { "kid": "...", "alg": "ES256", "state": "retired",
//!       "created": "...", "activated": "...", "retired": "2026-11-24T10:00:00Z",
//!       "private_key": "..." }
//!   ]
//! }
//! ```
//! States: `next` keys are published but never sign, so every verifier learns
//! them before they are used; the one `current` key signs; `retired` keys only
//! verify, until pruned. Loading validates the whole file: the format tag,
//! every private key against its algorithm, every kid against the thumbprint
//! recomputed from the key, unique kids, and exactly one current key.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::key::KeyError;
use crate::{Alg, Key, PublicJwk};

/// The name of the key-set file inside a key directory.
pub const KEYSET_FILE: &str = "keyset.json";
/// The lock file that serializes writers of a key directory.
pub const LOCK_FILE: &str = ".keyset.lock";
const FORMAT: &str = "minigate-keyset/1";
/// A key-set file larger than this is refused unread (a set holds a few keys).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Where a key stands in its rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing: becomes current at the next rotation.
    Next,
    /// The one key that signs.
    Current,
    /// No longer signs; verifies tokens it signed until pruned.
    Retired,
}

impl std::fmt::Display for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
        })
    }
}

/// A key of the set with its lifecycle.
#[derive(Debug)]
pub struct Entry {
    /// The key pair.
    pub key: Key,
    /// Its rotation state.
    pub state: KeyState,
    /// When it was generated.
    pub created: SystemTime,
    /// When it became current, if it ever did.
    pub activated: Option<SystemTime>,
    /// When it was retired, if it was.
    pub retired: Option<SystemTime>,
}

/// Why a key set could not be read, written or used.
///
/// Every message names the file and what is wrong with it, and none carries
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file is not a valid key set.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: Problem,
    },
    /// A key could not be generated.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What is wrong with a key-set file. The text never quotes the file: its
/// values are private keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Others may read it.
    #[error("holds private keys but is accessible to others (mode {mode:04o}); chmod 600 it")]
    Exposed {
        /// Its permission bits.
        mode: u32,
    },
    /// Larger than any key set.
    #[error("file is {len} bytes, more than a key set can be")]
    TooLarge {
        /// Its size.
        len: u64,
    },
    /// Nothing but white space.
    #[error("file is empty")]
    Empty,
    /// Not the document's shape, by serde_json's error class and position.
    #[error("not a key set: {what} at line {line} column {column}")]
    NotAKeySet {
        /// The class of the error, in words.
        what: &'static str,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
    },
    /// Another document format (its first 40 characters).
    #[error("format {found:?} is not {FORMAT:?}")]
    Format {
        /// What the file says.
        found: String,
    },
    /// One key is unusable.
    #[error("key {index} ({kid}): {problem}")]
    Key {
        /// Its place in the file.
        index: usize,
        /// The start of its kid.
        kid: String,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// No key at all.
    #[error("the set has no keys")]
    NoKeys,
    /// No key is current.
    #[error("the set has no current key")]
    NoCurrent,
    /// Several keys are current.
    #[error("the set has more than one current key")]
    SeveralCurrent,
}

/// What is wrong with one key of a key-set file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// `alg` names no algorithm this crate signs with.
    #[error("{0}")]
    Alg(String),
    /// `private_key` is not base64url.
    #[error("private_key is not base64url")]
    NotBase64,
    /// `private_key` is not a key of `alg`.
    #[error("{0}")]
    Key(String),
    /// `kid` is not the key's thumbprint.
    #[error("kid is not the thumbprint of the key")]
    KidMismatch,
    /// Another key has the same `kid`.
    #[error("kid appears twice")]
    KidTwice,
    /// A timestamp is not RFC 3339.
    #[error("bad timestamp")]
    BadTimestamp,
}

impl KeySetError {
    /// What is wrong, without the file's path: for readiness documents and
    /// other output that must not describe the file system.
    pub fn reason(&self) -> String {
        match self {
            KeySetError::Io { source, .. } => source.to_string(),
            KeySetError::Invalid { reason, .. } => reason.to_string(),
            KeySetError::Key(e) => e.to_string(),
        }
    }
}

/// The exclusive lock of a key directory; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// A validated set of keys with exactly one current key.
#[derive(Debug)]
pub struct KeySet {
    entries: Vec<Entry>,
    current: usize,
}

/// The public JWKS document (RFC 7517 section 5).
#[derive(Clone, Debug, Serialize)]
pub struct JwksDocument {
    /// The public keys.
    pub keys: Vec<PublicJwk>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    format: String,
    keys: Vec<EntryRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRepr {
    kid: String,
    alg: String,
    state: KeyState,
    created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired: Option<String>,
    private_key: String,
}

impl KeySet {
    /// A fresh set: a current key and a next key of `alg`.
    pub fn generate(alg: Alg, now: SystemTime) -> Result<KeySet, KeySetError> {
        let entries = vec![
            Entry {
                key: Key::generate(alg)?,
                state: KeyState::Current,
                created: now,
                activated: Some(now),
                retired: None,
            },
            Entry {
                key: Key::generate(alg)?,
                state: KeyState::Next,
                created: now,
                activated: None,
                retired: None,
            },
        ];
        Ok(KeySet {
            entries,
            current: 0,
        })
    }

    /// The path of the key-set file in `dir`.
    pub fn file_in(dir: &Path) -> PathBuf {
        dir.join(KEYSET_FILE)
    }

    /// Reads and validates the key set in `dir`.
    pub fn load(dir: &Path) -> Result<KeySet, KeySetError> {
        let bytes = Self::read_file(dir)?;
        Self::from_json(&bytes).map_err(|reason| KeySetError::Invalid {
            path: Self::file_in(dir),
            reason,
        })
    }

    /// Reads the key-set file of `dir` without parsing it, refusing a file
    /// that others may read and one too large to be a key set.
    pub fn read_file(dir: &Path) -> Result<Vec<u8>, KeySetError> {
        let path = Self::file_in(dir);
        let io_err = |source| KeySetError::Io {
            path: path.clone(),
            source,
        };
        let file = fs::File::open(&path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(KeySetError::Invalid {
                path,
                reason: Problem::Exposed { mode },
            });
        }
        let len = meta.len();
        if len > MAX_FILE_BYTES {
            return Err(KeySetError::Invalid {
                path,
                reason: Problem::TooLarge { len },
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES), &mut bytes)
            .map_err(io_err)?;
        Ok(bytes)
    }

    /// Parses and validates a key-set document; the error says what is wrong.
    pub fn from_json(bytes: &[u8]) -> Result<KeySet, Problem> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Problem::Empty);
        }
        let repr: FileRepr = serde_json::from_slice(bytes).map_err(|e| not_a_key_set(&e))?;
        if repr.format != FORMAT {
            return Err(Problem::Format {
                found: repr.format.chars().take(40).collect(),
            });
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(repr.keys.len());
        for (i, e) in repr.keys.into_iter().enumerate() {
            let at = |problem: KeyProblem| Problem::Key {
                index: i,
                kid: short(&e.kid),
                problem,
            };
            let alg: Alg = e
                .alg
                .parse()
                .map_err(|err| at(KeyProblem::Alg(format!("{err}"))))?;
            let pkcs8 = B64
                .decode(e.private_key.as_bytes())
                .map_err(|_| at(KeyProblem::NotBase64))?;
            let key =
                Key::from_pkcs8(alg, pkcs8).map_err(|err| at(KeyProblem::Key(err.to_string())))?;
            if key.kid() != e.kid {
                return Err(at(KeyProblem::KidMismatch));
            }
            if entries.iter().any(|o| o.key.kid() == key.kid()) {
                return Err(at(KeyProblem::KidTwice));
            }
            let time =
                |s: &str| humantime::parse_rfc3339(s).map_err(|_| at(KeyProblem::BadTimestamp));
            let opt_time = |s: &Option<String>| s.as_deref().map(time).transpose();
            entries.push(Entry {
                state: e.state,
                created: time(&e.created)?,
                activated: opt_time(&e.activated)?,
                retired: opt_time(&e.retired)?,
                key,
            });
        }
        Self::from_entries(entries)
    }

    /// Checks the set invariants: at least one key, exactly one current.
    fn from_entries(entries: Vec<Entry>) -> Result<KeySet, Problem> {
        let mut currents = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state == KeyState::Current);
        match (currents.next(), currents.next()) {
            (Some((current, _)), None) => Ok(KeySet { entries, current }),
            (None, _) if entries.is_empty() => Err(Problem::NoKeys),
            (None, _) => Err(Problem::NoCurrent),
            (Some(_), Some(_)) => Err(Problem::SeveralCurrent),
        }
    }

    /// The document as it is written to disk (it contains private keys).
    pub fn to_json(&self) -> String {
        let time = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        let repr = FileRepr {
            format: FORMAT.into(),
            keys: self
                .entries
                .iter()
                .map(|e| EntryRepr {
                    kid: e.key.kid().into(),
                    alg: e.key.alg().name().into(),
                    state: e.state,
                    created: time(e.created),
                    activated: e.activated.map(time),
                    retired: e.retired.map(time),
                    private_key: B64.encode(e.key.pkcs8()),
                })
                .collect(),
        };
        // Serializing plain strings and enums into a String cannot fail.
        serde_json::to_string_pretty(&repr).unwrap_or_default() + "\n"
    }

    /// Writes the set to `dir` atomically: a 0600 temp file, fsync, rename,
    /// fsync of the directory. Creates `dir` (mode 0700) if needed.
    pub fn save(&self, dir: &Path) -> Result<(), KeySetError> {
        let path = Self::file_in(dir);
        let io_err = |source| KeySetError::Io {
            path: path.clone(),
            source,
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        let tmp = dir.join(format!(".{KEYSET_FILE}.tmp-{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(self.to_json().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(e)
        })
    }

    /// Takes the exclusive lock of the key directory `dir` (creating it and
    /// the lock file if needed), so that two commands changing one set run
    /// one after the other. Held until the returned guard is dropped.
    pub fn lock(dir: &Path) -> Result<DirLock, KeySetError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |source| KeySetError::Io {
            path: path.clone(),
            source,
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        file.lock().map_err(io_err)?;
        Ok(DirLock { _file: file })
    }

    /// Every key with its lifecycle, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The key that signs.
    pub fn current(&self) -> &Key {
        &self.entries[self.current].key
    }

    /// The key named `kid`, in any state.
    #[inline]
    pub fn find(&self, kid: &str) -> Option<&Key> {
        self.entries.iter().map(|e| &e.key).find(|k| k.kid() == kid)
    }

    /// The public JWKS of every key: next, current and retired, so a key is
    /// known to verifiers before it signs and after it stops.
    pub fn jwks(&self) -> JwksDocument {
        JwksDocument {
            keys: self
                .entries
                .iter()
                .map(|e| e.key.public_jwk().clone())
                .collect(),
        }
    }

    /// The distinct algorithms of the set's keys.
    pub fn algorithms(&self) -> Vec<Alg> {
        let mut algs: Vec<Alg> = Vec::new();
        for e in &self.entries {
            if !algs.contains(&e.key.alg()) {
                algs.push(e.key.alg());
            }
        }
        algs
    }

    /// Promotes next to current and current to retired, and makes a new next
    /// key of the current key's algorithm.
    pub fn rotate(&mut self, now: SystemTime) -> Result<(), KeySetError> {
        let alg = self.current().alg();
        let fresh = Key::generate(alg)?;
        let next = self.entries.iter().position(|e| e.state == KeyState::Next);
        let old = self.current;
        self.entries[old].state = KeyState::Retired;
        self.entries[old].retired = Some(now);
        let promoted = match next {
            Some(i) => i,
            None => {
                // Only a hand-made set lacks a next key: promote a new one.
                self.entries.push(Entry {
                    key: Key::generate(alg)?,
                    state: KeyState::Next,
                    created: now,
                    activated: None,
                    retired: None,
                });
                self.entries.len() - 1
            }
        };
        self.entries[promoted].state = KeyState::Current;
        self.entries[promoted].activated = Some(now);
        self.current = promoted;
        self.entries.push(Entry {
            key: fresh,
            state: KeyState::Next,
            created: now,
            activated: None,
            retired: None,
        });
        Ok(())
    }

    /// Removes retired keys retired more than `older_than` before `now`;
    /// returns their kids.
    pub fn prune(&mut self, older_than: Duration, now: SystemTime) -> Vec<String> {
        let expired = |e: &Entry| {
            e.state == KeyState::Retired
                && e.retired
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age > older_than)
        };
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|e| expired(e))
            .map(|e| e.key.kid().to_owned())
            .collect();
        self.entries.retain(|e| !expired(e));
        self.current = self
            .entries
            .iter()
            .position(|e| e.state == KeyState::Current)
            .unwrap_or(0);
        gone
    }
}

fn short(kid: &str) -> String {
    kid.chars().take(12).collect()
}

/// Why a document is not a key set, by serde_json's error class and
/// position only. Its message would quote the file (``unknown variant
/// `…` ``, `invalid type: string "…"`), and a key set's values are private
/// keys: a key pasted into the wrong field would reach every place that
/// shows this reason, `/readyz` included.
fn not_a_key_set(e: &serde_json::Error) -> Problem {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "not JSON",
        Category::Eof => "JSON that ends too soon",
        Category::Data => "a field is missing, unknown, or has the wrong type or value",
        Category::Io => "unreadable",
    };
    Problem::NotAKeySet {
        what,
        line: e.line(),
        column: e.column(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000)
    }

    #[test]
    fn round_trip_through_json() {
        let set = KeySet::generate(Alg::ES256, now()).unwrap();
        let again = KeySet::from_json(set.to_json().as_bytes()).unwrap();
        assert_eq!(again.current().kid(), set.current().kid());
        assert_eq!(again.entries().len(), 2);
        assert_eq!(again.entries()[1].state, KeyState::Next);
        assert_eq!(again.entries()[0].activated, Some(now()));
    }

    #[test]
    fn invalid_sets_are_refused_with_a_reason() {
        let set = KeySet::generate(Alg::EdDSA, now()).unwrap();
        let good = set.to_json();
        let cases = [
            (String::new(), "empty"),
            ("{".into(), "not a key set"),
            (good.replace(FORMAT, "other/1"), "format"),
            (
                good.replace("\"next\"", "\"current\""),
                "more than one current",
            ),
            (good.replace("\"current\"", "\"next\""), "no current"),
            (
                r#"{"format":"minigate-keyset/1","keys":[]}"#.into(),
                "no keys",
            ),
            (good.replace(set.current().kid(), "AAAA"), "thumbprint"),
            (good.replace("EdDSA", "HS256"), "unknown algorithm"),
            (good.replace("EdDSA", "ES256"), "not a valid ES256"),
            (good[..good.len() / 2].to_string(), "not a key set"),
            // A private key pasted into another field is not quoted back.
            (
                good.replacen(
                    "\"current\"",
                    &format!("\"{}\"", B64.encode(set.current().pkcs8())),
                    1,
                ),
                "wrong type or value at line",
            ),
        ];
        for (doc, want) in cases {
            let err = KeySet::from_json(doc.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
            assert!(!err.contains(&B64.encode(set.current().pkcs8())));
        }
    }

    #[test]
    fn rotate_promotes_next_and_prune_drops_old_retired() {
        let mut set = KeySet::generate(Alg::ES256, now()).unwrap();
        let first = set.current().kid().to_owned();
        let second = set.entries()[1].key.kid().to_owned();
        let later = now() + Duration::from_secs(3600);
        set.rotate(later).unwrap();
        assert_eq!(set.current().kid(), second);
        assert_eq!(set.entries().len(), 3);
        assert!(set.find(&first).is_some());
        assert_eq!(set.jwks().keys.len(), 3);
        // Not old enough yet.
        assert!(set.prune(Duration::from_secs(7200), later).is_empty());
        let gone = set.prune(Duration::from_secs(60), later + Duration::from_secs(61));
        assert_eq!(gone, vec![first.clone()]);
        assert!(set.find(&first).is_none());
        assert_eq!(set.current().kid(), second);
    }

    #[test]
    fn files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile_dir("perms");
        KeySet::generate(Alg::ES256, now())
            .unwrap()
            .save(&dir)
            .unwrap();
        let file = KeySet::file_in(&dir);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeySet::load(&dir).unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("keyset.json"), "{err}");
        // Group-readable is fine: Kubernetes' fsGroup needs it.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o440)).unwrap();
        assert!(KeySet::load(&dir).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile_dir("lock");
        let held = KeySet::lock(&dir).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.clone();
        let waiter = std::thread::spawn(move || {
            let _second = KeySet::lock(&d).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "second lock taken while held"
        );
        drop(held);
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
        waiter.join().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "jwks-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ))
    }

    #[test]
    fn save_is_private_and_loads_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("jwks-save-{}", std::process::id()));
        let set = KeySet::generate(Alg::ES256, now()).unwrap();
        set.save(&dir).unwrap();
        let meta = fs::metadata(KeySet::file_in(&dir)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let loaded = KeySet::load(&dir).unwrap();
        assert_eq!(loaded.current().kid(), set.current().kid());
        fs::remove_dir_all(&dir).unwrap();
        let err = KeySet::load(&dir).unwrap_err().to_string();
        assert!(err.contains("keyset.json"), "{err}");
    }
}
