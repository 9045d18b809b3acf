//! A guest that fills its disk on purpose, for the host's disk budget and
//! shared-blob tests: it writes by every path `wasi:filesystem` has
//! (descriptor.write, the output streams, set-size, sparse writes, std),
//! holds removed files open, makes many empty files, and changes file
//! times through read-only descriptors. Outcomes come back as text: the
//! WASI error-code name (`insufficient-space`) or std's error kind.
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "test:filler/filler",
    generate_all,
});

use std::io::{Read, Write};

use preopens::{fs_err, split};
use vessel::storage::volume::Volume;
use wasip2::clocks::wall_clock::Datetime;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, NewTimestamp, OpenFlags, PathFlags,
    filesystem_error_code,
};
use wasip2::io::streams::{OutputStream, StreamError};

struct Component;

const MIB: usize = 1 << 20;

/// A stream error as text: the filesystem error code when it has one.
fn stream_err(e: StreamError) -> String {
    match e {
        StreamError::LastOperationFailed(err) => match filesystem_error_code(&err) {
            Some(code) => code.name().to_owned(),
            None => format!("stream: {}", err.to_debug_string()),
        },
        StreamError::Closed => "closed".into(),
    }
}

fn io_err(e: std::io::Error) -> String {
    format!("{:?}", e.kind())
}

fn open(path: &str, oflags: OpenFlags, flags: DescriptorFlags) -> Result<Descriptor, String> {
    let (d, r) = split(path)?;
    let r = if r.is_empty() { ".".to_owned() } else { r };
    d.open_at(PathFlags::SYMLINK_FOLLOW, &r, oflags, flags)
        .map_err(fs_err)
}

/// `len` bytes of the pattern, as they sit at `offset` of a file.
fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((offset + i) % 251) as u8).collect()
}

/// Writes `total` bytes to `out` through its stream API: `blocking` uses
/// blocking-write-and-flush in 4 KiB pieces, `zeroes` write-zeroes, else
/// check-write, write and flush.
fn through_stream(out: &OutputStream, start: u64, total: u64, how: &str) -> (u64, Option<String>) {
    let mut written = 0u64;
    let result = (|| -> Result<(), StreamError> {
        while written < total {
            let left = total - written;
            match how {
                "blocking" => {
                    let n = left.min(4096) as usize;
                    out.blocking_write_and_flush(&pattern(start + written, n))?;
                    written += n as u64;
                }
                _ => {
                    let mut permit = out.check_write()?;
                    while permit == 0 {
                        out.subscribe().block();
                        permit = out.check_write()?;
                    }
                    let n = left.min(permit).min(MIB as u64);
                    if how == "zeroes" {
                        out.write_zeroes(n)?;
                    } else {
                        out.write(&pattern(start + written, n as usize))?;
                    }
                    written += n;
                }
            }
        }
        out.blocking_flush()
    })();
    (written, result.err().map(stream_err))
}

fn fill_file(path: &str, mib: u32, how: &str) -> Filled {
    let total = u64::from(mib) * MIB as u64;
    let done = |written, error| Filled { written, error };
    if how == "std" {
        let mut f = match std::fs::File::create(path) {
            Ok(f) => f,
            Err(e) => return done(0, Some(io_err(e))),
        };
        let mut written = 0u64;
        while written < total {
            let piece = pattern(written, (total - written).min(MIB as u64) as usize);
            let mut at = 0;
            while at < piece.len() {
                match f.write(piece.get(at..).unwrap_or_default()) {
                    Ok(0) => return done(written, Some("wrote nothing".into())),
                    Ok(n) => {
                        at += n;
                        written += n as u64;
                    }
                    Err(e) => return done(written, Some(io_err(e))),
                }
            }
        }
        return done(written, f.flush().err().map(io_err));
    }
    let f = match open(
        path,
        OpenFlags::CREATE | OpenFlags::TRUNCATE,
        DescriptorFlags::WRITE | DescriptorFlags::READ,
    ) {
        Ok(f) => f,
        Err(e) => return done(0, Some(e)),
    };
    match how {
        "write" => {
            let mut written = 0u64;
            while written < total {
                let piece = pattern(written, (total - written).min(MIB as u64) as usize);
                match f.write(&piece, written) {
                    Ok(0) => return done(written, Some("wrote nothing".into())),
                    Ok(n) => written += n,
                    Err(e) => return done(written, Some(fs_err(e))),
                }
            }
            done(written, None)
        }
        "stream" | "blocking" | "zeroes" => {
            let out = match f.write_via_stream(0) {
                Ok(s) => s,
                Err(e) => return done(0, Some(fs_err(e))),
            };
            let (w, e) = through_stream(&out, 0, total, how);
            done(w, e)
        }
        "append" => {
            let out = match f.append_via_stream() {
                Ok(s) => s,
                Err(e) => return done(0, Some(fs_err(e))),
            };
            let (w, e) = through_stream(&out, 0, total, how);
            done(w, e)
        }
        other => done(0, Some(format!("unknown fill {other}"))),
    }
}

