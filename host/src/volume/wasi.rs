//! The WASI filesystem, wrapped for volume mounts.
//!
//! wasmtime-wasi implements `wasi:filesystem`; this module shadows the few
//! functions that matter for a mount in the linker and delegates the rest of
//! their work to wasmtime-wasi:
//! - `get-directories` and `open-at` record which descriptors lie under which
//!   mount (and at which path), so the others can tell;
//! - `open-at` for writing or truncation copies a hard-linked blob up first,
//!   so the guest can never modify a stored blob;
//! - creates check the volume's inode limit (ENOSPC on the one that would
//!   cross it, before anything is created);
//! - every change records its path as dirty, for an O(changed) commit;
//! - a rename or link between a mount and anything else is refused with
//!   EXDEV.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::preopens::Host as _;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, Host as _, HostDescriptor, NewTimestamp, OpenFlags,
    PathFlags,
};

use super::{OpenFd, VolumeCtx, VolumeView};

/// The version of `wasi:filesystem` that wasmtime-wasi 48 defines; guests
/// importing any 0.2.x version are linked to it.
const TYPES: &str = "wasi:filesystem/types@0.2.12";
const PREOPENS: &str = "wasi:filesystem/preopens@0.2.12";

type FsResult<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;

/// Where a guest path lands: the mount index and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    mount: usize,
    rel: String,
}

