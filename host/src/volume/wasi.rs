//! The WASI filesystem, wrapped for volume mounts.
//!
//! wasmtime-wasi implements `wasi:filesystem`; this module shadows every
//! function that names a path or lists a directory in the linker and
//! delegates the rest of their work to wasmtime-wasi:
//! - `get-directories` and `open-at` record which descriptors lie under which
//!   mount (and at which path), so the others can tell;
//! - mounts are lazy (see `super::mount`): before any of them acts, the
//!   snapshot entries along the path are placed in the working tree, a
//!   directory is completed before it is listed or removed (and its whole
//!   subtree before it is renamed), so the guest sees the whole snapshot;
//! - `open-at` for writing or truncation copies a hard-linked blob up first,
//!   so the guest can never modify a stored blob;
//! - creates check the volume's inode limit (ENOSPC on the one that would
//!   cross it, before anything is created);
//! - every change records its path as dirty, for an O(changed) commit;
//! - a rename or link between a mount and anything else is refused with
//!   EXDEV;
//! - a create (or rename) whose path under the mount would be longer than
//!   [`MAX_MOUNT_PATH`](super::MAX_MOUNT_PATH) is refused with
//!   `name-too-long`, so everything in a mount can be committed;
//! - `open-at` and `read-directory`, under mounts or not, count the host
//!   file handles the guest holds, and refuse one past the container's
//!   limit with `quota` (descriptor-relative opens are otherwise bounded by
//!   nothing but the host's own descriptor limit, which every container
//!   shares);
//! - creates in scratch and copy-ups in mounts are charged to the
//!   container's disk budget first (`super::disk`), `insufficient-space`
//!   when they do not fit; removals, truncations and renames mark it stale;
//!   `open-at` remembers each file the guest opens, so the budget can count
//!   removed files still held open;
//! - a rename updates the paths recorded for the descriptors under what it
//!   moved, so a descriptor of a moved directory still copies up what it
//!   opens;
//! - `read-via-stream` and `read` of a file under a mount read in large
//!   pieces (see `super::stream`), so guests read mounted files at close to
//!   native speed.
//!
//! The descriptor-level writes (`write`, `set-size`, the output streams)
//! and `set-times` on a descriptor are shadowed in `super::write`. The
//! other descriptor-only functions (stat, advise, sync...) need nothing: a
//! descriptor under a mount was opened through `open-at`, so its file is
//! placed.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::preopens::Host as _;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorStat, DirectoryEntryStream, ErrorCode, Host as _,
    HostDescriptor, MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};

use super::{MAX_MOUNT_PATH, OpenFd, VolumeCtx, VolumeView};

/// What a counted host file handle is (see `VolumeCtx::open_handles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandleKind {
    Descriptor,
    Listing,
}

/// The version of `wasi:filesystem` that wasmtime-wasi 48 defines; guests
/// importing any 0.2.x version are linked to it.
pub(crate) const TYPES: &str = "wasi:filesystem/types@0.2.12";
const PREOPENS: &str = "wasi:filesystem/preopens@0.2.12";

pub(crate) type FsResult<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;
pub(crate) type FsFuture<'a, T> = Box<dyn Future<Output = FsResult<T>> + Send + 'a>;

/// Where a guest path lands: the mount index and the physical path inside
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    mount: usize,
    rel: String,
}

/// Whether a walk follows the path's last component if it is a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Follow,
    NoFollow,
}

impl Last {
    fn of(flags: PathFlags) -> Self {
        if flags.contains(PathFlags::SYMLINK_FOLLOW) {
            Last::Follow
        } else {
            Last::NoFollow
        }
    }
}

impl VolumeCtx {
    /// The mount and descriptor record of `fd`, if it is a live descriptor
    /// under a mount.
    pub(crate) fn open_fd(&self, table: &ResourceTable, fd: u32) -> Option<&OpenFd> {
        let open = self.fds.get(&fd)?;
        // The map is updated on every open, so a live descriptor at `fd`
        // is the one recorded.
        table.get(&Resource::<Descriptor>::new_borrow(fd)).ok()?;
        Some(open)
    }

