//! Where the HTTP API's bearer tokens are kept: the [`TokenTable`] trait,
//! and its file form for one host ([`FileTokens`], `tokens.json` in the
//! data dir). The shared backend keeps them in PostgreSQL instead
//! (`remote::tokens`), so every host sees a revoke at its next request.
//!
//! This layer stores records; it does not know what a scope is. A record
//! is the JSON object `server::auth` made, with the token's id and the
//! hash of its secret pulled out as the keys a table looks up by.

use std::path::{Path, PathBuf};

/// One stored token: its id, the hex BLAKE3 of its secret, and the whole
/// record (which holds both again, plus scopes and limits).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredToken {
    pub id: String,
    pub hash: String,
    pub record: serde_json::Value,
}

impl StoredToken {
    /// Reads the id and hash out of `record`; `None` when either is
    /// missing (a record written by hand, which no lookup could match).
    pub fn from_record(record: serde_json::Value) -> Option<StoredToken> {
        let id = record.get("id")?.as_str()?.to_owned();
        let hash = record.get("hash")?.as_str()?.to_owned();
        Some(StoredToken { id, hash, record })
    }
}

/// A token table failure.
#[derive(Debug, thiserror::Error)]
pub enum TokenTableError {
    #[error("cannot read or write {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    /// The shared table cannot be reached (a request gets 503, not 401).
    #[error("the token table is unavailable: {0}")]
    Unavailable(String),
    #[error("the token table: {0}")]
    Failed(String),
}

/// The tokens one host (or every host of a shared backend) accepts.
pub trait TokenTable: Send + Sync + std::fmt::Debug {
    /// Every token, in the order they were made.
    fn all(&self) -> Result<Vec<StoredToken>, TokenTableError>;
    /// Adds `token` (its id and hash are fresh random values).
    fn insert(&self, token: StoredToken) -> Result<(), TokenTableError>;
    /// Removes the token with `id`; false when there is none.
    fn remove(&self, id: &str) -> Result<bool, TokenTableError>;
    /// The token whose secret hashes to `hash`, read afresh (a revoke by
    /// any process counts at the next lookup).
    fn find(&self, hash: &str) -> Result<Option<StoredToken>, TokenTableError>;
}

/// The file in the data dir holding one host's tokens.
pub const TOKENS_FILE: &str = "tokens.json";
/// The lock beside it that serialises its rewrites.
const LOCK_FILE: &str = "tokens.lock";

/// Tokens in `DATA_DIR/tokens.json`: a JSON array, rewritten whole and
/// atomically (owner-only), under a `flock` of `tokens.lock` so concurrent
/// creates and revokes, in this process or others, never lose each
/// other's change or bring a revoked token back.
#[derive(Debug, Clone)]
pub struct FileTokens {
    path: PathBuf,
}

impl FileTokens {
    pub fn new(data_dir: &Path) -> Self {
        FileTokens {
            path: data_dir.join(TOKENS_FILE),
        }
    }

    fn io(&self, e: impl std::fmt::Display) -> TokenTableError {
        TokenTableError::Io {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn read(&self) -> Result<Vec<serde_json::Value>, TokenTableError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.io(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.io(e)),
        }
    }

    fn save(&self, tokens: &[serde_json::Value]) -> Result<(), TokenTableError> {
        use std::io::Write;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::private::create_dir_all(dir).map_err(|e| self.io(e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| self.io(e))?;
        let body = serde_json::to_vec_pretty(tokens).map_err(|e| self.io(e))?;
        tmp.write_all(&body).map_err(|e| self.io(e))?;
        tmp.as_file().sync_all().map_err(|e| self.io(e))?;
        // NamedTempFile is created 0600, so the file never has wider rights.
        tmp.persist(&self.path).map_err(|e| self.io(e.error))?;
        Ok(())
    }

    /// Runs a read-modify-write of the file under the exclusive lock.
    fn locked<R>(
        &self,
        f: impl FnOnce() -> Result<R, TokenTableError>,
    ) -> Result<R, TokenTableError> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::private::create_dir_all(dir).map_err(|e| self.io(e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| self.io(e))?;
        lock.lock().map_err(|e| self.io(e))?;
        // The lock goes with the file's descriptor.
        f()
    }
}

impl TokenTable for FileTokens {
    fn all(&self) -> Result<Vec<StoredToken>, TokenTableError> {
        Ok(self
            .read()?
            .into_iter()
            .filter_map(StoredToken::from_record)
            .collect())
    }

    fn insert(&self, token: StoredToken) -> Result<(), TokenTableError> {
        self.locked(|| {
            let mut all = self.read()?;
            all.push(token.record);
            self.save(&all)
        })
    }

    fn remove(&self, id: &str) -> Result<bool, TokenTableError> {
        self.locked(|| {
            let mut all = self.read()?;
            let before = all.len();
            all.retain(|t| t.get("id").and_then(|v| v.as_str()) != Some(id));
            if all.len() == before {
                return Ok(false);
            }
            self.save(&all)?;
            Ok(true)
        })
    }

    fn find(&self, hash: &str) -> Result<Option<StoredToken>, TokenTableError> {
        let Ok(presented) = blake3::Hash::from_hex(hash) else {
            return Ok(None);
        };
        let mut found = None;
        // Compare against every record (blake3's equality is
        // constant-time), so the time does not depend on which one
        // matched or how much of a guess was right.
        for t in self.all()? {
            if let Ok(stored) = blake3::Hash::from_hex(&t.hash)
                && stored == presented
            {
                found = Some(t);
            }
        }
        Ok(found)
    }
}
