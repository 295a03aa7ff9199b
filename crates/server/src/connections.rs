//! The accept loop: HTTP/1.1 connections with a bounded number open at once and
//! time limits on clients that send slowly or not at all.
//!
//! `axum::serve` has neither a header-read nor an idle timeout, so a client that
//! sends half a request head holds its connection (and its buffers) for ever.
//! hyper's own `header_read_timeout` starts whenever the connection waits for a
//! head, idle keep-alive included, so it cannot tell "idle for 50 s between two
//! requests" (fine) from "10 s into a request head" (not). Each connection here
//! tracks what it is doing from two places: the socket (bytes read) and the
//! service (a request handed over, its response body dropped), and a watchdog
//! closes it when its state's limit passes:
//!
//! | state | from | limit | how it ends |
//! |---|---|---|---|
//! | reading a head | accept, or the first byte after an answer | `header_read_timeout` | dropped (no request to finish) |
//! | idle keep-alive | the end of the last answer | `idle_timeout` | graceful close |
//! | request in flight | the head read | none here (the vendor budget bounds handlers) | |
//! | writing an answer | the socket refusing more bytes | `write_timeout` | reset (the client stopped reading; the unsent answer is freed at once) |
//!
//! The last one guards the other direction: a client that asks and never reads the
//! answer (or pipelines requests without reading) would otherwise hold its
//! connection, and the answer's buffers, for as long as it likes.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// Limits on client connections (`serve --header-read-timeout`, `--idle-timeout`,
/// `--max-connections`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// How long a client may take to send a whole request head, from its first
    /// byte (or from connecting). Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may sit idle after an answer. Default 60 s.
    pub idle_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog. Default 10,000.
    pub max_connections: u32,
    /// How long writing an answer may make no progress (the client reads none of
    /// it) before the connection is dropped. Default 60 s.
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish and waits for every connection to close.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut warned_full = false;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        if permits.available_permits() == 0 && !warned_full {
            tracing::warn!(max = limits.max_connections, "connection limit reached; new connections wait (--max-connections)");
            warned_full = true;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if permits.available_permits() > 0 {
            warned_full = false;
        }
        let _ = stream.set_nodelay(true);
        let (app, stop) = (app.clone(), stop_rx.clone());
        tokio::spawn(async move {
            connection(stream, peer, app, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it closes.
    let _ = permits.acquire_many(limits.max_connections).await;
    Ok(())
}

/// One connection, until it closes or a limit closes it.
async fn connection(stream: TcpStream, peer: SocketAddr, app: Router, limits: ConnectionLimits, mut stop: watch::Receiver<bool>) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone(), write_timeout: limits.write_timeout, write_stalled: None });
    let tracker = activity.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let answering = Answering::begin(tracker.clone());
        let app = app.clone();
        async move {
            let request = request.map(|inner| Body::new(Stalling { inner, limit: limits.header_read_timeout, deadline: None }));
            let response = app.oneshot(request).await.unwrap_or_else(|e: Infallible| match e {});
            // The request counts as in flight until hyper drops the body it wrote.
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &answering;
                    frame
                }))
            }))
        }
    });
    let mut conn = pin!(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
    let mut closing = false;
    // The watchdog looks when the current state's limit would pass, and at least
    // every `every`, the shorter of the two limits: a head that begins after a look
    // cannot reach its limit before the next look, nor can an idle spell that begins
    // after it. So neither the socket nor the service ever wakes it; a wake on every
    // request cost a cross-thread notification each (issue 11: ~45 µs a call).
    let every = limits.header_read_timeout.min(limits.idle_timeout).max(Duration::from_millis(1));
    let mut watchdog = pin!(tokio::time::sleep(every));
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = watchdog.as_mut() => {
                let now = Instant::now();
                let (deadline, limit) = activity.next_limit(&limits);
                match limit {
                    _ if deadline.is_none_or(|at| at > now) => {}
                    Limit::Head => {
                        tracing::debug!(%peer, "closing a connection that did not send its request head in time");
                        return;
                    }
                    // An idle connection closes at once; graceful all the same, in
                    // case a request slipped in.
                    Limit::Idle if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Limit::Idle => {}
                }
                let next = deadline.filter(|at| *at > now).map_or(now + every, |at| at.min(now + every));
                watchdog.as_mut().reset(next);
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection is doing, as milliseconds since it opened (+1, so 0 means
/// "not"); the watchdog reads it when it looks.
struct Activity {
    opened: Instant,
    /// Requests handed to the service whose answers are not yet written.
    in_flight: AtomicUsize,
    /// When the head being read began (its first byte, or the connection's start).
    head_since: AtomicU64,
    /// When the connection fell idle after its last answer.
    idle_since: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
enum Limit {
    Head,
    Idle,
}

impl Activity {
    fn new() -> Activity {
        // A new connection is waiting for its first head.
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            head_since: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64 + 1
    }

    /// Bytes arrived: with nothing in flight they begin a head.
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == 0 {
            self.idle_since.store(0, Ordering::Release);
            self.head_since.store(self.now(), Ordering::Release);
        }
    }

    /// When the current state's limit passes and which it is; `None` while a
    /// request is in flight.
    fn next_limit(&self, limits: &ConnectionLimits) -> (Option<Instant>, Limit) {
        let at = |mark: u64| Some(self.opened + Duration::from_millis(mark - 1));
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return (None, Limit::Idle);
        }
        match (self.head_since.load(Ordering::Acquire), self.idle_since.load(Ordering::Acquire)) {
            (head, _) if head > 0 => (at(head).map(|t| t + limits.header_read_timeout), Limit::Head),
            (_, idle) if idle > 0 => (at(idle).map(|t| t + limits.idle_timeout), Limit::Idle),
            _ => (None, Limit::Idle),
        }
    }
}

/// A request in flight on its connection, from its head to its answer's end.
struct Answering(Arc<Activity>);

impl Answering {
    fn begin(activity: Arc<Activity>) -> Answering {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_since.store(0, Ordering::Release);
        activity.idle_since.store(0, Ordering::Release);
        Answering(activity)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(self.0.now(), Ordering::Release);
        }
    }
}

/// A request body that must keep arriving: when no part of it comes for `limit`
/// (the header-read timeout), reading it fails, so a client that declares a body
/// and stops sending cannot hold its connection (the handler answers 400).
struct Stalling {
    inner: Incoming,
    limit: Duration,
    /// Armed while the body is awaited, cleared when a part arrives.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for Stalling {
    type Data = axum::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let limit = this.limit;
                let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err("the request body stopped arriving".into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when bytes arrive, and failing writes that make no progress
/// for `write_timeout`.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    write_timeout: Duration,
    /// Armed while the socket refuses bytes; cleared when a write goes through.
    write_stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Tracked {
    /// After a write `polled`: progress clears the timer, a refusal arms it, and
    /// past its limit the write fails (hyper then drops the connection).
    fn written<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.write_stalled = None;
            return polled;
        }
        let limit = self.write_timeout;
        let stalled = self.write_stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => {
                // Reset rather than close: a closed socket would keep the unsent answer
                // in kernel memory for minutes (FIN-WAIT-1), where no limit counts it.
                let _ = self.inner.set_zero_linger();
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading its answer")))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.written(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
