//! The HTTP server of the local runner: the shared router on a TCP
//! listener, with the limits that API Gateway applies in front of the
//! Lambda functions.
//!
//! - At most [`ServerLimits::max_connections`] connections at once; one
//!   more is answered `503` with `Retry-After` and closed, never left
//!   hanging. Refusals are bounded too: past that, connections are closed.
//! - A connection has [`ServerLimits::header_read_timeout`] to send each
//!   request head, counted from the end of the previous response, so the
//!   same timeout closes idle kept-alive connections and slow heads.
//! - Request heads are checked before they are parsed ([`inspect`]);
//!   bodies are read only once the request is authenticated, within the
//!   router's body timeout ([`crate::admission`]).
//! - A response the client does not read within
//!   [`ServerLimits::write_timeout`] closes the connection.

pub mod inspect;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
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

/// Connection-level limits of the local runner.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    /// Time to send a request head, from the connection's start or the end
    /// of the previous response (the idle keep-alive timeout too).
    pub header_read_timeout: Duration,
    /// Time the client has to take each part of a response.
    pub write_timeout: Duration,
    pub head: HeadLimits,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            head: HeadLimits::default(),
        }
    }
}

/// Connections refused at once at most; past it, excess connections are
/// closed without an answer (each refusal holds a task for a moment).
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// How long in-flight requests may finish after shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serve `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
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
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            if let Ok(slot) = Arc::clone(&refusals).try_acquire_owned() {
                tokio::spawn(refuse_busy(stream, slot));
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(Body::new))
        });
        let io = TokioIo::new(inspect::Inspected::new(stream, limits.head, limits.write_timeout));
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop::<OwnedSemaphorePermit>(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    Ok(())
}

/// Answer a connection over the limit with `503` and close it.
async fn refuse_busy(mut stream: TcpStream, _slot: OwnedSemaphorePermit) {
    let body =
        ScimError::service_unavailable("the server has too many open connections; retry shortly").to_json().to_string();
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
