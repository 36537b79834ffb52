//! The SCIM HTTP surface, built once: every Lambda function and the local
//! runner serve this router, so they behave identically.
//!
//! Under `/{tenant}/scim/v2`: `/Users`, `/Groups` (and `/{id}`, `/.search`),
//! `/.search`, `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`;
//! `/Me` and `/Bulk` answer 501. Every response, errors included, is
//! `application/scim+json`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
pub mod error;
pub mod extract;
mod handlers;
pub mod logging;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use lockstep_core::clock::Clock;
use lockstep_core::tokens::TokenStore;
use lockstep_core::{Directory, Tenant, TenantId};
use scim_protocol::ScimError;
use scim_protocol::discovery::ServiceProviderOptions;

use crate::auth::TenantCache;
use crate::error::ApiError;

/// Everything a request needs, built once per process (per Lambda container).
pub struct App {
    pub directory: Directory,
    pub tenants: TenantCache,
    pub clock: Arc<dyn Clock>,
    pub options: ServiceProviderOptions,
    /// The public URL in front of the service (`https://scim.example.com`),
    /// when it cannot be told from the request's Host header.
    pub public_url: Option<String>,
    pub body_limit: usize,
    /// CloudWatch metrics in the request log lines (Lambda only).
    pub metrics: Option<logging::Metrics>,
}

/// How long tenants and their token sets are cached.
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(60);

impl App {
    pub fn new(
        directory: Directory,
        tokens: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        public_url: Option<String>,
    ) -> Self {
        let limits = directory.limits().clone();
        let options = ServiceProviderOptions {
            max_results: limits.max_page_size,
            default_page_size: limits.default_page_size,
            cursor_timeout_secs: u64::try_from(limits.cursor_ttl_secs).unwrap_or(3600),
            ..ServiceProviderOptions::default()
        };
        let body_limit = usize::try_from(options.max_payload_bytes).unwrap_or(1 << 20);
        Self {
            directory,
            tenants: TenantCache::new(tokens, TENANT_CACHE_TTL),
            clock,
            options,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            body_limit,
            metrics: None,
        }
    }

    fn directory_clock_now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// The tenant's SCIM base URL as the client reached it.
    fn base_url(&self, req: &Request, tenant: &TenantId) -> String {
        let origin = match &self.public_url {
            Some(url) => url.clone(),
            None => {
                let headers = req.headers();
                let host = headers
                    .get("x-forwarded-host")
                    .or_else(|| headers.get(http::header::HOST))
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or(
                    if lambda_http::RequestExt::request_context_ref(req).is_some() { "https" } else { "http" },
                );
                format!("{scheme}://{host}")
            }
        };
        format!("{origin}/{tenant}/scim/v2")
    }
}

/// What the auth middleware hands to handlers.
#[derive(Clone, Debug)]
pub struct RequestCtx {
    pub tenant: Tenant,
    pub base_url: String,
}

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
    let scim = scim
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(from_fn_with_state(Arc::clone(&app), auth::authenticate));
    Router::new()
        .nest("/{tenant}/scim/v2", scim)
        .fallback(no_route)
        .layer(from_fn_with_state(Arc::clone(&app), extract::read_whole_body))
        .layer(from_fn_with_state(Arc::clone(&app), logging::log_requests))
        .with_state(app)
}

async fn no_route() -> ApiError {
    ApiError(ScimError::not_found("no such endpoint; SCIM endpoints are under /{tenant}/scim/v2/"))
}

async fn method_not_allowed() -> ApiError {
    ApiError(ScimError::method_not_allowed("this endpoint does not support that method"))
}

#[cfg(test)]
mod tests;
