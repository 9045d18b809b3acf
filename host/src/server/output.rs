//! Guests' stdout and stderr under `vessel serve`: written to this
//! process's own stdout and stderr by a thread per stream, through a
//! bounded backlog.
//!
//! Written straight to the process's stdout (as a local `vessel call`
//! does), a guest's write blocks the tokio worker running it whenever that
//! stdout does not keep up: a pipe nobody drains, a slow terminal, a
//! throttled journal. Two guests flooding their output then hold both
//! workers of a 2-core host, and every request waits, health checks
//! included. Here a guest's write only queues its bytes and returns; a
//! thread of its own writes them out. While the backlog (default 1 MiB per
//! stream) is full, further output is dropped and counted, and once the
//! stream catches up the thread writes a note saying how many bytes were
//! dropped. The host's memory for guest output is the backlog, whatever the
//! guests write; a server does not wait on its log.
//!
//! Forwarded `vessel call`s stream their guests' output back to the caller
//! instead (`exec`), with backpressure: that output is the caller's own.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use bytes::Bytes;

use crate::container::{GuestStdio, OutputSink};

/// Bytes of guest output held per stream while the process's own stream
/// does not keep up.
pub const DEFAULT_BACKLOG: usize = 1 << 20;

/// The guests' stdio of a server: output through [`Sink`]s to this
/// process's stdout and stderr, each line tagged with its call
/// (`[app.function call=N] `, the call id of the call log); no stdin.
pub fn guest_stdio(backlog: usize) -> GuestStdio {
    GuestStdio::Labelled {
        stdout: Arc::new(Sink::new("stdout", backlog, Box::new(std::io::stdout()))),
        stderr: Arc::new(Sink::new("stderr", backlog, Box::new(std::io::stderr()))),
    }
}

impl OutputSink for Sink {
    fn push(&self, bytes: &[u8]) {
        Sink::push(self, bytes);
    }
}

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    /// Bytes queued or being written.
    held: usize,
    /// Bytes dropped since the last note.
    dropped: u64,
    /// Every [`Sink`] is gone: the writer finishes the queue and ends.
    closed: bool,
}

struct Shared {
    name: &'static str,
    backlog: usize,
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is whole between statements; a panic elsewhere while it
        // was locked leaves it usable.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Closes the queue when the last [`Sink`] goes.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

/// One output stream of the guests: a bounded queue in front of a writer
/// thread. Cheap to clone; every clone feeds the same queue.
#[derive(Clone)]
pub struct Sink {
    shared: Arc<Shared>,
    _closer: Arc<Closer>,
}

impl Sink {
    /// A sink for `out`, holding at most `backlog` bytes; `name` is what
    /// notes call the stream.
    pub fn new(name: &'static str, backlog: usize, out: Box<dyn Write + Send>) -> Sink {
        let shared = Arc::new(Shared {
            name,
            backlog,
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        let writer = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("guest-{name}"))
            .spawn(move || write_out(&writer, out));
        if let Err(e) = spawned {
            // Without its thread the queue never drains: every byte past the
            // backlog is dropped, and counted, but no guest waits.
            tracing::warn!(error = %e, stream = name, "cannot start the guest output thread");
        }
        Sink {
            _closer: Arc::new(Closer(shared.clone())),
            shared,
        }
    }

    /// Queues `data`, or drops it (counted) when the backlog is full.
    pub fn push(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut q = self.shared.lock();
        if q.held.saturating_add(data.len()) > self.shared.backlog {
            q.dropped = q.dropped.saturating_add(data.len() as u64);
            return;
        }
        q.held += data.len();
        q.chunks.push_back(Bytes::copy_from_slice(data));
        drop(q);
        self.shared.ready.notify_one();
    }

    /// Bytes dropped and not yet reported by a note.
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

/// The writer thread: writes what is queued, then a note for what was
/// dropped meanwhile.
fn write_out(shared: &Shared, mut out: Box<dyn Write + Send>) {
    loop {
        let (batch, dropped) = {
            let mut q = shared.lock();
            while q.chunks.is_empty() && q.dropped == 0 && !q.closed {
                q = shared
                    .ready
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if q.chunks.is_empty() && q.dropped == 0 && q.closed {
                return;
            }
            (
                std::mem::take(&mut q.chunks),
                std::mem::take(&mut q.dropped),
            )
        };
        let mut written = 0;
        for chunk in &batch {
            // A closed stdout (the operator's pipe went away) is not the
            // guest's failure: its output is dropped.
            let _ = out.write_all(chunk);
            written += chunk.len();
        }
        if dropped > 0 {
            let _ = writeln!(
                out,
                "\n[vessel: {dropped} bytes of guest {} dropped: this process's {} did not keep up \
                 (at most {} bytes wait; `vessel serve --output-backlog-kib`)]",
                shared.name, shared.name, shared.backlog
            );
        }
        let _ = out.flush();
        drop(batch);
        let mut q = shared.lock();
        q.held = q.held.saturating_sub(written);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A writer that blocks until the test lets it go, then records.
    #[derive(Clone)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, cv) = &*self.open;
            let mut o = open.lock().unwrap();
            while !*o {
                o = cv.wait(o).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stream_drops_output_past_the_backlog_then_says_so() {
        let gate = Gate {
            open: Arc::new((Mutex::new(false), Condvar::new())),
            got: Arc::new(Mutex::new(Vec::new())),
        };
        let sink = Sink::new("stdout", 1000, Box::new(gate.clone()));
        // The writer takes the first chunk and blocks on it; the rest
        // queue up to the backlog, and the remainder is dropped at once.
        let t = std::time::Instant::now();
        for _ in 0..100 {
            sink.push(&[b'x'; 100]);
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let dropped = sink.dropped();
        assert!(dropped >= 9000, "dropped {dropped}");
        assert!(sink.shared.lock().held <= 1000);
        {
            let (open, cv) = &*gate.open;
            *open.lock().unwrap() = true;
            cv.notify_all();
        }
        drop(sink);
        // The writer ends once every clone is gone and the queue is out.
        for _ in 0..200 {
            if String::from_utf8_lossy(&gate.got.lock().unwrap()).contains("dropped") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let got = String::from_utf8_lossy(&gate.got.lock().unwrap()).into_owned();
        let kept = got.bytes().filter(|b| *b == b'x').count() as u64;
        assert_eq!(kept + dropped, 10_000, "{got}");
        assert!(
            got.contains(&format!("{dropped} bytes of guest stdout dropped")),
            "{got}"
        );
    }
}
