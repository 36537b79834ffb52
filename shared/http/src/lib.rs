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
pub mod error;
pub mod extract;
mod handlers;
pub mod logging;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use http::request::Parts;
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
    /// The public URL in front of the service (`https://scim.example.com`):
    /// when set, every `Location` and `meta.location` is built on it.
    pub public_url: Option<String>,
    /// Proxies whose `X-Forwarded-Host`, `X-Forwarded-Proto` and
    /// `X-Forwarded-For` headers are believed (the local runner behind a
    /// tunnel). From anyone else these headers are ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
            trusted_proxies: Vec::new(),
            body_limit,
            metrics: None,
        }
    }

    /// Whether the connection itself comes from a trusted proxy.
    pub(crate) fn is_trusted_proxy(&self, req: &Parts) -> bool {
        !self.trusted_proxies.is_empty()
            && server::peer(req).is_some_and(|peer| self.trusted_proxies.iter().any(|net| net.contains(&peer.ip())))
    }

    /// The tenant's SCIM base URL as the client reached it: the configured
    /// public URL; in Lambda, API Gateway's domain over https; behind a
    /// trusted proxy, the host and scheme it forwards; otherwise the Host
    /// header over http. Only http and https, and only host names, are
    /// ever written into a URL.
    fn base_url(&self, req: &Parts, tenant: &TenantId) -> String {
        if let Some(url) = &self.public_url {
            return format!("{url}/{tenant}/scim/v2");
        }
        let headers = &req.headers;
        let text = |name: &str| headers.get(name).and_then(|h| h.to_str().ok()).map(str::trim);
        let (mut scheme, mut host) = ("http", text(http::header::HOST.as_str()));
        if let Some(domain) = extract::api_gateway_domain(req) {
            (scheme, host) = ("https", Some(domain));
        } else if self.is_trusted_proxy(req) {
            if let Some(forwarded) = text("x-forwarded-host").and_then(|h| h.split(',').next()).map(str::trim) {
                host = Some(forwarded);
            }
            // Any other forwarded scheme than https leaves http.
            if text("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")) {
                scheme = "https";
            }
        }
        let host = host.filter(|h| admission::is_host(h)).unwrap_or("localhost");
        format!("{scheme}://{host}/{tenant}/scim/v2")
    }
}

/// Check a configured public URL (`https://scim.example.com`, optionally
/// with a path prefix): only http and https, a host name, and a plain path,
/// since it is written into every `Location` header. Returns it without a
/// trailing slash.
pub fn public_origin(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let bad =
        || format!("the public URL '{url}' must be http:// or https:// followed by a host name and an optional path");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad());
    }
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let path_ok = path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    if admission::is_host(host) && path_ok { Ok(url.to_string()) } else { Err(bad()) }
}

/// What admission hands to handlers.
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
