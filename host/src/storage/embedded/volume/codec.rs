//! The embedded volume store's record encodings: volume rows, tree nodes,
//! log records and tree keys. Every record starts with a format byte so later
//! formats can be told apart; decoding checks every length and never panics.

use super::*;

// Record encodings. Every record starts with a format byte so later formats
// can be told apart; decoding checks every length and never panics.

pub(super) const FORMAT: u8 = 1;

/// A volume's row in the `volumes` tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) id: u64,
    pub(super) head: u64,
    pub(super) created_ms: u64,
    pub(super) inodes: u64,
    pub(super) bytes: u64,
    /// The byte quota, if any.
    pub(super) max_bytes: Option<u64>,
    /// How long replaced versions stay readable; `None`: the default.
    pub(super) retention_ms: Option<u64>,
    /// No version before this one has history rows (a volume written
    /// before history existed starts at its head then).
    pub(super) history_from: u64,
    /// The levels a fork reads through, nearest first (see
    /// [`crate::storage::volume::fork`]); empty for any other volume.
    pub(super) base: Vec<Level>,
}

/// One level of a fork's chain: volume `id` as it was at `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Level {
    pub(super) id: u64,
    pub(super) version: u64,
}

/// The format of a volume row with a byte quota: the five counters of
/// [`FORMAT`], then the quota. A row without one keeps format 1, so rows
/// written before quotas existed read (and encode) as they were.
pub(super) const FORMAT_QUOTA: u8 = 2;

/// The format of a volume row with history: the five counters, a flags
/// byte (1: a quota follows, 2: a retention follows), `history_from`, then
/// the quota and the retention when flagged, then (flag 4) a fork's chain:
/// a count byte and that many `(id, version)` pairs. Rows of formats 1 and 2 read
/// with `history_from` at their head, and a row that says no more than
/// they could is still written in them, so every row encodes back to its
/// bytes.
pub(super) const FORMAT_HISTORY: u8 = 3;

impl Meta {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(66);
        let legacy =
            self.retention_ms.is_none() && self.history_from == self.head && self.base.is_empty();
        out.push(match (legacy, self.max_bytes) {
            (true, None) => FORMAT,
            (true, Some(_)) => FORMAT_QUOTA,
            (false, _) => FORMAT_HISTORY,
        });
        for v in [self.id, self.head, self.created_ms, self.inodes, self.bytes] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        if legacy {
            if let Some(max) = self.max_bytes {
                out.extend_from_slice(&max.to_be_bytes());
            }
            return out;
        }
        out.push(
            u8::from(self.max_bytes.is_some())
                | (u8::from(self.retention_ms.is_some()) << 1)
                | (u8::from(!self.base.is_empty()) << 2),
        );
        out.extend_from_slice(&self.history_from.to_be_bytes());
        for v in [self.max_bytes, self.retention_ms].into_iter().flatten() {
            out.extend_from_slice(&v.to_be_bytes());
        }
        if !self.base.is_empty() {
            // At most MAX_FORK_DEPTH levels: `fork` refuses deeper chains.
            out.push(u8::try_from(self.base.len()).unwrap_or(u8::MAX));
            for level in &self.base {
                out.extend_from_slice(&level.id.to_be_bytes());
                out.extend_from_slice(&level.version.to_be_bytes());
            }
        }
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, VolumeError> {
        let mut r = Reader::new(bytes, "volume record");
        let format = r.u8()?;
        if !matches!(format, FORMAT | FORMAT_QUOTA | FORMAT_HISTORY) {
            return Err(corrupt(format!("volume record: unknown format {format}")));
        }
        let mut meta = Meta {
            id: r.u64()?,
            head: r.u64()?,
            created_ms: r.u64()?,
            inodes: r.u64()?,
            bytes: r.u64()?,
            max_bytes: None,
            retention_ms: None,
            history_from: 0,
            base: Vec::new(),
        };
        match format {
            FORMAT_QUOTA => {
                meta.max_bytes = Some(r.u64()?);
                meta.history_from = meta.head;
            }
            FORMAT_HISTORY => {
                let flags = r.u8()?;
                if flags & !0b111 != 0 {
                    return Err(corrupt(format!("volume record: unknown flags {flags:#x}")));
                }
                meta.history_from = r.u64()?;
                if flags & 1 != 0 {
                    meta.max_bytes = Some(r.u64()?);
                }
                if flags & 2 != 0 {
                    meta.retention_ms = Some(r.u64()?);
                }
                if flags & 4 != 0 {
                    let levels = r.u8()?;
                    if levels == 0 {
                        return Err(corrupt("volume record: an empty fork chain"));
                    }
                    for _ in 0..levels {
                        meta.base.push(Level {
                            id: r.u64()?,
                            version: r.u64()?,
                        });
                    }
                }
                if meta.retention_ms.is_none()
                    && meta.history_from == meta.head
                    && meta.base.is_empty()
                {
                    // Formats 1 and 2 say this; one meaning, one encoding.
                    return Err(corrupt("volume record: a legacy row in the history format"));
                }
            }
            _ => meta.history_from = meta.head,
        }
        r.end()?;
        Ok(meta)
    }

