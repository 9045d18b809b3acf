//! Guest output with each line tagged by the call that wrote it: the
//! stdout and stderr of [`GuestStdio::Labelled`](super::GuestStdio).
//!
//! A server's containers share the process's stdout and stderr (its
//! stderr with the server's own log), and a warm container serves call
//! after call, so a line alone does not say whose it is. Each container
//! holds an [`OutputLabel`] the app layer sets at every call
//! (`app.function call=N`, the call id of the call log); its streams pass
//! on whole lines only, each starting `[label] `, so a guest's line is
//! one write and never interleaves with another writer's. A line is held
//! until its newline, up to [`MAX_HELD`] bytes (then it is passed on in
//! pieces, the first one labelled); the line a call leaves unfinished is
//! ended when the next call starts, so it keeps its own call's label.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Bytes of an unfinished line held per stream before they are passed on
/// without waiting for its newline.
pub const MAX_HELD: usize = 64 << 10;

/// Where labelled output goes: a sink that takes bytes without waiting
/// (it queues or drops them itself, as a server's output queue does).
pub trait OutputSink: Send + Sync {
    fn push(&self, bytes: &[u8]);
}

/// One stream's unfinished line.
#[derive(Default)]
struct Held {
    bytes: Vec<u8>,
    /// Part of the line was passed on already (with its label).
    continued: bool,
}

#[derive(Default)]
struct State {
    label: Arc<str>,
    /// stdout's and stderr's unfinished lines.
    held: [Held; 2],
    /// The sinks of the streams made so far, to end their lines.
    sinks: [Option<Arc<dyn OutputSink>>; 2],
}

/// The label of a container's current call and its streams' unfinished
/// lines.
#[derive(Default)]
pub struct OutputLabel(Mutex<State>);

impl std::fmt::Debug for OutputLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OutputLabel")
            .field(&self.lock().label)
            .finish()
    }
}

impl OutputLabel {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts labelling with `label`, ending first any line the previous
    /// call left unfinished (under that call's label).
    pub fn set(&self, label: &str) {
        let mut st = self.lock();
        st.end_lines();
        st.label = Arc::from(label);
    }
}

impl State {
    /// Passes on each stream's unfinished line, with a newline.
    fn end_lines(&mut self) {
        for i in 0..2 {
            let (Some(h), Some(Some(sink))) = (self.held.get_mut(i), self.sinks.get(i)) else {
                continue;
            };
            if h.bytes.is_empty() && !h.continued {
                continue;
            }
            let mut out = Vec::with_capacity(h.bytes.len() + self.label.len() + 4);
            if !h.continued {
                prefix(&mut out, &self.label);
            }
            out.append(&mut h.bytes);
            out.push(b'\n');
            h.continued = false;
            sink.push(&out);
        }
    }

    /// What stream `i` passes on for `data`: its whole lines, labelled.
    fn take_lines(&mut self, i: usize, data: &[u8]) -> Vec<u8> {
        let label = self.label.clone();
        let mut out = Vec::new();
        let Some(h) = self.held.get_mut(i) else {
            return out;
        };
        for piece in data.split_inclusive(|b| *b == b'\n') {
            h.bytes.extend_from_slice(piece);
            let whole = piece.last() == Some(&b'\n');
            if whole || h.bytes.len() >= MAX_HELD {
                if !h.continued {
                    prefix(&mut out, &label);
                }
                out.append(&mut h.bytes);
                h.continued = !whole;
            }
        }
        out
    }
}

fn prefix(out: &mut Vec<u8>, label: &str) {
    out.push(b'[');
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"] ");
}

/// One labelled stream (0: stdout, 1: stderr) of one container.
#[derive(Clone)]
pub(super) struct LabelledStream {
    sink: Arc<dyn OutputSink>,
    state: Arc<OutputLabel>,
    index: usize,
}

impl LabelledStream {
    pub(super) fn new(sink: Arc<dyn OutputSink>, state: Arc<OutputLabel>, index: usize) -> Self {
        if let Some(slot) = state.lock().sinks.get_mut(index) {
            *slot = Some(sink.clone());
        }
        LabelledStream { sink, state, index }
    }

    fn write(&self, data: &[u8]) {
        let out = self.state.lock().take_lines(self.index, data);
        if !out.is_empty() {
            self.sink.push(&out);
        }
    }
}

impl IsTerminal for LabelledStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LabelledStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LabelledStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for OutputLabel {
    /// The container is gone: its unfinished lines end here.
    fn drop(&mut self) {
        self.lock().end_lines();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<Vec<u8>>>);

    impl OutputSink for Collect {
        fn push(&self, bytes: &[u8]) {
            self.0.lock().unwrap().push(bytes.to_vec());
        }
    }

    fn pushed(c: &Collect) -> Vec<String> {
        std::mem::take(&mut *c.0.lock().unwrap())
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect()
    }

    #[test]
    fn whole_lines_carry_the_label_of_their_call() {
        let sink = Arc::new(Collect::default());
        let state = Arc::new(OutputLabel::default());
        let out = LabelledStream::new(sink.clone(), state.clone(), 0);
        state.set("app.f call=1");
        // A line split across writes is held, then passed on in one push.
        out.write(b"one\ntw");
        out.write(b"o\nthr");
        assert_eq!(
            pushed(&sink),
            ["[app.f call=1] one\n", "[app.f call=1] two\n"]
        );
        // The next call ends the unfinished line under the old label.
        state.set("app.f call=2");
        out.write(b"four\n\n");
        assert_eq!(
            pushed(&sink),
            [
                "[app.f call=1] thr\n",
                "[app.f call=2] four\n[app.f call=2] \n"
            ]
        );
        // A line longer than the hold goes out in pieces, labelled once.
        out.write(&vec![b'x'; MAX_HELD + 10]);
        out.write(b"y\n");
        let got = pushed(&sink);
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with("[app.f call=2] xxx"));
        assert_eq!(got[1], "y\n");
        // Dropping the container ends what is held.
        out.write(b"last");
        drop(out);
        drop(state);
        assert_eq!(pushed(&sink), ["[app.f call=2] last\n"]);
    }
}
