//! Request extraction with SCIM errors for every rejection: the body as
//! JSON (415 for other media types, 413 over the limit, 400 invalidSyntax
//! for bad JSON), the query string, and the client's address.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use http::header;
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use lockstep_core::TenantId;
use scim_protocol::ScimError;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::App;
use crate::urls::is_host;

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
        let bytes_len = bytes.len();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax("the request body is empty; a JSON object is expected").into());
        }
        let parse = move || {
            scim_protocol::json::from_slice_strict(&bytes)
                .map(ScimJson)
                .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")).into())
        };
        if bytes_len <= PARSE_ON_WORKER_BYTES {
            return parse();
        }
        // A large body takes milliseconds to parse: off the async workers,
        // which other tenants' requests are waiting for.
        tokio::task::spawn_blocking(parse).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "parsing a body failed");
            Err(ScimError::internal().into())
        })
    }
}

/// Bodies up to this size are parsed where the request runs; larger ones
/// on the blocking pool.
const PARSE_ON_WORKER_BYTES: usize = 64 * 1024;

pub(crate) fn body_too_large(limit: usize) -> ScimError {
    ScimError::payload_too_large(format!("the body is larger than {limit} bytes"))
}

/// The decoded query parameters, in order.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    match query {
        None | Some("") => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| ScimError::invalid_value("the query string is not valid URL encoding").into()),
    }
}

/// The client's address: from API Gateway's request context in Lambda;
/// when served directly, the connection's peer, or behind a trusted proxy
/// the nearest address in `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(app: &App, req: &Parts) -> Option<IpAddr> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() {
        return ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok());
    }
    let peer = crate::server::peer(req)?.ip();
    if !is_trusted_proxy(app, req) {
        return Some(peer);
    }
    let forwarded = req.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let hops: Vec<IpAddr> = forwarded.flat_map(|v| v.split(',')).filter_map(|a| a.trim().parse().ok()).collect();
    hops.into_iter().rev().find(|ip| !app.trusted_proxies.iter().any(|net| net.contains(ip))).or(Some(peer))
}

/// Whether the connection itself comes from a trusted proxy.
pub(crate) fn is_trusted_proxy(app: &App, req: &Parts) -> bool {
    !app.trusted_proxies.is_empty()
        && crate::server::peer(req).is_some_and(|peer| app.trusted_proxies.iter().any(|net| net.contains(&peer.ip())))
}

/// The tenant's SCIM base URL as the client reached it: the configured
/// public URL; in Lambda, API Gateway's domain over https; behind a
/// trusted proxy, the host and scheme it forwards; otherwise the Host
/// header over http. Only http and https, and only host names, are
/// ever written into a URL.
pub(crate) fn base_url(app: &App, req: &Parts, tenant: &TenantId) -> String {
    if let Some(url) = &app.public_url {
        return format!("{url}/{tenant}/scim/v2");
    }
    let headers = &req.headers;
    let text = |name: &str| headers.get(name).and_then(|h| h.to_str().ok()).map(str::trim);
    let (mut scheme, mut host) = ("http", text(http::header::HOST.as_str()));
    if let Some(domain) = api_gateway_domain(req) {
        (scheme, host) = ("https", Some(domain));
    } else if is_trusted_proxy(app, req) {
        if let Some(forwarded) = text("x-forwarded-host").and_then(|h| h.split(',').next()).map(str::trim) {
            host = Some(forwarded);
        }
        // Any other forwarded scheme than https leaves http.
        if text("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")) {
            scheme = "https";
        }
    }
    let host = host.filter(|h| is_host(h)).unwrap_or("localhost");
    format!("{scheme}://{host}/{tenant}/scim/v2")
}

/// The domain API Gateway served the request on, in Lambda.
pub fn api_gateway_domain(req: &Parts) -> Option<&str> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.domain_name.as_deref().filter(|d| !d.is_empty()),
        _ => None,
    }
}

/// The request id this service logs and answers in `x-request-id`: Lambda's
/// (API Gateway's), or a new one. Never the client's: a client could
/// otherwise make its requests look like another's in the logs.
pub fn request_id(req: &Request) -> String {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(id) = ctx.request_id.as_deref()
    {
        return id.to_string();
    }
    if let Some(id) = req.lambda_context_ref().map(|c| c.request_id.clone()).filter(|id| !id.is_empty()) {
        return id;
    }
    uuid::Uuid::new_v4().to_string()
}

/// The client's own `x-request-id`, logged beside ours when it is short
/// printable text.
pub fn client_request_id(req: &Request) -> Option<&str> {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
}
