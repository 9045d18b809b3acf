//! Writes through `wasi:filesystem` descriptors, charged to the container's
//! disk budget (`super::disk`), and the one descriptor-level change that
//! could reach a stored blob. Shadowed here, for files in scratch and in
//! read-write mounts (host directories mounted with `vessel run --mount`
//! are left to wasmtime-wasi, uncharged):
//! - `write`: the bytes past the end of the file are charged first; a
//!   write that does not fit is cut at the budget, and one that cannot
//!   write a byte fails with `insufficient-space`;
//! - `set-size`: growth is charged (all or nothing), shrinking marks the
//!   budget stale;
//! - `write-via-stream` and `append-via-stream`: the stream is a
//!   [`BudgetedStream`], which charges each write the same way (and also
//!   covers `write-zeroes` and `splice`, which write through it);
//! - `set-times`: on a file of a read-write mount that still shares its
//!   inode (a stored blob, linked into every container mounting the volume
//!   and into the blob folder, whose mtimes garbage collection reads), the
//!   file is copied up and the descriptor moved to the copy first.
//!
//! The other descriptor-level changes cannot reach a blob: a descriptor of
//! a blob is opened read-only on the host (`open-at` copies up before any
//! open for writing), so `write` and `set-size` through it fail in the
//! kernel (EBADF, EINVAL); `advise` only hints the page cache, and
//! `sync`/`sync-data` only flush.
//!
//! Appends and streams run on the calling thread, as the reads of
//! `super::stream` do: a store's calls are sequential, so nothing else
//! grows the file between the size read for the charge and the write.

use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::sync::Arc;

use bytes::Bytes;
use cap_std::fs::{MetadataExt as _, OpenOptions};
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    Descriptor, ErrorCode, Host as _, HostDescriptor, NewTimestamp,
};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{OpenMode, WasiView, async_trait};

use super::disk::{DiskBudget, ENTRY_COST};
use super::wasi::{FsFuture, TYPES};
use super::{VolumeCtx, VolumeCtxView, VolumeView};

/// Most bytes one stream write may take (what `check-write` offers), as
/// wasmtime-wasi's own file streams.
const STREAM_CAPACITY: usize = 64 << 10;

/// Where a descriptor's file lies, for the disk budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The container's scratch `/`.
    Scratch,
    /// The working tree of read-write mount `.0`.
    Mount(usize),
    /// A host directory mount, or a read-only mount: not charged.
    Outside,
}

impl VolumeCtx {
    /// The scope of descriptor `fd`.
    pub(crate) fn scope(&self, table: &ResourceTable, fd: u32) -> Scope {
        match self.open_fd(table, fd) {
            Some(o) => match self.mounts.get(o.mount) {
                Some(m) if !m.read_only => Scope::Mount(o.mount),
                _ => Scope::Outside,
            },
            None if self.outside.contains(&fd) => Scope::Outside,
            None => Scope::Scratch,
        }
    }

    /// Whether `guest` is the guest path of a host-directory mount.
    pub(crate) fn is_dir_mount(&self, guest: &str) -> bool {
        let guest = guest.trim_end_matches('/');
        self.dir_mounts
            .iter()
            .any(|g| g.trim_end_matches('/') == guest)
    }

