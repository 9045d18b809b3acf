//! Bearer tokens for the HTTP API: creation, scopes, storage and checks.
//!
//! A token is shown once, at creation; the store keeps only its BLAKE3
//! hash (the data dir's `tokens.json`, or the shared backend's table; see
//! `storage::tokens`), so a leaked file or table grants nothing. Checking
//! hashes the presented token and looks the hash up.
//!
//! Scopes narrow a token to names and modes:
//! `volume:NAME:r`, `volume:NAME:w`, `volume:NAME:rw`, `dict:NAME:...`,
//! `app:NAME` (call its functions); NAME may be `*`.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use crate::storage::tokens::TOKENS_FILE;
use crate::storage::tokens::{FileTokens, StoredToken, TokenTable, TokenTableError};
const PREFIX: &str = "vsl_";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("bad scope `{scope}`: {reason}")]
    BadScope { scope: String, reason: String },
    #[error("a token needs at least one --scope")]
    NoScopes,
    #[error("no token with id `{0}`")]
    NoSuchToken(String),
    #[error(transparent)]
    Table(#[from] TokenTableError),
    #[error("a stored token record is malformed: {0}")]
    Corrupt(String),
    #[error("cannot read random bytes for a token: {0}")]
    Random(String),
}

/// What a scope is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Volume,
    Dict,
    App,
    /// `metrics:r`: reading `/metrics`.
    Metrics,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Volume => "volume",
            Kind::Dict => "dict",
            Kind::App => "app",
            Kind::Metrics => "metrics",
        }
    }
}

/// Read or write access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
}

/// One grant of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub kind: Kind,
    /// A name, or `*` for every name.
    pub name: String,
    pub read: bool,
    pub write: bool,
}

impl Scope {
    /// Parses `volume:NAME:rw`, `dict:NAME:r`, `app:NAME`, `metrics:r`.
    pub fn parse(text: &str) -> Result<Scope, AuthError> {
        let bad = |reason: &str| AuthError::BadScope {
            scope: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text == "metrics:r" {
            return Ok(Scope {
                kind: Kind::Metrics,
                name: "*".to_owned(),
                read: true,
                write: false,
            });
        }
        let mut parts = text.split(':');
        let kind = match parts.next() {
            Some("volume") => Kind::Volume,
            Some("dict") => Kind::Dict,
            Some("app") => Kind::App,
            Some("metrics") => return Err(bad("the metrics scope is `metrics:r`")),
            _ => {
                return Err(bad(
                    "it must start with `volume:`, `dict:` or `app:`, or be `metrics:r`",
                ));
            }
        };
        let name = parts
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("the name is missing (use `*` for every name)"))?;
        let (read, write) = match (kind, parts.next()) {
            (Kind::App, None) => (true, true),
            (Kind::App, Some(_)) => return Err(bad("an app scope is `app:NAME`")),
            (_, Some("r")) => (true, false),
            (_, Some("w")) => (false, true),
            (_, Some("rw")) => (true, true),
            (_, _) => return Err(bad("the mode must be `r`, `w` or `rw`")),
        };
        if parts.next().is_some() {
            return Err(bad("too many `:`"));
        }
        Ok(Scope {
            kind,
            name: name.to_owned(),
            read,
            write,
        })
    }

    fn allows(&self, kind: Kind, name: &str, mode: Mode) -> bool {
        self.kind == kind
            && (self.name == "*" || self.name == name)
            && match mode {
                Mode::Read => self.read,
                Mode::Write => self.write,
            }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::App => write!(f, "app:{}", self.name),
            Kind::Metrics => write!(f, "metrics:r"),
            k => {
                let mode = match (self.read, self.write) {
                    (true, true) => "rw",
                    (true, false) => "r",
                    _ => "w",
                };
                write!(f, "{}:{}:{mode}", k.as_str(), self.name)
            }
        }
    }
}

/// A stored token: its hash, never the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: Option<String>,
    /// BLAKE3 of the token, hex.
    pub hash: String,
    pub scopes: Vec<Scope>,
    pub created_ms: u64,
    /// Calls this token may have running at once; `None` for the server's
    /// `--max-calls-per-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// When the token stops working (ms since the Unix epoch); `None`:
    /// never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

