//! Exercises volume mounts through plain std::fs and the SDK, reporting
//! errors as text for the tests to check.
wit_bindgen::generate!({ world: "volprobe", path: "wit" });

use std::io::Write;
use vessel_sdk::{Conflicts, DiffChange, Volume};

struct Component;

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

fn spin(ms: u64) {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed().as_millis() < u128::from(ms) {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

impl Guest for Component {
    fn fs_write(path: String, text: String) -> Result<(), String> {
        std::fs::write(&path, text).map_err(e)
    }
    fn fs_read(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(e)
    }
    fn fs_append(path: String, text: String) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).map_err(e)?;
        f.write_all(text.as_bytes()).map_err(e)
    }
    fn fs_list(path: String) -> Result<Vec<String>, String> {
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .map_err(e)?
            .filter_map(|d| d.ok())
            .map(|d| d.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
    fn fs_remove(path: String) -> Result<(), String> {
        let meta = std::fs::symlink_metadata(&path).map_err(e)?;
        if meta.is_dir() {
            std::fs::remove_dir_all(&path).map_err(e)
        } else {
            std::fs::remove_file(&path).map_err(e)
        }
    }
    fn fs_rename(src: String, dst: String) -> Result<(), String> {
        std::fs::rename(&src, &dst).map_err(e)
    }
    fn fs_mkdir(path: String) -> Result<(), String> {
        std::fs::create_dir_all(&path).map_err(e)
    }
    fn fs_rmdir(path: String) -> Result<(), String> {
        std::fs::remove_dir(&path).map_err(e)
    }
    fn fs_create_new(path: String, text: String) -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|err| format!("{err} (kind {:?})", err.kind()))?;
        f.write_all(text.as_bytes()).map_err(e)
    }
    fn fs_stat(path: String) -> Result<String, String> {
        let meta = std::fs::symlink_metadata(&path).map_err(e)?;
        if meta.is_dir() {
            Ok("dir".into())
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(e)?;
            Ok(format!("symlink {}", target.display()))
        } else {
            Ok(format!("file {}", meta.len()))
        }
    }
    fn fs_read_len(path: String, chunk: u32) -> Result<u64, String> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path).map_err(e)?;
        let mut buf = vec![0u8; chunk.max(1) as usize];
        let mut total = 0u64;
        loop {
            match f.read(&mut buf).map_err(e)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    }
    fn fs_checksum(path: String, chunk: u32) -> Result<u64, String> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path).map_err(e)?;
        let mut buf = vec![0u8; chunk.max(1) as usize];
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        loop {
            let n = f.read(&mut buf).map_err(e)?;
            if n == 0 {
                return Ok(hash);
            }
            for b in &buf[..n] {
                hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    fn fs_write_len(path: String, size: u64, chunk: u32) -> Result<u64, String> {
        let mut f = std::fs::File::create(&path).map_err(e)?;
        let chunk = u64::from(chunk.max(1));
        let buf: Vec<u8> = (0..chunk).map(|i| (i % 251) as u8).collect();
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk);
            f.write_all(&buf[..n as usize]).map_err(e)?;
            left -= n;
        }
        f.sync_all().map_err(e)?;
        Ok(size)
    }
    fn create_many(dir: String, n: u32) -> (u32, Option<String>) {
        for i in 0..n {
            if let Err(err) = std::fs::write(format!("{dir}/{i}"), b"x") {
                return (i, Some(format!("{err} (kind {:?})", err.kind())));
            }
        }
        (n, None)
    }
    fn commit(mount: String) -> Result<String, String> {
        let info = Volume::mounted(&mount).map_err(e)?.commit().map_err(e)?;
        Ok(format!("{} {} {}", info.version, info.changed, info.removed))
    }
    fn reload(mount: String) -> Result<u64, String> {
        Volume::mounted(&mount).map_err(e)?.reload().map_err(e)
    }
    fn version(mount: String) -> Result<u64, String> {
        Ok(Volume::mounted(&mount).map_err(e)?.version())
    }
    fn reload_while_open(mount: String, path: String) -> Result<u64, String> {
        let _f = std::fs::File::open(&path).map_err(e)?;
        Volume::mounted(&mount).map_err(e)?.reload().map_err(e)
    }
    fn write_then_spin(path: String, text: String, ms: u64) -> Result<(), String> {
        std::fs::write(&path, text).map_err(e)?;
        spin(ms);
        Ok(())
    }
    fn write_then_sleep(path: String, text: String, ms: u64) -> Result<(), String> {
        std::fs::write(&path, text).map_err(e)?;
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok(())
    }
    fn write_slowly(path: String, first: String, second: String, ms: u64) -> Result<(), String> {
        let mut f = std::fs::File::create(&path).map_err(e)?;
        f.write_all(first.as_bytes()).map_err(e)?;
        f.flush().map_err(e)?;
        spin(ms);
        f.write_all(second.as_bytes()).map_err(e)?;
        Ok(())
    }
    fn write_then_trap(path: String, text: String) {
        let _ = std::fs::write(&path, text);
        panic!("trap after writing {path}");
    }
    fn obj_write(volume: String, path: String, text: String, overwrite: bool) -> Result<(), String> {
        let v = Volume::from_name(&volume, true).map_err(e)?;
        v.write_file(&path, text.as_bytes(), overwrite).map_err(e)
    }
    fn obj_read(volume: String, path: String, offset: u64, length: u64) -> Result<String, String> {
        let v = Volume::from_name(&volume, false).map_err(e)?;
        let bytes = v.read_range(&path, offset, length).map_err(e)?;
        String::from_utf8(bytes).map_err(e)
    }
    fn obj_list(volume: String, path: String, recursive: bool) -> Result<Vec<String>, String> {
        let v = Volume::from_name(&volume, false).map_err(e)?;
        Ok(v.listdir(&path, recursive)
            .map_err(e)?
            .into_iter()
            .map(|x| format!("{}:{:?}:{}", x.path, x.kind, x.size))
            .collect())
    }
    fn obj_remove(volume: String, path: String, recursive: bool) -> Result<(), String> {
        let v = Volume::from_name(&volume, false).map_err(e)?;
        v.remove(&path, recursive).map_err(e)
    }
    fn obj_copy(volume: String, srcs: Vec<String>, dst: String) -> Result<(), String> {
        let v = Volume::from_name(&volume, false).map_err(e)?;
        let refs: Vec<&str> = srcs.iter().map(String::as_str).collect();
        v.copy(&refs, &dst).map_err(e)
    }
    fn read_at(volume: String, version: u64, path: String) -> Result<String, String> {
        let v = Volume::at_version(&volume, version).map_err(e)?;
        String::from_utf8(v.read_file(&path).map_err(e)?).map_err(e)
    }
    fn write_at(volume: String, version: u64, path: String) -> Result<(), String> {
        let v = Volume::at_version(&volume, version).map_err(e)?;
        v.write_file(&path, b"x", true).map_err(e)
    }
    fn history_of(mount: String, limit: u32) -> Result<Vec<String>, String> {
        let h = Volume::mounted(&mount).map_err(e)?.history(limit).map_err(e)?;
        let mut out = vec![format!("{} {}", h.head, h.oldest)];
        out.extend(
            h.versions
                .iter()
                .map(|v| format!("{} {} {}", v.version, v.changed, v.removed)),
        );
        Ok(out)
    }
    fn diff_of(mount: String, since: u64, until: Option<u64>) -> Result<Vec<String>, String> {
        let d = Volume::mounted(&mount).map_err(e)?.diff(since, until).map_err(e)?;
        Ok(d.into_iter()
            .map(|x| {
                let c = match x.change {
                    DiffChange::Added => 'A',
                    DiffChange::Modified => 'M',
                    DiffChange::Removed => 'D',
                };
                format!("{c} {}", x.path)
            })
            .collect())
    }
    fn fork_to(mount: String, name: String) -> Result<u64, String> {
        let f = Volume::mounted(&mount).map_err(e)?.fork(&name).map_err(e)?;
        Ok(f.version())
    }
    fn write_and_commit(
        mount: String,
        path: String,
        text: String,
        commit_at_ms: u64,
        fail: bool,
    ) -> Result<String, String> {
        std::fs::write(&path, text).map_err(e)?;
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(e)?
                .as_millis();
            if now >= u128::from(commit_at_ms) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let policy = if fail {
            Conflicts::Fail
        } else {
            Conflicts::LastWriterWins
        };
        match Volume::mounted(&mount).map_err(e)?.commit_with(policy) {
            Ok(info) => Ok(format!("committed {}", info.version)),
            Err(vessel_sdk::Error::Conflict { paths, head }) => {
                Ok(format!("conflict {head} {}", paths.join(",")))
            }
            Err(other) => Err(e(other)),
        }
    }
}

export!(Component);
