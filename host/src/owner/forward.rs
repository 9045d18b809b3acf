//! Calls and runs while another process owns the data dir: the request
//! goes to the owner over its socket, the owner runs it
//! with the same code against the store it holds, and this process copies
//! the output back and exits with the command's exit code. Where a command
//! writes (its result line, warnings, the guest's stdio) is a [`Console`],
//! so the same code serves both sides.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::request::Request;
use super::{Failure, Home};
use crate::container::GuestStdio;
use crate::server::client::{Body, ClientError, OwnerClient};
use crate::server::exec::{self, ExecExit, ExecIo, LocalExec};
use crate::service::Service;

/// Where a `call`/`run` writes.
#[derive(Clone)]
pub enum Console {
    /// This process's stdio.
    Local,
    /// The frames back to the process that forwarded the command.
    Remote(ExecIo),
}

impl Console {
    /// Writes one line to stdout.
    pub async fn out_line(&self, line: &str) {
        match self {
            Console::Local => println!("{line}"),
            Console::Remote(io) => {
                io.stdout.write(format!("{line}\n")).await;
            }
        }
    }

    /// Writes one line to stderr.
    pub async fn err_line(&self, line: &str) {
        match self {
            Console::Local => eprintln!("{line}"),
            Console::Remote(io) => {
                io.stderr.write(format!("{line}\n")).await;
            }
        }
    }

    /// The guests' stdio.
    pub fn guest_stdio(&self) -> GuestStdio {
        match self {
            Console::Local => GuestStdio::Inherit,
            Console::Remote(io) => GuestStdio::Piped {
                stdin: io.stdin.clone(),
                stdout: Arc::new(io.stdout.clone()),
                stderr: Arc::new(io.stderr.clone()),
            },
        }
    }
}

/// One `call`/`run`: where relative paths start and where output goes.
#[derive(Clone)]
pub struct Invocation {
    /// The forwarding process's working directory; `None` for this one's.
    pub cwd: Option<PathBuf>,
    pub console: Console,
}

impl Invocation {
    /// A command this process was started with.
    pub fn local() -> Self {
        Invocation {
            cwd: None,
            console: Console::Local,
        }
    }

    /// `path` as the invoking process means it.
    pub fn path(&self, path: &Path) -> PathBuf {
        match &self.cwd {
            Some(cwd) if path.is_relative() => cwd.join(path),
            _ => path.to_owned(),
        }
    }
}

/// A request sent to the owner.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forwarded {
    /// The sender's working directory: relative paths in the command start
    /// there.
    pub cwd: PathBuf,
    pub request: Request,
}

/// The owner's side: runs forwarded commands against the store it holds.
pub struct OwnerExec {
    /// The owner's home, with its store held (`Home::held`).
    home: Home,
    /// Containers kept warm for forwarded calls.
    warm: Arc<super::WarmCalls>,
}

impl OwnerExec {
    /// Runs forwarded commands against `service`, the store of `home` this
    /// process holds.
    pub fn new(home: &Home, service: Service) -> OwnerExec {
        OwnerExec {
            home: Home {
                held: Some(service),
                ..home.clone()
            },
            warm: Arc::default(),
        }
    }
}

impl LocalExec for OwnerExec {
    fn exec(
        &self,
        command: Json,
        io: ExecIo,
    ) -> Pin<Box<dyn std::future::Future<Output = ExecExit> + Send>> {
        let home = self.home.clone();
        let warm = self.warm.clone();
        Box::pin(async move {
            let forwarded: Forwarded = match serde_json::from_value(command) {
                Ok(f) => f,
                Err(e) => {
                    return ExecExit {
                        code: 2,
                        message: Some(format!(
                            "the owner of {} cannot read the forwarded command ({e}); are both \
                             processes the same vessel version?",
                            home.dir.display()
                        )),
                    };
                }
            };
            let inv = Invocation {
                cwd: Some(forwarded.cwd),
                console: Console::Remote(io),
            };
            let result = match forwarded.request {
                Request::Call(cmd) => warm.call(&home, cmd, &inv).await,
                Request::Run(cmd) => super::run(&home, cmd, &inv).await,
            };
            match result {
                Ok(code) => ExecExit {
                    code,
                    message: None,
                },
                Err(f) => {
                    // The traceback goes with the command's stderr; the
                    // exit frame carries the one-line message.
                    if let Some(detail) = &f.detail {
                        inv.console.err_line(detail).await;
                    }
                    ExecExit {
                        code: f.code,
                        message: Some(f.message),
                    }
                }
            }
        })
    }
}

