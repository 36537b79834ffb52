//! Handlers: parse (protocol), call the directory (domain), render
//! ([`crate::render`]). No business rule lives here.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use lockstep_core::{Kind, Stored};
use scim_protocol::discovery;
use scim_protocol::patch::take_members;
use scim_protocol::{PatchRequest, Projection, ScimError, SearchRequest, etag, parse_resource};
use serde_json::Value;

use crate::context::RequestCtx;
use crate::error::ApiResult;
use crate::extract::{ScimJson, query_pairs};
use crate::render::{self, location, represent, scim_body, scim_json, too_large, with_etag};
use crate::state::App;

type AppState = State<Arc<App>>;
type Ctx = Extension<RequestCtx>;

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A SearchRequest body, read on the blocking pool: its `attributes` may
/// hold a megabyte of names to deduplicate.
async fn search_request(body: serde_json::Value) -> ApiResult<SearchRequest> {
    tokio::task::spawn_blocking(move || SearchRequest::from_body(&body))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading a search request failed");
            ScimError::internal()
        })?
        .map_err(Into::into)
}

async fn list(app: &App, ctx: &RequestCtx, kind: Kind, request: SearchRequest) -> ApiResult<Response> {
    let page = app.roster.search(&ctx.tenant.id, kind, request.filter.as_ref(), &request.paging).await?;
    render::list(app, ctx, page, &request.projection).await
}

fn projection_of(query: Option<&str>) -> ApiResult<Projection> {
    let pairs = query_pairs(query)?;
    let find = |name: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    Ok(Projection::from_params(find("attributes"), find("excludedAttributes"))?)
}

async fn read(
    app: &App,
    ctx: &RequestCtx,
    kind: Kind,
    id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let projection = projection_of(query)?;
    let stored = app.roster.get(&ctx.tenant.id, kind, id).await?;
    if header_text(headers, header::IF_NONE_MATCH).is_some_and(|h| etag::header_matches(h, stored.version)) {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&stored.etag()) {
            not_modified.headers_mut().insert(header::ETAG, v);
        }
        return Ok(not_modified);
    }
    let body = represent(app, ctx, stored.clone(), &projection).await?;
    let body = body.ok_or_else(|| too_large(app, kind))?;
    Ok(with_etag(scim_body(StatusCode::OK, body), &stored))
}

/// `If-None-Match` on a write: the write happens only if the resource's
/// current version is none of those named (`*`: only if it does not
/// exist, which for an existing id is never). A match is 412 (RFC 9110
/// §13.1.2). Read first, only when the header is sent.
async fn check_if_none_match(app: &App, ctx: &RequestCtx, kind: Kind, id: &str, headers: &HeaderMap) -> ApiResult<()> {
    let Some(h) = header_text(headers, header::IF_NONE_MATCH) else { return Ok(()) };
    let stored = app.roster.get(&ctx.tenant.id, kind, id).await?;
    if h.trim() == "*" || etag::header_matches(h, stored.version) {
        return Err(ScimError::new(
            412,
            None,
            format!("If-None-Match names the current version ({}); nothing was written", stored.etag()),
        )
        .into());
    }
    Ok(())
}