impl TokenRecord {
    /// Whether the token has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }
}

/// Parses a token lifetime: a whole number and a unit, `s`, `m`, `h` or
/// `d` (`90m`, `30d`), at least one second and at most 100 years.
pub fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "--ttl {text:?}: expected a number and a unit, s, m, h or d (`12h`, `30d`), \
             from 1s to 36500d"
        )
    };
    let t = text.trim();
    let split = t.len().checked_sub(1).ok_or_else(bad)?;
    let (n, unit) = (
        t.get(..split).ok_or_else(bad)?,
        t.get(split..).ok_or_else(bad)?,
    );
    let n: u64 = n.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
    if secs == 0 || secs > 36_500 * 86_400 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Who is calling: the owner over the local socket (everything), or the
/// bearer of a token (its scopes).
#[derive(Debug, Clone)]
pub enum Caller {
    Owner,
    Token(TokenRecord),
}

impl Caller {
    pub fn allows(&self, kind: Kind, name: &str, mode: Mode) -> bool {
        match self {
            Caller::Owner => true,
            Caller::Token(t) => t.scopes.iter().any(|s| s.allows(kind, name, mode)),
        }
    }
}

/// The tokens a server accepts: the data dir's `tokens.json`, or the
/// shared backend's table, behind [`TokenTable`].
#[derive(Debug, Clone)]
pub struct TokenStore {
    table: Arc<dyn TokenTable>,
    /// For a shared table only (a file is never unreachable): the tokens
    /// it vouched for, by hash, and when. While the table cannot be
    /// reached, one vouched for within [`OUTAGE_GRACE`] still works (see
    /// [`TokenStore::check`]).
    vouched: Option<Arc<std::sync::Mutex<Vouched>>>,
}

/// Tokens a shared table vouched for, by hash: the record and when.
type Vouched = std::collections::HashMap<String, (TokenRecord, Instant)>;

/// How long a token checked against the shared table keeps working while
/// the table cannot be reached. A revoke needs the table too, so the only
/// revoke this can miss is one made in the moments before an outage; in
/// exchange, callers already at work keep reaching their functions (which
/// then get `unavailable` from the stores they use) instead of every
/// request failing.
pub const OUTAGE_GRACE: std::time::Duration = std::time::Duration::from_secs(300);

impl TokenStore {
    /// The tokens in `data_dir`'s `tokens.json`.
    pub fn new(data_dir: &Path) -> Self {
        TokenStore {
            table: Arc::new(FileTokens::new(data_dir)),
            vouched: None,
        }
    }

    /// The tokens `service`'s backend keeps (every host of a shared
    /// backend accepts the same), else `data_dir`'s.
    pub fn for_service(service: &crate::service::Service, data_dir: &Path) -> Self {
        match &service.tokens {
            Some(table) => TokenStore {
                table: table.clone(),
                vouched: Some(Arc::default()),
            },
            None => TokenStore::new(data_dir),
        }
    }

    /// Every stored token (read afresh, so tokens made or revoked by
    /// another process count at once).
    pub fn list(&self) -> Result<Vec<TokenRecord>, AuthError> {
        self.table.all()?.into_iter().map(decode).collect()
    }

