//! Handlers: parse (protocol), call the directory (domain), render
//! (protocol). No business rule lives here.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use lockstep_core::{Kind, Stored};
use scim_protocol::discovery;
use scim_protocol::patch::take_members;
use scim_protocol::{ListResponse, Paging, PatchRequest, Projection, ScimError, SearchRequest, etag, parse_resource};
use serde_json::{Value, json};

use crate::error::{ApiResult, SCIM_JSON};
use crate::extract::{ScimJson, query_pairs};
use crate::{App, RequestCtx};

type AppState = State<Arc<App>>;
type Ctx = Extension<RequestCtx>;

fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

fn with_etag(mut response: Response, stored: &Stored) -> Response {
    if let Ok(v) = HeaderValue::from_str(&stored.etag()) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Where a representation is going: a single resource (read, created, or
/// the answer to a write), or one of a list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Single,
    Listed,
}

/// Whether to load `name` (a user's groups, a group's members) for the
/// output: for a single resource whenever the projection includes it (an
/// answer of 200 is the whole resource, RFC 7644 §3.5.1, §3.5.2); for lists
/// only when asked for by name, because it costs reads per resource.
fn wants(kind: Kind, projection: &Projection, name: &str, shown: Shown) -> bool {
    let rt = kind.resource_type();
    match shown {
        Shown::Single => projection.includes(rt, name),
        Shown::Listed => matches!(projection, Projection::Include(paths)
            if paths.iter().any(|p| rt.resolve_attribute(p).is_some_and(|r| !r.extension && r.attr.name == name))),
    }
}

fn location(ctx: &RequestCtx, kind: Kind, id: &str) -> String {
    format!("{}{}/{id}", ctx.base_url, kind.resource_type().endpoint)
}

/// What a group over the member cap answers where its members are asked for.
fn too_many_members(app: &App) -> ScimError {
    let cap = app.directory.limits().max_inline_members;
    ScimError::too_many(format!(
        "this group has more than {cap} members, more than one response carries; read it with \
         excludedAttributes=members and find members with filter=members[value eq \"<id>\"]"
    ))
}

/// The representation of a resource, or `None` for a group whose members
/// are wanted but are more than one response carries.
async fn represent(
    app: &App,
    ctx: &RequestCtx,
    kind: Kind,
    stored: Stored,
    projection: &Projection,
    shown: Shown,
) -> ApiResult<Option<Value>> {
    let t = &ctx.tenant.id;
    let mut obj = stored.resource;
    if let Some(Value::Object(meta)) = obj.get_mut("meta") {
        meta.insert("location".into(), json!(location(ctx, kind, &stored.id)));
    }
    match kind {
        Kind::User if wants(kind, projection, "groups", shown) => {
            let groups: Vec<Value> = app
                .directory
                .groups_of(t, &stored.id)
                .await?
                .into_iter()
                .map(|g| {
                    let mut v = json!({ "value": g.id, "$ref": location(ctx, Kind::Group, &g.id), "type": "direct" });
                    if let (Some(d), Some(o)) = (g.display, v.as_object_mut()) {
                        o.insert("display".into(), json!(d));
                    }
                    v
                })
                .collect();
            if !groups.is_empty() {
                obj.insert("groups".into(), Value::Array(groups));
            }
        }
        Kind::Group if wants(kind, projection, "members", shown) => {
            let Some(members) = app.directory.inline_members(t, &stored.id).await? else {
                return Ok(None);
            };
            let members: Vec<Value> = members
                .into_iter()
                .map(|m| json!({ "value": m.id, "$ref": location(ctx, m.kind, &m.id), "type": m.kind.resource_type().name }))
                .collect();
            if !members.is_empty() {
                obj.insert("members".into(), Value::Array(members));
            }
        }
        _ => {}
    }
    Ok(Some(scim_protocol::render(kind.resource_type(), &obj, projection)))
}

async fn list(app: &App, ctx: &RequestCtx, kind: Kind, request: SearchRequest) -> ApiResult<Response> {
    let rt = kind.resource_type();
    if let Some(f) = &request.filter {
        f.validate(rt)?;
    }
    let page = app.directory.search(&ctx.tenant.id, kind, request.filter.as_ref(), &request.paging).await?;
    let mut resources = Vec::with_capacity(page.resources.len());
    for s in page.resources {
        resources.push(
            represent(app, ctx, kind, s, &request.projection, Shown::Listed)
                .await?
                .ok_or_else(|| too_many_members(app))?,
        );
    }
    let list = ListResponse {
        total_results: page.total,
        start_index: page.start_index,
        resources,
        next_cursor: page.next_cursor,
    };
    Ok(scim_json(StatusCode::OK, &list.to_json()))
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
    let stored = app.directory.get(&ctx.tenant.id, kind, id).await?;
    if header_text(headers, header::IF_NONE_MATCH).is_some_and(|h| etag::header_matches(h, stored.version)) {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&stored.etag()) {
            not_modified.headers_mut().insert(header::ETAG, v);
        }
        return Ok(not_modified);
    }
    let body = represent(app, ctx, kind, stored.clone(), &projection, Shown::Single).await?;
    let body = body.ok_or_else(|| too_many_members(app))?;
    Ok(with_etag(scim_json(StatusCode::OK, &body), &stored))
}

