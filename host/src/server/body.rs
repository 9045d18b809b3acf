//! Request and response bodies: reading a request body within a route's
//! limit, an idle timeout and the caller's budget ([`Upload`]), and the
//! bridges between streamed bodies and the blocking store code (a response
//! body fed from a channel, and a `Read` that drains one).
//!
//! A handler takes an [`Upload`] (which reads nothing) and reads it only
//! after it has checked the caller's token, scope and budgets, so a
//! request that will be refused never has its body read.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use tokio::sync::mpsc::Receiver;

use super::limits::LimitError;

/// Why a request body was not read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body is {declared} bytes; this route takes at most {limit} bytes")]
    Declared { declared: u64, limit: usize },
    #[error("the body passed this route's limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the body sent nothing for {}s and was cut off", .0.as_secs_f64())]
    Idle(Duration),
    #[error("cannot read the body: {0}")]
    Broken(String),
    #[error(transparent)]
    Budget(#[from] LimitError),
}

/// A request body not read yet.
pub struct Upload {
    body: axum::body::Body,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Upload {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Upload {
            body: req.into_body(),
        })
    }
}

impl Upload {
    /// The length the client declared (`Content-Length`), if it did.
    pub fn declared(&self) -> Option<u64> {
        http_body::Body::size_hint(&self.body).exact()
    }

    /// Reads the whole body: at most `limit` bytes (a declared length over
    /// it is refused before anything is read), never waiting more than
    /// `idle` for the next bytes, counting what it holds with `hold` (the
    /// caller's budget; a declared length is counted at once).
    pub async fn read(
        self,
        limit: usize,
        idle: Duration,
        mut hold: impl FnMut(usize) -> Result<(), LimitError>,
    ) -> Result<Bytes, BodyError> {
        let declared = self.declared();
        if let Some(declared) = declared {
            if declared > limit as u64 {
                return Err(BodyError::Declared { declared, limit });
            }
            // At most `limit`, so it fits a usize.
            hold(usize::try_from(declared).unwrap_or(limit))?;
        }
        let mut body = self.body;
        let mut out = BytesMut::new();
        while let Some(chunk) = next_chunk(&mut body, idle).await? {
            if out.len().saturating_add(chunk.len()) > limit {
                return Err(BodyError::TooLarge { limit });
            }
            if declared.is_none() {
                hold(chunk.len())?;
            }
            if out.is_empty() {
                out = BytesMut::from(chunk);
            } else {
                out.extend_from_slice(&chunk);
            }
        }
        Ok(out.freeze())
    }

    /// The body as a stream of chunks, for routes that stream it to the
    /// store ([`next_chunk`] reads it).
    pub fn into_body(self) -> axum::body::Body {
        self.body
    }
}

/// The next chunk of data of `body` (trailers are skipped), waiting at most
/// `idle` for it; `None` at the end.
pub async fn next_chunk(
    body: &mut axum::body::Body,
    idle: Duration,
) -> Result<Option<Bytes>, BodyError> {
    loop {
        let frame = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| BodyError::Idle(idle))?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(BodyError::Broken(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    fn chunks(parts: Vec<&'static [u8]>) -> Upload {
        let stream = futures_util::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        );
        Upload {
            body: axum::body::Body::from_stream(stream),
        }
    }

    const IDLE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_body_is_read_within_its_limit() {
        let whole = Upload {
            body: axum::body::Body::from(&b"0123456789"[..]),
        };
        assert_eq!(whole.declared(), Some(10));
        let mut held = 0;
        let got = whole.read(10, IDLE, |n| {
            held += n;
            Ok(())
        });
        assert_eq!(&got.await.unwrap()[..], b"0123456789");
        assert_eq!(held, 10);

        let got = chunks(vec![b"abc", b"", b"def"]).read(6, IDLE, |_| Ok(()));
        assert_eq!(&got.await.unwrap()[..], b"abcdef");
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_refused() {
        let declared = Upload {
            body: axum::body::Body::from(vec![0u8; 11]),
        };
        let r = declared.read(10, IDLE, |_| panic!("nothing is held"));
        assert!(matches!(
            r.await,
            Err(BodyError::Declared {
                declared: 11,
                limit: 10
            })
        ));
        let r = chunks(vec![b"abcdef", b"ghijk"]).read(10, IDLE, |_| Ok(()));
        assert!(matches!(r.await, Err(BodyError::TooLarge { limit: 10 })));
        let r = chunks(vec![b"abcdef", b"gh"]).read(10, IDLE, |n| {
            if n > 5 {
                Err(LimitError::BodyBytes { max: 5 })
            } else {
                Ok(())
            }
        });
        assert!(matches!(r.await, Err(BodyError::Budget(_))));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let idle = Duration::from_millis(50);
        let stream =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))])
                .chain(futures_util::stream::pending());
        let body = Upload {
            body: axum::body::Body::from_stream(stream),
        };
        let r = body.read(10, idle, |_| Ok(()));
        assert!(matches!(r.await, Err(BodyError::Idle(d)) if d == idle));
    }
}
