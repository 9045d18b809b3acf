//! Byte quotas at upload: a batch upload stops reading as soon as the files
//! it holds could no longer fit under the volume's quota, instead of
//! storing a blob its commit would refuse.
//!
//! The exact check is the commit's (`storage::volume`): a batch's files all
//! exist after its commit, so their sizes alone passing the quota mean the
//! commit would fail whatever else the volume holds. An upload stopped here
//! reports the size it had reached as a lower bound (`at_least`).

use std::io::{self, Read};

use crate::storage::blobs::BlobId;
use crate::storage::volume::VolumeError;

/// The quota a batch streams its files against.
#[derive(Debug, Clone)]
pub(crate) struct UploadQuota {
    volume: String,
    max_bytes: Option<u64>,
    /// Bytes of the files the batch holds so far.
    planned: u64,
}

impl UploadQuota {
    pub(crate) fn new(volume: &str, max_bytes: Option<u64>) -> Self {
        UploadQuota {
            volume: volume.to_owned(),
            max_bytes,
            planned: 0,
        }
    }

    /// Runs `store` (a blob put) on `reader`, cut off with `OverQuota` once
    /// the batch's bytes pass the quota; counts the stored size.
    pub(crate) fn stream(
        &mut self,
        reader: &mut dyn Read,
        store: impl FnOnce(&mut dyn Read) -> Result<(BlobId, u64), VolumeError>,
    ) -> Result<(BlobId, u64), VolumeError> {
        let Some(max) = self.max_bytes else {
            let (id, size) = store(reader)?;
            self.planned = self.planned.saturating_add(size);
            return Ok((id, size));
        };
        let mut capped = Capped {
            inner: reader,
            room: max.saturating_sub(self.planned),
            read: 0,
            over: false,
        };
        match store(&mut capped) {
            Ok((id, size)) => {
                self.planned = self.planned.saturating_add(size);
                Ok((id, size))
            }
            Err(_) if capped.over => Err(VolumeError::OverQuota {
                volume: self.volume.clone(),
                max_bytes: max,
                would_be: self.planned.saturating_add(capped.read),
                at_least: true,
            }),
            Err(e) => Err(e),
        }
    }
}

/// A reader that fails once more than `room` bytes came through it.
struct Capped<'a> {
    inner: &'a mut dyn Read,
    room: u64,
    read: u64,
    over: bool,
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never more than one byte past the room: enough to know.
        let left = self.room.saturating_sub(self.read).saturating_add(1);
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.room {
            self.over = true;
            return Err(io::Error::other(format!(
                "more than {} bytes: over the volume's quota",
                self.room
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn drain(r: &mut dyn Read) -> Result<(BlobId, u64), VolumeError> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)
            .map_err(|e| VolumeError::Io(e.to_string()))?;
        Ok((BlobId::of(&v), v.len() as u64))
    }

    #[test]
    fn an_upload_stops_once_the_batch_passes_the_quota() {
        let mut q = UploadQuota::new("v", Some(10));
        assert_eq!(q.stream(&mut &[1u8; 6][..], drain).unwrap().1, 6);
        // 6 + 4 fits exactly; one more byte does not.
        assert_eq!(q.stream(&mut &[2u8; 4][..], drain).unwrap().1, 4);
        match q.stream(&mut &[3u8; 1000][..], drain) {
            Err(VolumeError::OverQuota {
                max_bytes: 10,
                would_be: 11,
                at_least: true,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // Without a quota nothing is cut.
        let mut q = UploadQuota::new("v", None);
        assert_eq!(
            q.stream(&mut &[0u8; 1 << 16][..], drain).unwrap().1,
            1 << 16
        );
    }
}