async fn create(app: &App, ctx: &RequestCtx, kind: Kind, body: Value) -> ApiResult<Response> {
    let mut attrs = parse_resource(kind.resource_type(), &body)?;
    let members = if kind == Kind::Group { take_members(&mut attrs)? } else { Vec::new() };
    let stored = app.roster.create(&ctx.tenant, kind, attrs, &members).await?;
    // The directory creates no group with more members than one answer carries.
    let body = represent(app, ctx, stored.clone(), &Projection::Default).await?;
    let body = body.ok_or_else(|| too_large(app, kind))?;
    let mut response = with_etag(scim_body(StatusCode::CREATED, body), &stored);
    if let Ok(v) = HeaderValue::from_str(&location(ctx, kind, &stored.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

async fn answer_write(app: &App, ctx: &RequestCtx, stored: Stored, query: Option<&str>) -> ApiResult<Response> {
    let projection = projection_of(query)?;
    // A 200 carries the whole resource, as a GET would; where that is more
    // than one response holds (a group over the member cap), 204 says the
    // write succeeded without a body that would silently lack members.
    let response = match represent(app, ctx, stored.clone(), &projection).await? {
        Some(body) => scim_body(StatusCode::OK, body),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    Ok(with_etag(response, &stored))
}

async fn replace(
    app: &App,
    ctx: &RequestCtx,
    kind: Kind,
    id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Value,
) -> ApiResult<Response> {
    check_if_none_match(app, ctx, kind, id, headers).await?;
    let mut attrs = parse_resource(kind.resource_type(), &body)?;
    // PUT replaces the whole resource: a group PUT without members empties it.
    let members = if kind == Kind::Group { Some(take_members(&mut attrs)?) } else { None };
    let if_match = header_text(headers, header::IF_MATCH);
    let stored = app.roster.replace(&ctx.tenant, kind, id, attrs, members, if_match).await?;
    answer_write(app, ctx, stored, query).await
}

async fn patch(
    app: &App,
    ctx: &RequestCtx,
    kind: Kind,
    id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Value,
) -> ApiResult<Response> {
    check_if_none_match(app, ctx, kind, id, headers).await?;
    let request = PatchRequest::from_value(body)?;
    let if_match = header_text(headers, header::IF_MATCH);
    let stored = app.roster.patch(&ctx.tenant, kind, id, &request, if_match).await?;
    answer_write(app, ctx, stored, query).await
}

async fn delete(app: &App, ctx: &RequestCtx, kind: Kind, id: &str, headers: &HeaderMap) -> ApiResult<Response> {
    check_if_none_match(app, ctx, kind, id, headers).await?;
    let if_match = header_text(headers, header::IF_MATCH);
    app.roster.delete(&ctx.tenant, kind, id, if_match).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

macro_rules! resource_handlers {
    ($kind:expr, $list:ident, $search:ident, $create:ident, $get:ident, $replace:ident, $patch:ident, $delete:ident) => {
        pub async fn $list(State(app): AppState, Extension(ctx): Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
            let pairs = query_pairs(q.as_deref())?;
            let request = SearchRequest::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            list(&app, &ctx, $kind, request).await
        }
        pub async fn $search(
            State(app): AppState,
            Extension(ctx): Ctx,
            ScimJson(body): ScimJson,
        ) -> ApiResult<Response> {
            list(&app, &ctx, $kind, search_request(body).await?).await
        }
        pub async fn $create(
            State(app): AppState,
            Extension(ctx): Ctx,
            ScimJson(body): ScimJson,
        ) -> ApiResult<Response> {
            create(&app, &ctx, $kind, body).await
        }
        pub async fn $get(
            State(app): AppState,
            Extension(ctx): Ctx,
            Path((_, id)): Path<(String, String)>,
            RawQuery(q): RawQuery,
            headers: HeaderMap,
        ) -> ApiResult<Response> {
            read(&app, &ctx, $kind, &id, q.as_deref(), &headers).await
        }
        pub async fn $replace(
            State(app): AppState,
            Extension(ctx): Ctx,
            Path((_, id)): Path<(String, String)>,
            RawQuery(q): RawQuery,
            headers: HeaderMap,
            ScimJson(body): ScimJson,
        ) -> ApiResult<Response> {
            replace(&app, &ctx, $kind, &id, q.as_deref(), &headers, body).await
        }
        pub async fn $patch(
            State(app): AppState,
            Extension(ctx): Ctx,
            Path((_, id)): Path<(String, String)>,
            RawQuery(q): RawQuery,
            headers: HeaderMap,
            ScimJson(body): ScimJson,
        ) -> ApiResult<Response> {
            patch(&app, &ctx, $kind, &id, q.as_deref(), &headers, body).await
        }
        pub async fn $delete(
            State(app): AppState,
            Extension(ctx): Ctx,
            Path((_, id)): Path<(String, String)>,
            headers: HeaderMap,
        ) -> ApiResult<Response> {
            delete(&app, &ctx, $kind, &id, &headers).await
        }
    };
}

resource_handlers!(Kind::User, list_users, search_users, create_user, get_user, replace_user, patch_user, delete_user);
resource_handlers!(
    Kind::Group,
    list_groups,
    search_groups,
    create_group,
    get_group,
    replace_group,
    patch_group,
    delete_group
);

/// `POST /.search`: the same query over users and groups.
pub async fn search_all(State(app): AppState, Extension(ctx): Ctx, ScimJson(body): ScimJson) -> ApiResult<Response> {
    let request = search_request(body).await?;
    let page = app.roster.search_all(&ctx.tenant.id, request.filter.as_ref(), &request.paging).await?;
    render::list(&app, &ctx, page, &request.projection).await
}

pub async fn service_provider_config(State(app): AppState, Extension(ctx): Ctx) -> Response {
    scim_json(StatusCode::OK, &discovery::service_provider_config(&app.options, &ctx.base_url))
}

pub async fn schemas(Extension(ctx): Ctx) -> Response {
    scim_json(StatusCode::OK, &discovery::schemas_list(&ctx.base_url))
}

pub async fn schema(Extension(ctx): Ctx, Path((_, id)): Path<(String, String)>) -> ApiResult<Response> {
    let s = discovery::find_schema(&id).ok_or_else(|| ScimError::not_found(format!("no schema '{id}'")))?;
    Ok(scim_json(StatusCode::OK, &discovery::schema_json(s, &ctx.base_url)))
}

pub async fn resource_types(Extension(ctx): Ctx) -> Response {
    scim_json(StatusCode::OK, &discovery::resource_types_list(&ctx.base_url))
}

pub async fn resource_type(Extension(ctx): Ctx, Path((_, id)): Path<(String, String)>) -> ApiResult<Response> {
    let rt =
        discovery::find_resource_type(&id).ok_or_else(|| ScimError::not_found(format!("no resource type '{id}'")))?;
    Ok(scim_json(StatusCode::OK, &discovery::resource_type_json(rt, &ctx.base_url)))
}

pub async fn not_implemented() -> ApiResult<Response> {
    Err(ScimError::not_implemented("this endpoint is not implemented; /ServiceProviderConfig lists what is").into())
}
