//! Volume I/O from a guest next to native I/O on the same machine, measured
//! in the same run:
//! - sequential read of a 1 GiB file in a mounted volume by the volprobe
//!   guest (std::fs::File::read with a 1 MiB and a 64 KiB buffer) vs a
//!   native read of the same file (the stored blob the mount links, same
//!   buffer size), with the file in the page cache (warm) and evicted from
//!   it before each read (cold, `posix_fadvise(DONTNEED)`); the native
//!   read goes into a page-aligned buffer, as `dd` does;
//! - the same reads by one WASI-only guest (the `command` program's
//!   `readlen`), run as a command three ways in the same run: under vessel
//!   with the volume mounted, under plain wasmtime-wasi (same engine
//!   settings, no vessel layer) with a preopened directory holding a hard
//!   link to the same blob, and natively. This is the like-for-like row
//!   for "vessel against plain wasmtime-wasi"; each run includes the
//!   command's instantiation (well under a millisecond for this guest);
//! - a guest writing a 1 GiB file into a mount (1 MiB writes, then
//!   sync_all) and committing it, vs a native write + fsync of the same
//!   bytes.
//!
//!   cargo bench -p vessel-tests --bench volume_io
//!
//! `VESSEL_BENCH_IO_MB` changes the file size (default 1024). The guest
//! component is built from source by tests/build.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use vessel_tests::harness::figures::{Spread, env_u64, median};

use serde_json::json;
use vessel_tests::harness::Host;

const CHUNK: usize = 1 << 20;
const RUNS: usize = 5;
/// The read cases: chunk size, and whether the page cache is emptied
/// before each read.
const READS: [(usize, bool); 3] = [(CHUNK, false), (64 << 10, false), (CHUNK, true)];

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// MB/s of the fastest, median and slowest of runs over `bytes`.
fn rates(bytes: u64, s: Spread) -> String {
    format!(
        "{:.0}/{:.0}/{:.0}",
        mb_s(bytes, s.min),
        mb_s(bytes, s.median),
        mb_s(bytes, s.max)
    )
}

/// Bytes that are not all alike (so nothing downstream can shortcut them).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Drops `path`'s pages from the page cache (it is clean: blobs are
/// fsynced), so the next read comes from the disk.
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: a plain syscall on a descriptor we own for its duration.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

/// A zeroed buffer of `len` bytes on a page boundary, as `dd` reads into:
/// `read(2)` into an unaligned heap buffer runs several times slower on
/// some CPUs, which would flatter the guest.
struct PageBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl PageBuf {
    fn new(len: usize) -> PageBuf {
        let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: `layout` has a non-zero size (the chunk sizes are > 0).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocating {len} bytes");
        PageBuf { ptr, layout }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live, zero-initialised allocation of
        // `layout.size()` bytes that this value owns exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

fn native_read(path: &Path, chunk: usize) -> (Duration, u64) {
    let mut f = std::fs::File::open(path).unwrap();
    let mut page = PageBuf::new(chunk);
    let buf = page.as_mut();
    let mut total = 0u64;
    let t = Instant::now();
    loop {
        match f.read(buf).unwrap() {
            0 => break,
            n => total += n as u64,
        }
    }
    (t.elapsed(), total)
}

fn native_write(path: &Path, size: u64) -> Duration {
    let buf: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    let mut f = std::fs::File::create(path).unwrap();
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64);
        f.write_all(&buf[..n as usize]).unwrap();
        left -= n;
    }
    f.sync_all().unwrap();
    drop(f);
    let d = t.elapsed();
    std::fs::remove_file(path).unwrap();
    d
}