    /// The mount and path that `path` relative to descriptor `fd` names, if
    /// `fd` is a live directory descriptor under a mount. Walks the path in
    /// the working tree, placing the snapshot entries on the way, so the
    /// operation that follows sees the snapshot and the path recorded is
    /// the one the store will see. A failure to place is EIO.
    fn target(
        &mut self,
        table: &ResourceTable,
        fd: u32,
        path: &str,
        last: Last,
    ) -> Result<Option<Target>, ErrorCode> {
        let Some(open) = self.open_fd(table, fd) else {
            return Ok(None);
        };
        let (mount, from) = (open.mount, open.rel.clone());
        let Some(m) = self.mounts.get_mut(mount) else {
            return Ok(None);
        };
        match m.resolve(&from, path, last == Last::Follow) {
            Ok(Some(rel)) => Ok(Some(Target { mount, rel })),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!(mount = %m.guest, path, error = %e, "placing a snapshot entry failed");
                Err(ErrorCode::Io)
            }
        }
    }

    /// Places the snapshot children of `t` if it is a directory (all its
    /// descendants when `tree`).
    fn complete(&mut self, t: &Target, tree: bool) -> Result<(), ErrorCode> {
        let Some(m) = self.mounts.get_mut(t.mount) else {
            return Ok(());
        };
        if !t.rel.is_empty() && !m.root.symlink_metadata(&t.rel).is_ok_and(|x| x.is_dir()) {
            return Ok(());
        }
        let done = if tree {
            m.complete_tree(&t.rel)
        } else {
            m.complete_dir(&t.rel)
        };
        done.map_err(|e| {
            tracing::warn!(mount = %m.guest, path = %t.rel, error = %e, "placing snapshot entries failed");
            ErrorCode::Io
        })
    }

    fn exists(&self, t: &Target) -> bool {
        self.mounts
            .get(t.mount)
            .is_some_and(|m| m.root.symlink_metadata(&t.rel).is_ok())
    }

    fn is_dir(&self, t: &Target) -> bool {
        self.mounts
            .get(t.mount)
            .is_some_and(|m| m.root.symlink_metadata(&t.rel).is_ok_and(|x| x.is_dir()))
    }

    /// ENOSPC when one more inode would cross the mount's limit.
    fn check_create(&self, t: &Target) -> Result<(), ErrorCode> {
        match self.mounts.get(t.mount) {
            Some(m) if m.read_only => Err(ErrorCode::ReadOnly),
            _ if t.rel.len() > MAX_MOUNT_PATH => Err(ErrorCode::NameTooLong),
            Some(m) if m.inodes >= m.inode_limit => Err(ErrorCode::InsufficientSpace),
            _ => Ok(()),
        }
    }

    /// `name-too-long` when moving `from` to `to` would put a path of the
    /// moved subtree past [`MAX_MOUNT_PATH`]. `from` is placed completely.
    fn check_move(&self, from: &Target, to: &Target) -> Result<(), ErrorCode> {
        let Some(m) = self.mounts.get(from.mount) else {
            return Ok(());
        };
        if to.rel.len() > MAX_MOUNT_PATH {
            return Err(ErrorCode::NameTooLong);
        }
        if to.rel.len() <= from.rel.len() {
            return Ok(());
        }
        let longest = m
            .longest_below(&from.rel)
            .map_err(|e| ErrorCode::from(&e))?;
        if longest - from.rel.len() + to.rel.len() > MAX_MOUNT_PATH {
            return Err(ErrorCode::NameTooLong);
        }
        Ok(())
    }

    /// `quota` when the guest holds as many host file handles as it may.
    /// Handles the guest dropped since the last check are forgotten first.
    fn admit_handle(&mut self, table: &ResourceTable) -> Result<(), ErrorCode> {
        if self.open_handles.len() < self.open_limit {
            return Ok(());
        }
        self.open_handles.retain(|rep, kind| match kind {
            HandleKind::Descriptor => table.get(&Resource::<Descriptor>::new_borrow(*rep)).is_ok(),
            HandleKind::Listing => table
                .get(&Resource::<DirectoryEntryStream>::new_borrow(*rep))
                .is_ok(),
        });
        if self.open_handles.len() < self.open_limit {
            Ok(())
        } else {
            tracing::debug!(limit = self.open_limit, "open file limit reached");
            Err(ErrorCode::Quota)
        }
    }

    fn changed(&mut self, t: &Target, inode_delta: i64) {
        if let Some(m) = self.mounts.get_mut(t.mount) {
            m.dirty.insert(t.rel.clone());
            m.inodes = m.inodes.saturating_add_signed(inode_delta);
        }
    }

    /// Copies up the file at `t` of a read-write mount (of its bytes when
    /// `keep`), charging the copy to the disk budget first.
    fn copy_up_charged(&mut self, t: &Target, keep: bool) -> Result<(), ErrorCode> {
        let Some(m) = self.mounts.get_mut(t.mount) else {
            return Err(ErrorCode::Io);
        };
        if m.read_only {
            return Ok(());
        }
        let cost = m
            .copy_up_cost(&t.rel, keep)
            .map_err(|e| ErrorCode::from(&e))?;
        self.disk
            .charge(cost)
            .map_err(|_| ErrorCode::InsufficientSpace)?;
        m.copy_up(&t.rel, keep).map_err(|e| {
            tracing::warn!(mount = %m.guest, path = %t.rel, error = %e, "copying a file up failed");
            self.disk.refund(cost);
            ErrorCode::Io
        })
    }

    /// Keeps the paths of descriptors under `from` right after it was
    /// renamed to `to`: a directory descriptor opened before the rename
    /// reaches the moved files, and a write through it must copy up the
    /// file it really opens.
    fn moved(&mut self, from: &Target, to: &Target) {
        if from.rel.is_empty() {
            return;
        }
        for o in self.fds.values_mut() {
            if o.mount != from.mount {
                continue;
            }
            if let Some(rest) = o.rel.strip_prefix(from.rel.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                o.rel = format!("{}{rest}", to.rel);
            }
        }
    }
}

