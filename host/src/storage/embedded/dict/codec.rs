//! The embedded dicts' record encodings: a dict's meta record, an entry's
//! header (version, expiry) before its value, and leases.
//!
//! An entry holds its value inline (format byte [`FORMAT`]) or, from
//! [`EXTERNAL_VALUE_BYTES`] up, the id and size of a blob in the store's
//! blob folder ([`FORMAT_EXTERNAL`]): sled then never holds a large value,
//! so its recovery, cache and log stay small, and refreshing an entry's
//! access time rewrites 65 bytes, not the value.

use super::*;

/// A dict's record in the meta tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) created_ms: u64,
    /// The last version or fencing token handed out.
    pub(super) counter: u64,
    /// Entries stored, expired-but-unpurged ones included.
    pub(super) live: u64,
    pub(super) data_id: u64,
    pub(super) lease_id: u64,
    pub(super) deleted: bool,
}

impl Meta {
    const LEN: usize = 42;

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(FORMAT);
        for n in [
            self.created_ms,
            self.counter,
            self.live,
            self.data_id,
            self.lease_id,
        ] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.push(u8::from(self.deleted));
        out
    }

    pub(super) fn decode(name: &str, b: &[u8]) -> Result<Meta, DictError> {
        let corrupt = || DictError::Corrupt(format!("the record of dict `{name}` is malformed"));
        if b.len() != Self::LEN || b.first() != Some(&FORMAT) {
            return Err(corrupt());
        }
        let n = |i: usize| be(b, 1 + 8 * i).ok_or_else(corrupt);
        Ok(Meta {
            created_ms: n(0)?,
            counter: n(1)?,
            live: n(2)?,
            data_id: n(3)?,
            lease_id: n(4)?,
            deleted: match b.get(41) {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(corrupt()),
            },
        })
    }

    pub(super) fn next_counter(&mut self, name: &str) -> Result<u64, DictError> {
        self.counter = self.counter.checked_add(1).ok_or_else(|| {
            DictError::Corrupt(format!("the version counter of dict `{name}` is exhausted"))
        })?;
        Ok(self.counter)
    }
}

/// The fixed part of a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) version: u64,
    /// Last read or write that was recorded (ms).
    pub(super) access: u64,
    /// Explicit expiry (ms); 0 = on the idle clock.
    pub(super) deadline: u64,
}

impl Header {
    pub(super) fn decode(key: &[u8], b: &[u8]) -> Result<Header, DictError> {
        let corrupt = || {
            DictError::Corrupt(format!(
                "the entry for key `{}` is malformed",
                String::from_utf8_lossy(key)
            ))
        };
        let ok = match b.first() {
            Some(&FORMAT) => b.len() >= ENTRY_HEADER,
            Some(&FORMAT_EXTERNAL) => b.len() == ENTRY_HEADER + EXTERNAL_REF,
            _ => false,
        };
        if !ok {
            return Err(corrupt());
        }
        Ok(Header {
            version: be(b, 1).ok_or_else(corrupt)?,
            access: be(b, 9).ok_or_else(corrupt)?,
            deadline: be(b, 17).ok_or_else(corrupt)?,
        })
    }

    /// The entry holding `payload` (a value, or a blob's id and size).
    pub(super) fn encode_payload(&self, payload: &Payload<'_>) -> Vec<u8> {
        let (format, len) = match payload {
            Payload::Inline(v) => (FORMAT, v.len()),
            Payload::External { .. } => (FORMAT_EXTERNAL, EXTERNAL_REF),
        };
        let mut out = Vec::with_capacity(ENTRY_HEADER + len);
        out.push(format);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.access.to_be_bytes());
        out.extend_from_slice(&self.deadline.to_be_bytes());
        match payload {
            Payload::Inline(v) => out.extend_from_slice(v),
            Payload::External { id, size } => {
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&size.to_be_bytes());
            }
        }
        out
    }

    pub(super) fn expired(&self, now: u64, idle: u64) -> bool {
        expiry::expired(self.access, self.deadline, now, idle)
    }

    pub(super) fn needs_touch(&self, now: u64, idle: u64) -> bool {
        expiry::needs_touch(self.access, self.deadline, now, idle)
    }

    pub(super) fn index_key(&self, key: &[u8]) -> Vec<u8> {
        let (tag, t) = if self.deadline != 0 {
            (TAG_TTL, self.deadline)
        } else {
            (TAG_IDLE, self.access)
        };
        let mut out = Vec::with_capacity(9 + key.len());
        out.push(tag);
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(key);
        out
    }
}

