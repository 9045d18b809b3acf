//! `vessel serve`: the HTTP/JSON API over a TCP listener (bearer tokens)
//! and over the owner-only Unix socket in the data dir (trusted: it lives
//! in a 0700 directory, and a connection from any uid but the server's own
//! is refused, whatever the file permissions say).
//!
//! Connections are bounded (a semaphore), header reads time out (slow
//! clients cannot hold a connection open by trickling headers), bodies are
//! size-limited per route, and shutdown is graceful: on the signal the
//! listeners close, requests in flight finish (up to a grace period), then
//! the caller retires its apps' containers.

pub mod api;
pub mod auth;
mod body;
pub mod calls;
pub mod client;
pub mod exec;
pub mod limits;
pub mod openapi;
pub mod output;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt as _;

pub use routes::ServerState;

/// The API socket's file name, in [`SOCKET_DIR`].
pub const SOCKET_FILE: &str = "vessel.sock";
/// The directory in the data dir that holds the socket: 0700, made so
/// before the socket is bound.
pub const SOCKET_DIR: &str = "run";

/// Where the owner socket of `data_dir` is.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_DIR).join(SOCKET_FILE)
}

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most connections served at once; further ones wait in the backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long requests in flight may take to finish at shutdown.
    pub grace: Duration,
    /// Serve the TCP listener over TLS (see [`tls::server_config`]); the
    /// owner socket stays plain (it never leaves the machine).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "{addr} is not a loopback address; serving beyond this machine needs --allow-remote (and tokens)"
    )]
    NotLoopback { addr: SocketAddr },
}

/// Binds the TCP listener, refusing non-loopback addresses unless allowed.
pub async fn bind_tcp(
    addr: SocketAddr,
    allow_remote: bool,
) -> Result<tokio::net::TcpListener, ServeError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(ServeError::NotLoopback { addr });
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Binds the owner-only socket at `data_dir/run/vessel.sock`. The caller
/// holds the data dir's store, so an existing socket file is a stale one
/// from a process that died: it is replaced. `run/` is made private (0700,
/// owned by this user) before anything is bound in it; the socket is bound
/// under a private name, then renamed into place.
pub fn bind_socket(data_dir: &Path) -> Result<(tokio::net::UnixListener, PathBuf), ServeError> {
    let path = socket_path(data_dir);
    let dir = data_dir.join(SOCKET_DIR);
    let tmp = dir.join(format!(".{SOCKET_FILE}.{}", std::process::id()));
    let bind_err = |source| ServeError::Bind {
        addr: path.display().to_string(),
        source,
    };
    private_socket_dir(&dir).map_err(bind_err)?;
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp).map_err(bind_err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        // The directory already keeps others out; the file's own mode
        // matches the rest of the data dir.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    }
    std::fs::rename(&tmp, &path).map_err(bind_err)?;
    Ok((listener, path))
}

