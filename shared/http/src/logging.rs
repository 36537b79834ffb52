//! Structured JSON logs: one line per request with its id, tenant, route,
//! method, status and latency. Never a token, never a body.

use std::time::Instant;

use std::io::Write;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument;

use crate::App;
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

/// Where the request line's metrics go: CloudWatch's Embedded Metric
/// Format, when running in Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub namespace: String,
    /// The deployment stage (`production`, `sandbox`): a dimension of
    /// every metric, so stacks in one account stay apart.
    pub stage: String,
}

/// What one request did.
pub struct RequestRecord<'a> {
    pub request_id: &'a str,
    pub tenant: Option<&'a str>,
    pub token: Option<&'a str>,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
}

impl RequestRecord<'_> {
    /// The request's one log line. With `metrics`, the line is also an EMF
    /// document: CloudWatch Logs turns it into the `Requests` and `Latency`
    /// metrics by route, method and status class, and by tenant, with no
    /// API call on the request path.
    pub fn to_json(&self, metrics: Option<&Metrics>, now_ms: i64) -> serde_json::Value {
        let status_class = format!("{}xx", self.status / 100);
        let mut line = serde_json::json!({
            "level": if self.status >= 500 { "ERROR" } else { "INFO" },
            "message": "request",
            "request_id": self.request_id,
            "tenant": self.tenant,
            "token": self.token,
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "latency_ms": self.latency_ms,
        });
        if let (Some(m), Some(o)) = (metrics, line.as_object_mut()) {
            let mut dimensions = vec![
                serde_json::json!(["Stage", "Route", "Method", "StatusClass"]),
                serde_json::json!(["Stage", "StatusClass"]),
            ];
            if let Some(t) = self.tenant {
                o.insert("Tenant".into(), t.into());
                dimensions.push(serde_json::json!(["Stage", "Tenant"]));
            }
            o.insert("Stage".into(), m.stage.clone().into());
            o.insert("Route".into(), self.route.into());
            o.insert("Method".into(), self.method.into());
            o.insert("StatusClass".into(), status_class.into());
            o.insert("Requests".into(), 1.into());
            o.insert("Latency".into(), self.latency_ms.into());
            o.insert(
                "_aws".into(),
                serde_json::json!({
                    "Timestamp": now_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": m.namespace,
                        "Dimensions": dimensions,
                        "Metrics": [
                            { "Name": "Requests", "Unit": "Count" },
                            { "Name": "Latency", "Unit": "Milliseconds" }
                        ]
                    }]
                }),
            );
        }
        line
    }
}

/// Log every request: a span (request id; tenant and token once known)
/// around everything logged while serving it, then one line for the
/// request, written whole to stdout.
pub async fn log_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
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
    let who = response.extensions().get::<Authenticated>();
    let record = RequestRecord {
        request_id: &id,
        tenant: who.map(|a| a.tenant.as_str()),
        token: who.map(|a| a.token.as_str()),
        method: &method,
        route: &route,
        status: response.status().as_u16(),
        latency_ms: (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
    };
    let now_ms = i64::try_from(app.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    let mut line = record.to_json(app.metrics.as_ref(), now_ms).to_string();
    line.push('\n');
    // One write of the whole line, so lines from concurrent requests never interleave.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_is_an_emf_document_in_lambda() {
        let record = RequestRecord {
            request_id: "r-1",
            tenant: Some("acme"),
            token: Some("1b20b3b06377"),
            method: "PATCH",
            route: "/Users/{id}",
            status: 503,
            latency_ms: 12.5,
        };
        let metrics = Metrics { namespace: "Lockstep".into(), stage: "production".into() };
        let line = record.to_json(Some(&metrics), 1_795_425_242_000);
        assert_eq!(line["level"], "ERROR");
        assert_eq!((line["StatusClass"].as_str(), line["Requests"].as_i64()), (Some("5xx"), Some(1)));
        let emf = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_795_425_242_000_i64);
        assert_eq!(emf["Namespace"], "Lockstep");
        // Every dimension and metric named in the directive is a member of the line (EMF spec).
        for set in emf["Dimensions"].as_array().into_iter().flatten() {
            for d in set.as_array().into_iter().flatten() {
                assert!(line[d.as_str().unwrap_or_default()].is_string(), "dimension {d} missing");
            }
        }
        for m in emf["Metrics"].as_array().into_iter().flatten() {
            assert!(line[m["Name"].as_str().unwrap_or_default()].is_number());
        }
        assert!(emf["Dimensions"].as_array().is_some_and(|d| d.contains(&serde_json::json!(["Stage", "Tenant"]))));

        let plain = record.to_json(None, 0);
        assert!(plain.get("_aws").is_none() && plain.get("Requests").is_none(), "no metrics outside Lambda");
        assert_eq!(plain["tenant"], "acme");
    }

    #[test]
    fn routes_group_by_endpoint() {
        assert_eq!(route_of("/acme/scim/v2/Users"), "/Users");
        assert_eq!(route_of("/acme/scim/v2/Users/2819c223"), "/Users/{id}");
        assert_eq!(route_of("/acme/scim/v2/Groups/.search"), "/Groups/.search");
        assert_eq!(route_of("/acme/scim/v2/Schemas/urn:x"), "/Schemas/{id}");
        assert_eq!(route_of("/favicon.ico"), "other");
    }
}
