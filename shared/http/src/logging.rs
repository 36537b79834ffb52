//! Structured JSON logs: one line per request with its id, tenant, route,
//! method, status and latency. Never a token, never a body.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument;

use crate::auth::Authenticated;
use crate::extract::request_id;

/// Set up JSON logging once per process; `RUST_LOG` overrides the level.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time()
        .try_init();
}

/// The route template of a path: tenant and ids replaced, so logs and
/// metrics group by endpoint (`/Users/{id}`).
pub fn route_of(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').splitn(4, '/');
    let (_tenant, scim, v2, rest) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or_default());
    if scim != Some("scim") || v2 != Some("v2") {
        return "other".into();
    }
    let mut segments = rest.split('/');
    let resource = segments.next().unwrap_or_default();
    match segments.next() {
        None => format!("/{resource}"),
        Some(".search") => format!("/{resource}/.search"),
        Some(_) => format!("/{resource}/{{id}}"),
    }
}

pub async fn log_requests(req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let (method, route) = (req.method().to_string(), route_of(req.uri().path()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        tenant = tracing::field::Empty,
        token = tracing::field::Empty,
        method = %method,
        route = %route,
    );
    let started = Instant::now();
    let mut response = next.run(req).instrument(span).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // The request line carries every field itself (not nested in a span),
    // so CloudWatch Logs Insights can filter on them directly.
    let who = response.extensions().get::<Authenticated>();
    let tenant = who.map(|a| a.tenant.as_str());
    let token = who.map(|a| a.token.as_str());
    tracing::info!(request_id = %id, tenant, token, method, route, status, latency_ms, "request");
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn routes_group_by_endpoint() {
        assert_eq!(route_of("/acme/scim/v2/Users"), "/Users");
        assert_eq!(route_of("/acme/scim/v2/Users/2819c223"), "/Users/{id}");
        assert_eq!(route_of("/acme/scim/v2/Groups/.search"), "/Groups/.search");
        assert_eq!(route_of("/acme/scim/v2/Schemas/urn:x"), "/Schemas/{id}");
        assert_eq!(route_of("/favicon.ico"), "other");
    }
}
