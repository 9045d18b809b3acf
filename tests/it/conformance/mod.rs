//! One suite of volume and dict semantics, run against every backend: the
//! embedded store (sled + blob folder) and the shared one (PostgreSQL + S3,
//! real servers from `vessel_tests::servers`). Each case is a function of
//! a [`Make`] that opens a fresh, empty store; the `suite!` macro turns the
//! list of cases into one `#[test]` per backend.

pub mod dict;
pub mod fork;
pub mod history;
pub mod volume;

use std::sync::Arc;
use std::time::Duration;

use vessel_host::storage::clock::ManualClock;
use vessel_host::storage::dict::DictStore;
use vessel_host::storage::embedded::{DurabilityMode, EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::remote::{RemoteOptions, RemoteStore};
use vessel_host::storage::volume::VolumeStore;

/// Where the store's clock starts.
pub const T0: u64 = 1_000_000;

/// Store settings a case asks for.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub idle_ms: u64,
    pub inode_limit: u64,
    pub gc_grace: Duration,
    pub multipart_threshold: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            idle_ms: 7 * 24 * 3600 * 1000,
            inode_limit: 500_000,
            gc_grace: Duration::from_secs(3600),
            multipart_threshold: 16 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Embedded,
    Remote,
}

/// An open store under test, with its clock.
pub struct Backend {
    pub kind: Kind,
    pub dicts: Arc<dyn DictStore>,
    pub volumes: Arc<dyn VolumeStore>,
    pub clock: ManualClock,
    pub setup: Setup,
    dir: tempfile::TempDir,
    urls: Option<(String, String)>,
    pub remote: Option<RemoteStore>,
}

/// Opens a fresh store for a case.
pub type Make = dyn Fn(Setup) -> Backend;

fn open_embedded(dir: &std::path::Path, setup: Setup, clock: &ManualClock) -> EmbeddedStore {
    let opts = EmbeddedOptions {
        durability: DurabilityMode::Sync,
        dict_idle_expiry_ms: setup.idle_ms,
        volume_inode_limit: setup.inode_limit,
        blob_gc_grace: setup.gc_grace,
        ..EmbeddedOptions::default()
    };
    EmbeddedStore::open_with_clock(dir, opts, Arc::new(clock.clone())).unwrap()
}

pub fn remote_options(
    metadata: &str,
    blobs: &str,
    cache: &std::path::Path,
    setup: Setup,
) -> RemoteOptions {
    let mut o = RemoteOptions::new(metadata, blobs, cache.to_owned());
    o.dict_idle_expiry_ms = setup.idle_ms;
    o.volume_inode_limit = setup.inode_limit;
    o.blob_gc_grace = setup.gc_grace;
    o.multipart_threshold = setup.multipart_threshold;
    o.op_timeout = Duration::from_secs(20);
    o
}

fn open_remote(
    urls: &(String, String),
    dir: &std::path::Path,
    setup: Setup,
    clock: &ManualClock,
) -> RemoteStore {
    let o = remote_options(&urls.0, &urls.1, &dir.join("cache"), setup);
    RemoteStore::open_with_clock(o, Arc::new(clock.clone())).unwrap()
}

pub fn embedded(setup: Setup) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open_embedded(dir.path(), setup, &clock);
    Backend {
        kind: Kind::Embedded,
        dicts: Arc::new(s.clone()),
        volumes: Arc::new(s),
        clock,
        setup,
        dir,
        urls: None,
        remote: None,
    }
}

pub fn remote(setup: Setup) -> Backend {
    let urls = vessel_tests::servers::shared().fresh();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open_remote(&urls, dir.path(), setup, &clock);
    Backend {
        kind: Kind::Remote,
        dicts: Arc::new(s.clone()),
        volumes: Arc::new(s.clone()),
        clock,
        setup,
        dir,
        urls: Some(urls),
        remote: Some(s),
    }
}

impl Backend {
    /// Closes the store and opens it again on the same data (a restart).
    pub fn reopen(self) -> Backend {
        let Backend {
            kind,
            dicts,
            volumes,
            clock,
            setup,
            dir,
            urls,
            remote,
        } = self;
        drop((dicts, volumes, remote));
        match &urls {
            None => {
                let s = open_embedded(dir.path(), setup, &clock);
                Backend {
                    kind,
                    dicts: Arc::new(s.clone()),
                    volumes: Arc::new(s),
                    clock,
                    setup,
                    dir,
                    urls,
                    remote: None,
                }
            }
            Some(u) => {
                let s = open_remote(u, dir.path(), setup, &clock);
                Backend {
                    kind,
                    dicts: Arc::new(s.clone()),
                    volumes: Arc::new(s.clone()),
                    clock,
                    setup,
                    dir,
                    urls,
                    remote: Some(s),
                }
            }
        }
    }

    /// A second handle on the same data, as another host opens it
    /// (remote), or the same handle (embedded: one process per store).
    pub fn second_host(&self) -> (Arc<dyn DictStore>, Arc<dyn VolumeStore>) {
        match &self.urls {
            None => (self.dicts.clone(), self.volumes.clone()),
            Some(u) => {
                let cache = self.dir.path().join("host2");
                let s = open_remote(u, &cache, self.setup, &self.clock);
                (Arc::new(s.clone()), Arc::new(s))
            }
        }
    }
}

/// One `#[test]` per case and backend.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $case() {
                    super::$case(&crate::conformance::embedded);
                }
            )*
        }
        mod remote {
            $(
                #[test]
                fn $case() {
                    super::$case(&crate::conformance::remote);
                }
            )*
        }
    };
}
pub(crate) use suite;