async fn create(app: &App, ctx: &RequestCtx, kind: Kind, body: Value) -> ApiResult<Response> {
    let mut attrs = parse_resource(kind.resource_type(), &body)?;
    let members = if kind == Kind::Group { take_members(&mut attrs)? } else { Vec::new() };
    let stored = app.directory.create(&ctx.tenant, kind, attrs, &members).await?;
    // The directory creates no group with more members than one answer carries.
    let body = represent(app, ctx, kind, stored.clone(), &Projection::Default, Shown::Single).await?;
    let body = body.ok_or_else(|| too_many_members(app))?;
    let mut response = with_etag(scim_json(StatusCode::CREATED, &body), &stored);
    if let Ok(v) = HeaderValue::from_str(&location(ctx, kind, &stored.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

async fn answer_write(
    app: &App,
    ctx: &RequestCtx,
    kind: Kind,
    stored: Stored,
    query: Option<&str>,
) -> ApiResult<Response> {
    let projection = projection_of(query)?;
    // A 200 carries the whole resource, as a GET would; where that is more
    // than one response holds (a group over the member cap), 204 says the
    // write succeeded without a body that would silently lack members.
    let response = match represent(app, ctx, kind, stored.clone(), &projection, Shown::Single).await? {
        Some(body) => scim_json(StatusCode::OK, &body),
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
    let mut attrs = parse_resource(kind.resource_type(), &body)?;
    // PUT replaces the whole resource: a group PUT without members empties it.
    let members = if kind == Kind::Group { Some(take_members(&mut attrs)?) } else { None };
    let if_match = header_text(headers, header::IF_MATCH);
    let stored = app.directory.replace(&ctx.tenant, kind, id, attrs, members, if_match).await?;
    answer_write(app, ctx, kind, stored, query).await
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
    let request = PatchRequest::from_value(body)?;
    let if_match = header_text(headers, header::IF_MATCH);
    let stored = app.directory.patch(&ctx.tenant, kind, id, &request, if_match).await?;
    answer_write(app, ctx, kind, stored, query).await
}

async fn delete(app: &App, ctx: &RequestCtx, kind: Kind, id: &str, headers: &HeaderMap) -> ApiResult<Response> {
    let if_match = header_text(headers, header::IF_MATCH);
    app.directory.delete(&ctx.tenant, kind, id, if_match).await?;
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
            list(&app, &ctx, $kind, SearchRequest::from_body(&body)?).await
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

/// `POST /.search`: the same query over users and groups (RFC 7644 §3.4.3).
pub async fn search_all(State(app): AppState, Extension(ctx): Ctx, ScimJson(body): ScimJson) -> ApiResult<Response> {
    let request = SearchRequest::from_body(&body)?;
    let Paging::Index { start_index, count } = request.paging else {
        return Err(ScimError::invalid_value(
            "cursor paging is offered per resource type (/Users/.search, /Groups/.search)",
        )
        .into());
    };
    let limits = app.directory.limits();
    let count = count.unwrap_or(limits.default_page_size).min(limits.max_page_size);
    // Enough of each type to cover the requested window of the union.
    let window = Paging::Index { start_index: 1, count: Some((start_index - 1 + count).min(limits.max_page_size)) };
    // A filter naming attributes a type lacks matches none of that type;
    // one that fits no type at all is the client's error.
    let kinds: Vec<Kind> = [Kind::User, Kind::Group]
        .into_iter()
        .filter(|k| request.filter.as_ref().is_none_or(|f| f.validate(k.resource_type()).is_ok()))
        .collect();
    if let (Some(f), true) = (&request.filter, kinds.is_empty()) {
        f.validate(Kind::User.resource_type())?;
    }
    let mut total = 0;
    let mut resources = Vec::new();
    for kind in kinds {
        let page = app.directory.search(&ctx.tenant.id, kind, request.filter.as_ref(), &window).await?;
        total += page.total;
        for s in page.resources {
            let one = represent(&app, &ctx, kind, s, &request.projection, Shown::Listed).await?;
            resources.push(one.ok_or_else(|| too_many_members(&app))?);
        }
    }
    let skip = usize::try_from(start_index - 1).unwrap_or(usize::MAX);
    let take = usize::try_from(count).unwrap_or(usize::MAX);
    let resources: Vec<Value> = resources.into_iter().skip(skip).take(take).collect();
    let list = ListResponse { total_results: total, start_index: Some(start_index), resources, next_cursor: None };
    Ok(scim_json(StatusCode::OK, &list.to_json()))
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
