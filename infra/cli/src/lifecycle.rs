//! Users and groups as the operator sees them, deleted and unlinked ones
//! included, and the lifecycle commands: restore, unlink, delete, purge,
//! and the scheduled job run by hand.

use anyhow::{anyhow, bail};
use lockstep_core::{Kind, Retired, Roster, Stored, Tenant, job};
use scim_protocol::Paging;
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::{GroupCommand, GroupsCommand, PurgeArgs, Report, UserCommand, UsersCommand};

/// Every live resource of a kind, page by page with cursors.
async fn live(roster: &Roster, tenant: &Tenant, kind: Kind) -> anyhow::Result<Vec<Stored>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let paging = Paging::Cursor { cursor: cursor.take(), count: Some(1000) };
        let page = roster.search(&tenant.id, kind, None, &paging).await.map_err(|e| anyhow!("{e}"))?;
        out.extend(page.resources);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

fn text_of<'a>(resource: &'a serde_json::Map<String, Value>, name: &str) -> &'a str {
    resource.get(name).and_then(Value::as_str).unwrap_or("")
}

/// A resource's name as the operator knows it.
fn name_of(kind: Kind, resource: &serde_json::Map<String, Value>) -> &str {
    match kind {
        Kind::User => text_of(resource, "userName"),
        Kind::Group => text_of(resource, "displayName"),
    }
}

fn live_state(stored: &Stored) -> &'static str {
    match (stored.kind, stored.resource.get("active")) {
        (Kind::User, Some(Value::Bool(false))) => "inactive",
        (Kind::User, _) => "active",
        (Kind::Group, _) => "linked",
    }
}

fn retired_state(retired: &Retired) -> String {
    let purge = match &retired.purge_after {
        Some(at) => format!("; purged after {at}"),
        None => "; kept".to_string(),
    };
    format!("{} {}{purge}", retired.why.describe(), retired.retired_at)
}

fn live_json(stored: &Stored) -> Value {
    json!({ "id": stored.id, "name": name_of(stored.kind, &stored.resource), "state": live_state(stored),
            "resource": stored.resource })
}

fn retired_json(retired: &Retired) -> Value {
    json!({ "id": retired.id, "name": name_of(retired.kind, &retired.resource),
            "state": if retired.kind == Kind::Group { "unlinked" } else { "deleted" },
            "why": retired.why, "retired_at": retired.retired_at, "purge_after": retired.purge_after,
            "groups": retired.groups, "resource": retired.resource })
}

async fn list(backend: &Backend, tenant: &str, kind: Kind) -> anyhow::Result<Report> {
    let tenant = backend.existing_tenant(tenant).await?;
    let live = live(&backend.roster, &tenant, kind).await?;
    let retired = backend.roster.retired(&tenant.id, kind).await.map_err(|e| anyhow!("{e}"))?;
    let mut lines =
        vec![format!("{:<36}  {:<40}  state", "id", if kind == Kind::User { "userName" } else { "displayName" })];
    lines.extend(live.iter().map(|s| format!("{:<36}  {:<40}  {}", s.id, name_of(kind, &s.resource), live_state(s))));
    lines.extend(
        retired.iter().map(|r| format!("{:<36}  {:<40}  {}", r.id, name_of(kind, &r.resource), retired_state(r))),
    );
    lines.push(format!(
        "{} live, {} {}",
        live.len(),
        retired.len(),
        if kind == Kind::User { "deleted" } else { "kept or unlinked" }
    ));
    let items: Vec<Value> = live.iter().map(live_json).chain(retired.iter().map(retired_json)).collect();
    Ok(Report { text: lines.join("\n"), json: json!({ "tenant": tenant.id, "resources": items }) })
}

/// One resource for people: kind, id, name, state, then its attributes.
fn shown(kind: Kind, id: &str, resource: &serde_json::Map<String, Value>, state: &str) -> String {
    let attributes = serde_json::to_string_pretty(resource).unwrap_or_default();
    format!("{} {id} ({})\n  state: {state}\n{attributes}", kind.name(), name_of(kind, resource))
}

async fn show(backend: &Backend, tenant: &str, kind: Kind, id: &str) -> anyhow::Result<Report> {
    let tenant = backend.existing_tenant(tenant).await?;
    let roster = &backend.roster;
    if let Some(retired) = roster.retired_one(&tenant.id, kind, id).await.map_err(|e| anyhow!("{e}"))? {
        let text = shown(kind, id, &retired.resource, &retired_state(&retired));
        return Ok(Report { text, json: retired_json(&retired) });
    }
    match roster.get(&tenant.id, kind, id).await {
        Ok(stored) => {
            let text = shown(kind, id, &stored.resource, live_state(&stored));
            Ok(Report { text, json: live_json(&stored) })
        }
        Err(lockstep_core::Error::NotFound(_)) => bail!("tenant {} has no {} '{id}'", tenant.id, kind.name()),
        Err(e) => Err(anyhow!("{e}")),
    }
}