#[tokio::main]
async fn main() {
    let mb = env_u64("VESSEL_BENCH_IO_MB", 1024);
    let size = mb << 20;
    let host = Host::new();
    let (dir, service) = (&host.home, &host.service);
    let guest = host.program("volprobe");
    let config = host.config(&[("io", "/data")]);

    // A 1 GiB file in the volume, written in 1 MiB pieces.
    service.volume_create("io").unwrap();
    let src = dir.path().join("big.bin");
    {
        let mut f = std::fs::File::create(&src).unwrap();
        for i in 0..mb {
            f.write_all(&pattern(CHUNK, i)).unwrap();
        }
    }
    let mut batch = service.volume_batch("io", false).unwrap();
    batch.put_file(&src, "/big.bin").unwrap();
    batch.commit().unwrap();
    std::fs::remove_file(&src).unwrap();
    let store = service.stores.volumes.clone().unwrap();
    let blob = store.node("io", "big.bin").unwrap().unwrap().blob.unwrap();
    let blob_path = store.local_blob(&blob).unwrap();

    // Read: alternate native and guest; warm reads after one read that
    // fills the page cache.
    let mut g = guest.start(&config).await;
    native_read(&blob_path, CHUNK);
    for (chunk, cold) in READS {
        // A cold read starts with the file out of the page cache.
        let settle = || {
            if cold {
                evict(&blob_path);
            }
        };
        let args = json!(["/data/big.bin", chunk]);
        let (mut native, mut ours) = (vec![], vec![]);
        for _ in 0..RUNS {
            settle();
            let (d, n) = native_read(&blob_path, chunk);
            assert_eq!(n, size);
            native.push(d);
            settle();
            let t = Instant::now();
            let r = g.call("fs-read-len", args.clone()).await;
            ours.push(t.elapsed());
            assert_eq!(r, json!({ "ok": size }));
        }
        let (native, ours) = (Spread::of(native), Spread::of(ours));
        let rates = |s: Spread| rates(size, s);
        println!(
            "sequential read of {mb} MiB, {:>4} KiB reads, {}: guest from a mount {} MB/s | native (page-aligned buffer) {} MB/s | ratio {:.2} (of medians)",
            chunk >> 10,
            if cold { "cold" } else { "warm" },
            rates(ours),
            rates(native),
            native.median.as_secs_f64() / ours.median.as_secs_f64(),
        );
    }
    drop(g);

    // One WASI command guest, vessel mount vs plain wasmtime-wasi preopen.
    let command = host.program("command");
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir(&plain_dir).unwrap();
    std::fs::hard_link(&blob_path, plain_dir.join("big.bin")).unwrap();
    let plain = plain::Plain::new(command.engine().engine(), command.component());
    let read_only = {
        let mut c = host.config(&[("io", "/data")]);
        c.volume_mounts[0].read_only = true;
        c
    };
    let size_arg = size.to_string();
    for (chunk, cold) in READS {
        // A cold read starts with the file out of the page cache.
        let settle = || {
            if cold {
                evict(&blob_path);
            }
        };
        let chunk_arg = chunk.to_string();
        let argv = ["readlen", "/data/big.bin", &chunk_arg, &size_arg];
        let (mut native, mut bare, mut ours) = (vec![], vec![], vec![]);
        for _ in 0..RUNS {
            settle();
            native.push(native_read(&blob_path, chunk).0);
            settle();
            let t = Instant::now();
            assert!(
                plain.run(&plain_dir, &argv).await,
                "plain wasmtime-wasi readlen"
            );
            bare.push(t.elapsed());
            settle();
            let t = Instant::now();
            assert_eq!(
                command.run_command(&read_only, &argv).await,
                0,
                "vessel readlen"
            );
            ours.push(t.elapsed());
        }
        let (native, bare, ours) = (Spread::of(native), Spread::of(bare), Spread::of(ours));
        let rates = |s: Spread| rates(size, s);
        let of = |a: Spread, b: Spread| b.median.as_secs_f64() / a.median.as_secs_f64();
        println!(
            "command read of {mb} MiB, {:>4} KiB reads, {}: vessel mount {} MB/s ({:.2} of native) | plain wasmtime-wasi preopen {} MB/s ({:.2} of native) | native {} MB/s | vessel / plain wasmtime-wasi {:.2} (of medians; target >= 0.95)",
            chunk >> 10,
            if cold { "cold" } else { "warm" },
            rates(ours),
            of(ours, native),
            rates(bare),
            of(bare, native),
            rates(native),
            of(ours, bare),
        );
    }

    // Write + commit. Between runs the file is removed and collected, so
    // every commit stores its blob afresh.
    let (mut write, mut commit, mut native) = (vec![], vec![], vec![]);
    for run in 0..RUNS {
        native.push(native_write(&dir.path().join("native.bin"), size));
        let mut g = guest.start(&config).await;
        let t = Instant::now();
        let r = g
            .call(
                "fs-write-len",
                json!([format!("/data/out-{run}.bin"), size, CHUNK]),
            )
            .await;
        write.push(t.elapsed());
        assert_eq!(r, json!({ "ok": size }));
        let t = Instant::now();
        let r = g.call("commit", json!(["/data"])).await;
        commit.push(t.elapsed());
        assert!(r.get("ok").is_some(), "{r}");
        drop(g);
        service
            .volume_rm("io", &format!("/out-{run}.bin"), false)
            .unwrap();
        service.volume_gc(Some(Duration::ZERO)).unwrap();
    }
    let (write, commit, native) = (median(write), median(commit), median(native));
    let both = write + commit;
    println!(
        "write {mb} MiB: guest write+sync {:>6.0} MB/s, commit {:>6.0} MB/s, write+sync+commit {:>6.0} MB/s | native write+fsync {:>6.0} MB/s | ratios {:.2} (write) {:.2} (write+commit)",
        mb_s(size, write),
        mb_s(size, commit),
        mb_s(size, both),
        mb_s(size, native),
        native.as_secs_f64() / write.as_secs_f64(),
        native.as_secs_f64() / both.as_secs_f64(),
    );
}

/// The baseline runner: a `wasi:cli/run` command under wasmtime-wasi alone,
/// on the engine vessel configured (so code generation is the same), with
/// one preopened directory and nothing of vessel's in the way.
mod plain {
    use std::path::Path;

    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime::{Engine, Store};
    use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

    struct State {
        ctx: WasiCtx,
        table: ResourceTable,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.ctx,
                table: &mut self.table,
            }
        }
    }

    pub struct Plain {
        engine: Engine,
        component: Component,
        linker: Linker<State>,
    }

    impl Plain {
        pub fn new(engine: &Engine, component: &Component) -> Plain {
            let mut linker = Linker::new(engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
            Plain {
                engine: engine.clone(),
                component: component.clone(),
                linker,
            }
        }

        /// Runs the command with `dir` preopened at `/data`; whether it
        /// exited successfully.
        pub async fn run(&self, dir: &Path, argv: &[&str]) -> bool {
            let mut wasi = WasiCtxBuilder::new();
            wasi.arg("command").args(argv).inherit_stderr();
            wasi.preopened_dir(dir, "/data", FsPerms::ReadOnly).unwrap();
            let state = State {
                ctx: wasi.build(),
                table: ResourceTable::new(),
            };
            let mut store = Store::new(&self.engine, state);
            // The engine interrupts on epochs (vessel's timeouts); this
            // store runs without a deadline.
            store.set_epoch_deadline(u64::MAX / 2);
            let command = wasmtime_wasi::p2::bindings::Command::instantiate_async(
                &mut store,
                &self.component,
                &self.linker,
            )
            .await
            .unwrap();
            matches!(
                command.wasi_cli_run().call_run(&mut store).await,
                Ok(Ok(()))
            )
        }
    }
}
