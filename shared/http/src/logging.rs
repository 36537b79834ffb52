//! Structured JSON logs: one line per request with its id, tenant, route,
//! method, status and latency. Never a token, never a body.

use std::time::Instant;

use std::io::Write;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use serde::Serialize;
use tracing::Instrument;

pub use crate::state::Metrics;

/// The CloudWatch namespace of the service's metrics (every function's and
/// the job's); the template's alarms and dashboard use it.
pub const METRICS_NAMESPACE: &str = "Lockstep";

use crate::context::Authenticated;
use crate::extract::{client_request_id, request_id};
use crate::state::App;

/// Set up JSON logging once per process; `RUST_LOG` overrides the level.
pub fn init() {
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = json_subscriber(std::io::stdout).try_init();
}

/// The process's log format: one JSON object per line, event fields at the
/// top level beside the current span's fields (request id, tenant, token).
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time()
        .with_writer(writer)
        .finish()
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

/// What one request did.
pub struct RequestRecord<'a> {
    pub request_id: &'a str,
    /// The client's own `x-request-id`, if it sent a usable one.
    pub client_request_id: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub token: Option<&'a str>,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
}

/// The request line as serialized: the fields, then (in Lambda) the EMF
/// members and directive.
#[derive(Serialize)]
struct Line<'a> {
    level: &'static str,
    message: &'static str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_request_id: Option<&'a str>,
    tenant: Option<&'a str>,
    token: Option<&'a str>,
    method: &'a str,
    route: &'a str,
    status: u16,
    latency_ms: f64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    emf: Option<Emf<'a>>,
}

/// CloudWatch Embedded Metric Format: dimension and metric values as
/// members of the line, described by the `_aws` directive.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Emf<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    stage: &'a str,
    route: &'a str,
    method: &'a str,
    status_class: &'static str,
    requests: u8,
    latency: f64,
    #[serde(rename = "_aws")]
    directive: Directive<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive<'a> {
    timestamp: i64,
    cloud_watch_metrics: [MetricSet<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricSet<'a> {
    namespace: &'a str,
    dimensions: &'static [&'static [&'static str]],
    metrics: [MetricDef; 2],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDef {
    name: &'static str,
    unit: &'static str,
}

const BY_ROUTE: &[&str] = &["Stage", "Route", "Method", "StatusClass"];
const BY_STATUS_CLASS: &[&str] = &["Stage", "StatusClass"];
const DIMENSIONS: &[&[&str]] = &[BY_ROUTE, BY_STATUS_CLASS];
const DIMENSIONS_WITH_TENANT: &[&[&str]] = &[BY_ROUTE, BY_STATUS_CLASS, &["Stage", "Tenant"]];

impl RequestRecord<'_> {
    /// The request's one log line. With `metrics`, the line is also an EMF
    /// document: CloudWatch Logs turns it into the `Requests` and `Latency`
    /// metrics by route, method and status class, and by tenant, with no
    /// API call on the request path.
    pub fn to_line(&self, metrics: Option<&Metrics>, now_ms: i64) -> String {
        let status_class = match self.status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        let emf = metrics.map(|m| Emf {
            tenant: self.tenant,
            stage: &m.stage,
            route: self.route,
            method: self.method,
            status_class,
            requests: 1,
            latency: self.latency_ms,
            directive: Directive {
                timestamp: now_ms,
                cloud_watch_metrics: [MetricSet {
                    namespace: &m.namespace,
                    dimensions: if self.tenant.is_some() { DIMENSIONS_WITH_TENANT } else { DIMENSIONS },
                    metrics: [
                        MetricDef { name: "Requests", unit: "Count" },
                        MetricDef { name: "Latency", unit: "Milliseconds" },
                    ],
                }],
            },
        });
        let line = Line {
            level: if self.status >= 500 { "ERROR" } else { "INFO" },
            message: "request",
            request_id: self.request_id,
            client_request_id: self.client_request_id,
            tenant: self.tenant,
            token: self.token,
            method: self.method,
            route: self.route,
            status: self.status,
            latency_ms: self.latency_ms,
            emf,
        };
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// A log line of work outside the request path (the scheduled job, a
/// tenant's Graph pull): its counts, and in Lambda also an EMF document of
/// them (unit Count, by stage, or by stage and tenant).
pub struct CountsLine<'a> {
    pub message: &'a str,
    pub tenant: Option<&'a str>,
    pub failed: bool,
    pub counts: &'a [(&'a str, u64)],
    /// More members of the line, for people.
    pub details: serde_json::Value,
}