/// Charges a scratch entry for a create under descriptor `fd`: the budget
/// and the bytes charged (to refund if the create fails).
fn charge_entry<T: WasiView + VolumeView>(
    store: &mut StoreContextMut<'_, T>,
    fd: u32,
) -> Result<(super::DiskBudget, u64), ErrorCode> {
    let view = store.data_mut().volume();
    let entry = view.ctx.charge_entry(view.table, fd)?;
    Ok((view.ctx.disk.clone(), entry))
}

fn parts<T: WasiView + VolumeView>(
    store: &mut StoreContextMut<'_, T>,
    fd: u32,
    path: &str,
    last: Last,
) -> Result<Option<Target>, ErrorCode> {
    let view = store.data_mut().volume();
    view.ctx.target(view.table, fd, path, last)
}

/// Returns the guest error `$code` from a shadowing function.
macro_rules! guest_err {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return Ok((Err(code),)),
        }
    };
}

/// Shadows the path and listing functions of `wasi:filesystem` in
/// `linker`. Called by [`super::add_filesystem_to_linker`] with shadowing
/// allowed.
pub(crate) fn add_to_linker<T: WasiView + VolumeView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker
        .instance(PREOPENS)?
        .func_wrap("get-directories", get_directories::<T>)?;
    let mut inst = linker.instance(TYPES)?;
    inst.func_wrap_async("[method]descriptor.open-at", |store, args| {
        Box::new(open_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.read-directory", |store, args| {
        Box::new(read_directory(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.stat-at", |store, args| {
        Box::new(stat_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.metadata-hash-at", |store, args| {
        Box::new(metadata_hash_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.readlink-at", |store, args| {
        Box::new(readlink_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.create-directory-at", |store, args| {
        Box::new(create_directory_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.unlink-file-at", |store, args| {
        Box::new(unlink_file_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.remove-directory-at", |store, args| {
        Box::new(remove_directory_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.symlink-at", |store, args| {
        Box::new(symlink_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.rename-at", |store, args| {
        Box::new(rename_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.link-at", |store, args| {
        Box::new(link_at(store, args))
    })?;
    inst.func_wrap_async("[method]descriptor.set-times-at", |store, args| {
        Box::new(set_times_at(store, args))
    })?;
    Ok(())
}

/// The preopened directories with their guest paths.
type Preopens = Vec<(Resource<Descriptor>, String)>;

/// `get-directories`: records which preopens are mounts (and which lie
/// outside every mount), so the other calls can tell.
fn get_directories<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (): (),
) -> wasmtime::Result<(Preopens,)> {
    let dirs = store.data_mut().filesystem().get_directories()?;
    let view = store.data_mut().volume();
    for (d, guest) in &dirs {
        if view.ctx.is_dir_mount(guest) {
            view.ctx.outside.insert(d.rep());
        } else {
            view.ctx.outside.remove(&d.rep());
        }
        match view.ctx.mount_index(guest) {
            Some(mount) => {
                view.ctx.fds.insert(
                    d.rep(),
                    OpenFd {
                        mount,
                        rel: String::new(),
                        write: false,
                        dir: true,
                    },
                );
            }
            None => {
                view.ctx.fds.remove(&d.rep());
            }
        }
    }
    Ok((dirs,))
}

/// `[method]descriptor.open-at`: Places the path (lazy mount), counts the new handle, charges a create,
/// copies a linked blob up before a write, and records the descriptor's
/// mount and path.
async fn open_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, pflags, path, oflags, dflags): (
        Resource<Descriptor>,
        PathFlags,
        String,
        OpenFlags,
        DescriptorFlags,
    ),
) -> FsResult<Resource<Descriptor>> {
    {
        let view = store.data_mut().volume();
        guest_err!(view.ctx.admit_handle(view.table));
    }
    let target = guest_err!(parts(&mut store, fd.rep(), &path, Last::of(pflags)));
    let truncating = oflags.contains(OpenFlags::TRUNCATE);
    let writing = dflags.contains(DescriptorFlags::WRITE) || truncating;
    let mut created = false;
    let parent = fd.rep();
    let disk = store.data_mut().volume().ctx.disk.clone();
    let mut entry = 0;
    if oflags.contains(OpenFlags::CREATE) {
        let view = store.data_mut().volume();
        entry = guest_err!(view.ctx.charge_new_entry(view.table, &fd, &path));
    }
    if let Some(t) = &target {
        let ctx = &mut *store.data_mut().volume().ctx;
        let exists = ctx.exists(t);
        if oflags.contains(OpenFlags::CREATE) && !exists {
            guest_err!(ctx.check_create(t));
            created = true;
        }
        if writing && exists {
            guest_err!(ctx.copy_up_charged(t, !truncating));
        }
    }
    let mut fs = store.data_mut().filesystem();
    let opened = fs.open_at(fd, pflags, path, oflags, dflags).await;
    let new = match opened {
        Ok(new) => new,
        Err(e) => {
            disk.refund(entry);
            return Ok((Err(fs.convert_error_code(e)?),));
        }
    };
    let view = store.data_mut().volume();
    let outside = view.ctx.outside.contains(&parent);
    if outside {
        view.ctx.outside.insert(new.rep());
    } else {
        view.ctx.outside.remove(&new.rep());
        // A file removed while open keeps its bytes: the budget
        // measures those it can reach.
        if let Ok(wasmtime_wasi::filesystem::Descriptor::File(f)) = view.table.get(&new) {
            disk.track(&f.file);
        }
    }
    if truncating {
        disk.freed();
    }
    let ctx = &mut *view.ctx;
    ctx.open_handles.insert(new.rep(), HandleKind::Descriptor);
    match target {
        Some(t) => {
            let dir = ctx
                .mounts
                .get(t.mount)
                .and_then(|m| m.root.metadata(&t.rel).ok())
                .is_some_and(|m| m.is_dir());
            if writing || created {
                ctx.changed(&t, i64::from(created));
            }
            ctx.fds.insert(
                new.rep(),
                OpenFd {
                    mount: t.mount,
                    rel: t.rel,
                    write: writing,
                    dir,
                },
            );
        }
        None => {
            ctx.fds.remove(&new.rep());
        }
    }
    Ok((Ok(new),))
}

/// `[method]descriptor.read-directory`: Completes the directory from the snapshot before it is listed, and
/// counts the listing's handle.
async fn read_directory<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd,): (Resource<Descriptor>,),
) -> FsResult<Resource<DirectoryEntryStream>> {
    {
        let view = store.data_mut().volume();
        guest_err!(view.ctx.admit_handle(view.table));
    }
    let target = guest_err!(parts(&mut store, fd.rep(), ".", Last::Follow));
    if let Some(t) = &target {
        guest_err!(store.data_mut().volume().ctx.complete(t, false));
    }
    let mut fs = store.data_mut().filesystem();
    match fs.read_directory(fd).await {
        Ok(stream) => {
            let ctx = &mut *store.data_mut().volume().ctx;
            ctx.open_handles.insert(stream.rep(), HandleKind::Listing);
            Ok((Ok(stream),))
        }
        Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
    }
}

/// `[method]descriptor.stat-at`: Places the path first, so the guest sees the snapshot's entry.
async fn stat_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, pflags, path): (Resource<Descriptor>, PathFlags, String),
) -> FsResult<DescriptorStat> {
    guest_err!(parts(&mut store, fd.rep(), &path, Last::of(pflags)));
    let mut fs = store.data_mut().filesystem();
    match fs.stat_at(fd, pflags, path).await {
        Ok(stat) => Ok((Ok(stat),)),
        Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
    }
}

/// `[method]descriptor.metadata-hash-at`: Places the path first, so the guest sees the snapshot's entry.
async fn metadata_hash_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, pflags, path): (Resource<Descriptor>, PathFlags, String),
) -> FsResult<MetadataHashValue> {
    guest_err!(parts(&mut store, fd.rep(), &path, Last::of(pflags)));
    let mut fs = store.data_mut().filesystem();
    match fs.metadata_hash_at(fd, pflags, path).await {
        Ok(hash) => Ok((Ok(hash),)),
        Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
    }
}

/// `[method]descriptor.readlink-at`: Places the path first, so the guest sees the snapshot's link.
async fn readlink_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, path): (Resource<Descriptor>, String),
) -> FsResult<String> {
    guest_err!(parts(&mut store, fd.rep(), &path, Last::NoFollow));
    let mut fs = store.data_mut().filesystem();
    match fs.readlink_at(fd, path).await {
        Ok(target) => Ok((Ok(target),)),
        Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
    }
}

