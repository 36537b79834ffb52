//! The one mapping from errors to HTTP responses: every failure becomes a
//! SCIM error body (RFC 7644 §3.12) with `application/scim+json`. Server
//! failures are logged here with their cause; the client sees a generic
//! detail and the request id.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use scim_protocol::ScimError;

pub const SCIM_JSON: &str = "application/scim+json";

#[derive(Debug)]
pub struct ApiError(pub ScimError);

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> Self {
        ApiError(e)
    }
}

impl From<lockstep_core::Error> for ApiError {
    fn from(e: lockstep_core::Error) -> Self {
        if e.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        ApiError(ScimError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.0.to_json().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The last word on every response: an error that is not yet a SCIM error
/// (a rejection written by the HTTP framework, such as a path that is not
/// valid percent-encoded UTF-8) becomes one, with its status kept and its
/// text, shortened, as the detail.
pub async fn scim_errors_only(response: Response) -> Response {
    let is_scim = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == SCIM_JSON.as_bytes());
    if response.status().as_u16() < 400 || is_scim {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match http_body_util::Limited::new(body, 4096).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    let reason = parts.status.canonical_reason().unwrap_or("error");
    let detail = if text.trim().is_empty() { reason.to_string() } else { format!("{reason}: {text}") };
    let mut scim = ApiError(ScimError::new(parts.status.as_u16(), None, detail)).into_response();
    *scim.extensions_mut() = parts.extensions;
    for name in [header::CONNECTION, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            scim.headers_mut().insert(name, v.clone());
        }
    }
    scim
}