    /// Charges a scratch entry for `path` under directory descriptor `fd`
    /// if nothing is there yet (an `open-at` with `create`, which may as
    /// well open an existing file): the bytes charged, or
    /// `insufficient-space`. The look is through the descriptor's own
    /// capability, so it cannot see outside it.
    pub(crate) fn charge_new_entry(
        &self,
        table: &ResourceTable,
        fd: &Resource<Descriptor>,
        path: &str,
    ) -> Result<u64, ErrorCode> {
        if self.scope(table, fd.rep()) != Scope::Scratch {
            return Ok(0);
        }
        let Ok(wasmtime_wasi::filesystem::Descriptor::Dir(d)) = table.get(fd) else {
            return Ok(0);
        };
        let dir = d
            .dir
            .try_clone()
            .map(cap_std::fs::Dir::from_std_file)
            .map_err(|e| ErrorCode::from(&e))?;
        match dir.symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.charge_entry(table, fd.rep()),
            _ => Ok(0),
        }
    }

    /// Charges one scratch entry (a create that will make one, or fail):
    /// the bytes charged, or `insufficient-space`.
    pub(crate) fn charge_entry(&self, table: &ResourceTable, fd: u32) -> Result<u64, ErrorCode> {
        if self.scope(table, fd) != Scope::Scratch {
            return Ok(0);
        }
        self.disk
            .charge(ENTRY_COST)
            .map(|()| ENTRY_COST)
            .map_err(|_| ErrorCode::InsufficientSpace)
    }
}

/// The file behind `fd` and the budget to charge, when `fd` is a file in
/// scratch or a read-write mount opened for writing; `None` leaves the
/// call to wasmtime-wasi (a directory, a read-only descriptor, whose
/// writes fail, or a host-directory mount).
fn charged_file(
    view: &VolumeCtxView<'_>,
    fd: &Resource<Descriptor>,
) -> wasmtime::Result<Option<(Arc<std::fs::File>, DiskBudget)>> {
    if view.ctx.scope(view.table, fd.rep()) == Scope::Outside {
        return Ok(None);
    }
    Ok(match view.table.get(fd)? {
        wasmtime_wasi::filesystem::Descriptor::File(f) if f.open_mode.contains(OpenMode::WRITE) => {
            Some((f.file.clone(), view.ctx.disk.clone()))
        }
        _ => None,
    })
}

/// Moves descriptor `fd`, of a file of read-write mount `mount`, to a
/// private copy when its file shares its inode (a stored blob, or a file
/// the guest hard-linked), so that changing its times changes nothing
/// else. The copy costs the file's size. Refused (`not-permitted`) when
/// the descriptor's path no longer names its file: the inode is then
/// reachable only through the descriptor, and nothing can replace it.
fn unshare(
    view: &mut VolumeCtxView<'_>,
    fd: &Resource<Descriptor>,
    mount: usize,
) -> wasmtime::Result<Result<(), ErrorCode>> {
    let (file, mode) = match view.table.get(fd)? {
        wasmtime_wasi::filesystem::Descriptor::File(f) => (f.file.clone(), f.open_mode),
        wasmtime_wasi::filesystem::Descriptor::Dir(_) => return Ok(Ok(())),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Ok(Err(ErrorCode::from(&e))),
    };
    if meta.nlink() < 2 {
        return Ok(Ok(()));
    }
    let Some(rel) = view.ctx.fds.get(&fd.rep()).map(|o| o.rel.clone()) else {
        return Ok(Err(ErrorCode::NotPermitted));
    };
    let disk = view.ctx.disk.clone();
    let Some(m) = view.ctx.mounts.get_mut(mount) else {
        return Ok(Err(ErrorCode::Io));
    };
    let here = m.root.symlink_metadata(&rel);
    if !here.is_ok_and(|h| (h.dev(), h.ino()) == (meta.dev(), meta.ino())) {
        return Ok(Err(ErrorCode::NotPermitted));
    }
    let cost = match m.copy_up_cost(&rel, true) {
        Ok(c) => c,
        Err(e) => return Ok(Err(ErrorCode::from(&e))),
    };
    if disk.charge(cost).is_err() {
        return Ok(Err(ErrorCode::InsufficientSpace));
    }
    let mut opts = OpenOptions::new();
    opts.read(mode.contains(OpenMode::READ))
        .write(mode.contains(OpenMode::WRITE));
    let copy = m
        .copy_up(&rel, true)
        .and_then(|()| m.root.open_with(&rel, &opts));
    let copy = match copy {
        Ok(c) => Arc::new(c.into_std()),
        Err(e) => {
            tracing::warn!(mount = %m.guest, path = %rel, error = %e, "copying a file up failed");
            disk.refund(cost);
            return Ok(Err(ErrorCode::Io));
        }
    };
    m.dirty.insert(rel);
    disk.track(&copy);
    if let wasmtime_wasi::filesystem::Descriptor::File(f) = view.table.get_mut(fd)? {
        f.file = copy;
    }
    Ok(Ok(()))
}

