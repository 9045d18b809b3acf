//! A guest that misbehaves on purpose, for the host's fault and escape
//! tests: it uses raw `wasi:filesystem` calls (descriptor-relative opens,
//! 4 GiB lengths) and raw `vessel:storage` handles (forged after a drop).
//! Outcomes come back as text; a trap ends the call, which is what some
//! tests expect.
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "test:hostile/hostile",
    generate_all,
});

use preopens::{fs_err, split};
use vessel::storage::dict::Dict;
use vessel::storage::volume::Volume;
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, OpenFlags, PathFlags,
};

struct Component;

/// Four gibibytes: a length no guest buffer holds.
const FOUR_GIB: u64 = 4 << 30;

/// The preopen the guest knows as `name` (`/`, `/data`, ...).
fn preopen_named(name: &str) -> Result<Descriptor, String> {
    get_directories()
        .into_iter()
        .find(|(_, g)| g == name)
        .map(|(d, _)| d)
        .ok_or_else(|| format!("no preopen {name}"))
}

fn rel(path: &str) -> String {
    if path.is_empty() {
        ".".into()
    } else {
        path.to_owned()
    }
}

fn open_dir(path: &str) -> Result<Descriptor, String> {
    let (d, r) = split(path)?;
    if r.is_empty() {
        return Ok(d);
    }
    d.open_at(
        PathFlags::SYMLINK_FOLLOW,
        &r,
        OpenFlags::DIRECTORY,
        DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
    )
    .or_else(|_| {
        d.open_at(
            PathFlags::SYMLINK_FOLLOW,
            &r,
            OpenFlags::DIRECTORY,
            DescriptorFlags::READ,
        )
    })
    .map_err(fs_err)
}

fn names(d: &Descriptor) -> Result<Vec<String>, String> {
    let stream = d.read_directory().map_err(fs_err)?;
    let mut out = Vec::new();
    while let Some(e) = stream.read_directory_entry().map_err(fs_err)? {
        out.push(e.name);
    }
    out.sort();
    Ok(out)
}

fn open_file(path: &str, oflags: OpenFlags, flags: DescriptorFlags) -> Result<Descriptor, String> {
    let (d, r) = split(path)?;
    d.open_at(PathFlags::SYMLINK_FOLLOW, &rel(&r), oflags, flags)
        .map_err(fs_err)
}

fn write_all(f: &Descriptor, bytes: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    while at < bytes.len() {
        let n = f
            .write(bytes.get(at..).unwrap_or_default(), at as u64)
            .map_err(fs_err)?;
        at += n as usize;
    }
    Ok(())
}

impl Guest for Component {
    fn use_after_drop(kind: String) -> String {
        match kind.as_str() {
            "dict" => {
                let d = match Dict::open("uad", true) {
                    Ok(d) => d,
                    Err(e) => return format!("open failed: {e:?}"),
                };
                let h = d.handle();
                drop(d);
                // SAFETY: deliberately not safe: the handle was dropped.
                let stale = unsafe { Dict::from_handle(h) };
                format!("stale dict answered: {:?}", stale.len())
            }
            "volume" => {
                let v = match Volume::from_name("uad", true) {
                    Ok(v) => v,
                    Err(e) => return format!("open failed: {e:?}"),
                };
                let h = v.handle();
                drop(v);
                // SAFETY: as above.
                let stale = unsafe { Volume::from_handle(h) };
                format!("stale volume answered: {:?}", stale.listdir("", false))
            }
            "swapped" => {
                let d = match Dict::open("uad", true) {
                    Ok(d) => d,
                    Err(e) => return format!("open failed: {e:?}"),
                };
                let h = d.handle();
                drop(d);
                // The freed slot is taken by a handle of another type.
                let v = match Volume::from_name("uad", true) {
                    Ok(v) => v,
                    Err(e) => return format!("open failed: {e:?}"),
                };
                let reused = v.handle() == h;
                // SAFETY: as above.
                let stale = unsafe { Dict::from_handle(h) };
                let r = stale.len();
                std::mem::forget(stale);
                format!("stale dict (slot reused: {reused}) answered: {r:?}")
            }
            other => format!("unknown kind {other}"),
        }
    }

