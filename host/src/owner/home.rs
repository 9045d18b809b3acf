//! Where a command's state lives and who holds it: the data directory and
//! its config file, the store options, and ownership of an embedded store
//! (one process holds it; the others forward to that owner over its
//! socket).

use super::*;

/// Where a command's state lives and how its store opens: the data
/// directory and the store options from the global flags.
#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
    /// Where compiled components are cached (`--cache-dir`).
    pub cache_dir: PathBuf,
    /// The compile cache's bound (`--cache-size`).
    pub cache_max_bytes: u64,
    pub store: EmbeddedOptions,
    /// The shared backend (`--metadata` and `--blobs`), instead of the
    /// embedded store in the data directory.
    pub remote: Option<RemoteOptions>,
    /// The store this process already holds: set in the owner, for the
    /// commands other processes forward to it.
    pub held: Option<Service>,
}

impl Home {
    /// Whether this data dir's stores are on the shared backend: a
    /// backend is given, or the dir was marked shared by an earlier use
    /// (then [`open_service`](Self::open_service) refuses to go on
    /// without one).
    pub fn is_shared(&self) -> bool {
        self.remote.is_some() || self.dir.join(SHARED_MARKER).exists()
    }

    /// Opens the data directory's stores, or the shared backend.
    ///
    /// A data dir once used with the shared backend remembers it (a
    /// [`SHARED_MARKER`] file): opened later without the backend's
    /// settings, it refuses rather than start an empty embedded store
    /// that would look like data loss (a split brain).
    pub fn open_service(&self) -> Result<Service, Failure> {
        let marker = self.dir.join(SHARED_MARKER);
        if let Some(remote) = &self.remote {
            let service = Service::open_remote(remote.clone()).map_err(Failure::runtime)?;
            if !marker.exists() {
                let text = format!(
                    "This data dir's stores are on the shared backend:\nmetadata = {}\n",
                    crate::storage::remote::redact(&remote.metadata_url)
                );
                // Best effort: without the marker only the guard is lost.
                let written = crate::private::file_options()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&marker)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
                if let Err(e) = written {
                    tracing::warn!("cannot write {}: {e}", marker.display());
                }
            }
            return Ok(service);
        }
        if marker.exists() {
            return Err(Failure::usage(format!(
                "{} uses the shared backend (see {}), but no --metadata/--blobs were given \
                 (nor VESSEL_METADATA/VESSEL_BLOBS, nor {CONFIG_FILE} in the data dir): refusing \
                 to start an empty embedded store there. Pass the backend's settings, or remove \
                 {} to use an embedded store in this data dir",
                self.dir.display(),
                marker.display(),
                marker.display()
            )));
        }
        Service::open_embedded(&self.dir, self.store.clone()).map_err(Failure::runtime)
    }

    /// Where store operations go: the process that owns the data dir, when
    /// one runs (`vessel serve`, or a `vessel run`/`call` using the store),
    /// else the store, opened here.
    ///
    /// Either way the command sees one [`Operations`] surface: both run
    /// the same service code, so output and exit codes are the same.
    pub fn backend(&self) -> Result<Box<dyn Operations>, Failure> {
        if let Some(service) = &self.held {
            return Ok(Box::new(service.clone()));
        }
        // Every process opens a shared backend itself; only the embedded
        // store is single-process.
        if self.remote.is_some() {
            return Ok(Box::new(self.open_service()?));
        }
        if let Some(owner) = OwnerClient::find(&self.dir) {
            tracing::debug!("forwarding to the owner of {}", self.dir.display());
            return Ok(Box::new(owner));
        }
        Ok(Box::new(self.open_service()?))
    }
}

/// The data directory: `--data-dir`, `$VESSEL_HOME`, else the user's data
/// directory, else `./.vessel`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(p) => p.to_owned(),
        None => dirs::data_dir()
            .map(|d| d.join("vessel"))
            .unwrap_or_else(|| PathBuf::from(".vessel")),
    }
}

/// The name of the optional configuration file in the data directory.
pub const CONFIG_FILE: &str = "config.toml";

/// Written in a data dir used with the shared backend (see
/// [`Home::open_service`]).
pub const SHARED_MARKER: &str = "shared-backend";

/// `DATA_DIR/config.toml`: settings that would otherwise be flags.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    metadata: Option<String>,
    blobs: Option<String>,
    /// The blob cache's bound, in bytes (`--blob-cache-size`).
    blob_cache_bytes: Option<u64>,
}