fn secs(d: Option<Datetime>) -> u64 {
    d.map_or(0, |d| d.seconds)
}

impl Guest for Component {
    fn fill(path: String, mib: u32, how: String) -> Filled {
        fill_file(&path, mib, &how)
    }

    fn grow(path: String, size: u64, how: String) -> Result<(), String> {
        let f = open(&path, OpenFlags::CREATE, DescriptorFlags::WRITE)?;
        match how.as_str() {
            "set-size" => f.set_size(size).map_err(fs_err),
            "sparse" => f
                .write(&[1], size.saturating_sub(1))
                .map(drop)
                .map_err(fs_err),
            other => Err(format!("unknown grow {other}")),
        }
    }

    fn append(path: String, mib: u32) -> Filled {
        let f = match open(&path, OpenFlags::empty(), DescriptorFlags::WRITE) {
            Ok(f) => f,
            Err(e) => return Filled { written: 0, error: Some(e) },
        };
        let start = match f.stat() {
            Ok(s) => s.size,
            Err(e) => return Filled { written: 0, error: Some(fs_err(e)) },
        };
        let out = match f.append_via_stream() {
            Ok(s) => s,
            Err(e) => return Filled { written: 0, error: Some(fs_err(e)) },
        };
        let (written, error) = through_stream(&out, start, u64::from(mib) * MIB as u64, "stream");
        Filled { written, error }
    }

