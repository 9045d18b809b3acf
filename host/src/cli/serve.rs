//! `vessel serve` (the long-running host and its API) and `vessel token`
//! (bearer tokens for that API).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{Failure, Home};
use crate::app::{Manifest, Runtime};
use crate::server::auth::{Scope, TokenStore};
use crate::server::limits::{self, Limits};
use crate::server::output;
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
    /// from other machines; every request still needs a token). Needs
    /// --tls-cert/--tls-key, or --insecure-http.
    #[arg(long)]
    pub allow_remote: bool,
    /// Serve HTTPS with this certificate chain (PEM, leaf first). Needs
    /// --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM). Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address: bearer tokens then
    /// travel in clear (behind a TLS-terminating proxy on a private
    /// network, say).
    #[arg(long, conflicts_with = "tls_cert")]
    pub insecure_http: bool,
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
    /// Seconds a request body may send nothing before the request is
    /// answered 408 and the connection closed.
    #[arg(long, value_name = "SECONDS", default_value_t = limits::DEFAULT_BODY_TIMEOUT.as_secs_f64())]
    pub body_timeout: f64,
    /// Calls (`call` and running `spawn`s together) one token may have
    /// running at once; past it, 429. A token made with `vessel token
    /// create --max-calls` has its own.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_CALLS_PER_TOKEN)]
    pub max_calls_per_token: u32,
    /// MiB of request bodies (dict values, call arguments) one token's
    /// requests may hold in memory at once; past it, 429.
    #[arg(long, value_name = "MIB", default_value_t = limits::DEFAULT_BODY_BYTES_PER_TOKEN >> 20)]
    pub body_mib_per_token: usize,
    /// Spawned calls kept for `GET /v1/calls/{id}`: finished ones are
    /// evicted oldest first, running ones never (a spawn is refused, 503,
    /// while all of them run).
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_STORED_CALLS)]
    pub max_stored_calls: usize,
    /// MiB of finished spawned calls' results kept; past it the oldest are
    /// evicted.
    #[arg(long, value_name = "MIB", default_value_t = limits::DEFAULT_STORED_RESULT_BYTES >> 20)]
    pub stored_results_mib: usize,
    /// Bytes of guest output (stdout and stderr of called functions) this
    /// process holds for its own stdout or stderr when they do not keep up;
    /// past it, output is dropped and a note says how much.
    #[arg(long, value_name = "KIB", default_value_t = output::DEFAULT_BACKLOG >> 10)]
    pub output_backlog_kib: usize,
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
        /// app:NAME (NAME may be `*`), metrics:r. Repeatable.
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// A label to recognise the token by.
        #[arg(long)]
        name: Option<String>,
        /// Calls this token may have running at once (default: the
        /// server's --max-calls-per-token).
        #[arg(long, value_name = "N")]
        max_calls: Option<u32>,
        /// How long the token works: a number and s, m, h or d (`12h`,
        /// `30d`); after that it gets 401 "expired". Default: until revoked.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// List tokens (ids, labels and scopes; never the tokens).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (as `vessel token list` shows it), not the token.
        id: String,
    },
}