    /// The retention that applies.
    pub(super) fn retention(&self) -> u64 {
        self.retention_ms.unwrap_or(DEFAULT_RETENTION_MS)
    }
}

pub(super) fn kind_code(kind: NodeKind) -> u8 {
    match kind {
        NodeKind::File => 0,
        NodeKind::Dir => 1,
        NodeKind::Symlink => 2,
    }
}

pub(super) fn encode_node(node: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT);
    out.push(kind_code(node.kind));
    let flags = u8::from(node.blob.is_some()) | (u8::from(node.target.is_some()) << 1);
    out.push(flags);
    out.extend_from_slice(&node.size.to_be_bytes());
    out.extend_from_slice(&node.mtime_ms.to_be_bytes());
    out.extend_from_slice(&node.mode.to_be_bytes());
    if let Some(b) = &node.blob {
        out.extend_from_slice(&b.0);
    }
    if let Some(t) = &node.target {
        put_str(&mut out, t);
    }
    out
}

pub(super) fn decode_node(bytes: &[u8]) -> Result<Node, VolumeError> {
    let mut r = Reader::new(bytes, "node record");
    r.format()?;
    let kind = match r.u8()? {
        0 => NodeKind::File,
        1 => NodeKind::Dir,
        2 => NodeKind::Symlink,
        k => return Err(corrupt(format!("node record: unknown kind {k}"))),
    };
    let flags = r.u8()?;
    if flags & !0b11 != 0 {
        return Err(corrupt(format!("node record: unknown flags {flags:#x}")));
    }
    let size = r.u64()?;
    let mtime_ms = r.u64()?;
    let mode = r.u32()?;
    let blob = if flags & 1 != 0 {
        let mut id = [0u8; 32];
        id.copy_from_slice(r.take(32)?);
        Some(BlobId(id))
    } else {
        None
    };
    let target = if flags & 2 != 0 {
        Some(r.string()?)
    } else {
        None
    };
    r.end()?;
    Ok(Node {
        kind,
        blob,
        size,
        mtime_ms,
        mode,
        target,
    })
}

/// One entry of the commit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogRecord {
    pub(super) time_ms: u64,
    pub(super) changed: Vec<String>,
    pub(super) removed: Vec<String>,
    /// The bytes of the files the commit created or replaced; `None` in
    /// records written before history (format 1), which had no such field.
    pub(super) bytes_added: Option<u64>,
}

/// The format of a log record that ends with `bytes_added`.
const LOG_FORMAT_BYTES: u8 = 2;

impl LogRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(if self.bytes_added.is_some() {
            LOG_FORMAT_BYTES
        } else {
            FORMAT
        });
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        for list in [&self.changed, &self.removed] {
            out.extend_from_slice(&u64::try_from(list.len()).unwrap_or(u64::MAX).to_be_bytes());
            for p in list {
                put_str(&mut out, p);
            }
        }
        if let Some(b) = self.bytes_added {
            out.extend_from_slice(&b.to_be_bytes());
        }
        out
    }

    /// The commit time alone, without decoding the path lists (a
    /// commit of 50,000 files has a record of 50,000 paths).
    pub(super) fn time_of(bytes: &[u8]) -> Result<u64, VolumeError> {
        let mut r = Reader::new(bytes, "log record");
        let format = r.u8()?;
        if format != FORMAT && format != LOG_FORMAT_BYTES {
            return Err(corrupt(format!("log record: unknown format {format}")));
        }
        r.u64()
    }

    /// Time, path counts and bytes added, skipping over the paths
    /// without copying them: what a history listing shows.
    pub(super) fn summary_of(bytes: &[u8]) -> Result<(u64, u64, u64, u64), VolumeError> {
        let mut r = Reader::new(bytes, "log record");
        let format = r.u8()?;
        if format != FORMAT && format != LOG_FORMAT_BYTES {
            return Err(corrupt(format!("log record: unknown format {format}")));
        }
        let time_ms = r.u64()?;
        let mut counts = [0u64; 2];
        for count in &mut counts {
            *count = r.u64()?;
            for _ in 0..*count {
                let n = usize::try_from(r.u32()?).map_err(corrupt)?;
                r.take(n)?;
            }
        }
        let bytes_added = if format == LOG_FORMAT_BYTES {
            r.u64()?
        } else {
            0
        };
        r.end()?;
        Ok((time_ms, counts[0], counts[1], bytes_added))
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, VolumeError> {
        let mut r = Reader::new(bytes, "log record");
        let format = r.u8()?;
        if format != FORMAT && format != LOG_FORMAT_BYTES {
            return Err(corrupt(format!("log record: unknown format {format}")));
        }
        let time_ms = r.u64()?;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = r.u64()?;
            for _ in 0..n {
                list.push(r.string()?);
            }
        }
        let bytes_added = if format == LOG_FORMAT_BYTES {
            Some(r.u64()?)
        } else {
            None
        };
        r.end()?;
        let [changed, removed] = lists;
        Ok(LogRecord {
            time_ms,
            changed,
            removed,
            bytes_added,
        })
    }
}