/// Joins a descriptor's mount-relative path and a guest path lexically.
/// `None` when the result would leave the mount (wasmtime-wasi refuses those
/// itself) or the path is absolute.
fn join(base: &str, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl VolumeCtx {
    /// The mount and path that `path` relative to descriptor `fd` names, if
    /// `fd` is a live directory descriptor under a mount. Intermediate
    /// symlinks are resolved inside the mount, so the path recorded is the
    /// one the store will see.
    fn target(
        &self,
        table: &wasmtime::component::ResourceTable,
        fd: u32,
        path: &str,
    ) -> Option<Target> {
        let open = self.fds.get(&fd)?;
        // The map is updated on every open, so a live descriptor at `fd`
        // is the one recorded.
        table.get(&Resource::<Descriptor>::new_borrow(fd)).ok()?;
        let rel = join(&open.rel, path)?;
        let mount = self.mounts.get(open.mount)?;
        let rel = match rel.rsplit_once('/') {
            Some((parent, name)) => match mount.root.canonicalize(parent) {
                Ok(p) => {
                    let p = p.to_string_lossy().into_owned();
                    if p.is_empty() || p == "." {
                        name.to_owned()
                    } else {
                        format!("{p}/{name}")
                    }
                }
                Err(_) => rel,
            },
            None => rel,
        };
        Some(Target {
            mount: open.mount,
            rel,
        })
    }

    fn exists(&self, t: &Target) -> bool {
        self.mounts
            .get(t.mount)
            .is_some_and(|m| m.root.symlink_metadata(&t.rel).is_ok())
    }

    /// ENOSPC when one more inode would cross the mount's limit.
    fn check_create(&self, t: &Target) -> Result<(), ErrorCode> {
        match self.mounts.get(t.mount) {
            Some(m) if m.read_only => Err(ErrorCode::ReadOnly),
            Some(m) if m.inodes >= m.inode_limit => Err(ErrorCode::InsufficientSpace),
            _ => Ok(()),
        }
    }

    fn changed(&mut self, t: &Target, inode_delta: i64) {
        if let Some(m) = self.mounts.get_mut(t.mount) {
            m.dirty.insert(t.rel.clone());
            m.inodes = m.inodes.saturating_add_signed(inode_delta);
        }
    }
}

fn parts<T: WasiView + VolumeView>(
    store: &mut StoreContextMut<'_, T>,
    fd: u32,
    path: &str,
) -> Option<Target> {
    let view = store.data_mut().volume();
    view.ctx.target(view.table, fd, path)
}

/// Shadows the mount-relevant `wasi:filesystem` functions in `linker`. Call
/// after wasmtime-wasi's own `add_to_linker`.
pub fn add_to_linker<T: WasiView + VolumeView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    {
        let mut inst = linker.instance(PREOPENS)?;
        inst.func_wrap(
            "get-directories",
            |mut store: StoreContextMut<'_, T>, (): ()| {
                let dirs = store.data_mut().filesystem().get_directories()?;
                let view = store.data_mut().volume();
                for (d, guest) in &dirs {
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
            },
        )?;
    }
    let mut inst = linker.instance(TYPES)?;

    inst.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, T>,
         (fd, pflags, path, oflags, dflags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let target = parts(&mut store, fd.rep(), &path);
                let writing =
                    dflags.contains(DescriptorFlags::WRITE) || oflags.contains(OpenFlags::TRUNCATE);
                let mut created = false;
                if let Some(t) = &target {
                    let ctx = &mut *store.data_mut().volume().ctx;
                    let exists = ctx.exists(t);
                    if oflags.contains(OpenFlags::CREATE) && !exists {
                        if let Err(code) = ctx.check_create(t) {
                            return Ok((Err(code),));
                        }
                        created = true;
                    }
                    if writing && exists {
                        let Some(m) = ctx.mounts.get_mut(t.mount) else {
                            return Ok((Err(ErrorCode::Io),));
                        };
                        if !m.read_only && m.copy_up(&t.rel).is_err() {
                            return Ok((Err(ErrorCode::Io),));
                        }
                    }
                }
                let mut fs = store.data_mut().filesystem();
                let opened = fs.open_at(fd, pflags, path, oflags, dflags).await;
                let new = match opened {
                    Ok(new) => new,
                    Err(e) => return Ok((Err(fs.convert_error_code(e)?),)),
                };
                let ctx = &mut *store.data_mut().volume().ctx;
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
            })
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, T>, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let target = parts(&mut store, fd.rep(), &path);
                if let Some(t) = &target
                    && let Err(code) = store.data_mut().volume().ctx.check_create(t)
                {
                    return Ok((Err(code),));
                }
                let mut fs = store.data_mut().filesystem();
                if let Err(e) = fs.create_directory_at(fd, path).await {
                    return Ok((Err(fs.convert_error_code(e)?),));
                }
                if let Some(t) = target {
                    store.data_mut().volume().ctx.changed(&t, 1);
                }
                Ok((Ok(()),))
            }) as Box<dyn Future<Output = FsResult<()>> + Send + '_>
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.unlink-file-at",
        |mut store: StoreContextMut<'_, T>, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let target = parts(&mut store, fd.rep(), &path);
                let mut fs = store.data_mut().filesystem();
                if let Err(e) = fs.unlink_file_at(fd, path).await {
                    return Ok((Err(fs.convert_error_code(e)?),));
                }
                if let Some(t) = target {
                    store.data_mut().volume().ctx.changed(&t, -1);
                }
                Ok((Ok(()),))
            }) as Box<dyn Future<Output = FsResult<()>> + Send + '_>
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.remove-directory-at",
        |mut store: StoreContextMut<'_, T>, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let target = parts(&mut store, fd.rep(), &path);
                let mut fs = store.data_mut().filesystem();
                if let Err(e) = fs.remove_directory_at(fd, path).await {
                    return Ok((Err(fs.convert_error_code(e)?),));
                }
                if let Some(t) = target {
                    store.data_mut().volume().ctx.changed(&t, -1);
                }
                Ok((Ok(()),))
            }) as Box<dyn Future<Output = FsResult<()>> + Send + '_>
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, T>,
         (fd, old_path, new_path): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                let target = parts(&mut store, fd.rep(), &new_path);
                if let Some(t) = &target
                    && let Err(code) = store.data_mut().volume().ctx.check_create(t)
                {
                    return Ok((Err(code),));
                }
                let mut fs = store.data_mut().filesystem();
                if let Err(e) = fs.symlink_at(fd, old_path, new_path).await {
                    return Ok((Err(fs.convert_error_code(e)?),));
                }
                if let Some(t) = target {
                    store.data_mut().volume().ctx.changed(&t, 1);
                }
                Ok((Ok(()),))
            }) as Box<dyn Future<Output = FsResult<()>> + Send + '_>
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.rename-at",
        |mut store: StoreContextMut<'_, T>,
         (fd, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            String,
            Resource<Descriptor>,
            String,
        )| {
            Box::new(async move {
                let from = parts(&mut store, fd.rep(), &old_path);
                let to = parts(&mut store, new_fd.rep(), &new_path);
                // Moving between a mount and anything else would move data
                // across volumes (or out of one) behind the stores' back.
                if from.as_ref().map(|t| t.mount) != to.as_ref().map(|t| t.mount) {
                    return Ok((Err(ErrorCode::CrossDevice),));
                }
                let replaced = to
                    .as_ref()
                    .is_some_and(|t| store.data_mut().volume().ctx.exists(t));
                let mut fs = store.data_mut().filesystem();
                if let Err(e) = fs.rename_at(fd, old_path, new_fd, new_path).await {
                    return Ok((Err(fs.convert_error_code(e)?),));
                }
                let ctx = &mut *store.data_mut().volume().ctx;
                if let (Some(f), Some(t)) = (from, to) {
                    ctx.changed(&f, 0);
                    ctx.changed(&t, if replaced { -1 } else { 0 });
                }
                Ok((Ok(()),))
            }) as Box<dyn Future<Output = FsResult<()>> + Send + '_>
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, T>,
         (fd, pflags, old_path, new_fd, new_path): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            Box::new(async move {
                let from = parts(&mut store, fd.rep(), &old_path);
                let to = parts(&mut store, new_fd.rep(), &new_path);
                if from.as_ref().map(|t| t.mount) != to.as_ref().map(|t| t.mount) {
                    return Ok((Err(ErrorCode::CrossDevice),));
                }
                if let Some(t) = &to
                    && let Err(code) = store.data_mut().volume().ctx.check_create(t)
                {
                    return Ok((Err(code),));
                }
                let mut fs = store.data_mut().filesystem();
                if let Err(e) = fs.link_at(fd, pflags, old_path, new_fd, new_path).await {
                    return Ok((Err(fs.convert_error_code(e)?),));
                }
                if let Some(t) = to {
                    store.data_mut().volume().ctx.changed(&t, 1);
                }
                Ok((Ok(()),))
            }) as Box<dyn Future<Output = FsResult<()>> + Send + '_>
        },
    )?;

    inst.func_wrap_async(
        "[method]descriptor.set-times-at",
        |mut store: StoreContextMut<'_, T>,
         (fd, pflags, path, atim, mtim): (
            Resource<Descriptor>,
            PathFlags,
            String,
            NewTimestamp,
            NewTimestamp,
        )| {
            Box::new(async move {
                let target = parts(&mut store, fd.rep(), &path);
                // Times live on the inode, which a blob link shares with the
                // store: copy up first.
                if let Some(t) = &target {
                    let ctx = &mut *store.data_mut().volume().ctx;
                    if let Some(m) = ctx.mounts.get_mut(t.mount)
                        && !m.read_only
                        && m.copy_up(&t.rel).is_err()
                    {
                        return Ok((Err(ErrorCode::Io),));
                    }
                }
                let mut fs = store.data_mut().filesystem();
                if let Err(e) = fs.set_times_at(fd, pflags, path, atim, mtim).await {
                    return Ok((Err(fs.convert_error_code(e)?),));
                }
                if let Some(t) = target {
                    store.data_mut().volume().ctx.changed(&t, 0);
                }
                Ok((Ok(()),))
            }) as Box<dyn Future<Output = FsResult<()>> + Send + '_>
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::join;

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