/// `[method]descriptor.create-directory-at`: Checks the inode limit and path length, charges the entry, and
/// records the change.
async fn create_directory_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, path): (Resource<Descriptor>, String),
) -> FsResult<()> {
    let target = guest_err!(parts(&mut store, fd.rep(), &path, Last::NoFollow));
    if let Some(t) = &target {
        guest_err!(store.data_mut().volume().ctx.check_create(t));
    }
    let (disk, entry) = guest_err!(charge_entry(&mut store, fd.rep()));
    let mut fs = store.data_mut().filesystem();
    if let Err(e) = fs.create_directory_at(fd, path).await {
        disk.refund(entry);
        return Ok((Err(fs.convert_error_code(e)?),));
    }
    if let Some(t) = target {
        store.data_mut().volume().ctx.changed(&t, 1);
    }
    Ok((Ok(()),))
}

/// `[method]descriptor.unlink-file-at`: Marks the disk budget stale and records the removal.
async fn unlink_file_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, path): (Resource<Descriptor>, String),
) -> FsResult<()> {
    let target = guest_err!(parts(&mut store, fd.rep(), &path, Last::NoFollow));
    let mut fs = store.data_mut().filesystem();
    if let Err(e) = fs.unlink_file_at(fd, path).await {
        return Ok((Err(fs.convert_error_code(e)?),));
    }
    store.data_mut().volume().ctx.disk.freed();
    if let Some(t) = target {
        store.data_mut().volume().ctx.changed(&t, -1);
    }
    Ok((Ok(()),))
}

