//! Request extraction with SCIM errors for every rejection: the body as
//! JSON (415 for other media types, 413 over the limit, 400 invalidSyntax
//! for bad JSON), the query string, and the client's address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http::{HeaderValue, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use scim_protocol::ScimError;
use serde_json::Value;

use crate::App;
use crate::error::ApiError;

/// A JSON request body, `application/scim+json` or `application/json`.
pub struct ScimJson(pub Value);

fn acceptable_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/scim+json") || essence.eq_ignore_ascii_case("application/json")
}

impl FromRequest<Arc<App>> for ScimJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default();
            if !acceptable_media_type(ct) {
                return Err(ScimError::unsupported_media_type(format!(
                    "the body must be application/scim+json or application/json, not '{ct}'"
                ))
                .into());
            }
        }
        let limit = app.body_limit;
        let bytes = match Limited::new(req.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(body_too_large(limit).into());
            }
            Err(_) => return Err(ScimError::invalid_syntax("the request body could not be read").into()),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax("the request body is empty; a JSON object is expected").into());
        }
        serde_json::from_slice(&bytes)
            .map(ScimJson)
            .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")).into())
    }
}

fn body_too_large(limit: usize) -> ScimError {
    ScimError::payload_too_large(format!("the body is larger than {limit} bytes"))
}

/// How much of a body over the limit is read and thrown away before the
/// 413, so that a client still sending it gets to read the answer (and keep
/// its connection) instead of having the connection reset under it.
pub const DRAIN_LIMIT: usize = 16 << 20;

/// Reads the request body whole, up to the body limit, before routing. A
/// response sent before its request's body was read makes the server close
/// the connection, which a client may already be reusing for its next
/// request; with the body read first, every response (401s, 404s and 501s
/// included) leaves the connection reusable.
///
/// A body over the limit is read to its end and dropped, then refused with
/// 413 on a connection that stays usable. Only when reading it would be
/// unreasonable (declared or found larger than [`DRAIN_LIMIT`], or the
/// client waits for `100 Continue` before sending it) does the 413 come at
/// once, with `Connection: close`.
pub async fn read_whole_body(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let limit = app.body_limit;
    let too_large = |close: bool| {
        let mut response = ApiError(body_too_large(limit)).into_response();
        if close {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    };
    let headers = req.headers();
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let awaits_continue =
        headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared.is_some_and(|n| n > limit as u64 && (awaits_continue || n > DRAIN_LIMIT as u64)) {
        return too_large(true);
    }
    let (parts, mut body) = req.into_parts();
    let mut kept = BytesMut::new();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return ApiError(ScimError::invalid_syntax("the request body could not be read")).into_response();
        };
        if let Ok(data) = frame.into_data() {
            received = received.saturating_add(data.len());
            if received > DRAIN_LIMIT {
                return too_large(true);
            }
            if received <= limit {
                kept.extend_from_slice(&data);
            }
        }
    }
    if received > limit {
        return too_large(false);
    }
    next.run(Request::from_parts(parts, Body::from(kept.freeze()))).await
}

/// The decoded query parameters, in order.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    match query {
        None | Some("") => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| ScimError::invalid_value("the query string is not valid URL encoding").into()),
    }
}

/// The client's address: from API Gateway's request context in Lambda, from
/// the socket when served directly.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        return ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok());
    }
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

/// The request id: Lambda's, a caller's `x-request-id`, or a new one.
pub fn request_id(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(id) = ctx.request_id.as_deref()
    {
        return id.to_string();
    }
    if let Some(id) = req.lambda_context_ref().map(|c| c.request_id.clone()).filter(|id| !id.is_empty()) {
        return id;
    }
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}