/// The shared backend's options from the flags (or their environment
/// variables), else from `DATA_DIR/config.toml`; `None` for the embedded
/// store. The local blob cache lives in the data directory.
pub fn remote_options(
    data_dir: &Path,
    metadata: Option<String>,
    blobs: Option<String>,
    blob_cache_bytes: Option<u64>,
) -> Result<Option<RemoteOptions>, Failure> {
    let path = data_dir.join(CONFIG_FILE);
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<ConfigFile>(&text)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
        Err(e) => return Err(Failure::usage(format!("{}: {e}", path.display()))),
    };
    let metadata = metadata.filter(|s| !s.is_empty()).or(file.metadata);
    let blobs = blobs.filter(|s| !s.is_empty()).or(file.blobs);
    match (metadata, blobs) {
        (None, None) => Ok(None),
        (Some(m), Some(b)) => {
            if !m.starts_with("postgres://") && !m.starts_with("postgresql://") {
                return Err(Failure::usage(format!(
                    "--metadata {}: expected postgres://user:password@host:port/database",
                    crate::storage::remote::redact(&m)
                )));
            }
            let mut options = RemoteOptions::new(&m, &b, data_dir.join("blob-cache"));
            if let Some(n) = blob_cache_bytes.or(file.blob_cache_bytes) {
                options.blob_cache_bytes = n;
            }
            Ok(Some(options))
        }
        (Some(_), None) => Err(Failure::usage(
            "--metadata needs --blobs too (s3://bucket?endpoint=URL): the shared backend keeps file contents in S3",
        )),
        (None, Some(_)) => Err(Failure::usage(
            "--blobs needs --metadata too (postgres://...): the shared backend keeps metadata in PostgreSQL",
        )),
    }
}

/// A command holding the data dir's store, serving it on the socket so
/// other `vessel` commands reach it while this one runs.
pub struct Owner {
    pub service: Service,
    _server: Option<OwnerServer>,
}

impl Owner {
    pub(crate) fn open(home: &Home) -> Result<Owner, Failure> {
        if let Some(service) = &home.held {
            return Ok(Owner {
                service: service.clone(),
                _server: None,
            });
        }
        if home.remote.is_some() {
            // A shared backend has no owner: every process opens it.
            return Ok(Owner {
                service: home.open_service()?,
                _server: None,
            });
        }
        let service = home.open_service()?;
        let exec = forward::OwnerExec::new(home, service.clone());
        let server = OwnerServer::start(&home.dir, service.clone(), Some(Arc::new(exec)))
            .map_err(Failure::runtime)?;
        Ok(Owner {
            service,
            _server: Some(server),
        })
    }

    /// Stops serving the socket once the requests other processes sent
    /// have finished (their forwarded commands included).
    async fn close(self) {
        if let Some(server) = self._server {
            server.stop().await;
        }
    }
}

/// Closes the store this command held, if it opened one, after its work.
pub(crate) async fn release(held: Option<Owner>) {
    if let Some(owner) = held {
        owner.close().await;
    }
}

/// Runs a `call`/`run`: in `owner` when another process holds the data
/// dir (falling back to here if it has just gone), else here with `here`,
/// which may open the store into its argument; the store is closed after.
pub(crate) async fn forward_or_hold(
    home: &Home,
    owner: Option<OwnerClient>,
    sent: Request,
    stdin: bool,
    here: impl AsyncFnOnce(&mut Option<Owner>) -> Result<u8, Failure>,
) -> Result<u8, Failure> {
    if let Some(owner) = owner {
        tracing::debug!("forwarding to the owner of {}", home.dir.display());
        match forward::forward(owner, sent, stdin).await {
            Ok(code) => return Ok(code),
            Err(NotForwarded::Failed(f)) => return Err(f),
            // The owner exited since it was found: the store is free.
            Err(NotForwarded::Unreachable) => {}
        }
    }
    let mut held = None;
    let result = here(&mut held).await;
    release(held).await;
    result
}

/// The owner to forward a `call`/`run` to: another process that holds this
/// data dir's embedded store.
pub(crate) fn owner_to_forward(home: &Home) -> Option<OwnerClient> {
    // A forwarded command runs in the owner, whose home holds the store.
    if home.held.is_some() || home.remote.is_some() {
        return None;
    }
    OwnerClient::find(&home.dir)
}
