//! The one mapping from errors to HTTP responses: every failure becomes a
//! SCIM error body (RFC 7644 §3.12) with `application/scim+json`. Server
//! failures are logged here with their cause; the client sees a generic
//! detail and the request id.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
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