/// `[method]descriptor.remove-directory-at`: Completes the directory first (only an empty one goes), then records
/// the removal.
async fn remove_directory_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, path): (Resource<Descriptor>, String),
) -> FsResult<()> {
    let target = guest_err!(parts(&mut store, fd.rep(), &path, Last::NoFollow));
    // Only an empty directory goes: its snapshot children must
    // be there to say it is not.
    if let Some(t) = &target {
        guest_err!(store.data_mut().volume().ctx.complete(t, false));
    }
    let mut fs = store.data_mut().filesystem();
    if let Err(e) = fs.remove_directory_at(fd, path).await {
        return Ok((Err(fs.convert_error_code(e)?),));
    }
    store.data_mut().volume().ctx.disk.freed();
    if let Some(t) = target {
        store.data_mut().volume().ctx.changed(&t, -1);
    }
    Ok((Ok(()),))
}

/// `[method]descriptor.symlink-at`: Checks the inode limit and path length, charges the entry, and
/// records the change.
async fn symlink_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, old_path, new_path): (Resource<Descriptor>, String, String),
) -> FsResult<()> {
    let target = guest_err!(parts(&mut store, fd.rep(), &new_path, Last::NoFollow));
    if let Some(t) = &target {
        guest_err!(store.data_mut().volume().ctx.check_create(t));
    }
    let (disk, entry) = guest_err!(charge_entry(&mut store, fd.rep()));
    let mut fs = store.data_mut().filesystem();
    if let Err(e) = fs.symlink_at(fd, old_path, new_path).await {
        disk.refund(entry);
        return Ok((Err(fs.convert_error_code(e)?),));
    }
    if let Some(t) = target {
        store.data_mut().volume().ctx.changed(&t, 1);
    }
    Ok((Ok(()),))
}

