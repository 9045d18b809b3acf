//! Reads of files under a mount, for the WASI layer (`super::wasi`).
//!
//! wasmtime-wasi's generic file stream reads at most 64 KiB at a time, into
//! a zeroed buffer, on a blocking-pool thread; a guest reading a large file
//! from a mount then runs at about a third of native speed. Mounted files
//! are local files (hard links of blobs, or private copies), so their reads
//! are done here instead: up to [`MAX_READ`] bytes per call into a buffer
//! that is not zeroed first, on the calling thread, the trade-off
//! wasmtime-wasi's own `allow_blocking_current_thread` makes for files; and
//! the WASI layer hands the buffer to the guest as it is. A store's calls
//! are sequential, so nothing else moves the file's cursor between the seek
//! and the read (wasmtime-wasi itself never uses the cursor: it reads and
//! writes at explicit offsets).
//!
//! A stream of a stored blob linked into the mount (a file the guest has
//! not copied up) reads from a memory map of it instead, and hands the
//! guest slices of the map: the canonical ABI's copy into guest memory is
//! then the only copy on the host. A blob is safe to map: its bytes never
//! change (guests write private copies, the store never rewrites a blob,
//! and garbage collection only unlinks it, which leaves a map valid).
//!
//! What is left is the copy into guest memory (the canonical ABI's) and,
//! for guests reading through wasi-libc, one more inside the guest.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use memmap2::Mmap;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    Descriptor, ErrorCode, Host as _, HostDescriptor,
};
use wasmtime_wasi::p2::bindings::io::streams::{
    Host as _, HostInputStream, StreamError as WitStreamError,
};
use wasmtime_wasi::p2::{DynInputStream, InputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiView, async_trait};

use super::VolumeView;
use super::wasi::{FsFuture, TYPES};

/// Most bytes one read returns (a guest asking for more gets this much, and
/// asks again). Small enough that the buffer stays in the CPU cache between
/// the kernel's copy into it and the copy into guest memory: on the
/// benchmark machine a guest reading with a 1 MiB buffer runs at 0.4 of
/// native with 4 MiB pieces and at 0.6 with 128 to 256 KiB ones.
pub(crate) const MAX_READ: usize = 256 << 10;

/// Reads up to `len` bytes (at most [`MAX_READ`]) of `file` from `offset`.
/// An empty result is the end of the file.
pub(crate) fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let want = usize::try_from(len).unwrap_or(MAX_READ).min(MAX_READ);
    let mut buf = Vec::with_capacity(want);
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    // `read_to_end` on a `Take<&File>` reads into the spare capacity
    // without initialising it first.
    f.take(want as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Where a `read-via-stream` of a mounted file is: shared by the stream
/// object in the resource table and the fast path of the WASI layer's
/// `input-stream` shadows (which return the bytes without going through
/// `Bytes`).
#[derive(Debug)]
pub(crate) struct StreamState {
    file: Arc<File>,
    /// The file mapped, when it is a stored blob.
    map: Option<Arc<Mmap>>,
    position: AtomicU64,
}

/// Part of a mapped blob, handed to the guest without a copy.
struct MappedSlice {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for MappedSlice {
    fn as_ref(&self) -> &[u8] {
        self.map.get(self.start..self.end).unwrap_or_default()
    }
}

/// Maps `file`, a stored blob (see the module docs). `None` when it cannot
/// be mapped (an empty file, or the system refuses): reads then copy.
pub(crate) fn map_blob(file: &File) -> Option<Arc<Mmap>> {
    if file.metadata().ok()?.len() == 0 {
        return None;
    }
    // SAFETY: the file is a stored blob, whose bytes and length never
    // change while it exists (see the module docs); a map of it is
    // therefore never invalidated under a reader.
    let map = unsafe { memmap2::MmapOptions::new().map(file) }.ok()?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(Arc::new(map))
}

impl StreamState {
    /// The next up to `size` bytes; `Closed` at the end of the file.
    pub(crate) fn read(&self, size: u64) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        let position = self.position.load(Ordering::Relaxed);
        let buf = match &self.map {
            Some(map) => {
                let start = usize::try_from(position)
                    .unwrap_or(usize::MAX)
                    .min(map.len());
                let want = usize::try_from(size).unwrap_or(MAX_READ).min(MAX_READ);
                let end = start.saturating_add(want).min(map.len());
                Bytes::from_owner(MappedSlice {
                    map: map.clone(),
                    start,
                    end,
                })
            }
            None => Bytes::from(read_at(&self.file, position, size).map_err(failed)?),
        };
        if buf.is_empty() {
            return Err(StreamError::Closed);
        }
        self.position
            .store(position + buf.len() as u64, Ordering::Relaxed);
        Ok(buf)
    }

    fn skip(&self, size: u64) -> StreamResult<u64> {
        let len = self.file.metadata().map_err(failed)?.len();
        let position = self.position.load(Ordering::Relaxed);
        if size > 0 && position >= len {
            return Err(StreamError::Closed);
        }
        let skipped = size.min(len.saturating_sub(position));
        self.position.store(position + skipped, Ordering::Relaxed);
        Ok(skipped)
    }
}

/// `read-via-stream` of a file under a mount: the object in the resource
/// table.
pub(crate) struct MountReadStream {
    state: Arc<StreamState>,
}

impl MountReadStream {
    /// A stream of `file` from `position`, and its state for the fast path;
    /// `map` is the file mapped, when it is a stored blob ([`map_blob`]).
    pub(crate) fn new(
        file: Arc<File>,
        map: Option<Arc<Mmap>>,
        position: u64,
    ) -> (Self, Arc<StreamState>) {
        let state = Arc::new(StreamState {
            file,
            map,
            position: AtomicU64::new(position),
        });
        (
            MountReadStream {
                state: state.clone(),
            },
            state,
        )
    }
}

fn failed(e: io::Error) -> StreamError {
    StreamError::LastOperationFailed(e.into())
}

#[async_trait]
impl Pollable for MountReadStream {
    /// A local file always has data (or its end) ready.
    async fn ready(&mut self) {}
}

#[async_trait]
impl InputStream for MountReadStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.state.read(size as u64)
    }

    fn skip(&mut self, size: usize) -> StreamResult<usize> {
        let skipped = self.state.skip(size as u64)?;
        Ok(usize::try_from(skipped).unwrap_or(size))
    }
}

