//! What a request must be before the router reads its body or routes it.
//!
//! In order:
//! 1. Rules on the headers that every deployment applies: one
//!    `Authorization` header at most, no `Content-Encoding` (415), and a
//!    `Host` that is a host name.
//! 2. Authentication, on the headers alone: the tenant comes from the
//!    path, the bearer token must be one of its tokens ([`crate::auth`]).
//! 3. The body, only now: an authenticated request's body is read whole,
//!    up to the body limit and within the body timeout. A refused
//!    request's body is read only while it is small (up to
//!    [`UNAUTHENTICATED_DRAIN`]), so the connection stays usable; a larger
//!    one is not read at all, and the connection is closed with the answer.
//!    No one without a token can make the server hold a large body.
//! 4. A place among the tenant's requests in progress ([`crate::fairness`]).
//!
//! A response sent before its request's body was read makes the server
//! close the connection, which a client may already be reusing for its
//! next request; reading small bodies first keeps every ordinary refusal
//! (401, 404, 413) on a connection that stays usable.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::BodyExt;
use scim_protocol::ScimError;
use tracing::Instrument;

use crate::context::Admitted;
use crate::error::ApiError;
use crate::state::App;
use crate::urls::is_host;

/// How much of a refused request's body is read (and dropped) so that the
/// connection stays usable; a larger body closes the connection instead.
pub const UNAUTHENTICATED_DRAIN: usize = 64 * 1024;

/// How much of an authenticated body over the limit is read and thrown
/// away before the 413, so that a client still sending it gets to read the
/// answer (and keep its connection) instead of having it reset under it.
pub const DRAIN_LIMIT: usize = 16 << 20;

/// The time a client has to send a whole request body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The tenant of a SCIM path: `/{tenant}/scim/v2` or below it.
pub fn scim_tenant(path: &str) -> Option<&str> {
    let (tenant, rest) = path.strip_prefix('/')?.split_once('/')?;
    (rest == "scim/v2" || rest.starts_with("scim/v2/")).then_some(tenant)
}

/// The header rules every request meets, wherever it is served.
fn check_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
        return Err(ScimError::new(400, None, "the request has more than one Authorization header; send one").into());
    }
    // No content coding is decoded here: a coded body would be read as
    // JSON as it is, so it is refused before anything reads it.
    if let Some(coding) = headers.get_all(header::CONTENT_ENCODING).iter().find(|v| {
        !v.to_str()
            .is_ok_and(|c| c.split(',').all(|c| c.trim().is_empty() || c.trim().eq_ignore_ascii_case("identity")))
    }) {
        let coding: String =
            String::from_utf8_lossy(coding.as_bytes()).chars().filter(|c| !c.is_control()).take(40).collect();
        return Err(ScimError::unsupported_media_type(format!(
            "Content-Encoding '{coding}' is not accepted; send the body uncompressed"
        ))
        .into());
    }
    if let Some(host) = headers.get(header::HOST)
        && !host.to_str().is_ok_and(is_host)
    {
        return Err(ScimError::new(400, None, "the Host header is not a host name with an optional port").into());
    }
    Ok(())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

fn awaits_continue(headers: &HeaderMap) -> bool {
    headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// How a body read ended.
enum Read {
    /// Whole, at most `keep` bytes: here it is.
    Whole(bytes::Bytes),
    /// Whole, but over `keep` bytes (read to its end and dropped).
    Over,
    /// Not read to its end: too large to drain, too slow, or broken.
    Abandoned(Abandoned),
}

enum Abandoned {
    TooLarge,
    TimedOut,
    Broken,
}

/// Read a body, keeping up to `keep` bytes and reading on (dropping) up to
/// `drain` bytes, within `timeout`.
async fn read_body(body: Body, keep: usize, drain: usize, timeout: Duration) -> Read {
    let read = async {
        let mut body = body;
        let mut kept = BytesMut::new();
        let mut received = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return Read::Abandoned(Abandoned::Broken) };
            if let Ok(data) = frame.into_data() {
                received = received.saturating_add(data.len());
                if received > drain {
                    return Read::Abandoned(Abandoned::TooLarge);
                }
                if received <= keep {
                    kept.extend_from_slice(&data);
                }
            }
        }
        if received > keep { Read::Over } else { Read::Whole(kept.freeze()) }
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Read::Abandoned(Abandoned::TimedOut))
}

