//! The application state: everything a request needs, built once per
//! process (per Lambda container), and the configuration it is built from.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use lockstep_core::clock::Clock;
use lockstep_core::tokens::TokenStore;
use lockstep_core::{Directory, TenantId};
use scim_protocol::discovery::ServiceProviderOptions;

use crate::auth::TenantCache;
use crate::{admission, extract, logging, server};

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
    pub(crate) fn base_url(&self, req: &Parts, tenant: &TenantId) -> String {
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