/// Decodes `bytes` as the stored volume record of kind `kind` (0: a
/// volume's row, 1: a node, 2: a commit log entry, 3: a node key) and, when
/// it decodes, checks that encoding it again gives the same bytes. `Ok`
/// says whether it decoded (a refusal is a clean `Corrupt` error); `Err`
/// is a broken round trip. For the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn check_stored_record(kind: u8, bytes: &[u8]) -> Result<bool, String> {
    let round = |what: &str, again: Vec<u8>| {
        if again == bytes {
            Ok(true)
        } else {
            Err(format!("a {what} does not encode back to its bytes"))
        }
    };
    let refused = |e: VolumeError| match e {
        VolumeError::Corrupt(m) if !m.is_empty() => Ok(false),
        other => Err(format!("a bad record is not `Corrupt`: {other}")),
    };
    match kind {
        0 => Meta::decode(bytes).map_or_else(refused, |m| round("volume row", m.encode())),
        1 => decode_node(bytes).map_or_else(refused, |n| round("node", encode_node(&n))),
        2 => LogRecord::decode(bytes).map_or_else(refused, |r| round("log entry", r.encode())),
        _ => match (split_key(bytes), key_path(bytes)) {
            (Ok((id, _)), Ok(path)) => round("node key", node_key(id, &path)),
            (Err(e), _) | (_, Err(e)) => refused(e),
        },
    }
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    // Paths are at most 4096 bytes (normalize_path), symlink targets are
    // bounded by the same check upstream; u32 is plenty.
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked cursor over a stored record.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], VolumeError> {
        if self.bytes.len() < n {
            return Err(corrupt(format!("{} is truncated", self.what)));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    pub(super) fn u8(&mut self) -> Result<u8, VolumeError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    pub(super) fn u32(&mut self) -> Result<u32, VolumeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }
    pub(super) fn u64(&mut self) -> Result<u64, VolumeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    pub(super) fn string(&mut self) -> Result<String, VolumeError> {
        let n = usize::try_from(self.u32()?).map_err(corrupt)?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt(format!("{}: bad UTF-8", self.what)))
    }
    pub(super) fn format(&mut self) -> Result<(), VolumeError> {
        match self.u8()? {
            FORMAT => Ok(()),
            f => Err(corrupt(format!("{}: unknown format {f}", self.what))),
        }
    }
    pub(super) fn end(&self) -> Result<(), VolumeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(corrupt(format!("{} has trailing bytes", self.what)))
        }
    }
}

pub(super) fn node_key(id: u64, path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + path.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(path.as_bytes());
    k
}

/// The key prefix of everything strictly under directory `dir`.
pub(super) fn subtree_prefix(id: u64, dir: &str) -> Vec<u8> {
    let mut k = node_key(id, dir);
    if !dir.is_empty() {
        k.push(b'/');
    }
    k
}

pub(super) fn log_key(id: u64, version: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    let (a, b) = k.split_at_mut(8);
    a.copy_from_slice(&id.to_be_bytes());
    b.copy_from_slice(&version.to_be_bytes());
    k
}

/// The `volume_history` key family of history rows by path.
const BY_PATH: u8 = 1;
/// The family of the same rows by version.
const BY_VERSION: u8 = 2;
/// The key of a volume's floor: no version below it is kept (gc moved it).
const FLOOR: u8 = 3;

/// The family of a fork's hidden rows (see
/// [`crate::storage::volume::fork`]): `id ++ 4 ++ path` → nothing.
const HIDDEN: u8 = 4;

/// The key of `path`'s hidden row in fork `id`.
pub(super) fn hidden_key(id: u64, path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + path.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.push(HIDDEN);
    k.extend_from_slice(path.as_bytes());
    k
}

/// The prefix of the hidden rows of fork `id` strictly under `dir`.
pub(super) fn hidden_subtree_prefix(id: u64, dir: &str) -> Vec<u8> {
    let mut k = hidden_key(id, dir);
    if !dir.is_empty() {
        k.push(b'/');
    }
    k
}

