//! Guest output with each line tagged by the call that wrote it: the
//! stdout and stderr of [`GuestStdio::Labelled`](super::GuestStdio).
//!
//! A server's containers share the process's stdout and stderr, and a warm
//! container serves call after call, so a line alone does not say whose it
//! is. Each container holds an [`OutputLabel`] the app layer sets at every
//! call (`app.function call=N`, the call id of the call log); its streams
//! put `[label] ` before each line they pass on.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Where labelled output goes: a sink that takes bytes without waiting
/// (it queues or drops them itself, as a server's output queue does).
pub trait OutputSink: Send + Sync {
    fn push(&self, bytes: &[u8]);
}

/// The label of a container's current call, shared by its streams.
#[derive(Debug, Default)]
pub struct OutputLabel(Mutex<Arc<str>>);

impl OutputLabel {
    pub fn set(&self, label: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Arc::from(label);
    }

    fn get(&self) -> Arc<str> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One labelled stream of one container. Whether the next byte starts a
/// line is the stream's, not a writer's: a guest may reopen its stdout.
pub(super) struct LabelledStream {
    sink: Arc<dyn OutputSink>,
    label: Arc<OutputLabel>,
    at_line_start: Arc<Mutex<bool>>,
}

impl LabelledStream {
    pub(super) fn new(sink: Arc<dyn OutputSink>, label: Arc<OutputLabel>) -> Self {
        LabelledStream {
            sink,
            label,
            at_line_start: Arc::new(Mutex::new(true)),
        }
    }

    /// `data` with `[label] ` before each line that starts in it.
    fn labelled(&self, data: &[u8]) -> Vec<u8> {
        let label = self.label.get();
        let mut start = self
            .at_line_start
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(data.len() + label.len() + 3);
        for line in data.split_inclusive(|b| *b == b'\n') {
            if *start {
                out.push(b'[');
                out.extend_from_slice(label.as_bytes());
                out.extend_from_slice(b"] ");
            }
            out.extend_from_slice(line);
            *start = line.last() == Some(&b'\n');
        }
        out
    }
}

impl IsTerminal for LabelledStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LabelledStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LabelledStream {
            sink: self.sink.clone(),
            label: self.label.clone(),
            at_line_start: self.at_line_start.clone(),
        })
    }
}

impl AsyncWrite for LabelledStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if !buf.is_empty() {
            self.sink.push(&self.labelled(buf));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<u8>>);

    impl OutputSink for Collect {
        fn push(&self, bytes: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(bytes);
        }
    }

    #[test]
    fn every_line_carries_the_label_of_the_call_that_started_it() {
        let sink = Arc::new(Collect::default());
        let label = Arc::new(OutputLabel::default());
        let stream = LabelledStream::new(sink.clone(), label.clone());
        label.set("app.f call=1");
        // Lines split across writes are labelled once, where they start.
        assert_eq!(
            stream.labelled(b"one\ntw"),
            b"[app.f call=1] one\n[app.f call=1] tw"
        );
        assert_eq!(stream.labelled(b"o\n"), b"o\n");
        label.set("app.f call=2");
        assert_eq!(
            stream.labelled(b"three\n\nfour"),
            b"[app.f call=2] three\n[app.f call=2] \n[app.f call=2] four"
        );
    }
}