pub fn token(home: &Home, cmd: TokenCmd) -> Result<u8, Failure> {
    // On the shared backend the tokens live in its database, where every
    // host reads them; a data dir marked shared but given no backend is
    // refused (its tokens.json would be read by no server).
    let store = if home.is_shared() {
        TokenStore::for_service(&home.open_service()?, &home.dir)
    } else {
        TokenStore::new(&home.dir)
    };
    match cmd.action {
        TokenAction::Create {
            scopes,
            name,
            max_calls,
            ttl,
        } => {
            if max_calls == Some(0) {
                return Err(Failure::usage("--max-calls must be at least 1"));
            }
            let ttl = ttl
                .as_deref()
                .map(crate::server::auth::parse_ttl)
                .transpose()
                .map_err(Failure::usage)?;
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::usage)?;
            let (token, record) = store
                .create(name, scopes, max_calls, ttl)
                .map_err(Failure::runtime)?;
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
                    // A token's own call limit, when it has one.
                    let mut limit = t
                        .max_calls
                        .map(|n| format!("\tmax-calls={n}"))
                        .unwrap_or_default();
                    if let Some(e) = t.expires_ms {
                        let now = crate::storage::clock::Clock::now_ms(
                            &crate::storage::clock::SystemClock,
                        );
                        limit.push_str(&if now >= e {
                            "\texpired".to_owned()
                        } else {
                            format!("\texpires-in={}s", (e - now).div_ceil(1000))
                        });
                    }
                    println!(
                        "{}\t{}\t{}{limit}",
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
        println!("{}", server::api::json());
        return Ok(0);
    }
    let data_dir = home.dir.as_path();
    if !cmd.listen.ip().is_loopback() {
        if !cmd.allow_remote {
            return Err(Failure::usage(server::ServeError::NotLoopback {
                addr: cmd.listen,
            }));
        }
        if cmd.tls_cert.is_none() && !cmd.insecure_http {
            return Err(Failure::usage(format!(
                "--allow-remote on {} sends bearer tokens over the network: serve HTTPS with --tls-cert FILE --tls-key FILE, or pass --insecure-http to send them in clear",
                cmd.listen
            )));
        }
        eprintln!(
            "warning: serving on {} makes the API reachable from other machines; only requests with a valid token get through",
            cmd.listen
        );
        if cmd.insecure_http {
            eprintln!(
                "warning: --insecure-http: tokens and data travel in clear; anyone on the path can read and reuse them"
            );
        }
    }
    let tls = match (&cmd.tls_cert, &cmd.tls_key) {
        (Some(cert), Some(key)) => {
            Some(server::tls::server_config(cert, key).map_err(Failure::usage)?)
        }
        _ => None,
    };
    if cmd.max_connections == 0 {
        return Err(Failure::usage("--max-connections must be at least 1"));
    }
    let seconds = |flag: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v <= 3600.0 {
            Ok(std::time::Duration::from_secs_f64(v))
        } else {
            Err(Failure::usage(format!(
                "{flag} must be between 0 and 3600 seconds, got {v}"
            )))
        }
    };
    let header_timeout = seconds("--header-timeout", cmd.header_timeout)?;
    let body_timeout = seconds("--body-timeout", cmd.body_timeout)?;
    let mib = |flag: &str, v: usize| {
        v.checked_mul(1 << 20).filter(|b| *b > 0).ok_or_else(|| {
            Failure::usage(format!(
                "{flag} must be at least 1 and fit in memory, got {v}"
            ))
        })
    };
    let limits = Limits {
        body_timeout,
        max_calls_per_token: cmd.max_calls_per_token,
        body_bytes_per_token: mib("--body-mib-per-token", cmd.body_mib_per_token)?,
        max_stored_calls: cmd.max_stored_calls,
        stored_result_bytes: mib("--stored-results-mib", cmd.stored_results_mib)?,
    };
    if cmd.max_calls_per_token == 0 || cmd.max_stored_calls == 0 {
        return Err(Failure::usage(
            "--max-calls-per-token and --max-stored-calls must be at least 1",
        ));
    }
    let backlog = cmd
        .output_backlog_kib
        .checked_mul(1 << 10)
        .ok_or_else(|| Failure::usage("--output-backlog-kib is too large"))?;
    let service = home.open_service()?;
    let mut manifests = Vec::new();
    for path in &cmd.apps {
        manifests.push(Manifest::from_path(path).map_err(Failure::usage)?);
    }
    let fuel = manifests.iter().any(Manifest::uses_fuel);
    let engine = crate::owner::engine_for(home, fuel)?;
    // Guests' output goes to this process's stdout and stderr without ever
    // making a worker thread wait on them.
    let runtime = Runtime::new(engine, service.stores.clone())
        .with_work_dir(data_dir.join("containers"))
        .with_stdio(output::guest_stdio(backlog));
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
        "vessel serving on {}://{addr} and {} ({} app(s): {})",
        if tls.is_some() { "https" } else { "http" },
        socket_path.display(),
        apps.len(),
        apps.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    // `vessel call`/`run` from other processes run here, on the store
    // this process holds.
    let exec = crate::owner::OwnerExec::new(home, service.clone());
    let state = Arc::new(
        ServerState::new(
            service.clone(),
            apps.clone(),
            TokenStore::for_service(&service, data_dir),
        )
        .with_limits(limits)
        .with_exec(Arc::new(exec)),
    );
    let options = ServeOptions {
        max_connections: cmd.max_connections,
        header_timeout,
        tls,
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
