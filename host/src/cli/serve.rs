//! `vessel serve` (the long-running host and its API) and `vessel token`
//! (bearer tokens for that API).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::Failure;
use crate::app::{Manifest, Runtime};
use crate::server::auth::{Scope, TokenStore};
use crate::server::{self, ServeOptions, ServerState, SocketGuard};

/// Default TCP address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";

#[derive(Debug, Args)]
pub struct ServeCmd {
    /// TCP address of the HTTP API (bearer tokens required). Port 0 picks a
    /// free port.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Allow a non-loopback --listen address (the API is then reachable
    /// from other machines; every request still needs a token).
    #[arg(long)]
    pub allow_remote: bool,
    /// Load an app (its vessel.toml or directory) so its functions can be
    /// called through the API. Repeatable.
    #[arg(long = "app", value_name = "APP")]
    pub apps: Vec<PathBuf>,
    /// Most connections served at once.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers; slower
    /// clients are disconnected.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Print the API's OpenAPI description (JSON) and exit.
    #[arg(long)]
    pub print_openapi: bool,
}

#[derive(Debug, Args)]
pub struct TokenCmd {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print it (it is shown only once).
    Create {
        /// What the token may do: volume:NAME:r|w|rw, dict:NAME:r|w|rw,
        /// app:NAME (NAME may be `*`). Repeatable.
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// A label to recognise the token by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (ids, labels and scopes; never the tokens).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

pub fn token(data_dir: &Path, cmd: TokenCmd) -> Result<u8, Failure> {
    let store = TokenStore::new(data_dir);
    match cmd.action {
        TokenAction::Create { scopes, name } => {
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::usage)?;
            let (token, record) = store.create(name, scopes).map_err(Failure::runtime)?;
            eprintln!("created token {} (it is shown only this once)", record.id);
            println!("{token}");
        }
        TokenAction::List { json } => {
            let all = store.list().map_err(Failure::runtime)?;
            if json {
                let text = serde_json::to_string_pretty(&all).map_err(Failure::runtime)?;
                println!("{text}");
            } else {
                for t in all {
                    let scopes: Vec<String> = t.scopes.iter().map(ToString::to_string).collect();
                    println!(
                        "{}\t{}\t{}",
                        t.id,
                        t.name.as_deref().unwrap_or("-"),
                        scopes.join(" ")
                    );
                }
            }
        }
        TokenAction::Revoke { id } => {
            store.revoke(&id).map_err(Failure::runtime)?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(0)
}

/// Resolves when the process gets SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, only kill ends the server.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

pub async fn serve(home: &super::Home, cmd: ServeCmd) -> Result<u8, Failure> {
    if cmd.print_openapi {
        println!("{}", server::openapi::json());
        return Ok(0);
    }
    let data_dir = home.dir.as_path();
    if !cmd.listen.ip().is_loopback() {
        if !cmd.allow_remote {
            return Err(Failure::usage(server::ServeError::NotLoopback {
                addr: cmd.listen,
            }));
        }
        eprintln!(
            "warning: serving on {} makes the API reachable from other machines; only requests with a valid token get through",
            cmd.listen
        );
    }
    if cmd.max_connections == 0 {
        return Err(Failure::usage("--max-connections must be at least 1"));
    }
    if !(cmd.header_timeout.is_finite() && cmd.header_timeout > 0.0 && cmd.header_timeout <= 3600.0)
    {
        return Err(Failure::usage(format!(
            "--header-timeout must be between 0 and 3600 seconds, got {}",
            cmd.header_timeout
        )));
    }
    let service = home.open_service()?;
    let mut manifests = Vec::new();
    for path in &cmd.apps {
        manifests.push(Manifest::from_path(path).map_err(Failure::usage)?);
    }
    let fuel = manifests.iter().any(Manifest::uses_fuel);
    let engine = super::engine_for(&home.cache_dir, fuel)?;
    let runtime =
        Runtime::new(engine, service.stores.clone()).with_work_dir(data_dir.join("containers"));
    let mut apps = BTreeMap::new();
    for m in manifests {
        let name = m.name.clone();
        let path = m.path.clone();
        let app = runtime.load(m).map_err(Failure::from)?;
        for w in app.warnings() {
            eprintln!("warning: {w}");
        }
        if apps.insert(name.clone(), app).is_some() {
            return Err(Failure::usage(format!(
                "{}: another --app is also named `{name}`",
                path.display()
            )));
        }
    }
    let (unix, socket_path) = server::bind_socket(data_dir).map_err(Failure::runtime)?;
    let _socket = SocketGuard(socket_path.clone());
    let tcp = server::bind_tcp(cmd.listen, cmd.allow_remote)
        .await
        .map_err(Failure::runtime)?;
    let addr = tcp.local_addr().map_err(Failure::runtime)?;
    eprintln!(
        "vessel serving on http://{addr} and {} ({} app(s): {})",
        socket_path.display(),
        apps.len(),
        apps.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    // `vessel call`/`run` from other processes run here, on the store
    // this process holds.
    let exec = super::forward::CliExec {
        home: super::Home {
            held: Some(service.clone()),
            ..home.clone()
        },
    };
    let state = Arc::new(
        ServerState::new(service.clone(), apps.clone(), TokenStore::new(data_dir))
            .with_exec(Arc::new(exec)),
    );
    let options = ServeOptions {
        max_connections: cmd.max_connections,
        header_timeout: std::time::Duration::from_secs_f64(cmd.header_timeout),
        ..ServeOptions::default()
    };
    server::serve(state, Some(tcp), Some(unix), options, shutdown_signal()).await;
    eprintln!("vessel: shutting down");
    let mut failed = None;
    for (name, app) in &apps {
        if let Err(e) = app.shutdown().await {
            eprintln!("error: app `{name}`: {e}");
            failed = Some(e);
        }
    }
    drop(apps);
    match failed {
        Some(e) => Err(Failure::from(e)),
        None => Ok(0),
    }
}
