//! A small blocking HTTP/1.1 client for the owner's socket: how a `vessel`
//! command reaches the process that holds the data dir's store.
//!
//! Requests are one per connection (`Connection: close`), bodies are sent
//! with a length or chunked, and response bodies are read as a stream, so
//! a large file goes through without being held in memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::socket_path;

/// Why a request to the owner failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot talk to the vessel server at {socket}: {reason}")]
    Io { socket: PathBuf, reason: String },
    /// The owner answered with an error.
    #[error("{message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
}

impl ClientError {
    /// Whether the request itself was bad (the CLI's exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, ClientError::Api { status, .. } if matches!(status, 400 | 413 | 416))
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Io { .. } => None,
        }
    }
}

/// A vessel server: the owner of a data dir reached through its socket,
/// or `vessel serve` over TCP with a bearer token.
#[derive(Debug, Clone)]
pub struct OwnerClient {
    /// The socket path, or the TCP address (for messages).
    socket: PathBuf,
    /// `Some((addr, token))` for TCP.
    tcp: Option<(String, String)>,
}

/// A connection, Unix or TCP.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A response whose body is still to be read.
pub struct Response {
    pub status: u16,
    body: Box<dyn Read + Send>,
}

impl Response {
    /// Reads the whole body.
    pub fn bytes(mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.body.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The body, to stream.
    pub fn reader(self) -> Box<dyn Read + Send> {
        self.body
    }
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Sent chunked, read to the end.
    Stream(&'a mut dyn Read),
    /// Sent chunked from a thread while the answer is read (the owner's
    /// socket only): a forwarded command's stdin.
    Duplex(Box<dyn Read + Send>),
}

impl OwnerClient {
    /// The owner of `data_dir`, if one is running: its socket exists and
    /// accepts a connection. A socket left by a process that died refuses
    /// connections and counts as no owner (the next owner replaces it).
    pub fn find(data_dir: &Path) -> Option<OwnerClient> {
        let socket = socket_path(data_dir);
        if !socket.exists() {
            return None;
        }
        match UnixStream::connect(&socket) {
            Ok(_) => Some(OwnerClient { socket, tcp: None }),
            Err(_) => None,
        }
    }

    /// `vessel serve`'s HTTP API at `addr` (`127.0.0.1:8470`), with a bearer
    /// token. Nothing connects until the first request.
    pub fn tcp(addr: &str, token: &str) -> OwnerClient {
        OwnerClient {
            socket: PathBuf::from(format!("http://{addr}")),
            tcp: Some((addr.to_owned(), token.to_owned())),
        }
    }

    fn io(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Io {
            socket: self.socket.clone(),
            reason: e.to_string(),
        }
    }

    /// Sends one request; an error status becomes [`ClientError::Api`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response, ClientError> {
        let mut duplex_writer = None;
        let mut stream: Box<dyn Stream> = match &self.tcp {
            None => {
                let s = UnixStream::connect(&self.socket).map_err(|e| self.io(e))?;
                if matches!(body, Body::Duplex(_)) {
                    duplex_writer = Some(s.try_clone().map_err(|e| self.io(e))?);
                }
                Box::new(s)
            }
            Some((addr, _)) => {
                let s = std::net::TcpStream::connect(addr).map_err(|e| self.io(e))?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
        };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: vessel\r\nConnection: close\r\n");
        if let Some((_, token)) = &self.tcp {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        match &body {
            Body::Empty => head.push_str("Content-Length: 0\r\n\r\n"),
            Body::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n\r\n", b.len())),
            Body::Stream(_) | Body::Duplex(_) => {
                head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            }
        }
        stream.write_all(head.as_bytes()).map_err(|e| self.io(e))?;
        // The server may answer before it has read the whole body (an
        // upload past a volume's quota, a body over a limit) and close the
        // connection: then the answer, not the broken pipe, is the outcome.
        let mut unsent = None;
        match body {
            Body::Empty => {}
            Body::Bytes(b) => unsent = stream.write_all(b).err(),
            Body::Stream(r) => unsent = write_chunked(r, &mut stream).err(),
            Body::Duplex(mut r) => {
                let Some(mut w) = duplex_writer else {
                    return Err(self.io("a streamed request body needs the owner's socket"));
                };
                // The thread ends at the end of input or when the server
                // closes the connection; a caller that exits first (the
                // answer is complete) just leaves it blocked in a read.
                std::thread::spawn(move || {
                    let _ = write_chunked(&mut r, &mut w);
                });
            }
        }
        if unsent.is_none() {
            unsent = stream.flush().err();
        }
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        match (reader.read_line(&mut line), unsent) {
            (Ok(n), _) if n > 0 => {}
            (_, Some(e)) => return Err(self.io(e)),
            (Err(e), None) => return Err(self.io(e)),
            (Ok(_), None) => {}
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.io(format!("bad status line {line:?}")))?;
        let mut chunked = false;
        let mut length = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).map_err(|e| self.io(e))?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim();
                if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if k == "content-length" {
                    length = v.parse::<u64>().ok();
                }
            }
        }
        let body: Box<dyn Read + Send> = if chunked {
            Box::new(Dechunk {
                inner: reader,
                left: 0,
                done: false,
            })
        } else if let Some(n) = length {
            Box::new(reader.take(n))
        } else {
            Box::new(reader)
        };
        let resp = Response { status, body };
        if status < 400 {
            return Ok(resp);
        }
        let bytes = resp.bytes().map_err(|e| self.io(e))?;
        let parsed: Json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
        let err = parsed.get("error");
        Err(ClientError::Api {
            status,
            kind: err
                .and_then(|e| e.get("kind"))
                .and_then(Json::as_str)
                .unwrap_or("error")
                .to_owned(),
            message: err
                .and_then(|e| e.get("message"))
                .and_then(Json::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes))),
        })
    }

    /// POSTs the JSON document `body` and decodes the JSON answer.
    pub fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Json,
    ) -> Result<T, ClientError> {
        self.json("POST", path, Body::Bytes(body.to_string().as_bytes()))
    }

    /// A request whose answer is JSON.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Body<'_>,
    ) -> Result<T, ClientError> {
        let headers: &[(&str, &str)] = match body {
            Body::Bytes(_) => &[("Content-Type", "application/json")],
            _ => &[],
        };
        self.json_with(method, path, headers, body)
    }

    /// [`json`](Self::json) with the request headers given.
    pub fn json_with<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<T, ClientError> {
        let bytes = self
            .request(method, path, headers, body)?
            .bytes()
            .map_err(|e| self.io(e))?;
        serde_json::from_slice(&bytes).map_err(|e| self.io(format!("bad JSON answer: {e}")))
    }
}

/// Copies `r` to `w` with chunked transfer encoding, then the last chunk.
fn write_chunked(r: &mut dyn Read, w: &mut dyn Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        w.write_all(format!("{n:x}\r\n").as_bytes())?;
        w.write_all(chunk)?;
        w.write_all(b"\r\n")?;
        w.flush()?;
    }
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

/// Reads a chunked body as a plain stream.
struct Dechunk<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Dechunk<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                // The CRLF after the previous chunk.
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the body ended inside a chunk",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a volume path, keeping its `/` separators.
pub fn enc_path(p: &str) -> String {
    p.split('/').map(enc).collect::<Vec<_>>().join("/")
}
