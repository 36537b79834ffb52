//! The SCIM HTTP surface, built once: every Lambda function and the local
//! runner serve this router, so they behave identically.
//!
//! Under `/{tenant}/scim/v2`: `/Users`, `/Groups` (and `/{id}`, `/.search`),
//! `/.search`, `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`;
//! `/Me` and `/Bulk` answer 501. Every response, errors included, is
//! `application/scim+json`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admission;
pub mod auth;
pub mod cache;
pub mod context;
pub mod error;
pub mod extract;
pub mod fairness;
mod handlers;
pub mod logging;
mod render;
pub mod server;
pub mod state;
pub mod urls;

pub use context::RequestCtx;
pub use state::{App, TENANT_CACHE_TTL};
pub use urls::public_origin;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use scim_protocol::ScimError;

use crate::error::ApiError;

/// Which routes a process serves: a Lambda function serves its family (the
/// others answer 404), the local runner serves all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    All,
    Users,
    Groups,
    Discovery,
}

pub fn router(app: Arc<App>, routes: Routes) -> Router {
    use handlers::*;
    let mut scim: Router<Arc<App>> = Router::new();
    if matches!(routes, Routes::All | Routes::Users) {
        scim = scim
            .route("/Users", get(list_users).post(create_user))
            .route("/Users/.search", post(search_users))
            .route("/Users/{id}", get(get_user).put(replace_user).patch(patch_user).delete(delete_user));
    }
    if matches!(routes, Routes::All | Routes::Groups) {
        scim = scim
            .route("/Groups", get(list_groups).post(create_group))
            .route("/Groups/.search", post(search_groups))
            .route("/Groups/{id}", get(get_group).put(replace_group).patch(patch_group).delete(delete_group));
    }
    if matches!(routes, Routes::All | Routes::Discovery) {
        scim = scim
            .route("/ServiceProviderConfig", get(service_provider_config))
            .route("/Schemas", get(schemas))
            .route("/Schemas/{id}", get(schema))
            .route("/ResourceTypes", get(resource_types))
            .route("/ResourceTypes/{id}", get(resource_type))
            .route("/.search", post(search_all))
            .route("/Me", axum::routing::any(not_implemented))
            .route("/Me/{*rest}", axum::routing::any(not_implemented))
            .route("/Bulk", axum::routing::any(not_implemented));
    }
    let scim = scim.method_not_allowed_fallback(method_not_allowed);
    let routed = Router::new()
        .nest("/{tenant}/scim/v2", scim)
        .fallback(no_route)
        .layer(from_fn_with_state(Arc::clone(&app), admission::admit))
        .layer(axum::middleware::map_response(error::scim_errors_only))
        .layer(from_fn_with_state(Arc::clone(&app), logging::log_requests))
        .with_state(app);
    // Paths are put in canonical form before routing, which matches exactly.
    Router::new().fallback_service(tower::ServiceExt::map_request(routed, canonical_path))
}

/// The SCIM endpoints, as routed.
const ENDPOINTS: [&str; 7] = ["Users", "Groups", "ServiceProviderConfig", "Schemas", "ResourceTypes", "Me", "Bulk"];

/// Clients send `/users`, `/Users/` and `/Users/?filter=...`: endpoint
/// names are matched case-insensitively (`.search` too), and one trailing
/// slash is ignored.
fn canonical_path(mut req: Request) -> Request {
    let path = req.uri().path();
    let Some(tenant) = admission::scim_tenant(path) else { return req };
    let base_len = tenant.len() + "//scim/v2".len();
    let rest = path[base_len..].strip_suffix('/').unwrap_or(&path[base_len..]);
    let mut segments: Vec<&str> = rest.split('/').collect();
    if let Some(name) = segments.get_mut(1)
        && let Some(canonical) = ENDPOINTS.iter().find(|e| e.eq_ignore_ascii_case(name))
    {
        *name = canonical;
    }
    for segment in segments.iter_mut().skip(1).filter(|s| s.eq_ignore_ascii_case(".search")) {
        *segment = ".search";
    }
    let canonical = format!("{}{}", &path[..base_len], segments.join("/"));
    if canonical == path {
        return req;
    }
    let with_query = match req.uri().query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical,
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = with_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

async fn no_route() -> ApiError {
    ApiError(ScimError::not_found("no such endpoint; SCIM endpoints are under /{tenant}/scim/v2/"))
}

async fn method_not_allowed() -> ApiError {
    ApiError(ScimError::method_not_allowed("this endpoint does not support that method"))
}

#[cfg(test)]
mod tests;