/// Returns the guest error from a shadowing function.
macro_rules! guest_err {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return Ok((Err(code),)),
        }
    };
}

/// Shadows the descriptor-level writes (see the module docs). Called by
/// [`super::add_filesystem_to_linker`] with shadowing allowed.
pub(crate) fn add_to_linker<T: WasiView + VolumeView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    let mut inst = linker.instance(TYPES)?;

    inst.func_wrap_async(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, T>,
         (fd, mut buf, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let Some((file, disk)) = charged_file(&store.data_mut().volume(), &fd)? else {
                    let mut fs = store.data_mut().filesystem();
                    return match fs.write(fd, buf, offset).await {
                        Ok(n) => Ok((Ok(n),)),
                        Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                    };
                };
                let size = guest_err!(
                    file.metadata()
                        .map(|m| m.len())
                        .map_err(|e| ErrorCode::from(&e))
                );
                let end = offset.saturating_add(buf.len() as u64);
                let want = end.saturating_sub(size);
                let got = disk.charge_up_to(want);
                if got < want {
                    // Cut at the budget: the part that ends there, if any.
                    let keep = size.saturating_add(got).saturating_sub(offset);
                    if keep == 0 {
                        disk.refund(got);
                        return Ok((Err(ErrorCode::InsufficientSpace),));
                    }
                    buf.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
                }
                let mut fs = store.data_mut().filesystem();
                match fs.write(fd, buf, offset).await {
                    Ok(n) => {
                        let grew = offset.saturating_add(n).saturating_sub(size);
                        disk.refund(got.saturating_sub(grew));
                        Ok((Ok(n),))
                    }
                    Err(e) => {
                        disk.refund(got);
                        Ok((Err(fs.convert_error_code(e)?),))
                    }
                }
            }) as FsFuture<'_, u64>
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, T>, (fd, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let charged = charged_file(&store.data_mut().volume(), &fd)?;
                let mut grew = 0;
                if let Some((file, disk)) = &charged {
                    let now = guest_err!(
                        file.metadata()
                            .map(|m| m.len())
                            .map_err(|e| ErrorCode::from(&e))
                    );
                    grew = size.saturating_sub(now);
                    guest_err!(disk.charge(grew).map_err(|_| ErrorCode::InsufficientSpace));
                    if size < now {
                        disk.freed();
                    }
                }
                let mut fs = store.data_mut().filesystem();
                match fs.set_size(fd, size).await {
                    Ok(()) => Ok((Ok(()),)),
                    Err(e) => {
                        if let Some((_, disk)) = &charged {
                            disk.refund(grew);
                        }
                        Ok((Err(fs.convert_error_code(e)?),))
                    }
                }
            }) as FsFuture<'_, ()>
        },
    )?;

    for (name, append) in [
        ("[method]descriptor.write-via-stream", false),
        ("[method]descriptor.append-via-stream", true),
    ] {
        let stream =
            move |mut store: StoreContextMut<'_, T>,
                  fd: Resource<Descriptor>,
                  offset: u64|
                  -> wasmtime::Result<(Result<Resource<DynOutputStream>, ErrorCode>,)> {
                let view = store.data_mut().volume();
                if let Some((file, disk)) = charged_file(&view, &fd)? {
                    let position = (!append).then_some(offset);
                    let s: DynOutputStream = Box::new(BudgetedStream::new(file, position, disk));
                    return Ok((Ok(view.table.push(s)?),));
                }
                let mut fs = store.data_mut().filesystem();
                let made = if append {
                    fs.append_via_stream(fd)
                } else {
                    fs.write_via_stream(fd, offset)
                };
                match made {
                    Ok(s) => Ok((Ok(s),)),
                    Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                }
            };
        if append {
            inst.func_wrap(
                name,
                move |store: StoreContextMut<'_, T>, (fd,): (Resource<Descriptor>,)| {
                    stream(store, fd, 0)
                },
            )?;
        } else {
            inst.func_wrap(
                name,
                move |store: StoreContextMut<'_, T>, (fd, offset): (Resource<Descriptor>, u64)| {
                    stream(store, fd, offset)
                },
            )?;
        }
    }

    inst.func_wrap_async(
        "[method]descriptor.set-times",
        |mut store: StoreContextMut<'_, T>,
         (fd, atim, mtim): (Resource<Descriptor>, NewTimestamp, NewTimestamp)| {
            Box::new(async move {
                let mut view = store.data_mut().volume();
                if let Scope::Mount(i) = view.ctx.scope(view.table, fd.rep()) {
                    guest_err!(unshare(&mut view, &fd, i)?);
                    if let Some(rel) = view.ctx.fds.get(&fd.rep()).map(|o| o.rel.clone())
                        && let Some(m) = view.ctx.mounts.get_mut(i)
                    {
                        m.dirty.insert(rel);
                    }
                }
                let mut fs = store.data_mut().filesystem();
                match fs.set_times(fd, atim, mtim).await {
                    Ok(()) => Ok((Ok(()),)),
                    Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                }
            }) as FsFuture<'_, ()>
        },
    )?;
    Ok(())
}

