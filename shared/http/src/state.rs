//! The application state: everything a request needs, built once per
//! process (per Lambda container), and the configuration it is built from.

use std::sync::Arc;
use std::time::Duration;

use lockstep_core::Roster;
use lockstep_core::clock::Clock;
use lockstep_core::tokens::TokenStore;
use scim_protocol::discovery::ServiceProviderOptions;

use crate::cache::TenantCache;
use crate::fairness::TenantGates;

/// Everything a request needs, built once per process (per Lambda container).
pub struct App {
    pub roster: Roster,
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
    pub metrics: Option<Metrics>,
    /// Requests in progress per tenant.
    pub tenant_gates: TenantGates,
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

/// How long tenants and their token sets are cached.
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(60);

impl App {
    pub fn new(roster: Roster, tokens: Arc<dyn TokenStore>, clock: Arc<dyn Clock>, public_url: Option<String>) -> Self {
        let limits = roster.limits().clone();
        let options = ServiceProviderOptions {
            max_results: limits.max_page_size,
            default_page_size: limits.default_page_size,
            cursor_timeout_secs: u64::try_from(limits.cursor_ttl_secs).unwrap_or(3600),
            max_members_per_response: limits.max_inline_members as u64,
            ..ServiceProviderOptions::default()
        };
        let body_limit = usize::try_from(options.max_payload_bytes).unwrap_or(1 << 20);
        Self {
            roster,
            tenants: TenantCache::new(tokens, TENANT_CACHE_TTL),
            clock,
            options,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            trusted_proxies: Vec::new(),
            body_limit,
            metrics: None,
            tenant_gates: TenantGates::default(),
        }
    }
}
