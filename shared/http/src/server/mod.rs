//! The HTTP server of the local runner: the shared router on a TCP
//! listener, with the limits that API Gateway applies in front of the
//! Lambda functions.
//!
//! - At most [`ServerLimits::max_connections`] connections at once, and at
//!   most [`ServerLimits::max_connections_per_peer`] from one address
//!   (trusted proxies, which carry many clients, excepted), so one client
//!   cannot take every place; one more is answered `503` with `Retry-After`
//!   and closed, never left hanging. Refusals are bounded too: past that,
//!   connections are closed.
//! - A new connection has [`ServerLimits::first_byte_timeout`] to send its
//!   first byte, shorter than the time a kept-alive one may stay idle.
//! - A connection has [`ServerLimits::header_read_timeout`] to send each
//!   request head, counted from the end of the previous response, so the
//!   same timeout closes idle kept-alive connections and slow heads.
//! - Every refusal and timeout at the connection level is counted
//!   ([`ConnectionStats`]) and reported in one log line per
//!   [`ServerLimits::report_every`] at most, so a flood cannot fill a disk.
//! - Request heads are checked before they are parsed ([`inspect`]);
//!   bodies are read only once the request is authenticated, within the
//!   router's body timeout ([`crate::admission`]).
//! - A response the client does not read within
//!   [`ServerLimits::write_timeout`] closes the connection.

pub mod inspect;
mod stats;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use scim_protocol::ScimError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

pub use inspect::HeadLimits;
pub use stats::{ConnectionStats, Refusal};

/// Connection-level limits of the local runner.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    /// Connections from one address at once (trusted proxies excepted).
    pub max_connections_per_peer: usize,
    /// Time a new connection has to send its first byte.
    pub first_byte_timeout: Duration,
    /// Time to send a request head, from the connection's start or the end
    /// of the previous response (the idle keep-alive timeout too).
    pub header_read_timeout: Duration,
    /// Time the client has to take each part of a response.
    pub write_timeout: Duration,
    pub head: HeadLimits,
    /// How often connection-level refusals and timeouts are logged, at most.
    pub report_every: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_peer: 64,
            first_byte_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            head: HeadLimits::default(),
            report_every: Duration::from_secs(10),
        }
    }
}

/// Connections refused at once at most; past it, excess connections are
/// closed without an answer (each refusal holds a task for a moment).
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// How long in-flight requests may finish after shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serve `router` on `listener` until `shutdown` completes. Connections
/// from `exempt` (trusted proxies) are not held to the per-peer limit.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    exempt: Vec<ipnet::IpNet>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let stats = Arc::new(ConnectionStats::default());
    tokio::spawn(stats::report_every(Arc::clone(&stats), limits.report_every));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let peers = Arc::new(PeerCounts::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // A client that stops sending after its request still gets the answer.
        .half_close(true)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let exempt_peer = exempt.iter().any(|net| net.contains(&peer.ip()));
        let peer_place = if exempt_peer { None } else { peers.enter(peer.ip(), limits.max_connections_per_peer) };
        let refusal = match (exempt_peer || peer_place.is_some(), Arc::clone(&connections).try_acquire_owned()) {
            (true, Ok(permit)) => Ok(permit),
            (false, _) => Err(Refusal::PeerLimit),
            (true, Err(_)) => Err(Refusal::Capacity),
        };
        let permit = match refusal {
            Ok(permit) => permit,
            Err(why) => {
                stats.count(why);
                if let Ok(slot) = Arc::clone(&refusals).try_acquire_owned() {
                    tokio::spawn(refuse_busy(stream, slot, why));
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        let stats = Arc::clone(&stats);
        let io = inspect::Inspected::new(stream, limits.head, limits.write_timeout).counting(Arc::clone(&stats));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _places = (permit, peer_place);
            // A new connection that sends nothing is closed sooner than an
            // idle kept-alive one: it has not been served anything yet.
            let mut first = [0u8; 1];
            let first_byte_timeout = limits.first_byte_timeout.min(limits.header_read_timeout);
            match tokio::time::timeout(first_byte_timeout, io.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return,
                Err(_) => {
                    stats.count(Refusal::FirstByteTimeout);
                    return;
                }
            }
            let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
            if let Err(e) = connection.await {
                if e.is_timeout() {
                    stats.count(Refusal::HeaderTimeout);
                } else if is_write_timeout(&e) {
                    stats.count(Refusal::WriteTimeout);
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    Ok(())
}

fn is_write_timeout(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::TimedOut) {
            return true;
        }
        source = s.source();
    }
    false
}

/// Open connections per peer address.
#[derive(Default)]
struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

/// A connection's place among its peer's; given back when dropped.
struct PeerPlace {
    counts: Arc<PeerCounts>,
    ip: IpAddr,
}

impl PeerCounts {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerPlace> {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerPlace { counts: Arc::clone(self), ip })
    }
}

impl Drop for PeerPlace {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Answer a connection over a limit with `503` and close it.
async fn refuse_busy(mut stream: TcpStream, _slot: OwnedSemaphorePermit, why: Refusal) {
    let detail = match why {
        Refusal::PeerLimit => "this address has too many open connections; reuse or close some, and retry",
        _ => "the server has too many open connections; retry shortly",
    };
    let body = ScimError::service_unavailable(detail).to_json().to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/scim+json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read and drop what the client still sends, so that closing does
        // not reset the connection before it reads the answer.
        let mut scratch = [0u8; 4096];
        while stream.read(&mut scratch).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), answer).await;
}

/// The address a connection came from, for requests served by [`serve`].
pub fn peer(req: &http::request::Parts) -> Option<SocketAddr> {
    req.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| *a)
}