    /// Makes a token with `scopes` (and its own limit of running calls, and
    /// a lifetime, if given); returns the token (shown once) and its record.
    pub fn create(
        &self,
        name: Option<String>,
        scopes: Vec<Scope>,
        max_calls: Option<u32>,
        ttl: Option<std::time::Duration>,
    ) -> Result<(String, TokenRecord), AuthError> {
        if scopes.is_empty() {
            return Err(AuthError::NoScopes);
        }
        let random = |n| random_hex(n).map_err(|e| AuthError::Random(e.to_string()));
        let secret = random(32)?;
        let token = format!("{PREFIX}{secret}");
        let created_ms = crate::storage::clock::Clock::now_ms(&crate::storage::clock::SystemClock);
        let record = TokenRecord {
            id: random(6)?,
            name,
            hash: blake3::hash(token.as_bytes()).to_hex().to_string(),
            scopes,
            created_ms,
            max_calls,
            expires_ms: ttl.map(|t| {
                created_ms.saturating_add(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
            }),
        };
        let value = serde_json::to_value(&record).map_err(|e| AuthError::Corrupt(e.to_string()))?;
        self.table.insert(StoredToken {
            id: record.id.clone(),
            hash: record.hash.clone(),
            record: value,
        })?;
        Ok((token, record))
    }

    pub fn revoke(&self, id: &str) -> Result<(), AuthError> {
        if self.table.remove(id)? {
            Ok(())
        } else {
            Err(AuthError::NoSuchToken(id.to_owned()))
        }
    }

    /// The record of `token`, if it is valid: asked of the table every
    /// time, so a revoke anywhere counts at the next request. Only when
    /// the shared table cannot be reached does a token the table vouched
    /// for within [`OUTAGE_GRACE`] pass on that word.
    pub fn check(&self, token: &str) -> Result<Option<TokenRecord>, AuthError> {
        let presented = blake3::hash(token.as_bytes()).to_hex().to_string();
        let found = self.table.find(&presented);
        let Some(vouched) = &self.vouched else {
            return found?.map(decode).transpose();
        };
        let vouched = || {
            vouched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        match found {
            Ok(Some(t)) => {
                let record = decode(t)?;
                vouched().insert(presented, (record.clone(), Instant::now()));
                Ok(Some(record))
            }
            Ok(None) => {
                vouched().remove(&presented);
                Ok(None)
            }
            Err(TokenTableError::Unavailable(m)) => match vouched().get(&presented) {
                Some((record, at)) if at.elapsed() < OUTAGE_GRACE => {
                    tracing::warn!(
                        "the token table is unreachable ({m}); token {} was valid {} s ago",
                        record.id,
                        at.elapsed().as_secs()
                    );
                    Ok(Some(record.clone()))
                }
                _ => Err(TokenTableError::Unavailable(m).into()),
            },
            Err(e) => Err(e.into()),
        }
    }
}

/// The token record a table holds.
fn decode(t: StoredToken) -> Result<TokenRecord, AuthError> {
    serde_json::from_value(t.record).map_err(|e| AuthError::Corrupt(e.to_string()))
}

/// `n` random bytes from the OS, as hex.
fn random_hex(n: usize) -> std::io::Result<String> {
    use std::fmt::Write;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    let mut s = String::with_capacity(n * 2);
    for b in buf {
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        for s in [
            "volume:models:rw",
            "volume:*:r",
            "dict:kv:w",
            "app:demo",
            "app:*",
        ] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
        for bad in [
            "",
            "vol:x:r",
            "volume::r",
            "volume:x",
            "volume:x:x",
            "app:a:r",
            "dict:a:r:x",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_stored_hashed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let (token, rec) = store
            .create(None, vec![Scope::parse("dict:kv:r").unwrap()], None, None)
            .unwrap();
        let file = std::fs::read_to_string(dir.path().join(TOKENS_FILE)).unwrap();
        assert!(
            !file.contains(&token),
            "the token itself must not be stored"
        );
        let got = store.check(&token).unwrap().unwrap();
        assert_eq!(got.id, rec.id);
        let caller = Caller::Token(got);
        assert!(caller.allows(Kind::Dict, "kv", Mode::Read));
        assert!(!caller.allows(Kind::Dict, "kv", Mode::Write));
        assert!(!caller.allows(Kind::Dict, "other", Mode::Read));
        assert!(!caller.allows(Kind::Volume, "kv", Mode::Read));
        assert!(store.check("vsl_wrong").unwrap().is_none());
        store.revoke(&rec.id).unwrap();
        assert!(store.check(&token).unwrap().is_none());
        assert!(store.revoke(&rec.id).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKENS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "tokens.json must be owner-only");
        }
    }

    #[test]
    fn token_lifetimes_parse_with_their_unit_and_bounds() {
        use std::time::Duration;
        assert_eq!(parse_ttl("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_ttl("1s"), Ok(Duration::from_secs(1)));
        for bad in [
            "",
            "d",
            "0s",
            "5",
            "5w",
            "-1d",
            "36501d",
            "99999999999999999999d",
        ] {
            let e = parse_ttl(bad).unwrap_err();
            assert!(e.contains("--ttl") && e.contains("36500d"), "{bad}: {e}");
        }
    }
}