/// Read and drop the body of a request that will not be served, if it is
/// small; whether the connection stays usable (otherwise it is closed
/// with the answer, and the body never read).
async fn drain_small(headers: &HeaderMap, body: Body) -> bool {
    let small = declared_length(headers).is_none_or(|n| n <= UNAUTHENTICATED_DRAIN as u64);
    small
        && !awaits_continue(headers)
        && matches!(read_body(body, 0, UNAUTHENTICATED_DRAIN, BODY_READ_TIMEOUT).await, Read::Whole(_) | Read::Over)
}

/// Answer `refusal` for a request that will not be served.
async fn refuse(refusal: ApiError, headers: &HeaderMap, body: Body) -> Response {
    let response = refusal.into_response();
    if drain_small(headers, body).await { response } else { closing(response) }
}

/// The middleware in front of every route; see the module docs.
pub async fn admit(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Err(e) = check_headers(&parts.headers) {
        return refuse(e, &parts.headers, body).await;
    }
    let Some(tenant) = scim_tenant(parts.uri.path()).map(str::to_string) else {
        // Not a SCIM path: answered 404 by the router, after a small body.
        let drained = drain_small(&parts.headers, body).await;
        let response = next.run(Request::from_parts(parts, Body::empty())).await;
        return if drained { response } else { closing(response) };
    };
    let admitted = match crate::auth::authenticate(&app, &parts, &tenant).await {
        Ok(admitted) => admitted,
        Err(e) => return refuse(e, &parts.headers, body).await,
    };
    let Admitted { ctx, who, span } = admitted;
    let mut response = match read_authenticated_body(&app, &parts.headers, body).await {
        Ok(body) => match app.tenant_gates.enter(&ctx.tenant.id).await {
            Ok(_place) => {
                parts.extensions.insert(ctx);
                next.run(Request::from_parts(parts, Body::from(body))).instrument(span).await
            }
            Err(busy) => ApiError(busy).into_response(),
        },
        Err(refusal) => refusal,
    };
    response.extensions_mut().insert(who);
    response
}

/// An authenticated request's body, whole, or the answer that refuses it.
async fn read_authenticated_body(app: &App, headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, Response> {
    let limit = app.body_limit;
    let too_large = || ApiError(crate::extract::body_too_large(limit)).into_response();
    if declared_length(headers)
        .is_some_and(|n| n > limit as u64 && (awaits_continue(headers) || n > DRAIN_LIMIT as u64))
    {
        return Err(closing(too_large()));
    }
    match read_body(body, limit, DRAIN_LIMIT, BODY_READ_TIMEOUT).await {
        Read::Whole(bytes) => Ok(bytes),
        Read::Over => Err(too_large()),
        Read::Abandoned(Abandoned::TooLarge) => Err(closing(too_large())),
        Read::Abandoned(Abandoned::TimedOut) => {
            let secs = BODY_READ_TIMEOUT.as_secs();
            let e = ScimError::new(408, None, format!("the request body did not arrive within {secs} seconds"));
            Err(closing(ApiError(e).into_response()))
        }
        Read::Abandoned(Abandoned::Broken) => {
            Err(closing(ApiError(ScimError::invalid_syntax("the request body could not be read")).into_response()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_paths_name_their_tenant() {
        assert_eq!(scim_tenant("/acme/scim/v2/Users"), Some("acme"));
        assert_eq!(scim_tenant("/acme/scim/v2"), Some("acme"));
        assert_eq!(scim_tenant("/acme/scim/v2x"), None);
        assert_eq!(scim_tenant("/acme/other"), None);
        assert_eq!(scim_tenant("/favicon.ico"), None);
    }
}
