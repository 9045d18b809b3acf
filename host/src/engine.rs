//! The wasmtime engine every container shares: its configuration, the epoch
//! ticker that drives timeouts, and the on-disk cache of compiled components.
//!
//! The cache key is the BLAKE3 hash of the component's bytes together with
//! the engine's compatibility hash (wasmtime version, target, settings), so a
//! changed component or engine never reads a stale artifact. The hash of a
//! component file is remembered against the file's stamp, so a hit reads
//! neither the component nor the compiled entry in full. Entries are
//! native code: [`cache`] decides which folder and which entry may be
//! loaded (owner, mode, a keyed MAC per entry); an entry that fails its
//! checks or that wasmtime refuses is deleted and rebuilt, never trusted.

mod cache;
mod evict;

/// A file's identity and version (device, inode, size, mtime, ctime), as
/// the compile cache stamps component files.
pub use cache::Stamp as FileStamp;
pub use evict::{CacheEntry, CompileCache, DEFAULT_CACHE_MAX_BYTES, Pruned};

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::error::chain;

/// How often the epoch advances. Timeouts are measured in these ticks, and a
/// running guest yields to the async executor at each one.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read component {path}: {source}{}", build_hint(path, source.kind() == std::io::ErrorKind::NotFound))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a core WebAssembly module, not a component; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    CoreModule { path: PathBuf },
    #[error(
        "{path} is not a WebAssembly component (bad magic number; is it a .wasm file?){}",
        build_hint(path, true)
    )]
    NotWasm { path: PathBuf },
    #[error("{path} is not a valid component: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot configure the wasmtime engine: {0}")]
    Config(String),
}

/// Engine settings.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Meter fuel, so functions can have an instruction budget. Metering
    /// slows guest code down, so it is off unless an app asks for it.
    pub fuel: bool,
    /// The compile cache's bound in bytes; `None`:
    /// [`DEFAULT_CACHE_MAX_BYTES`]. Past it, the least recently used
    /// entries are removed whenever a new one is written.
    pub cache_max_bytes: Option<u64>,
}

/// The shared engine plus its compile cache.
#[derive(Clone)]
pub struct VesselEngine {
    engine: Engine,
    cache: Option<Arc<cache::DiskCache>>,
    cache_salt: [u8; 32],
    /// The compile cache's bound in bytes.
    cache_max_bytes: u64,
    fuel: bool,
    /// Components loaded by this engine, by cache key: a warm host loads
    /// each component once, however many apps name it.
    loaded: Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], Component>>>,
    _ticker: Arc<EpochTicker>,
}

impl std::fmt::Debug for VesselEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VesselEngine")
            .field("cache_dir", &self.cache.as_ref().map(|c| c.dir()))
            .finish_non_exhaustive()
    }
}

/// What [`VesselEngine::load`] did, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// This engine had loaded the same bytes before; no disk access.
    Memory,
    /// Loaded a compiled artifact from the cache.
    Hit,
    /// Compiled (no entry, or caching off).
    Miss,
    /// An entry existed but was corrupt, forged, from another cache, not
    /// the user's, or incompatible; compiled afresh and replaced.
    Rebuilt,
    /// The cache folder is not trusted (not the user's, or others can
    /// write it; a warning says which): compiled in memory, nothing read
    /// or written there.
    Untrusted,
}

impl CacheOutcome {
    /// The outcome as a metric label: `memory`, `hit`, `miss`, `rebuilt`,
    /// `untrusted`.
    pub fn label(self) -> &'static str {
        match self {
            CacheOutcome::Memory => "memory",
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Rebuilt => "rebuilt",
            CacheOutcome::Untrusted => "untrusted",
        }
    }
}

/// Counts a load's cache outcome in the process's metrics.
fn counted(
    r: Result<(Component, CacheOutcome), EngineError>,
) -> Result<(Component, CacheOutcome), EngineError> {
    if let Ok((_, outcome)) = &r {
        crate::metrics::global()
            .compile_cache
            .get_or_create(&crate::metrics::ResultLabels {
                result: outcome.label(),
            })
            .inc();
    }
    r
}