/// `[method]descriptor.rename-at`: Refuses a move across mounts (EXDEV), completes the directories it
/// moves or replaces, and moves the recorded paths with it.
async fn rename_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, old_path, new_fd, new_path): (Resource<Descriptor>, String, Resource<Descriptor>, String),
) -> FsResult<()> {
    let from = guest_err!(parts(&mut store, fd.rep(), &old_path, Last::NoFollow));
    let to = guest_err!(parts(&mut store, new_fd.rep(), &new_path, Last::NoFollow));
    // Moving between a mount and anything else would move data
    // across volumes (or out of one) behind the stores' back.
    if from.as_ref().map(|t| t.mount) != to.as_ref().map(|t| t.mount) {
        return Ok((Err(ErrorCode::CrossDevice),));
    }
    let mut moved_dir = false;
    let mut replaced = false;
    if let (Some(f), Some(t)) = (&from, &to) {
        let ctx = &mut *store.data_mut().volume().ctx;
        // A directory moves with everything the snapshot has
        // under it; one it replaces must be empty, so its
        // snapshot children must show.
        moved_dir = ctx.is_dir(f);
        if moved_dir {
            guest_err!(ctx.complete(f, true));
        }
        guest_err!(ctx.check_move(f, t));
        replaced = ctx.exists(t);
        if replaced {
            guest_err!(ctx.complete(t, false));
        }
    }
    let mut fs = store.data_mut().filesystem();
    if let Err(e) = fs.rename_at(fd, old_path, new_fd, new_path).await {
        return Ok((Err(fs.convert_error_code(e)?),));
    }
    let ctx = &mut *store.data_mut().volume().ctx;
    ctx.disk.freed();
    if let (Some(f), Some(t)) = (from, to) {
        ctx.moved(&f, &t);
        ctx.changed(&f, 0);
        ctx.changed(&t, if replaced { -1 } else { 0 });
        if moved_dir && let Some(m) = ctx.mounts.get_mut(t.mount) {
            m.renamed_in.insert(t.rel);
        }
    }
    Ok((Ok(()),))
}