    fn size(path: String) -> Result<u64, String> {
        let f = open(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
        Ok(f.stat().map_err(fs_err)?.size)
    }

    fn check(path: String, zeroes: bool) -> Result<u64, String> {
        let mut f = std::fs::File::open(&path).map_err(io_err)?;
        let mut buf = vec![0u8; MIB];
        let mut at = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                return Ok(at);
            }
            let want = if zeroes {
                vec![0u8; n]
            } else {
                pattern(at, n)
            };
            if buf.get(..n) != Some(&want[..]) {
                return Err(format!("wrong bytes in the MiB at {at}"));
            }
            at += n as u64;
        }
    }

    fn rm(path: String) -> Result<(), String> {
        let (d, r) = split(&path)?;
        d.unlink_file_at(&r)
            .or_else(|_| d.remove_directory_at(&r))
            .map_err(fs_err)
    }

    fn touch_many(dir: String, n: u32, dirs: bool) -> (u32, Option<String>) {
        let d = match open(&dir, OpenFlags::DIRECTORY, DescriptorFlags::READ) {
            Ok(d) => d,
            Err(e) => return (0, Some(e)),
        };
        for i in 0..n {
            let name = i.to_string();
            let made = if dirs {
                d.create_directory_at(&name)
            } else {
                d.open_at(
                    PathFlags::empty(),
                    &name,
                    OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                    DescriptorFlags::WRITE,
                )
                .map(drop)
            };
            if let Err(e) = made {
                return (i, Some(fs_err(e)));
            }
        }
        (n, None)
    }

    fn fill_unlinked(path: String, mib: u32, other: String, other_mib: u32) -> Filled {
        let first = fill_file(&path, mib, "write");
        if first.error.is_some() {
            return first;
        }
        let held = match open(&path, OpenFlags::empty(), DescriptorFlags::READ) {
            Ok(f) => f,
            Err(e) => return Filled { written: 0, error: Some(format!("reopen: {e}")) },
        };
        if let Err(e) = Self::rm(path) {
            return Filled { written: 0, error: Some(format!("remove: {e}")) };
        }
        let second = fill_file(&other, other_mib, "write");
        drop(held);
        second
    }

    fn set_mtime(path: String, secs: u64, how: String) -> Result<(), String> {
        let when = NewTimestamp::Timestamp(Datetime {
            seconds: secs,
            nanoseconds: 0,
        });
        match how.as_str() {
            "descriptor" => {
                let f = open(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
                f.set_times(NewTimestamp::NoChange, when).map_err(fs_err)
            }
            "at" => {
                let (d, r) = split(&path)?;
                d.set_times_at(PathFlags::SYMLINK_FOLLOW, &r, NewTimestamp::NoChange, when)
                    .map_err(fs_err)
            }
            other => Err(format!("unknown set-mtime {other}")),
        }
    }

    fn read_only_changes(path: String) -> Vec<String> {
        let f = match open(&path, OpenFlags::empty(), DescriptorFlags::READ) {
            Ok(f) => f,
            Err(e) => return vec![format!("open {e}")],
        };
        let show = |name: &str, r: Result<(), String>| match r {
            Ok(()) => format!("{name} ok"),
            Err(e) => format!("{name} {e}"),
        };
        let through = |s: Result<OutputStream, ErrorCode>| {
            let s = s.map_err(fs_err)?;
            s.write(b"changed").map_err(stream_err)?;
            s.blocking_flush().map_err(stream_err)
        };
        vec![
            show("set-size", f.set_size(0).map_err(fs_err)),
            show("write", f.write(b"changed", 0).map(drop).map_err(fs_err)),
            show("write-via-stream", through(f.write_via_stream(0))),
            show("append-via-stream", through(f.append_via_stream())),
            show(
                "advise",
                f.advise(0, 0, wasip2::filesystem::types::Advice::DontNeed)
                    .map_err(fs_err),
            ),
            show("sync-data", f.sync_data().map_err(fs_err)),
            show("sync", f.sync().map_err(fs_err)),
        ]
    }

    fn mtime(path: String) -> Result<u64, String> {
        let f = open(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
        Ok(secs(f.stat().map_err(fs_err)?.data_modification_timestamp))
    }

    fn write_via_moved_dir(dir: String, to: String, file: String, text: String) -> Result<(), String> {
        let d = open(&dir, OpenFlags::DIRECTORY, DescriptorFlags::READ)?;
        let (from_parent, from) = split(&dir)?;
        let (to_parent, to) = split(&to)?;
        from_parent
            .rename_at(&from, &to_parent, &to)
            .map_err(|e| format!("rename: {}", fs_err(e)))?;
        let f = d
            .open_at(
                PathFlags::empty(),
                &file,
                OpenFlags::TRUNCATE,
                DescriptorFlags::WRITE,
            )
            .map_err(|e| format!("open: {}", fs_err(e)))?;
        f.write(text.as_bytes(), 0)
            .map(drop)
            .map_err(|e| format!("write: {}", fs_err(e)))
    }

    fn obj_write(mount: String, path: String, mib: u32) -> Result<(), String> {
        let v = Volume::mounted(&mount).map_err(|e| format!("{e:?}"))?;
        v.write_file(&path, &pattern(0, mib as usize * MIB), true)
            .map_err(|e| format!("{e:?}"))
    }

    fn obj_copy(mount: String, src: String, dst: String) -> Result<(), String> {
        let v = Volume::mounted(&mount).map_err(|e| format!("{e:?}"))?;
        v.copy(&[src], &dst).map_err(|e| format!("{e:?}"))
    }

    fn commit(mount: String) -> Result<(), String> {
        let v = Volume::mounted(&mount).map_err(|e| format!("{e:?}"))?;
        v.commit().map(drop).map_err(|e| format!("{e:?}"))
    }
}

export!(Component);