impl VesselEngine {
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            // Deep recursion in a guest ends in a trap, not a host overflow.
            .max_wasm_stack(1 << 20)
            .async_stack_size(2 << 20)
            .consume_fuel(config.fuel);
        let engine = Engine::new(&cfg).map_err(|e| EngineError::Config(chain(&e)))?;
        let mut salt = Blake3Hasher(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut salt);
        let cache_salt = *salt.0.finalize().as_bytes();
        let ticker = Arc::new(
            EpochTicker::start(engine.clone())
                .map_err(|e| EngineError::Config(format!("cannot start the epoch ticker: {e}")))?,
        );
        Ok(VesselEngine {
            engine,
            cache: config
                .cache_dir
                .map(|dir| Arc::new(cache::DiskCache::new(dir))),
            cache_salt,
            cache_max_bytes: config.cache_max_bytes.unwrap_or(DEFAULT_CACHE_MAX_BYTES),
            fuel: config.fuel,
            loaded: Arc::default(),
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether this engine meters fuel.
    pub fn fuel(&self) -> bool {
        self.fuel
    }

    /// Loads the component at `path`, from the compile cache when it can.
    ///
    /// A hit costs an `open` and an `fstat` of the component: the cache
    /// remembers the hash of a component file against its stamp (device,
    /// inode, size, mtime, ctime), so an unchanged file is neither read nor
    /// hashed again, and the compiled entry is mapped rather than read.
    pub fn load(&self, path: &Path) -> Result<(Component, CacheOutcome), EngineError> {
        counted(self.load_uncounted(path))
    }

    fn load_uncounted(&self, path: &Path) -> Result<(Component, CacheOutcome), EngineError> {
        let read_error = |source| EngineError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_error)?;
        let before = file.metadata().map_err(read_error)?;
        let cache = self.cache.as_ref().filter(|c| c.trusted());
        let stamp = cache::Stamp::of(&before);
        let mut discarded = false;
        if let Some(cache) = cache
            && let Some(name) = cache.source_name(&self.cache_salt, &stamp)
        {
            if let Some(c) = self.in_memory(&name) {
                return Ok((c, CacheOutcome::Memory));
            }
            match self.load_cached(cache, &name) {
                Some(Ok(c)) => return Ok((c, CacheOutcome::Hit)),
                Some(Err(())) => discarded = true,
                None => {}
            }
        }
        // Sized from the file, but never trusting the size for more than a
        // hint: read_to_end grows as needed.
        let hint = usize::try_from(before.len().min(1 << 30)).unwrap_or(0);
        let mut bytes = Vec::with_capacity(hint);
        file.read_to_end(&mut bytes).map_err(read_error)?;
        let (component, mut outcome, name) = self.load_named(path, &bytes)?;
        if discarded && outcome == CacheOutcome::Miss {
            outcome = CacheOutcome::Rebuilt;
        }
        // Remember the hash only if the file did not change while it was
        // read (a writer racing the read would otherwise pin a mix).
        if let Some(cache) = cache
            && !is_text(&bytes)
            && file
                .metadata()
                .is_ok_and(|after| cache::Stamp::of(&after) == stamp)
        {
            cache.remember_source(&self.cache_salt, &stamp, &name);
        }
        Ok((component, outcome))
    }

    /// Like [`load`](Self::load) for bytes already in memory; `path` names
    /// them in errors.
    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<(Component, CacheOutcome), EngineError> {
        counted(self.load_named(path, bytes).map(|(c, o, _)| (c, o)))
    }

    /// A component this engine loaded before, by cache name.
    fn in_memory(&self, name: &[u8; 32]) -> Option<Component> {
        self.loaded.lock().ok().and_then(|m| m.get(name).cloned())
    }

    fn remember(&self, name: &[u8; 32], c: &Component) {
        if let Ok(mut m) = self.loaded.lock() {
            m.insert(*name, c.clone());
        }
    }

    /// The entry `name` from the disk cache: `None` when there is none,
    /// `Some(Err(()))` when there was one that was discarded (logged).
    fn load_cached(
        &self,
        cache: &cache::DiskCache,
        name: &[u8; 32],
    ) -> Option<Result<Component, ()>> {
        let entry = match cache.read(name) {
            cache::Lookup::Found(entry) => entry,
            cache::Lookup::Discarded => return Some(Err(())),
            cache::Lookup::Missing => return None,
        };
        // SAFETY: the entry's seal or content MAC checked under this
        // cache's key, which only this user can read, so the payload is
        // byte-for-byte what `precompile_component` of an engine with the
        // same compatibility hash (the name covers it) produced here;
        // wasmtime checks the engine settings recorded in it again. A
        // sealed entry is mapped through the descriptor that was checked,
        // in a folder only this user can write.
        let loaded = match &entry {
            cache::Entry::Sealed { path, .. } => unsafe {
                Component::deserialize_file(&self.engine, path)
            },
            cache::Entry::Read(bytes) => unsafe { Component::deserialize(&self.engine, bytes) },
        };
        match loaded {
            Ok(component) => {
                self.remember(name, &component);
                Some(Ok(component))
            }
            Err(e) => {
                tracing::warn!(entry = %cache.entry_path(name).display(), why = %chain(&e), "discarding compile-cache entry");
                cache.remove(name);
                Some(Err(()))
            }
        }
    }

    /// Loads `bytes`, returning the component, what the cache did and the
    /// cache name (the salted hash of the bytes).
    fn load_named(
        &self,
        path: &Path,
        bytes: &[u8],
    ) -> Result<(Component, CacheOutcome, [u8; 32]), EngineError> {
        check_header(path, bytes)?;
        let mut key = blake3::Hasher::new();
        key.update(&self.cache_salt);
        key.update(bytes);
        let name = *key.finalize().as_bytes();
        if let Some(c) = self.in_memory(&name) {
            return Ok((c, CacheOutcome::Memory, name));
        }
        let Some(cache) = self.cache.as_ref().filter(|_| !is_text(bytes)) else {
            // Text components (examples, tests) are small; they skip the
            // disk cache, whose entries come from the binary format.
            let c = self.compile(path, bytes)?;
            self.remember(&name, &c);
            return Ok((c, CacheOutcome::Miss, name));
        };
        if !cache.trusted() {
            let c = self.compile(path, bytes)?;
            self.remember(&name, &c);
            return Ok((c, CacheOutcome::Untrusted, name));
        }
        let outcome = match self.load_cached(cache, &name) {
            Some(Ok(c)) => return Ok((c, CacheOutcome::Hit, name)),
            Some(Err(())) => CacheOutcome::Rebuilt,
            None => CacheOutcome::Miss,
        };
        let serialized =
            self.engine
                .precompile_component(bytes)
                .map_err(|e| EngineError::Invalid {
                    path: path.to_owned(),
                    reason: chain(&e),
                })?;
        // SAFETY: `serialized` was produced just now by this engine.
        let component =
            unsafe { Component::deserialize(&self.engine, &serialized) }.map_err(|e| {
                EngineError::Invalid {
                    path: path.to_owned(),
                    reason: chain(&e),
                }
            })?;
        if let Err(e) = cache.write(&name, &serialized) {
            // The cache is an optimisation: a read-only or full disk must not
            // stop the call.
            tracing::warn!(entry = %cache.entry_path(&name).display(), error = %e, "cannot write compile cache");
        } else {
            cache.trim(self.cache_max_bytes, &name);
        }
        self.remember(&name, &component);
        Ok((component, outcome, name))
    }

    fn compile(&self, path: &Path, bytes: &[u8]) -> Result<Component, EngineError> {
        Component::new(&self.engine, bytes).map_err(|e| EngineError::Invalid {
            path: path.to_owned(),
            reason: chain(&e),
        })
    }
}

/// Whether `bytes` look like the WebAssembly text format.
fn is_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'(' | b';'))
}

