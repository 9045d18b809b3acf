//! The log's on-disk format: records of writes, framed with their sequence
//! number and a checksum; encoding, decoding, replay after a crash and the
//! fuzzers' check.

use super::*;

/// One write as a record holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawOp<'a> {
    pub(super) tree: &'a [u8],
    pub(super) key: &'a [u8],
    pub(super) value: Option<&'a [u8]>,
}

pub(super) fn encode(seq: u64, ops: &[Op]) -> Vec<u8> {
    let names: Vec<IVec> = ops.iter().map(|op| op.tree.name()).collect();
    let raw: Vec<RawOp<'_>> = ops
        .iter()
        .zip(&names)
        .map(|(op, name)| RawOp {
            tree: name,
            key: &op.key,
            value: op.value.as_deref(),
        })
        .collect();
    encode_raw(seq, &raw)
}

pub(super) fn encode_raw(seq: u64, ops: &[RawOp<'_>]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| 2 + op.tree.len() + 4 + op.key.len() + 1 + op.value.map_or(0, |v| 8 + v.len()))
        .sum();
    let mut out = Vec::with_capacity(HEADER + 4 + size);
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&(ops.len() as u32).to_be_bytes());
    for op in ops {
        out.extend_from_slice(&(op.tree.len() as u16).to_be_bytes());
        out.extend_from_slice(op.tree);
        out.extend_from_slice(&(op.key.len() as u32).to_be_bytes());
        out.extend_from_slice(op.key);
        match op.value {
            None => out.push(TAG_REMOVE),
            Some(v) => {
                out.push(TAG_SET);
                out.extend_from_slice(&(v.len() as u64).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    let payload_len = (out.len() - HEADER) as u64;
    let payload = out.get(HEADER..).unwrap_or_default();
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(&payload_len.to_be_bytes());
    header.extend_from_slice(&seq.to_be_bytes());
    header.extend_from_slice(&checksum(seq, payload).to_be_bytes());
    if let Some(h) = out.get_mut(..HEADER) {
        h.copy_from_slice(&header);
    }
    out
}

pub(super) fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_be_bytes());
    crc.update(payload);
    crc.finalize()
}

/// A cursor over a record's bytes; `None` once they run out.
pub(super) struct Reader<'a> {
    pub(super) b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }

    pub(super) fn n<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

/// One framed record of a log file, its checksum not yet trusted.
pub(super) struct Frame<'a> {
    pub(super) seq: u64,
    pub(super) intact: bool,
    pub(super) payload: &'a [u8],
}

/// The frames of a log file, in order, up to where a frame's length runs
/// past the end (zeros ahead of the records frame as empty payloads that
/// fail their checksum).
pub(super) fn frames(bytes: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    let mut r = Reader { b: bytes };
    std::iter::from_fn(move || {
        let header = r.n::<HEADER>()?;
        let (len, rest) = header.split_at(8);
        let (seq, crc) = rest.split_at(8);
        let payload = r.take(usize::try_from(u64_of(len)?).ok()?)?;
        let seq = u64_of(seq)?;
        let intact = u32::from_be_bytes(crc.try_into().ok()?) == checksum(seq, payload);
        Some(Frame {
            seq,
            intact,
            payload,
        })
    })
}

/// Applies the records of one log file whose numbers follow `applied`;
/// returns the last applied, and whether the file held any record at all
/// (applied before or not, sled may not have it durably).
pub(super) fn replay(
    db: &sled::Db,
    state: &Tree,
    bytes: &[u8],
    mut applied: u64,
) -> io::Result<(u64, bool)> {
    let before = applied;
    let mut any = false;
    for frame in frames(bytes) {
        // A torn or unsynced record ends the file's records.
        if !frame.intact {
            break;
        }
        any = true;
        if frame.seq <= applied {
            continue;
        }
        if frame.seq != applied.saturating_add(1) {
            break;
        }
        let Some(raw) = decode(frame.payload) else {
            // A record that checks out but does not parse: not ours.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("dict log record {} is malformed", frame.seq),
            ));
        };
        let mut trees: HashMap<&[u8], Tree> = HashMap::new();
        let mut ops = Vec::with_capacity(raw.len());
        for op in raw {
            let tree = match trees.get(op.tree) {
                Some(t) => t.clone(),
                None => {
                    let t = db.open_tree(op.tree).map_err(to_io)?;
                    trees.insert(op.tree, t.clone());
                    t
                }
            };
            ops.push(Op {
                tree,
                key: IVec::from(op.key),
                value: op.value.map(IVec::from),
            });
        }
        apply_ops(&ops)?;
        applied = frame.seq;
    }
    if applied != before {
        mark(state, applied)?;
    }
    Ok((applied, any))
}

/// A record's writes; `None` unless `payload` is exactly a record's.
pub(super) fn decode(payload: &[u8]) -> Option<Vec<RawOp<'_>>> {
    let mut r = Reader { b: payload };
    let count = u32::from_be_bytes(r.n::<4>()?);
    let mut ops = Vec::new();
    for _ in 0..count {
        let tree = r
            .n::<2>()
            .and_then(|n| r.take(usize::from(u16::from_be_bytes(n))))?;
        let key = r
            .n::<4>()
            .and_then(|n| r.take(u32::from_be_bytes(n) as usize))?;
        let value = match r.n::<1>()? {
            [TAG_REMOVE] => None,
            [TAG_SET] => Some(
                r.n::<8>()
                    .and_then(|n| usize::try_from(u64::from_be_bytes(n)).ok())
                    .and_then(|n| r.take(n))?,
            ),
            _ => return None,
        };
        ops.push(RawOp { tree, key, value });
    }
    r.b.is_empty().then_some(ops)
}

/// Frames `bytes` as a log file and decodes every frame, trusted or not;
/// a frame that decodes must encode back to its bytes. `Ok` is how many
/// decoded; `Err` is a broken round trip. For the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub fn check_log(bytes: &[u8]) -> Result<usize, String> {
    let mut decoded = 0;
    for frame in frames(bytes) {
        let Some(ops) = decode(frame.payload) else {
            continue;
        };
        let again = encode_raw(frame.seq, &ops);
        if again.get(HEADER..) != Some(frame.payload) {
            return Err(format!(
                "record {} does not encode back to its bytes",
                frame.seq
            ));
        }
        let reframed = frames(&again)
            .next()
            .map(|f| (f.seq, f.intact, f.payload.len()));
        if reframed != Some((frame.seq, true, frame.payload.len())) {
            return Err(format!("record {} does not frame back", frame.seq));
        }
        decoded += 1;
    }
    Ok(decoded)
}