impl CountsLine<'_> {
    /// The line; without `metrics` (outside Lambda) a plain JSON line with
    /// the same members.
    pub fn to_line(&self, metrics: Option<&Metrics>, now_ms: i64) -> String {
        let (message, tenant, failed, counts) = (self.message, self.tenant, self.failed, self.counts);
        let mut line = serde_json::Map::new();
        line.insert("level".into(), serde_json::json!(if failed { "ERROR" } else { "INFO" }));
        line.insert("message".into(), serde_json::json!(message));
        for (name, value) in counts {
            line.insert((*name).to_string(), serde_json::json!(value));
        }
        if let serde_json::Value::Object(details) = self.details.clone() {
            line.extend(details);
        }
        if let Some(t) = tenant {
            line.insert("tenant".into(), serde_json::json!(t));
        }
        if let Some(m) = metrics {
            line.insert("Stage".into(), serde_json::json!(m.stage));
            let dimensions = match tenant {
                Some(t) => {
                    line.insert("Tenant".into(), serde_json::json!(t));
                    serde_json::json!([["Stage", "Tenant"]])
                }
                None => serde_json::json!([["Stage"]]),
            };
            let defs: Vec<serde_json::Value> =
                counts.iter().map(|(name, _)| serde_json::json!({ "Name": name, "Unit": "Count" })).collect();
            line.insert(
                "_aws".into(),
                serde_json::json!({ "Timestamp": now_ms, "CloudWatchMetrics": [{
                "Namespace": m.namespace, "Dimensions": dimensions, "Metrics": defs }] }),
            );
        }
        serde_json::Value::Object(line).to_string()
    }
}

/// The log lines of a scheduled job run: the run's counts as metrics (EMF
/// in Lambda) with what a person needs to read it, then one line per
/// tenant step (the Graph pull) with that tenant's metrics.
pub fn job_lines(
    run: &lockstep_core::Result<lockstep_core::job::JobReport>,
    metrics: Option<&Metrics>,
    now_ms: i64,
) -> Vec<String> {
    use lockstep_core::job::JobReport;
    match run {
        Ok(r) => {
            let counts = r.counts();
            let run = CountsLine {
                message: "job run",
                tenant: None,
                failed: !r.failures.is_empty(),
                counts: &counts,
                details: serde_json::json!({ "tenants": r.tenants, "complete": r.complete, "failures": r.failures }),
            };
            let mut lines = vec![run.to_line(metrics, now_ms)];
            for s in &r.steps {
                let step = CountsLine {
                    message: s.step,
                    tenant: Some(s.tenant.as_str()),
                    failed: s.report.failure.is_some(),
                    counts: &s.report.metrics,
                    details: serde_json::json!({ "complete": s.report.complete, "failure": s.report.failure }),
                };
                lines.push(step.to_line(metrics, now_ms));
            }
            lines
        }
        Err(e) => {
            let counts = JobReport::failed_counts();
            let run = CountsLine {
                message: "job run",
                tenant: None,
                failed: true,
                counts: &counts,
                details: serde_json::json!({ "error": e.to_string() }),
            };
            vec![run.to_line(metrics, now_ms)]
        }
    }
}

/// Write one whole line to stdout (where Lambda's log agent reads).
pub fn write_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
}