    fn huge_read(path: String, how: String) -> Result<u64, String> {
        match how.as_str() {
            "read" => {
                let f = open_file(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
                let (bytes, _end) = f.read(FOUR_GIB, 0).map_err(fs_err)?;
                Ok(bytes.len() as u64)
            }
            "stream" => {
                let f = open_file(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
                let s = f.read_via_stream(0).map_err(fs_err)?;
                let bytes = s.blocking_read(FOUR_GIB).map_err(|e| format!("{e:?}"))?;
                Ok(bytes.len() as u64)
            }
            "object" => {
                let (mount, rel) = path
                    .split_once(':')
                    .ok_or_else(|| "object reads take MOUNT:REL".to_owned())?;
                let v = Volume::mounted(mount).map_err(|e| format!("{e:?}"))?;
                let bytes = v
                    .read_file(rel, 0, FOUR_GIB)
                    .map_err(|e| format!("{e:?}"))?;
                Ok(bytes.len() as u64)
            }
            other => Err(format!("unknown read {other}")),
        }
    }

    fn open_many(dir: String, n: u32) -> (u32, Option<String>, Result<(), String>) {
        let d = match open_dir(&dir) {
            Ok(d) => d,
            Err(e) => return (0, Some(e), Ok(())),
        };
        let mut open = Vec::new();
        let mut first_err = None;
        for i in 0..n {
            match d.open_at(
                PathFlags::empty(),
                &i.to_string(),
                OpenFlags::CREATE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            ) {
                Ok(f) => open.push(f),
                Err(e) => {
                    first_err = Some(fs_err(e));
                    break;
                }
            }
        }
        let got = open.len() as u32;
        drop(open);
        let after = d
            .open_at(
                PathFlags::empty(),
                "after-close",
                OpenFlags::CREATE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map_err(fs_err)
            .and_then(|f| write_all(&f, b"ok"));
        (got, first_err, after)
    }

    fn nest(dir: String, depth: u32) -> (u32, Option<String>) {
        let mut cur = match open_dir(&dir) {
            Ok(d) => d,
            Err(e) => return (0, Some(e)),
        };
        for i in 0..depth {
            if let Err(e) = cur.create_directory_at("d") {
                return (i, Some(fs_err(e)));
            }
            match cur.open_at(
                PathFlags::empty(),
                "d",
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
            ) {
                Ok(next) => cur = next,
                Err(e) => return (i + 1, Some(fs_err(e))),
            }
        }
        let leaf = cur
            .open_at(
                PathFlags::empty(),
                "leaf",
                OpenFlags::CREATE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map_err(fs_err)
            .and_then(|f| write_all(&f, b"bottom"));
        (depth, leaf.err())
    }

    fn nest_depth(dir: String) -> Result<(u32, bool), String> {
        let mut cur = open_dir(&dir)?;
        let mut depth = 0;
        loop {
            let here = names(&cur)?;
            if !here.iter().any(|n| n == "d") {
                return Ok((depth, here.iter().any(|n| n == "leaf")));
            }
            cur = cur
                .open_at(
                    PathFlags::empty(),
                    "d",
                    OpenFlags::DIRECTORY,
                    DescriptorFlags::READ,
                )
                .map_err(|e| format!("at depth {depth}: {}", e.name()))?;
            depth += 1;
        }
    }

    fn unnest(dir: String) -> Result<u32, String> {
        // Descend keeping one descriptor every STEP levels (holding every
        // level would cross the open-file limit), then remove bottom-up
        // with short paths relative to the nearest of them.
        const STEP: u32 = 32;
        let mut marks = vec![open_dir(&dir)?];
        let mut cur = open_dir(&dir)?;
        let mut depth = 0u32;
        loop {
            match cur.stat_at(PathFlags::empty(), "d") {
                Ok(s) if s.type_ == DescriptorType::Directory => {}
                _ => break,
            }
            cur = cur
                .open_at(
                    PathFlags::empty(),
                    "d",
                    OpenFlags::DIRECTORY,
                    DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
                )
                .map_err(|e| format!("at depth {depth}: {}", e.name()))?;
            depth += 1;
            if depth % STEP == 0 {
                marks.push(cur);
                cur = marks
                    .last()
                    .ok_or("no mark")?
                    .open_at(
                        PathFlags::empty(),
                        ".",
                        OpenFlags::DIRECTORY,
                        DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
                    )
                    .map_err(fs_err)?;
            }
        }
        let _ = cur.unlink_file_at("leaf");
        drop(cur);
        // Level `level` (1-based) is `d` under level - 1. (A directory a
        // mark holds open can still be removed.)
        for level in (1..=depth).rev() {
            let base = (level - 1) / STEP;
            let mark = marks
                .get(base as usize)
                .ok_or_else(|| format!("no mark for level {level}"))?;
            let path = vec!["d"; (level - base * STEP) as usize].join("/");
            mark.remove_directory_at(&path)
                .map_err(|e| format!("at depth {level}: {}", e.name()))?;
        }
        Ok(depth)
    }

    fn fs_symlink(target: String, link: String) -> Result<(), String> {
        let (d, r) = split(&link)?;
        d.symlink_at(&target, &r).map_err(fs_err)
    }

    fn fs_hard_link(src: String, dst: String) -> Result<(), String> {
        let (sd, sr) = split(&src)?;
        let (dd, dr) = split(&dst)?;
        sd.link_at(PathFlags::empty(), &sr, &dd, &dr)
            .map_err(fs_err)
    }

    fn fs_rename(src: String, dst: String) -> Result<(), String> {
        let (sd, sr) = split(&src)?;
        let (dd, dr) = split(&dst)?;
        sd.rename_at(&sr, &dd, &dr).map_err(fs_err)
    }

    fn fs_read(path: String) -> Result<String, String> {
        let f = open_file(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
        let mut out = Vec::new();
        loop {
            let (bytes, end) = f.read(65536, out.len() as u64).map_err(fs_err)?;
            out.extend_from_slice(&bytes);
            if end || bytes.is_empty() {
                break;
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    fn fs_write(path: String, text: String) -> Result<(), String> {
        let f = open_file(
            &path,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )?;
        write_all(&f, text.as_bytes())
    }

    fn fs_open_trunc(path: String) -> Result<(), String> {
        open_file(&path, OpenFlags::TRUNCATE, DescriptorFlags::READ).map(drop)
    }

    fn fs_open_read(path: String, follow: bool) -> Result<String, String> {
        let (d, r) = split(&path)?;
        let flags = if follow {
            PathFlags::SYMLINK_FOLLOW
        } else {
            PathFlags::empty()
        };
        let f = d
            .open_at(flags, &rel(&r), OpenFlags::empty(), DescriptorFlags::READ)
            .map_err(fs_err)?;
        match f.get_type().map_err(fs_err)? {
            DescriptorType::Directory => Ok(format!("dir {:?}", names(&f)?)),
            _ => {
                let (bytes, _) = f.read(65536, 0).map_err(fs_err)?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }

    fn fs_list_dir(path: String) -> Result<Vec<String>, String> {
        names(&open_dir(&path)?)
    }

    fn fs_mkdir(path: String) -> Result<(), String> {
        let (d, r) = split(&path)?;
        d.create_directory_at(&r).map_err(fs_err)
    }

    fn fs_remove(path: String) -> Result<(), String> {
        let (d, r) = split(&path)?;
        d.unlink_file_at(&r)
            .or_else(|_| d.remove_directory_at(&r))
            .map_err(fs_err)
    }

    fn raw_read(preopen: String, path: String, follow: bool) -> Result<String, String> {
        let d = preopen_named(&preopen)?;
        let flags = if follow {
            PathFlags::SYMLINK_FOLLOW
        } else {
            PathFlags::empty()
        };
        let f = d
            .open_at(flags, &path, OpenFlags::empty(), DescriptorFlags::READ)
            .map_err(fs_err)?;
        match f.get_type().map_err(fs_err)? {
            DescriptorType::Directory => Ok(format!("dir {:?}", names(&f)?)),
            _ => {
                let (bytes, _) = f.read(65536, 0).map_err(fs_err)?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }

    fn raw_symlink(preopen: String, target: String, link: String) -> Result<(), String> {
        preopen_named(&preopen)?
            .symlink_at(&target, &link)
            .map_err(fs_err)
    }

    fn raw_link(preopen: String, old: String, new: String, follow: bool) -> Result<(), String> {
        let d = preopen_named(&preopen)?;
        let flags = if follow {
            PathFlags::SYMLINK_FOLLOW
        } else {
            PathFlags::empty()
        };
        d.link_at(flags, &old, &d, &new).map_err(fs_err)
    }

    fn raw_mkdir(preopen: String, path: String) -> Result<(), String> {
        preopen_named(&preopen)?
            .create_directory_at(&path)
            .map_err(fs_err)
    }

    fn raw_write(preopen: String, path: String, text: String) -> Result<(), String> {
        let f = preopen_named(&preopen)?
            .open_at(
                PathFlags::SYMLINK_FOLLOW,
                &path,
                OpenFlags::CREATE,
                DescriptorFlags::WRITE,
            )
            .map_err(fs_err)?;
        write_all(&f, text.as_bytes())
    }

    fn obj_read(mount: String, path: String) -> Result<String, String> {
        let v = Volume::mounted(&mount).map_err(|e| format!("{e:?}"))?;
        let bytes = v.read_file(&path, 0, 65536).map_err(|e| format!("{e:?}"))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn preopens() -> Vec<String> {
        let mut out: Vec<String> = get_directories().into_iter().map(|(_, g)| g).collect();
        out.sort();
        out
    }

    fn dict_open(name: String) -> Result<String, String> {
        Dict::open(&name, true)
            .map(|d| format!("ok {}", d.name()))
            .map_err(|e| format!("{e:?}"))
    }

    fn volume_open(name: String) -> Result<Vec<String>, String> {
        let v = Volume::from_name(&name, false).map_err(|e| format!("{e:?}"))?;
        Ok(v.listdir("", false)
            .map_err(|e| format!("{e:?}"))?
            .into_iter()
            .map(|e| e.path)
            .collect())
    }

    fn commit(mount: String) -> Result<String, String> {
        let v = Volume::mounted(&mount).map_err(|e| format!("{e:?}"))?;
        let i = v.commit().map_err(|e| format!("{e:?}"))?;
        Ok(format!("{} {} {}", i.version, i.changed, i.removed))
    }

    fn reload(mount: String) -> Result<u64, String> {
        let v = Volume::mounted(&mount).map_err(|e| format!("{e:?}"))?;
        v.reload().map_err(|e| format!("{e:?}"))
    }

    fn obj_count(mount: String, path: String) -> Result<u64, String> {
        let v = Volume::mounted(&mount).map_err(|e| format!("{e:?}"))?;
        Ok(v.listdir(&path, true).map_err(|e| format!("{e:?}"))?.len() as u64)
    }

    fn obj_remove(mount: String, path: String) -> Result<(), String> {
        let v = Volume::mounted(&mount).map_err(|e| format!("{e:?}"))?;
        v.remove(&path, true).map_err(|e| format!("{e:?}"))
    }
}

export!(Component);
