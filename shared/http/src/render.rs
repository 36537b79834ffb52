//! Rendering: a stored resource as its SCIM representation (with its
//! location, a user's groups, a group's members), lists, and the headers
//! that go with them. Which related data is loaded is decided here, by
//! where the representation goes and what the projection asks for.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use lockstep_core::{Kind, SearchPage, Stored};
use scim_protocol::{ListResponse, Projection, ScimError};
use serde_json::{Value, json};

use crate::context::RequestCtx;
use crate::error::{ApiResult, SCIM_JSON};
use crate::state::App;

pub(crate) fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

pub(crate) fn with_etag(mut response: Response, stored: &Stored) -> Response {
    if let Ok(v) = HeaderValue::from_str(&stored.etag()) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// Where a representation is going: a single resource (read, created, or
/// the answer to a write), or one of a list.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
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

pub(crate) fn location(ctx: &RequestCtx, kind: Kind, id: &str) -> String {
    format!("{}{}/{id}", ctx.base_url, kind.resource_type().endpoint)
}

/// What a group over the member cap answers where its members are asked for.
pub(crate) fn too_many_members(app: &App) -> ScimError {
    let cap = app.directory.limits().max_inline_members;
    ScimError::too_many(format!(
        "this group has more than {cap} members, more than one response carries; read it with \
         excludedAttributes=members and find members with filter=members[value eq \"<id>\"]"
    ))
}

/// The representation of a resource, or `None` for a group whose members
/// are wanted but are more than one response carries.
pub(crate) async fn represent(
    app: &App,
    ctx: &RequestCtx,
    stored: Stored,
    projection: &Projection,
    shown: Shown,
) -> ApiResult<Option<Value>> {
    let t = &ctx.tenant.id;
    let kind = stored.kind;
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
                .map(|m| json!({ "value": m.id, "$ref": location(ctx, m.kind, &m.id), "type": m.kind.name() }))
                .collect();
            if !members.is_empty() {
                obj.insert("members".into(), Value::Array(members));
            }
        }
        _ => {}
    }
    Ok(Some(scim_protocol::render(kind.resource_type(), &obj, projection)))
}

/// A page of a search as a ListResponse.
pub(crate) async fn list(
    app: &App,
    ctx: &RequestCtx,
    page: SearchPage,
    projection: &Projection,
) -> ApiResult<Response> {
    let mut resources = Vec::with_capacity(page.resources.len());
    for s in page.resources {
        let one = represent(app, ctx, s, projection, Shown::Listed).await?;
        resources.push(one.ok_or_else(|| too_many_members(app))?);
    }
    let list = ListResponse {
        total_results: page.total,
        start_index: page.start_index,
        resources,
        next_cursor: page.next_cursor,
    };
    Ok(scim_json(StatusCode::OK, &list.to_json()))
}