/// Log every request: a span (request id, method, route) around
/// everything logged while serving it, then one line for the request,
/// written whole to stdout. Once a request is authenticated,
/// [`crate::admission::admit`] serves the rest inside [`authenticated_span`].
pub async fn log_requests(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let client_request_id = client_request_id(&req).map(str::to_string);
    req.extensions_mut().insert(RequestId(id.clone()));
    let (method, route) = (req.method().to_string(), route_of(req.uri().path()));
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(req).instrument(span).await;
    let who = response.extensions().get::<Authenticated>();
    let record = RequestRecord {
        request_id: &id,
        client_request_id: client_request_id.as_deref(),
        tenant: who.map(|a| a.tenant.as_str()),
        token: who.map(|a| a.token.as_str()),
        method: &method,
        route: &route,
        status: response.status().as_u16(),
        latency_ms: (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
    };
    let now_ms = i64::try_from(app.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    let mut line = record.to_line(app.metrics.as_ref(), now_ms);
    line.push('\n');
    // One write of the whole line, so lines from concurrent requests never interleave.
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The request's id, as [`log_requests`] chose it (a generated one differs
/// on every call of [`request_id`]).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The span of an authenticated request: the request's own fields plus
/// tenant and token id. A new span rather than fields recorded into the
/// request span later, because the JSON formatter re-parses a span's fields
/// on every record, and the current span is the one printed with events.
pub fn authenticated_span(req: &http::request::Parts, tenant: &str, token_id: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %req.extensions.get::<RequestId>().map_or_else(String::new, |id| id.0.clone()),
        tenant = %tenant,
        token = %token_id,
        method = %req.method,
        route = %route_of(req.uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_job<'a>(counts: &'a [(&'a str, u64)]) -> CountsLine<'a> {
        CountsLine { message: "graph pull", tenant: None, failed: false, counts, details: serde_json::json!({}) }
    }

    #[test]
    fn counts_lines_are_emf_documents_in_lambda() {
        let metrics = Metrics { namespace: "Lockstep".into(), stage: "sandbox".into() };
        let counts = [("JobFailures", 1), ("PurgedUsers", 12)];
        let job = CountsLine {
            message: "job run",
            tenant: None,
            failed: true,
            counts: &counts,
            details: serde_json::json!({ "failures": ["acme: storage"] }),
        };
        let line: serde_json::Value =
            serde_json::from_str(&job.to_line(Some(&metrics), 1_795_425_242_000)).unwrap_or_default();
        assert_eq!((line["level"].clone(), line["JobFailures"].clone()), ("ERROR".into(), 1.into()));
        let emf = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(emf["Dimensions"], serde_json::json!([["Stage"]]));
        assert_eq!(line["Stage"], "sandbox");
        for m in emf["Metrics"].as_array().into_iter().flatten() {
            assert!(line[m["Name"].as_str().unwrap_or_default()].is_number());
        }
        let plain = CountsLine { failed: false, details: serde_json::json!({}), ..job };
        let plain: serde_json::Value = serde_json::from_str(&plain.to_line(None, 0)).unwrap_or_default();
        assert!(plain.get("_aws").is_none() && plain["PurgedUsers"] == 12);
        let tenant = CountsLine { tenant: Some("acme"), ..plain_job(&counts) };
        let by_tenant: serde_json::Value = serde_json::from_str(&tenant.to_line(Some(&metrics), 0)).unwrap_or_default();
        assert_eq!(by_tenant["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Stage", "Tenant"]]));
        assert_eq!((by_tenant["Tenant"].as_str(), by_tenant["tenant"].as_str()), (Some("acme"), Some("acme")));
    }

    #[test]
    fn the_request_line_is_an_emf_document_in_lambda() {
        let record = RequestRecord {
            request_id: "r-1",
            client_request_id: None,
            tenant: Some("acme"),
            token: Some("1b20b3b06377"),
            method: "PATCH",
            route: "/Users/{id}",
            status: 503,
            latency_ms: 12.5,
        };
        let metrics = Metrics { namespace: "Lockstep".into(), stage: "production".into() };
        let line: serde_json::Value =
            serde_json::from_str(&record.to_line(Some(&metrics), 1_795_425_242_000)).unwrap_or_default();
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

        assert!(line.get("client_request_id").is_none(), "absent when the client sent none");
        let theirs = RequestRecord { client_request_id: Some("req-7f3a"), ..record };
        let line: serde_json::Value = serde_json::from_str(&theirs.to_line(None, 0)).unwrap_or_default();
        assert_eq!((line["request_id"].as_str(), line["client_request_id"].as_str()), (Some("r-1"), Some("req-7f3a")));
        let plain: serde_json::Value = serde_json::from_str(&record.to_line(None, 0)).unwrap_or_default();
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