/// The version of `wasi:io/streams` that wasmtime-wasi 48 defines.
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// Shadows the reads of files under a mount: `read-via-stream` and `read`
/// of such a file, and the input-stream reads of the streams made here.
/// Called by [`super::add_filesystem_to_linker`] with shadowing allowed.
pub(crate) fn add_to_linker<T: WasiView + VolumeView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    {
        // Reads of streams of mounted files: the bytes as read, without the
        // `Bytes` round trip of the generic path.
        let mut inst = linker.instance(STREAMS)?;
        for (name, blocking) in [
            ("[method]input-stream.blocking-read", true),
            ("[method]input-stream.read", false),
        ] {
            inst.func_wrap_async(
                name,
                move |mut store: StoreContextMut<'_, T>,
                      (stream, len): (Resource<DynInputStream>, u64)| {
                    Box::new(async move {
                        let view = store.data_mut().volume();
                        let fast = view
                            .ctx
                            .streams
                            .get(&stream.rep())
                            .and_then(std::sync::Weak::upgrade);
                        let read = match fast {
                            Some(state) => state.read(len),
                            None if blocking => view
                                .table
                                .blocking_read(stream, len)
                                .await
                                .map(bytes::Bytes::from),
                            None => HostInputStream::read(view.table, stream, len)
                                .map(bytes::Bytes::from),
                        };
                        match read {
                            Ok(bytes) => Ok((Ok(bytes),)),
                            Err(e) => Ok((Err(view.table.convert_stream_error(e)?),)),
                        }
                    })
                        as Box<
                            dyn Future<
                                    Output = wasmtime::Result<(
                                        Result<bytes::Bytes, WitStreamError>,
                                    )>,
                                > + Send
                                + '_,
                        >
                },
            )?;
        }
    }
    let mut inst = linker.instance(TYPES)?;
    inst.func_wrap(
        "[method]descriptor.read-via-stream",
        |mut store: StoreContextMut<'_, T>, (fd, offset): (Resource<Descriptor>, u64)| {
            let view = store.data_mut().volume();
            if let Some(mount) = view.ctx.open_fd(view.table, fd.rep()).map(|o| o.mount) {
                let file = match view.table.get(&fd)? {
                    wasmtime_wasi::filesystem::Descriptor::File(f) => f.file.clone(),
                    wasmtime_wasi::filesystem::Descriptor::Dir(_) => {
                        return Ok((Err(ErrorCode::IsDirectory),));
                    }
                };
                let map = view
                    .ctx
                    .mounts
                    .get(mount)
                    .filter(|m| m.is_linked_blob(&file))
                    .and_then(|_| map_blob(&file));
                let (stream, state) = MountReadStream::new(file, map, offset);
                let stream: DynInputStream = Box::new(stream);
                let stream = view.table.push(stream)?;
                view.ctx.streams.retain(|_, s| s.strong_count() > 0);
                view.ctx
                    .streams
                    .insert(stream.rep(), Arc::downgrade(&state));
                return Ok((Ok(stream),));
            }
            let mut fs = store.data_mut().filesystem();
            match fs.read_via_stream(fd, offset) {
                Ok(stream) => Ok((Ok(stream),)),
                Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
            }
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.read",
        |mut store: StoreContextMut<'_, T>, (fd, len, offset): (Resource<Descriptor>, u64, u64)| {
            Box::new(async move {
                let view = store.data_mut().volume();
                if view.ctx.open_fd(view.table, fd.rep()).is_some() {
                    let file = match view.table.get(&fd)? {
                        wasmtime_wasi::filesystem::Descriptor::File(f) => f.file.clone(),
                        wasmtime_wasi::filesystem::Descriptor::Dir(_) => {
                            return Ok((Err(ErrorCode::BadDescriptor),));
                        }
                    };
                    return Ok((match read_at(&file, offset, len) {
                        Ok(buf) => {
                            let end = buf.is_empty();
                            Ok((buf, end))
                        }
                        Err(e) => Err(ErrorCode::from(e)),
                    },));
                }
                let mut fs = store.data_mut().filesystem();
                match fs.read(fd, len, offset).await {
                    Ok(read) => Ok((Ok(read),)),
                    Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                }
            }) as FsFuture<'_, (Vec<u8>, bool)>
        },
    )?;

    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn reads_in_pieces_to_the_end_and_skips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..MAX_READ + 10).map(|i| (i % 253) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let file = Arc::new(File::open(&p).unwrap());
        let (mut s, state) = MountReadStream::new(file.clone(), None, 0);
        assert!(s.read(0).unwrap().is_empty());
        let first = s.read(usize::MAX).unwrap();
        assert_eq!(first.len(), MAX_READ, "one read is capped");
        assert_eq!(&first[..], &data[..MAX_READ]);
        assert_eq!(s.skip(4).unwrap(), 4);
        assert_eq!(&s.read(100).unwrap()[..], &data[MAX_READ + 4..]);
        assert!(matches!(s.read(1), Err(StreamError::Closed)));
        assert!(matches!(s.skip(1), Err(StreamError::Closed)));
        assert!(matches!(state.read(1), Err(StreamError::Closed)));
        // Another reader of the same file keeps its own position; the
        // stream object and its state are one.
        let (mut t, state) = MountReadStream::new(file.clone(), None, 3);
        assert_eq!(state.read(1).unwrap(), &data[3..4]);
        t.skip(0).unwrap();
        assert_eq!(&t.read(1).unwrap()[..], &data[4..5]);
        let (mut t, _) = MountReadStream::new(file.clone(), None, 3);
        assert_eq!(&t.read(2).unwrap()[..], &data[3..5]);
        assert_eq!(read_at(&file, 5, 3).unwrap(), &data[5..8]);
        assert!(read_at(&file, data.len() as u64, 3).unwrap().is_empty());
    }

    #[test]
    fn mapped_reads_match_copied_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        let data: Vec<u8> = (0..2 * MAX_READ + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let file = Arc::new(File::open(&p).unwrap());
        let map = map_blob(&file).unwrap();
        let (mut s, state) = MountReadStream::new(file.clone(), Some(map), 5);
        let mut got = data[..5].to_vec();
        loop {
            match s.read(usize::MAX) {
                Ok(b) => {
                    assert!(b.len() <= MAX_READ);
                    got.extend_from_slice(&b);
                }
                Err(StreamError::Closed) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(got, data);
        assert!(matches!(state.read(1), Err(StreamError::Closed)));
        // An empty file is not mapped; its reads end at once.
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(map_blob(&File::open(&empty).unwrap()).is_none());
    }
}