pub async fn users(backend: &Backend, command: UsersCommand) -> anyhow::Result<Report> {
    match command {
        UsersCommand::List { tenant } => list(backend, &tenant, Kind::User).await,
        UsersCommand::Show { tenant, id } => show(backend, &tenant, Kind::User, &id).await,
    }
}

pub async fn groups(backend: &Backend, command: GroupsCommand) -> anyhow::Result<Report> {
    match command {
        GroupsCommand::List { tenant } => list(backend, &tenant, Kind::Group).await,
        GroupsCommand::Show { tenant, id } => show(backend, &tenant, Kind::Group, &id).await,
    }
}

pub async fn user(backend: &Backend, command: UserCommand) -> anyhow::Result<Report> {
    match command {
        UserCommand::Restore { tenant, id } => {
            let tenant = backend.existing_tenant(&tenant).await?;
            let user = backend.roster.restore_user(&tenant, &id).await.map_err(|e| anyhow!("{e}"))?;
            Ok(Report {
                text: format!(
                    "Restored user {id} ({}), deactivated. The identity provider reactivates it with its next update.",
                    name_of(Kind::User, &user.resource)
                ),
                json: live_json(&user),
            })
        }
    }
}

pub async fn group(backend: &Backend, command: GroupCommand) -> anyhow::Result<Report> {
    match command {
        GroupCommand::Unlink { tenant, id } => {
            let tenant = backend.existing_tenant(&tenant).await?;
            backend.roster.unlink_group(&tenant, &id).await.map_err(|e| anyhow!("{e}"))?;
            Ok(Report {
                text: format!(
                    "Unlinked group {id}: it keeps its members and is no longer updated by the roster. \
                     A later push of the same group creates a new one."
                ),
                json: json!({ "unlinked": id }),
            })
        }
        GroupCommand::Delete { tenant, id } => {
            let tenant = backend.existing_tenant(&tenant).await?;
            backend.roster.delete_retired_group(&tenant.id, &id).await.map_err(|e| anyhow!("{e}"))?;
            Ok(Report { text: format!("Deleted group {id} and its memberships."), json: json!({ "deleted": id }) })
        }
    }
}

pub async fn purge(backend: &Backend, args: PurgeArgs) -> anyhow::Result<Report> {
    let tenant = backend.existing_tenant(&args.tenant).await?;
    let roster = &backend.roster;
    if args.dry_run {
        let due = roster.due(&tenant.id, 10_000).await.map_err(|e| anyhow!("{e}"))?;
        let mut lines: Vec<String> = due.iter().map(|d| format!("{} {}", d.kind.name(), d.id)).collect();
        lines.push(format!("{} due for purge in {} (nothing was changed)", due.len(), tenant.id));
        let items: Vec<Value> = due.iter().map(|d| json!({ "kind": d.kind.name(), "id": d.id })).collect();
        return Ok(Report { text: lines.join("\n"), json: json!({ "due": items }) });
    }
    let purged = roster.purge(&tenant.id, &|| false).await.map_err(|e| anyhow!("{e}"))?;
    if purged.users + purged.groups > 0 {
        // What was purged is made unreadable in the store's file too.
        roster.erase_deleted().await.map_err(|e| anyhow!("{e}"))?;
    }
    Ok(Report {
        text: format!("Purged {} users and {} groups from {}.", purged.users, purged.groups, tenant.id),
        json: json!({ "purged_users": purged.users, "purged_groups": purged.groups }),
    })
}

pub async fn job_run(backend: &Backend) -> anyhow::Result<Report> {
    let graph = lockstep_graph::GraphPull { secrets: backend.secrets.clone(), endpoints: backend.graph.clone() };
    let report = job::run(&backend.roster, &[&graph], &|| false).await.map_err(|e| anyhow!("{e}"))?;
    let mut text = format!(
        "Job run over {} tenants: purged {} users and {} groups, finished {} half-done deletes.",
        report.tenants, report.purged_users, report.purged_groups, report.swept
    );
    for failure in &report.failures {
        text.push_str(&format!("\n  failed: {failure}"));
    }
    let done = Report { text, json: serde_json::to_value(&report)? };
    if report.failures.is_empty() { Ok(done) } else { Err(crate::Unsuccessful(done).into()) }
}
