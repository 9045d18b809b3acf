//! `vessel serve`: the HTTP/JSON API over a TCP listener (bearer tokens)
//! and over the owner-only Unix socket in the data dir (trusted: reaching
//! it already takes the owner's file permissions).
//!
//! Connections are bounded (a semaphore), header reads time out (slow
//! clients cannot hold a connection open by trickling headers), bodies are
//! size-limited per route, and shutdown is graceful: on the signal the
//! listeners close, requests in flight finish (up to a grace period), then
//! the caller retires its apps' containers.

pub mod auth;
mod body;
pub mod calls;
pub mod client;
pub mod exec;
pub mod limits;
pub mod openapi;
pub mod output;
pub mod routes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt as _;

pub use routes::ServerState;

/// The API socket's file name inside the data dir.
pub const SOCKET_FILE: &str = "vessel.sock";

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most connections served at once; further ones wait in the backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long requests in flight may take to finish at shutdown.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(30),
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

/// Binds the owner-only socket at `data_dir/vessel.sock`. The caller holds
/// the data dir's store, so an existing socket file is a stale one from a
/// process that died: it is replaced. The socket is made under a private
/// name, restricted to the owner, then renamed into place, so it is never
/// reachable with wider permissions.
pub fn bind_socket(data_dir: &Path) -> Result<(tokio::net::UnixListener, PathBuf), ServeError> {
    let path = data_dir.join(SOCKET_FILE);
    let tmp = data_dir.join(format!(".{SOCKET_FILE}.{}", std::process::id()));
    let bind_err = |source| ServeError::Bind {
        addr: path.display().to_string(),
        source,
    };
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp).map_err(bind_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    }
    std::fs::rename(&tmp, &path).map_err(bind_err)?;
    Ok((listener, path))
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
    let router = routes::router(state);
    let limit = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true);
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
        let mut state = ServerState::new(
            service,
            std::collections::BTreeMap::new(),
            auth::TokenStore::new(data_dir),
        );
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
