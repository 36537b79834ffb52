//! What admission learns about a request and hands on: the context the
//! handlers serve it in, and who it was served to, for the log line.

use lockstep_core::{Tenant, TenantId};

/// What admission hands to handlers.
#[derive(Clone, Debug)]
pub struct RequestCtx {
    pub tenant: Tenant,
    pub base_url: String,
}

/// Who a response was served to, for the request log line.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub tenant: TenantId,
    /// The token's public id (never the token).
    pub token: String,
}

/// An authenticated request: its context for the handlers, who it is for
/// the log line, and the span to serve it in.
pub struct Admitted {
    pub ctx: RequestCtx,
    pub who: Authenticated,
    pub span: tracing::Span,
}