/// `write-via-stream` or `append-via-stream` of a file in scratch or a
/// read-write mount: each write is charged to the disk budget before it
/// reaches the file, cut where the budget ends, and then fails with ENOSPC
/// (`insufficient-space` for `filesystem-error-code`). Bytes written
/// before stay written.
pub(crate) struct BudgetedStream {
    file: Arc<std::fs::File>,
    /// Where the next write goes; `None` appends.
    position: Option<u64>,
    disk: DiskBudget,
    /// The stream failed: the next operation reports it, and the stream
    /// is closed after.
    failed: Option<io::Error>,
    closed: bool,
}

impl BudgetedStream {
    pub(crate) fn new(file: Arc<std::fs::File>, position: Option<u64>, disk: DiskBudget) -> Self {
        BudgetedStream {
            file,
            position,
            disk,
            failed: None,
            closed: false,
        }
    }

    /// The error to report, if the stream failed or closed.
    fn check(&mut self) -> StreamResult<()> {
        if let Some(e) = self.failed.take() {
            self.closed = true;
            return Err(failed(e));
        }
        if self.closed {
            return Err(StreamError::Closed);
        }
        Ok(())
    }

    /// Writes what fits of `bytes`; ENOSPC when not all of it did.
    fn write_charged(&mut self, bytes: &[u8]) -> io::Result<()> {
        let size = self.file.metadata()?.len();
        let start = self.position.unwrap_or(size);
        let len = bytes.len() as u64;
        let want = start.saturating_add(len).saturating_sub(size);
        let got = self.disk.charge_up_to(want);
        let fits = if got < want {
            size.saturating_add(got).saturating_sub(start).min(len)
        } else {
            len
        };
        let piece = bytes
            .get(..usize::try_from(fits).unwrap_or(bytes.len()))
            .unwrap_or(bytes);
        let written = if piece.is_empty() {
            Ok(())
        } else {
            self.file.write_all_at(piece, start)
        };
        // What the file really grew by (a failed write may have written
        // part), the rest given back.
        let grew = self
            .file
            .metadata()
            .map_or(got, |m| m.len().saturating_sub(size));
        self.disk.refund(got.saturating_sub(grew));
        written?;
        if let Some(p) = &mut self.position {
            *p = p.saturating_add(fits);
        }
        if fits < len {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

fn failed(e: io::Error) -> StreamError {
    StreamError::LastOperationFailed(e.into())
}

#[async_trait]
impl Pollable for BudgetedStream {
    /// Writes happen at once: the stream is always ready.
    async fn ready(&mut self) {}
}

#[async_trait]
impl OutputStream for BudgetedStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.check()?;
        if let Err(e) = self.write_charged(&bytes) {
            self.closed = true;
            return Err(failed(e));
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.check()
    }

    /// Offers what the budget has room for (and what the stream may
    /// overwrite in place), so that a guest writing through wasi-libc gets
    /// a short write up to the budget, with its true count. With no room
    /// at all it still offers a byte, and the write of it fails with
    /// ENOSPC: a check itself must not fail, because `blocking-flush`
    /// checks after the last write that fitted, and its failure would
    /// report bytes that landed as lost.
    fn check_write(&mut self) -> StreamResult<usize> {
        self.check()?;
        let size = self.file.metadata().map_err(failed)?.len();
        let inside = self.position.map_or(0, |p| size.saturating_sub(p));
        let room = self.disk.room().saturating_add(inside);
        Ok(usize::try_from(room).map_or(STREAM_CAPACITY, |r| r.clamp(1, STREAM_CAPACITY)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stream(
        dir: &tempfile::TempDir,
        limit: u64,
        append: bool,
    ) -> (Arc<std::fs::File>, BudgetedStream, DiskBudget) {
        let path = dir.path().join("f");
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)
                .unwrap(),
        );
        let disk = DiskBudget::new(limit);
        let s = BudgetedStream::new(file.clone(), (!append).then_some(0), disk.clone());
        (file, s, disk)
    }

    #[test]
    fn a_stream_writes_up_to_the_budget_then_fails_with_enospc() {
        let dir = tempfile::tempdir().unwrap();
        let (file, mut s, disk) = stream(&dir, 10, false);
        assert_eq!(s.check_write().unwrap(), 10, "what the budget has room for");
        s.write(Bytes::from_static(b"0123456")).unwrap();
        assert_eq!(s.check_write().unwrap(), 3);
        let Err(StreamError::LastOperationFailed(e)) = s.write(Bytes::from_static(b"789abc"))
        else {
            panic!("the write past the budget must fail");
        };
        let io = e.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOSPC));
        assert!(matches!(s.check_write(), Err(StreamError::Closed)));
        assert_eq!(file.metadata().unwrap().len(), 10, "cut at the budget");
        assert_eq!(disk.used(), 10);
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"0123456789");
        // A stream that finds no room at all offers a byte, and its write
        // fails: ENOSPC.
        let mut t = BudgetedStream::new(file, None, disk);
        assert_eq!(t.check_write().unwrap(), 1);
        t.flush().unwrap();
        let Err(StreamError::LastOperationFailed(e)) = t.write(Bytes::from_static(b"x")) else {
            panic!("no room must be ENOSPC");
        };
        let io = e.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.raw_os_error(), Some(libc::ENOSPC));
    }

    #[test]
    fn overwrites_cost_nothing_and_appends_cost_their_length() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"abcdef").unwrap();
        let (_f, mut s, disk) = stream(&dir, 4, false);
        s.write(Bytes::from_static(b"XYZ")).unwrap();
        assert_eq!(disk.used(), 0, "inside the file");
        s.write(Bytes::from_static(b"1234")).unwrap();
        assert_eq!(disk.used(), 1, "one byte past the end");
        let (_f, mut a, disk) = stream(&dir, 3, true);
        a.write(Bytes::from_static(b"++")).unwrap();
        assert_eq!(disk.used(), 2);
        assert!(a.write(Bytes::from_static(b"++")).is_err());
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"XYZ1234+++");
    }

    #[test]
    fn a_stream_of_a_read_only_file_charges_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let file = Arc::new(std::fs::File::open(dir.path().join("f")).unwrap());
        let disk = DiskBudget::new(100);
        let mut s = BudgetedStream::new(file, Some(0), disk.clone());
        assert!(s.write(Bytes::from_static(b"abc")).is_err());
        assert_eq!(disk.used(), 0, "refunded");
    }
}
