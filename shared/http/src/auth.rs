//! Tenant authentication: the tenant comes from the URL, the bearer token
//! must be one of that tenant's (a valid token of another tenant is 401),
//! and a token with an allow-list works only from those addresses (403).
//! Tenants and their token sets are cached for a bounded time, so a revoked
//! token stops working within that time and most requests read nothing.

use http::header;
use http::request::Parts;
use lockstep_core::TenantId;
use lockstep_core::tokens::{Refusal, Unauthorized};
use scim_protocol::ScimError;

use crate::context::{Admitted, Authenticated, RequestCtx};
use crate::error::ApiError;
use crate::extract::client_ip;
use crate::state::App;

/// The one answer for a wrong tenant and for a wrong token, so that a
/// caller cannot tell which tenants exist.
const UNKNOWN_TENANT_OR_TOKEN: &str = "unknown tenant or invalid bearer token";

fn bearer(req: &Parts) -> Option<&str> {
    let value = req.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Authenticate a request on its headers: `tenant` is the tenant segment
/// of its path.
pub async fn authenticate(app: &App, req: &Parts, tenant: &str) -> Result<Admitted, ApiError> {
    let unauthorized = |why: &str| ApiError(ScimError::unauthorized(why));
    let token = bearer(req).ok_or_else(|| unauthorized("an Authorization: Bearer token is required"))?;
    let id = TenantId::parse(tenant).map_err(|_| unauthorized(UNKNOWN_TENANT_OR_TOKEN))?;
    let entry = app.tenants.get(&app.roster, &id).await?;
    let Some(tenant) = entry.tenant.clone() else {
        return Err(unauthorized(UNKNOWN_TENANT_OR_TOKEN));
    };
    let now = app.clock.now();
    let token_id = match entry.tokens.verify(token, client_ip(app, req), now) {
        Ok(record) => record.id.clone(),
        Err(Refusal::Unauthorized(Unauthorized::Unknown)) => return Err(unauthorized(UNKNOWN_TENANT_OR_TOKEN)),
        Err(Refusal::Unauthorized(Unauthorized::Expired)) => return Err(unauthorized("the bearer token has expired")),
        Err(Refusal::Forbidden) => {
            return Err(ScimError::forbidden("this token is not allowed from this address").into());
        }
    };
    // Everything logged while serving the request names the tenant and token.
    let span = crate::logging::authenticated_span(req, id.as_str(), &token_id);
    let base_url = crate::extract::base_url(app, req, &id);
    Ok(Admitted { ctx: RequestCtx { tenant, base_url }, who: Authenticated { tenant: id, token: token_id }, span })
}
