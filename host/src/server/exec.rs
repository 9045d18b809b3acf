//! Commands forwarded to the data dir's owner. Only one process can hold an
//! embedded store, so a `vessel call` or `vessel run` started while another
//! process owns the data dir sends its command line over the owner's socket
//! and the owner runs it against the store it holds.
//!
//! The wire format, on `POST /v1/local/exec` (the socket only):
//! - request body: one line of JSON (the command, as the CLI defines it),
//!   then the caller's stdin, streamed as the guest reads it;
//! - response body: frames of a tag byte, a big-endian `u32` length and the
//!   payload. [`STDOUT`] and [`STDERR`] carry output in the order it was
//!   written; [`EXIT`] comes last and carries an [`ExecExit`].
//!
//! When the caller goes away (the response is dropped), the command is
//! cancelled, as a local command would be by the caller's Ctrl-C.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;
use wasmtime_wasi::cli::{AsyncStdinStream, IsTerminal, StdoutStream};

/// A frame of the guest's (or the command's) stdout.
pub const STDOUT: u8 = b'1';
/// A frame of stderr.
pub const STDERR: u8 = b'2';
/// The last frame: the command's [`ExecExit`] as JSON.
pub const EXIT: u8 = b'x';

/// Longest command line (the JSON before the first newline): `--args` can
/// carry large documents, as a direct `vessel call` allows.
pub const MAX_COMMAND: usize = 64 << 20;

/// Bytes of one frame's payload at most; longer writes are split.
const MAX_FRAME: usize = 1 << 20;

/// How the command ended: its exit code and, when it failed, the message
/// the CLI prints after `error: `.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecExit {
    pub code: u8,
    pub message: Option<String>,
}

/// One frame of the response.
#[derive(Debug)]
pub struct Frame {
    pub tag: u8,
    pub data: Bytes,
}

impl Frame {
    fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(5 + self.data.len());
        out.push(self.tag);
        // Payloads are split at MAX_FRAME, far below u32::MAX.
        out.extend_from_slice(
            &u32::try_from(self.data.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&self.data);
        Bytes::from(out)
    }
}

/// A writer of one tag's frames: the command's stdout or stderr, and the
/// guests' (it is a [`StdoutStream`]).
#[derive(Clone)]
pub struct FrameOut {
    tag: u8,
    tx: mpsc::Sender<Frame>,
}

impl FrameOut {
    /// Writes `data` as frames; `false` once the caller has gone.
    pub async fn write(&self, data: impl Into<Bytes>) -> bool {
        let mut data: Bytes = data.into();
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_FRAME));
            let frame = Frame {
                tag: self.tag,
                data: chunk,
            };
            if self.tx.send(frame).await.is_err() {
                return false;
            }
        }
        true
    }
}

impl IsTerminal for FrameOut {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for FrameOut {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(FrameWriter {
            tag: self.tag,
            tx: PollSender::new(self.tx.clone()),
        })
    }
}

/// [`FrameOut`] as an `AsyncWrite`: each write waits for room in the
/// channel, so a slow caller slows the guest instead of growing a buffer.
struct FrameWriter {
    tag: u8,
    tx: PollSender<Frame>,
}

impl AsyncWrite for FrameWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the forwarding caller has gone");
        match self.tx.poll_reserve(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(Err(gone())),
            Poll::Ready(Ok(())) => {}
        }
        let n = buf.len().min(MAX_FRAME);
        let frame = Frame {
            tag: self.tag,
            data: Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()),
        };
        match self.tx.send_item(frame) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a forwarded command reads and writes.
#[derive(Clone)]
pub struct ExecIo {
    pub stdout: FrameOut,
    pub stderr: FrameOut,
    /// The caller's stdin (empty for `vessel call`).
    pub stdin: Arc<AsyncStdinStream>,
}

/// Runs forwarded commands: the CLI gives its owner server one, so the
/// server need not know the command line.
pub trait LocalExec: Send + Sync + 'static {
    fn exec(&self, command: Json, io: ExecIo) -> Pin<Box<dyn Future<Output = ExecExit> + Send>>;
}

/// Why a request did not start a command.
#[derive(Debug, thiserror::Error)]
pub enum ExecRequestError {
    #[error("the command line is longer than {MAX_COMMAND} bytes")]
    TooLong,
    #[error("the request body ended before the command line's newline")]
    Truncated,
    #[error("the command line is not valid JSON: {0}")]
    BadJson(serde_json::Error),
    #[error("cannot read the request body: {0}")]
    Body(String),
    #[error("the command line sent nothing for {}s and was cut off", .0.as_secs_f64())]
    Idle(std::time::Duration),
}

type BodyStream = futures_util::stream::BoxStream<'static, Result<Bytes, String>>;