/// Why forwarding did not run the command.
pub enum NotForwarded {
    /// The owner could not be reached (it exited after it was found): run
    /// the command here instead.
    Unreachable,
    Failed(Failure),
}

/// Sends `command` to `owner`, copies its output to this process's stdout
/// and stderr, and returns its exit code. With `stdin`, this process's
/// stdin is streamed to the command as its guest reads it.
pub async fn forward(
    owner: OwnerClient,
    command: Request,
    stdin: bool,
) -> Result<u8, NotForwarded> {
    let cwd = std::env::current_dir().map_err(|e| {
        NotForwarded::Failed(Failure::runtime(format!(
            "cannot read the current directory to forward the command: {e}"
        )))
    })?;
    let forwarded = Forwarded {
        cwd: cwd.clone(),
        request: command,
    };
    let mut line =
        serde_json::to_vec(&forwarded).map_err(|e| NotForwarded::Failed(Failure::runtime(e)))?;
    line.push(b'\n');
    let task = tokio::task::spawn_blocking(move || relay(&owner, line, stdin, &cwd));
    match task.await {
        Ok(r) => r,
        Err(e) => Err(NotForwarded::Failed(Failure::runtime(format!(
            "the forwarding task failed: {e}"
        )))),
    }
}

fn relay(owner: &OwnerClient, line: Vec<u8>, stdin: bool, cwd: &Path) -> Result<u8, NotForwarded> {
    let response = owner.exec(line, stdin).map_err(|e| match e {
        ClientError::Io { .. } => NotForwarded::Unreachable,
        e => NotForwarded::Failed(Failure::from(e)),
    })?;
    let mut body = response.reader();
    let gone = |why: String| {
        NotForwarded::Failed(Failure::runtime(format!(
            "the vessel process owning this data dir stopped answering before the command \
             finished ({why}); what the command did up to then is kept as that process left it"
        )))
    };
    let cwd_prefix = format!("{}/", cwd.display());
    loop {
        let frame = exec::read_frame(&mut body).map_err(|e| gone(e.to_string()))?;
        let Some((tag, data)) = frame else {
            return Err(gone("no exit status".into()));
        };
        match tag {
            exec::STDOUT => {
                let mut out = std::io::stdout().lock();
                // A closed stdout (`| head`) is not the command's failure.
                let _ = out.write_all(&data).and_then(|()| out.flush());
            }
            exec::STDERR => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&data).and_then(|()| err.flush());
            }
            exec::EXIT => {
                let exit: ExecExit = serde_json::from_slice(&data)
                    .map_err(|e| gone(format!("a bad exit frame: {e}")))?;
                return match exit.message {
                    None => Ok(exit.code),
                    // The owner resolved relative paths against our
                    // directory; name them as they were given.
                    Some(m) => Err(NotForwarded::Failed(Failure {
                        code: exit.code,
                        message: m.replace(&cwd_prefix, ""),
                        detail: None,
                    })),
                };
            }
            // Frames of a newer owner that this version does not know.
            _ => {}
        }
    }
}

impl OwnerClient {
    /// Starts a forwarded command: sends `line` (the command and its
    /// newline), then, with `stdin`, this process's stdin from a thread
    /// while the answer streams back.
    pub fn exec(
        &self,
        line: Vec<u8>,
        stdin: bool,
    ) -> Result<crate::server::client::Response, ClientError> {
        let body = if stdin {
            let reader: Box<dyn std::io::Read + Send> = Box::new(std::io::Read::chain(
                std::io::Cursor::new(line),
                std::io::stdin(),
            ));
            Body::Duplex(reader)
        } else {
            Body::Bytes(&line)
        };
        self.request(
            "POST",
            &crate::server::api::urls::local_exec(),
            &[("Content-Type", "application/octet-stream")],
            body,
        )
    }
}
