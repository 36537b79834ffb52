//! Request extraction with SCIM errors for every rejection: the body as
//! JSON (415 for other media types, 413 over the limit, 400 invalidSyntax
//! for bad JSON), the query string, and the client's address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
                return Err(ScimError::payload_too_large(format!("the body is larger than {limit} bytes")).into());
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

/// Reads the request body whole, up to the body limit, before routing. A
/// response sent before its request's body was read makes the server close
/// the connection, which a client may already be reusing for its next
/// request; with the body read first, every response (401s, 404s and 501s
/// included) leaves the connection reusable. A body over the limit is
/// refused with 413 and `Connection: close`, because the rest of it is
/// left unread.
pub async fn read_whole_body(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let limit = app.body_limit;
    let too_large = || {
        let mut response =
            ApiError(ScimError::payload_too_large(format!("the body is larger than {limit} bytes"))).into_response();
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => next.run(Request::from_parts(parts, Body::from(collected.to_bytes()))).await,
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => too_large(),
        Err(_) => ApiError(ScimError::invalid_syntax("the request body could not be read")).into_response(),
    }
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