/// `[method]descriptor.link-at`: Refuses a link across mounts (EXDEV), charges the entry, and records
/// the change.
async fn link_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, pflags, old_path, new_fd, new_path): (
        Resource<Descriptor>,
        PathFlags,
        String,
        Resource<Descriptor>,
        String,
    ),
) -> FsResult<()> {
    let from = guest_err!(parts(&mut store, fd.rep(), &old_path, Last::of(pflags)));
    let to = guest_err!(parts(&mut store, new_fd.rep(), &new_path, Last::NoFollow));
    if from.as_ref().map(|t| t.mount) != to.as_ref().map(|t| t.mount) {
        return Ok((Err(ErrorCode::CrossDevice),));
    }
    if let Some(t) = &to {
        guest_err!(store.data_mut().volume().ctx.check_create(t));
    }
    let (disk, entry) = guest_err!(charge_entry(&mut store, new_fd.rep()));
    let mut fs = store.data_mut().filesystem();
    if let Err(e) = fs.link_at(fd, pflags, old_path, new_fd, new_path).await {
        disk.refund(entry);
        return Ok((Err(fs.convert_error_code(e)?),));
    }
    if let Some(t) = to {
        store.data_mut().volume().ctx.changed(&t, 1);
    }
    Ok((Ok(()),))
}

/// `[method]descriptor.set-times-at`: Copies a linked blob up first (times live on the inode the store
/// shares), then records the change.
async fn set_times_at<T: WasiView + VolumeView>(
    mut store: StoreContextMut<'_, T>,
    (fd, pflags, path, atim, mtim): (
        Resource<Descriptor>,
        PathFlags,
        String,
        NewTimestamp,
        NewTimestamp,
    ),
) -> FsResult<()> {
    let target = guest_err!(parts(&mut store, fd.rep(), &path, Last::of(pflags)));
    // Times live on the inode, which a blob link shares with the
    // store: copy up first.
    if let Some(t) = &target {
        guest_err!(store.data_mut().volume().ctx.copy_up_charged(t, true));
    }
    let mut fs = store.data_mut().filesystem();
    if let Err(e) = fs.set_times_at(fd, pflags, path, atim, mtim).await {
        return Ok((Err(fs.convert_error_code(e)?),));
    }
    if let Some(t) = target {
        store.data_mut().volume().ctx.changed(&t, 0);
    }
    Ok((Ok(()),))
}

#[cfg(test)]
mod tests {
    use super::super::mount::join_lexically as join;

    #[test]
    fn join_stays_inside() {
        assert_eq!(join("", "a/b").as_deref(), Some("a/b"));
        assert_eq!(join("a", "../b").as_deref(), Some("b"));
        assert_eq!(join("a/b", "./c/../d").as_deref(), Some("a/b/d"));
        assert_eq!(join("", ".."), None);
        assert_eq!(join("a", "../../x"), None);
        assert_eq!(join("a", "/etc"), None);
        assert_eq!(join("", "").as_deref(), Some(""));
    }
}
