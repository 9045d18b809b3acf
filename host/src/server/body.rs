//! Bridges between streamed HTTP bodies and the blocking store code: a
//! response body fed from a channel, and a `Read` that drains one.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc::Receiver;

/// A response body whose chunks come from a channel (filled by a blocking
/// reader of the store).
pub struct ChannelBody {
    rx: Receiver<Result<Bytes, std::io::Error>>,
}

impl ChannelBody {
    pub fn new(rx: Receiver<Result<Bytes, std::io::Error>>) -> Self {
        ChannelBody { rx }
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(http_body::Frame::data)))
    }
}

/// A blocking `Read` over chunks sent from an async task (a request body).
pub struct ChannelReader {
    rx: Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: Receiver<Result<Bytes, std::io::Error>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.current.len());
        let chunk = self.current.split_to(n);
        buf.get_mut(..n)
            .ok_or_else(|| std::io::Error::other("short buffer"))?
            .copy_from_slice(&chunk);
        Ok(n)
    }
}
