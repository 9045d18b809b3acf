//! A host in this test process: a private data dir with its stores (the
//! embedded backend), an engine, a linker and a runtime for apps, the way
//! `vessel serve` holds them, so that a host panic fails the test.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vessel_host::app::{App, Runtime};
use vessel_host::container::{ContainerConfig, HostState, linker};
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_host::service::Service;
use vessel_host::storage::dict::DictStore;
use vessel_host::storage::embedded::EmbeddedOptions;
use vessel_host::storage::volume::VolumeStore;
use vessel_host::volume::VolumeMount;
use wasmtime::component::Linker;

use super::guest::{Guest, Program};
use crate::{guest, write_manifest};

/// A data dir, its stores, an engine and a runtime. Containers work in
/// `home/containers`.
pub struct Host {
    /// The data dir; the store's files are in it.
    pub home: tempfile::TempDir,
    pub service: Service,
    pub engine: VesselEngine,
    /// Apps of this host ([`load`](Self::load)).
    pub runtime: Runtime,
    linker: Linker<HostState>,
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Host {
    /// A host on a new data dir with the default store options.
    pub fn new() -> Host {
        Host::with_options(EmbeddedOptions::default())
    }

    /// A host on a new data dir with store options `options`.
    pub fn with_options(options: EmbeddedOptions) -> Host {
        let home = private_dir();
        let service = Service::open_embedded(home.path(), options)
            .unwrap_or_else(|e| panic!("cannot open the store: {e}"));
        let engine =
            VesselEngine::new(EngineConfig::default()).unwrap_or_else(|e| panic!("engine: {e}"));
        Host::with_service(home, service, &engine)
    }

    /// A host on the shared backend at `metadata` (PostgreSQL) and `blobs`
    /// (S3), caching blobs in its own data dir.
    pub fn on_shared(metadata: &str, blobs: &str) -> Host {
        let home = private_dir();
        let options = vessel_host::storage::remote::RemoteOptions::new(
            metadata,
            blobs,
            home.path().join("cache"),
        );
        let service = Service::open_remote(options)
            .unwrap_or_else(|e| panic!("cannot open the shared store: {e}"));
        let engine =
            VesselEngine::new(EngineConfig::default()).unwrap_or_else(|e| panic!("engine: {e}"));
        Host::with_service(home, service, &engine)
    }

    /// A host of `service` (a store the test opened, on a power model, say)
    /// whose containers work in `home`, on `engine` (an engine loads a
    /// component once, so tests that start many stores share one).
    pub fn with_service(home: tempfile::TempDir, service: Service, engine: &VesselEngine) -> Host {
        let linker = linker(engine).unwrap_or_else(|e| panic!("the linker: {e:#}"));
        let runtime = Runtime::new(engine.clone(), service.stores.clone())
            .with_work_dir(home.path().join("containers"));
        Host {
            home,
            service,
            engine: engine.clone(),
            runtime,
            linker,
        }
    }

    pub fn volumes(&self) -> &Arc<dyn VolumeStore> {
        self.service
            .stores
            .volumes
            .as_ref()
            .unwrap_or_else(|| panic!("the host has no volume store"))
    }

    pub fn dicts(&self) -> &Arc<dyn DictStore> {
        self.service
            .stores
            .dicts
            .as_ref()
            .unwrap_or_else(|| panic!("the host has no dict store"))
    }

    /// A container config over the host's stores, with the volumes of
    /// `mounts` (volume, guest path) mounted read-write and no background
    /// commits (a test commits when it means to).
    pub fn config(&self, mounts: &[(&str, &str)]) -> ContainerConfig {
        ContainerConfig {
            stores: self.service.stores.clone(),
            work_dir: Some(self.home.path().join("containers")),
            volume_mounts: mounts
                .iter()
                .map(|(volume, guest)| VolumeMount {
                    guest: (*guest).to_owned(),
                    volume: (*volume).to_owned(),
                    read_only: false,
                    version: None,
                    conflicts: Default::default(),
                })
                .collect(),
            background_commit: None,
            ..ContainerConfig::default()
        }
    }

    /// The test program `name` (see [`crate::guest`]), loaded.
    pub fn program(&self, name: &str) -> Program {
        self.program_at(&guest(name))
    }

    /// The component at `path` (a .wasm or .wat file), loaded.
    pub fn program_at(&self, path: &Path) -> Program {
        Program::with_linker(&self.engine, &self.linker, path)
    }

    /// Starts test program `program` in a container made with `config`.
    pub async fn start(&self, program: &str, config: ContainerConfig) -> Guest {
        self.program(program).start(&config).await
    }

    /// Starts the component at `path` in a container made with `config`.
    pub async fn start_path(&self, path: &Path, config: ContainerConfig) -> Guest {
        self.program_at(path).start(&config).await
    }

    /// Loads an app from `manifest`, written to a directory of its own in
    /// the data dir, in which `@ADD@` stands for the `add` test program
    /// (the bystander's) and `@NAME@` for test program `name` for each
    /// name in `programs`.
    pub fn load(&self, manifest: &str, programs: &[&str]) -> App {
        let path = self.write_app(manifest, programs);
        self.runtime
            .load_path(&path)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
    }

    /// Writes `manifest` as [`load`](Self::load) does; returns its path.
    pub fn write_app(&self, manifest: &str, programs: &[&str]) -> PathBuf {
        let dir = self.home.path().join(format!(
            "app-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        write_manifest(&dir, manifest, &[&["add"], programs].concat())
    }
}

/// A new temporary directory.
fn private_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}