/// The path of a hidden row's key.
pub(super) fn split_hidden_key(key: &[u8]) -> Result<String, VolumeError> {
    let (_, rest) = split_key(key)?;
    let rest = rest
        .strip_prefix(&[HIDDEN])
        .ok_or_else(|| corrupt("a hidden key is malformed"))?;
    String::from_utf8(rest.to_vec()).map_err(|_| corrupt("a hidden path is not UTF-8"))
}

/// A history row's key by path: `id ++ 1 ++ path ++ 0 ++ until`. Paths
/// hold no NUL, so a path's rows are contiguous and sorted by `until`,
/// and they sort before those of its descendants (`/` > NUL).
pub(super) fn history_key(id: u64, path: &str, until: u64) -> Vec<u8> {
    let mut k = history_path_prefix(id, path);
    k.extend_from_slice(&until.to_be_bytes());
    k
}

/// The prefix of every history row of `path` (by path).
pub(super) fn history_path_prefix(id: u64, path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(18 + path.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.push(BY_PATH);
    k.extend_from_slice(path.as_bytes());
    k.push(0);
    k
}

/// The prefix of the history rows (by path) of everything strictly under
/// directory `dir`.
pub(super) fn history_subtree_prefix(id: u64, dir: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + dir.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.push(BY_PATH);
    k.extend_from_slice(dir.as_bytes());
    if !dir.is_empty() {
        k.push(b'/');
    }
    k
}

/// Splits a history key by path into the path and `until`.
pub(super) fn split_history_key(key: &[u8]) -> Result<(String, u64), VolumeError> {
    let bad = || corrupt("a history key is malformed");
    let (_, rest) = split_key(key)?;
    let rest = rest.strip_prefix(&[BY_PATH]).ok_or_else(bad)?;
    if rest.len() < 9 {
        return Err(bad());
    }
    let (path, tail) = rest.split_at(rest.len() - 9);
    let (nul, until) = tail.split_at(1);
    if nul != [0] {
        return Err(bad());
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(until);
    let path = String::from_utf8(path.to_vec()).map_err(|_| bad())?;
    Ok((path, u64::from_be_bytes(b)))
}

/// A history row's key by version: `id ++ 2 ++ until ++ path`.
pub(super) fn history_version_key(id: u64, until: u64, path: &str) -> Vec<u8> {
    let mut k = history_version_prefix(id, until);
    k.extend_from_slice(path.as_bytes());
    k
}

/// The start of version `until`'s rows (by version).
pub(super) fn history_version_prefix(id: u64, until: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.extend_from_slice(&id.to_be_bytes());
    k.push(BY_VERSION);
    k.extend_from_slice(&until.to_be_bytes());
    k
}

/// Splits a history key by version into `until` and the path.
pub(super) fn split_version_key(key: &[u8]) -> Result<(u64, String), VolumeError> {
    let bad = || corrupt("a history key is malformed");
    let (_, rest) = split_key(key)?;
    let rest = rest.strip_prefix(&[BY_VERSION]).ok_or_else(bad)?;
    if rest.len() < 8 {
        return Err(bad());
    }
    let (until, path) = rest.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(until);
    let path = String::from_utf8(path.to_vec()).map_err(|_| bad())?;
    Ok((u64::from_be_bytes(b), path))
}

/// The key of volume `id`'s floor.
pub(super) fn floor_key(id: u64) -> [u8; 9] {
    let mut k = [FLOOR; 9];
    if let Some(head) = k.get_mut(..8) {
        head.copy_from_slice(&id.to_be_bytes());
    }
    k
}

/// A history row's value: empty when the path was absent.
pub(super) fn encode_history(node: Option<&Node>) -> Vec<u8> {
    node.map(encode_node).unwrap_or_default()
}

pub(super) fn decode_history(bytes: &[u8]) -> Result<Option<Node>, VolumeError> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        decode_node(bytes).map(Some)
    }
}

/// Splits a `volume_nodes`/`volume_log` key into its volume id and the rest.
pub(super) fn split_key(key: &[u8]) -> Result<(u64, &[u8]), VolumeError> {
    if key.len() < 8 {
        return Err(corrupt("a volume key is shorter than its id"));
    }
    let (id, rest) = key.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(id);
    Ok((u64::from_be_bytes(b), rest))
}

pub(super) fn key_path(key: &[u8]) -> Result<String, VolumeError> {
    let (_, rest) = split_key(key)?;
    String::from_utf8(rest.to_vec()).map_err(|_| corrupt("a stored path is not UTF-8"))
}

// ---------------------------------------------------------------------------
