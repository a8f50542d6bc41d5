//! When the bytes go: the latency before the headers and before the body's first byte, one tick
//! per interval after it, stalls that never finish, and the shutdown that ends them all.
//!
//! Bodies are built whole before any of this applies, so the bytes a client gets are the same at
//! every pace; only their timing differs.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio::time::Instant;

/// The emulator's pace and the streams it still holds open.
#[derive(Debug)]
pub(crate) struct Pace {
    /// Delay before the response headers of every answer.
    latency: Duration,
    /// Delay between the headers and the first byte of the body: a server that accepted the call
    /// but is slow to produce, which only a client's idle timeout notices.
    body_latency: Duration,
    /// Time between stream ticks; `None` sends everything at once.
    interval: Option<Duration>,
    /// Flipped to `true` at shutdown so stalled and paced bodies end instead of holding the
    /// graceful shutdown open forever.
    shutdown: watch::Sender<bool>,
    /// Response bodies still streaming, so tests can prove that disconnected clients leak nothing.
    open_bodies: Arc<AtomicUsize>,
}

impl Pace {
    /// `tokens_per_sec = 0` means no interval: everything at once, without any timer.
    pub(crate) fn new(latency: Duration, body_latency: Duration, tokens_per_sec: u32) -> Self {
        let interval = (tokens_per_sec > 0).then(|| Duration::from_secs(1) / tokens_per_sec);
        let (shutdown, _) = watch::channel(false);
        Pace { latency, body_latency, interval, shutdown, open_bodies: Arc::new(AtomicUsize::new(0)) }
    }

    /// Whether a stream goes out in several timed pieces (and so must be built cut into ticks).
    pub(crate) fn is_paced(&self) -> bool {
        self.interval.is_some()
    }

    /// Waits out the latency before an answer's headers (no timer at all when it is zero).
    pub(crate) async fn wait_latency(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// The timings an answer of `chunks` output tokens reports.
    pub(crate) fn timing(&self, chunks: u32) -> Timing {
        let generation = self.interval.map(|interval| interval.saturating_mul(chunks));
        let first_byte_ms = millis(self.latency.saturating_add(self.body_latency));
        Timing { first_byte_ms, total_ms: first_byte_ms + generation.map_or(0, millis), generation }
    }

    /// Ends every paced and stalled body, now and from now on.
    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn open_bodies(&self) -> usize {
        self.open_bodies.load(Ordering::Relaxed)
    }

    /// Sends `ticks` after the body latency, one interval apart, sleeping (never spinning)
    /// between them; without latency or interval the body is one plain buffer and no timer runs.
    /// No task is spawned: hyper drives the stream, so a client that disconnects drops it and
    /// nothing keeps running.
    pub(crate) fn body(&self, ticks: Vec<Bytes>) -> Body {
        if self.interval.is_none() && self.body_latency.is_zero() {
            return match <[Bytes; 1]>::try_from(ticks) {
                Ok([only]) => Body::from(only),
                Err(ticks) => Body::from(ticks.concat()),
            };
        }
        let start = Instant::now() + self.body_latency;
        let interval = self.interval.unwrap_or_default();
        let open = OpenBody::new(&self.open_bodies);
        let stream = futures_util::stream::iter(ticks.into_iter().enumerate())
            .then(move |(i, tick)| async move {
                let offset = interval.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                tokio::time::sleep_until(start + offset).await;
                Ok::<_, Infallible>(tick)
            })
            .take_until(self.shutdown_signal())
            .map(move |tick| {
                let _open = &open;
                tick
            });
        Body::from_stream(stream)
    }

    /// Sends `head` (after the body latency) and then nothing, ever: the connection stays open
    /// until the client gives up or the emulator shuts down. Pending without a waker costs
    /// nothing while it waits.
    pub(crate) fn stalled_body(&self, head: Bytes) -> Body {
        let open = OpenBody::new(&self.open_bodies);
        let start = Instant::now() + self.body_latency;
        let stream = futures_util::stream::once(async move {
            tokio::time::sleep_until(start).await;
            Ok::<_, Infallible>(head)
        })
        .chain(futures_util::stream::pending())
        .take_until(self.shutdown_signal())
        .map(move |tick| {
            let _open = &open;
            tick
        });
        Body::from_stream(stream)
    }

    /// Resolves when the emulator shuts down (or is dropped altogether).
    fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }
}

/// The emulated timings reported in metrics, derived from the configuration so they are deterministic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) first_byte_ms: u64,
    pub(crate) total_ms: u64,
    /// How long generating the whole reply takes when paced.
    generation: Option<Duration>,
}

impl Timing {
    /// Waits as long as streaming the reply would take, so a paced non-streaming answer is no faster.
    pub(crate) async fn wait_generation(self) {
        if let Some(generation) = self.generation {
            tokio::time::sleep(generation).await;
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Counts a streaming body as open until hyper drops it (stream finished or client gone).
struct OpenBody(Arc<AtomicUsize>);

impl OpenBody {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        OpenBody(Arc::clone(counter))
    }
}

impl Drop for OpenBody {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