/// The id and size of an external value, after the header.
const EXTERNAL_REF: usize = 40;
/// Values at least this large are kept in the blob folder.
pub(super) const EXTERNAL_VALUE_BYTES: usize = 256 << 10;

/// What an entry holds after its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Payload<'a> {
    Inline(&'a [u8]),
    External { id: BlobId, size: u64 },
}

impl Payload<'_> {
    /// The value's size in bytes.
    pub(super) fn size(&self) -> u64 {
        match self {
            Payload::Inline(v) => v.len() as u64,
            Payload::External { size, .. } => *size,
        }
    }
}

/// The payload of entry `b` (whose header decoded).
pub(super) fn payload_of(b: &[u8]) -> Payload<'_> {
    let rest = b.get(ENTRY_HEADER..).unwrap_or_default();
    if b.first() == Some(&FORMAT_EXTERNAL)
        && let (Some(id), Some(size)) = (rest.get(..32), be(rest, 32))
        && let Ok(id) = <[u8; 32]>::try_from(id)
    {
        return Payload::External {
            id: BlobId(id),
            size,
        };
    }
    Payload::Inline(rest)
}

/// A lease record: token and expiry.
pub(super) fn encode_lease(token: u64, expires: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    out.push(FORMAT);
    out.extend_from_slice(&token.to_be_bytes());
    out.extend_from_slice(&expires.to_be_bytes());
    out
}

pub(super) fn decode_lease(key: &str, b: &[u8]) -> Result<(u64, u64), DictError> {
    let corrupt = || DictError::Corrupt(format!("the lease record of key `{key}` is malformed"));
    if b.len() != 17 || b.first() != Some(&FORMAT) {
        return Err(corrupt());
    }
    Ok((be(b, 1).ok_or_else(corrupt)?, be(b, 9).ok_or_else(corrupt)?))
}

/// Decodes `bytes` as the stored dict record of kind `kind` (0: a dict's
/// row, 1: an entry, 2: a lease, 3: a counter's text) and, when it decodes,
/// checks that encoding it again gives the same bytes (counters have more
/// than one spelling, so only their parse is checked). `Ok` says whether
/// it decoded (a refusal is a clean error); `Err` is a broken round trip.
/// For the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn check_stored_record(kind: u8, bytes: &[u8]) -> Result<bool, String> {
    let round = |what: &str, again: Vec<u8>| {
        if again == bytes {
            Ok(true)
        } else {
            Err(format!("a {what} does not encode back to its bytes"))
        }
    };
    let refused = |e: DictError| match e {
        DictError::Corrupt(m) if !m.is_empty() => Ok(false),
        DictError::NotACounter { .. } => Ok(false),
        other => Err(format!("a bad record is not `Corrupt`: {other}")),
    };
    match kind {
        0 => Meta::decode("fuzz", bytes).map_or_else(refused, |m| round("dict row", m.encode())),
        1 => Header::decode(b"fuzz", bytes).map_or_else(refused, |h| {
            round("entry", h.encode_payload(&payload_of(bytes)))
        }),
        2 => decode_lease("fuzz", bytes)
            .map_or_else(refused, |(t, e)| round("lease", encode_lease(t, e))),
        _ => parse_counter("fuzz", bytes).map_or_else(refused, |n| {
            if parse_counter("fuzz", n.to_string().as_bytes()).ok() == Some(n) {
                Ok(true)
            } else {
                Err("a counter does not parse back".into())
            }
        }),
    }
}
