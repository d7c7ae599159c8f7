//! Byte splicing between two streams: both directions at once, half-close passed on, an idle bound,
//! and byte counters that move while the connection lives.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Size of each direction's copy buffer.
pub(crate) const BUFFER_SIZE: usize = 16 * 1024;

/// How a splice ended.
#[derive(Debug)]
pub(crate) enum SpliceEnd {
    /// Both sides closed their write halves (or one side reset after the other finished).
    Done,
    /// No byte moved for the idle bound.
    Idle,
    /// An I/O error on either side.
    Error(io::Error),
}

/// A stream that counts bytes into shared counters and stamps the time of its last activity.
struct Tracked<'a, S> {
    inner: S,
    start: Instant,
    last: &'a AtomicU64,
    read: Option<&'a AtomicU64>,
    written: Option<&'a AtomicU64>,
}

impl<S> Tracked<'_, S> {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.touch();
            if let Some(c) = self.read {
                c.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &poll
            && *n > 0
        {
            self.touch();
            if let Some(c) = self.written {
                c.fetch_add(*n as u64, Ordering::Relaxed);
            }
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Copies `down` ⇄ `up` until both directions end, an error, or `idle` passes with no byte moving.
/// Bytes read from `down` are added to `down_read`, bytes written to it to `down_written`.
pub(crate) async fn splice<D, U>(
    down: D,
    up: U,
    idle: Duration,
    down_read: &AtomicU64,
    down_written: &AtomicU64,
) -> SpliceEnd
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let mut down = Tracked {
        inner: down,
        start,
        last: &last,
        read: Some(down_read),
        written: Some(down_written),
    };
    let mut up = Tracked {
        inner: up,
        start,
        last: &last,
        read: None,
        written: None,
    };
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut down, &mut up, BUFFER_SIZE, BUFFER_SIZE);
    let watchdog = async {
        loop {
            let since_start = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = start + since_start + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        r = copy => match r {
            Ok(_) => SpliceEnd::Done,
            Err(e) => SpliceEnd::Error(e),
        },
        () = watchdog => SpliceEnd::Idle,
    }
}