/// Reads the command line off the front of `body`, waiting at most `idle`
/// for each chunk of it; returns it and the rest of the body (the caller's
/// stdin, which may rightly wait on a person: it has no idle timeout).
pub async fn read_command(
    mut body: BodyStream,
    idle: std::time::Duration,
) -> Result<(Json, Bytes, BodyStream), ExecRequestError> {
    let mut head = Vec::new();
    loop {
        let next = tokio::time::timeout(idle, body.next())
            .await
            .map_err(|_| ExecRequestError::Idle(idle))?;
        let Some(chunk) = next else {
            return Err(ExecRequestError::Truncated);
        };
        let chunk = chunk.map_err(ExecRequestError::Body)?;
        if let Some(at) = chunk.iter().position(|b| *b == b'\n') {
            head.extend_from_slice(chunk.get(..at).unwrap_or_default());
            if head.len() > MAX_COMMAND {
                return Err(ExecRequestError::TooLong);
            }
            let rest = chunk.slice(at.saturating_add(1)..);
            let command = serde_json::from_slice(&head).map_err(ExecRequestError::BadJson)?;
            return Ok((command, rest, body));
        }
        head.extend_from_slice(&chunk);
        if head.len() > MAX_COMMAND {
            return Err(ExecRequestError::TooLong);
        }
    }
}

/// Aborts the command's task when the response is dropped (the caller
/// went away).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts `command` on `exec`, feeding it `stdin_head` and then `stdin`,
/// and returns the response body: the frames, ending with [`EXIT`].
pub fn start(
    exec: Arc<dyn LocalExec>,
    command: Json,
    stdin_head: Bytes,
    mut stdin: BodyStream,
) -> impl futures_core::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    // Sixteen frames in flight: output streams, but a caller that stops
    // reading holds the guest back rather than the server's memory.
    let (tx, rx) = mpsc::channel::<Frame>(16);
    let (mut feed, guest_stdin) = tokio::io::duplex(64 << 10);
    let feeder = tokio::spawn(async move {
        if !stdin_head.is_empty() && feed.write_all(&stdin_head).await.is_err() {
            return;
        }
        while let Some(Ok(chunk)) = stdin.next().await {
            if feed.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // Dropping `feed` is the guest's end of input.
    });
    let io = ExecIo {
        stdout: FrameOut {
            tag: STDOUT,
            tx: tx.clone(),
        },
        stderr: FrameOut {
            tag: STDERR,
            tx: tx.clone(),
        },
        stdin: Arc::new(AsyncStdinStream::new(guest_stdin)),
    };
    let task = tokio::spawn(async move {
        let exit = exec.exec(command, io).await;
        feeder.abort();
        let data = serde_json::to_vec(&exit).unwrap_or_default();
        let _ = tx
            .send(Frame {
                tag: EXIT,
                data: Bytes::from(data),
            })
            .await;
    });
    let guard = AbortOnDrop(task);
    futures_util::stream::unfold((rx, Some(guard)), |(mut rx, guard)| async move {
        // The guard lives as long as the stream; after the exit frame the
        // stream ends even if guests still hold a writer.
        guard.as_ref()?;
        let frame = rx.recv().await?;
        let last = frame.tag == EXIT;
        let bytes = frame.encode();
        Some((Ok(bytes), (rx, if last { None } else { guard })))
    })
}

/// Reads frames from a response body, as the forwarding client does.
pub fn read_frame(r: &mut impl io::Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        let n = r.read(head.get_mut(got..).unwrap_or_default())?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the answer ended inside a frame",
            ));
        }
        got += n;
    }
    let [tag, a, b, c, d] = head;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len > MAX_FRAME.max(MAX_COMMAND) {
        return Err(io::Error::other(format!(
            "a frame of {len} bytes is too long"
        )));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some((tag, data)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut wire = Vec::new();
        for (tag, data) in [(STDOUT, &b"hello"[..]), (STDERR, b""), (EXIT, b"{}")] {
            wire.extend_from_slice(
                &Frame {
                    tag,
                    data: Bytes::copy_from_slice(data),
                }
                .encode(),
            );
        }
        let mut r = &wire[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((STDOUT, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), Some((STDERR, Vec::new())));
        assert_eq!(read_frame(&mut r).unwrap(), Some((EXIT, b"{}".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let mut cut = &wire[..3];
        assert!(read_frame(&mut cut).is_err());
    }

    #[tokio::test]
    async fn the_command_line_is_split_from_stdin() {
        let parts: Vec<Result<Bytes, String>> = vec![
            Ok(Bytes::from_static(b"{\"a\":")),
            Ok(Bytes::from_static(b"1}\nsome in")),
            Ok(Bytes::from_static(b"put")),
        ];
        let body: BodyStream = futures_util::stream::iter(parts).boxed();
        let (cmd, head, rest) = read_command(body, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(cmd, serde_json::json!({"a": 1}));
        assert_eq!(&head[..], b"some in");
        let tail: Vec<_> = rest.collect().await;
        assert_eq!(tail.len(), 1);

        let body: BodyStream =
            futures_util::stream::iter(vec![Ok(Bytes::from_static(b"{"))]).boxed();
        assert!(matches!(
            read_command(body, std::time::Duration::from_secs(5)).await,
            Err(ExecRequestError::Truncated)
        ));
        let body: BodyStream =
            futures_util::stream::iter(vec![Ok(Bytes::from_static(b"{\n"))]).boxed();
        assert!(matches!(
            read_command(body, std::time::Duration::from_secs(5)).await,
            Err(ExecRequestError::BadJson(_))
        ));
    }
}
