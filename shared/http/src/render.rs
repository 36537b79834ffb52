//! Rendering: a stored resource as its SCIM representation (with its
//! location, a user's groups, a group's members), lists, and the headers
//! that go with them. Which related data is loaded is decided here, by
//! where the representation goes and what the projection asks for.
//!
//! What one response may cost is bounded here: the projection is resolved
//! once per request, the members and groups one response carries are at
//! most `max_members_per_response` over all its resources, and no body is
//! larger than `max_response_bytes` (Lambda answers at most 6 MB). List
//! pages are rendered on the blocking pool, so a large page does not hold
//! an async worker that other requests are waiting for.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use lockstep_core::{GroupRef, Kind, Member, SearchPage, Stored, UnfinishedDeletes};
use scim_protocol::{ListResponse, Projection, ScimError, Selection, render_selected};
use serde_json::{Value, json};

use crate::context::RequestCtx;
use crate::error::{ApiResult, SCIM_JSON};
use crate::state::App;

pub(crate) fn scim_json(status: StatusCode, body: &Value) -> Response {
    scim_body(status, body.to_string())
}

pub(crate) fn scim_body(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
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

pub(crate) fn location(ctx: &RequestCtx, kind: Kind, id: &str) -> String {
    location_at(&ctx.base_url, kind, id)
}

fn location_at(base_url: &str, kind: Kind, id: &str) -> String {
    format!("{base_url}{}/{id}", kind.resource_type().endpoint)
}

/// What a resource whose representation is larger than one response
/// answers where it is asked for whole.
pub(crate) fn too_large(app: &App, kind: Kind) -> ScimError {
    let cap = app.options.max_members_per_response;
    match kind {
        Kind::Group => ScimError::too_many(format!(
            "this group has more members than one response carries ({cap}, or {} bytes); read it with \
             excludedAttributes=members and find members with filter=members[value eq \"<id>\"]",
            app.options.max_response_bytes
        )),
        Kind::User => ScimError::too_many(format!(
            "this user is in more groups than one response carries ({cap}, or {} bytes); read it with \
             excludedAttributes=groups and find its groups with /Groups?filter=members[value eq \"<id>\"]",
            app.options.max_response_bytes
        )),
    }
}

/// A user's groups or a group's members, as loaded for a representation.
enum Related {
    Nothing,
    Groups(Vec<GroupRef>),
    Members(Vec<Member>),
}

impl Related {
    fn len(&self) -> usize {
        match self {
            Related::Nothing => 0,
            Related::Groups(g) => g.len(),
            Related::Members(m) => m.len(),
        }
    }
}

/// Whether to load `name` (a user's groups, a group's members) for the
/// output: for a single resource whenever the projection includes it (an
/// answer of 200 is the whole resource, RFC 7644 §3.5.1, §3.5.2); for lists
/// only when asked for by name, because it costs reads per resource.
fn wants(kind: Kind, projection: &Projection, sel: &Selection, name: &str, shown: Shown) -> bool {
    match shown {
        Shown::Single => sel.includes(name),
        Shown::Listed => projection.names(kind.resource_type(), name),
    }
}

/// Load what `stored` carries beside its attributes, at most `cap` values;
/// `None` past it.
#[allow(clippy::too_many_arguments)]
async fn load_related(
    app: &App,
    ctx: &RequestCtx,
    stored: &Stored,
    projection: &Projection,
    sel: &Selection,
    shown: Shown,
    cap: usize,
    leaving: &mut UnfinishedDeletes,
) -> ApiResult<Option<Related>> {
    let t = &ctx.tenant.id;
    Ok(match stored.kind {
        Kind::User if wants(stored.kind, projection, sel, "groups", shown) => {
            app.roster.groups_up_to(t, &stored.id, cap).await?.map(Related::Groups)
        }
        Kind::Group if wants(stored.kind, projection, sel, "members", shown) => {
            app.roster.members_up_to_with(t, &stored.id, cap, leaving).await?.map(Related::Members)
        }
        _ => Some(Related::Nothing),
    })
}

/// The representation: pure, no I/O.
fn build(base_url: &str, stored: Stored, related: Related, sel: &Selection) -> Value {
    let kind = stored.kind;
    let mut obj = stored.resource;
    if let Some(Value::Object(meta)) = obj.get_mut("meta") {
        meta.insert("location".into(), json!(location_at(base_url, kind, &stored.id)));
    }
    match related {
        Related::Groups(groups) if !groups.is_empty() => {
            let groups = groups
                .into_iter()
                .map(|g| {
                    let mut v =
                        json!({ "value": g.id, "$ref": location_at(base_url, Kind::Group, &g.id), "type": "direct" });
                    if let (Some(d), Some(o)) = (g.display, v.as_object_mut()) {
                        o.insert("display".into(), json!(d));
                    }
                    v
                })
                .collect();
            obj.insert("groups".into(), Value::Array(groups));
        }
        Related::Members(members) if !members.is_empty() => {
            let members = members
                .into_iter()
                .map(|m| json!({ "value": m.id, "$ref": location_at(base_url, m.kind, &m.id), "type": m.kind.name() }))
                .collect();
            obj.insert("members".into(), Value::Array(members));
        }
        _ => {}
    }
    render_selected(&obj, sel)
}

/// The body of one resource's representation, or `None` where it is more
/// than one response carries (a group over the member cap, a user in too
/// many groups, a body over the byte limit).
pub(crate) async fn represent(
    app: &App,
    ctx: &RequestCtx,
    stored: Stored,
    projection: &Projection,
) -> ApiResult<Option<String>> {
    let sel = projection.select(stored.kind.resource_type());
    let cap = usize::try_from(app.options.max_members_per_response).unwrap_or(usize::MAX);
    let mut leaving = UnfinishedDeletes::default();
    let Some(related) = load_related(app, ctx, &stored, projection, &sel, Shown::Single, cap, &mut leaving).await?
    else {
        return Ok(None);
    };
    let body = build(&ctx.base_url, stored, related, &sel).to_string();
    Ok(fits(app, &body).then_some(body))
}

fn fits(app: &App, body: &str) -> bool {
    u64::try_from(body.len()).is_ok_and(|n| n <= app.options.max_response_bytes)
}

/// A page of a search as a ListResponse.
pub(crate) async fn list(
    app: &App,
    ctx: &RequestCtx,
    page: SearchPage,
    projection: &Projection,
) -> ApiResult<Response> {
    let selections = [Kind::User, Kind::Group].map(|k| projection.select(k.resource_type()));
    let selection = |kind: Kind| usize::from(kind == Kind::Group);
    let cap = usize::try_from(app.options.max_members_per_response).unwrap_or(usize::MAX);
    let mut related = Vec::with_capacity(page.resources.len());
    let mut carried = 0usize;
    // Read once for the page, not once per group.
    let mut leaving = UnfinishedDeletes::default();
    for (i, s) in page.resources.iter().enumerate() {
        let sel = &selections[selection(s.kind)];
        match load_related(app, ctx, s, projection, sel, Shown::Listed, cap - carried, &mut leaving).await? {
            Some(r) => {
                carried += r.len();
                related.push(r);
            }
            None if i == 0 => return Err(too_large(app, s.kind).into()),
            None => {
                return Err(ScimError::too_many(format!(
                    "the first {} resources of this page already carry {carried} members or groups; one response \
                     carries at most {cap}: ask for count={i}, or leave them out (excludedAttributes=members,groups)",
                    i + 1
                ))
                .into());
            }
        }
    }
    let count = page.resources.len();
    let base_url = ctx.base_url.clone();
    let (total, start_index, next_cursor) = (page.total, page.start_index, page.next_cursor);
    let render = move || {
        let resources = page
            .resources
            .into_iter()
            .zip(related)
            .map(|(s, r)| {
                let sel = &selections[selection(s.kind)];
                build(&base_url, s, r, sel)
            })
            .collect();
        ListResponse { total_results: total, start_index, resources, next_cursor }.to_json().to_string()
    };
    let body = tokio::task::spawn_blocking(render).await.map_err(|e| {
        tracing::error!(error = %e, "rendering a page failed");
        ScimError::internal()
    })?;
    if !fits(app, &body) {
        let fitting = (count as u128 * u128::from(app.options.max_response_bytes) / body.len().max(1) as u128).max(1);
        return Err(ScimError::too_many(format!(
            "this page would be {} bytes, more than one response carries ({}); ask for count={fitting}, or \
             for fewer attributes",
            body.len(),
            app.options.max_response_bytes
        ))
        .into());
    }
    Ok(scim_body(StatusCode::OK, body))
}