/// Makes `dir` a directory only this user can reach: created 0700, or,
/// when it exists, checked to be a directory (not a symlink) owned by this
/// user, with group and other rights taken away.
fn private_socket_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    crate::private::create_dir_all(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    let me = crate::private::current_uid();
    if !meta.is_dir() || meta.uid() != me {
        return Err(std::io::Error::other(format!(
            "{} must be a directory owned by uid {me} (it is {} owned by uid {}); remove it",
            dir.display(),
            if meta.is_dir() {
                "a directory"
            } else {
                "not a directory"
            },
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode(crate::private::DIR_MODE),
        )?;
    }
    Ok(())
}

/// Whether a connection to the owner socket may be served: only a peer
/// with the server's own uid (read from the kernel, `SO_PEERCRED`). A
/// refusal is logged with its reason.
fn peer_allowed(stream: &tokio::net::UnixStream) -> bool {
    let me = crate::private::current_uid();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == me => true,
        Ok(cred) => {
            tracing::warn!(
                "refused a connection to the owner socket from uid {} (pid {}): only uid {me}, which runs this vessel, may use it",
                cred.uid(),
                cred.pid()
                    .map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
            );
            false
        }
        Err(e) => {
            tracing::warn!(
                "refused a connection to the owner socket: cannot read the peer's credentials: {e}"
            );
            false
        }
    }
}

/// Removes the socket file when dropped (the owner is going away).
#[derive(Debug)]
pub struct SocketGuard(pub PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Serves `state` on the given listeners until `shutdown` resolves, then
/// lets requests in flight finish (up to the grace period).
pub async fn serve(
    state: Arc<ServerState>,
    tcp: Option<tokio::net::TcpListener>,
    unix: Option<tokio::net::UnixListener>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) {
    let router = api::router(state);
    let limit = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true);
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        // Accept from whichever listener has a connection.
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            c = async {
                match &tcp {
                    Some(l) => l.accept().await.map(|(s, _)| s),
                    None => std::future::pending().await,
                }
            } => c.map(Conn::Tcp),
            c = async {
                match &unix {
                    Some(l) => l.accept().await.map(|(s, _)| s),
                    None => std::future::pending().await,
                }
            } => c.map(Conn::Unix),
        };
        let conn = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Running out of file descriptors and the like: wait a bit
                // rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Conn::Unix(s) = &conn
            && !peer_allowed(s)
        {
            continue;
        }
        let trusted = matches!(conn, Conn::Unix(_));
        let svc = router
            .clone()
            .map_request(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(routes::Trusted(trusted));
                req
            });
        let svc = TowerToHyperService::new(svc);
        match conn {
            Conn::Tcp(s) if acceptor.is_some() => {
                let _ = s.set_nodelay(true);
                let Some(acceptor) = acceptor.clone() else {
                    continue;
                };
                // The handshake runs in the connection's task, within the
                // header timeout: a client that stalls in it holds one
                // permit, never the accept loop.
                let (builder, watcher) = (builder.clone(), graceful.watcher());
                let timeout = options.header_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(timeout, acceptor.accept(s)).await {
                        Ok(Ok(tls)) => {
                            let conn = builder.serve_connection(TokioIo::new(tls), svc);
                            let _ = watcher.watch(conn).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop(permit);
                });
            }
            Conn::Tcp(s) => {
                let _ = s.set_nodelay(true);
                let fut = graceful.watch(builder.serve_connection(TokioIo::new(s), svc));
                tokio::spawn(async move {
                    let _ = fut.await;
                    drop(permit);
                });
            }
            Conn::Unix(s) => {
                let fut = graceful.watch(builder.serve_connection(TokioIo::new(s), svc));
                tokio::spawn(async move {
                    let _ = fut.await;
                    drop(permit);
                });
            }
        }
    }
    drop(tcp);
    drop(unix);
    if tokio::time::timeout(options.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests were still running after the grace period");
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// The owner side of a `vessel run`/`vessel call` that holds the store: it
/// serves the socket (for `vessel dict`/`vessel volume` from other
/// processes) until dropped.
#[derive(Debug)]
pub struct OwnerServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _socket: SocketGuard,
}

impl OwnerServer {
    /// Starts serving `service` on `data_dir`'s socket; commands other
    /// processes forward run on `exec`.
    pub fn start(
        data_dir: &Path,
        service: crate::service::Service,
        exec: Option<Arc<dyn exec::LocalExec>>,
    ) -> Result<OwnerServer, ServeError> {
        let (unix, path) = bind_socket(data_dir)?;
        let tokens = auth::TokenStore::for_service(&service, data_dir);
        let mut state = ServerState::new(service, std::collections::BTreeMap::new(), tokens);
        if let Some(exec) = exec {
            state = state.with_exec(exec);
        }
        let state = Arc::new(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions {
            grace: Duration::from_secs(5),
            ..ServeOptions::default()
        };
        let task = tokio::spawn(serve(state, None, Some(unix), options, async move {
            let _ = stopped.await;
        }));
        Ok(OwnerServer {
            stop: Some(stop),
            task: Some(task),
            _socket: SocketGuard(path),
        })
    }

    /// Stops serving and waits for requests in flight.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for OwnerServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