/// How to build the component `path` names, when it is missing (or is
/// not one): `path` is guest source, or a missing file in a folder holding
/// a guest's source. Empty when nothing there says which toolchain.
fn build_hint(path: &Path, applies: bool) -> String {
    if !applies {
        return String::new();
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let has = |name: &str| dir.join(name).exists();
    let (what, folder) =
        if ext == "py" || (ext == "wasm" && (has("app.py") || has("pyproject.toml"))) {
            ("a Python guest", dir.to_owned())
        } else if matches!(ext, "js" | "mjs") || (ext == "wasm" && has("package.json")) {
            ("a JavaScript guest", dir.to_owned())
        } else if let Some(cargo) = (ext == "rs" || ext == "wasm")
            .then(|| {
                dir.ancestors()
                    .take(5)
                    .find(|d| d.join("Cargo.toml").exists())
            })
            .flatten()
        {
            // A relative path's last ancestor is "": the current folder.
            let cargo = if cargo.as_os_str().is_empty() {
                Path::new(".")
            } else {
                cargo
            };
            ("a Rust guest", cargo.to_owned())
        } else {
            return String::new();
        };
    let source = if ext == "wasm" {
        "the folder holds"
    } else {
        "this is"
    };
    format!(
        "; {source} {what}: build the component with `vessel build {}`, then name \
         the .wasm it writes or the app's folder",
        folder.display()
    )
}

fn check_header(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    // The WebAssembly text format (`(component ...)`) is accepted too: the
    // engine parses it, and a text core module is refused there.
    if is_text(bytes) {
        return Ok(());
    }
    // A core module is version 1; components use a newer version/layer.
    match bytes {
        [b'\0', b'a', b's', b'm', 1, 0, 0, 0, ..] => Err(EngineError::CoreModule {
            path: path.to_owned(),
        }),
        [b'\0', b'a', b's', b'm', _, _, _, _, ..] => Ok(()),
        _ => Err(EngineError::NotWasm {
            path: path.to_owned(),
        }),
    }
}

struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let h = self.0.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("vessel-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
