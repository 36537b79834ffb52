//! `lockstep graph`: a tenant's Microsoft Graph connection, its sync, and
//! its status. The client secret is read from standard input, stored in the
//! secret store, and never printed back.

use std::io::Read;

use anyhow::{anyhow, bail};
use lockstep_graph::mapping::{Mapping, SourceField, UserNameSource};
use lockstep_graph::state::{self, Connection, SECRET_NAME};
use lockstep_graph::sync::{self, Request};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::backend::Backend;
use crate::{ConnectArgs, GraphCommand, Report};

/// Days before the secret expires that `graph status` starts warning.
const EXPIRY_WARNING_DAYS: i64 = 30;

fn field(name: &str) -> anyhow::Result<SourceField> {
    SourceField::parse(name).ok_or_else(|| {
        let known: Vec<&str> = SourceField::ALL.iter().map(|f| f.graph_name()).collect();
        anyhow!("'{name}' is not a field a unit or user types can come from; use one of: {}", known.join(", "))
    })
}

fn expiry_date(text: &str) -> anyhow::Result<Date> {
    let bad = || anyhow!("--secret-expires '{text}' is not a date like 2027-06-30");
    let format = time::format_description::parse("[year]-[month]-[day]").map_err(|_| bad())?;
    Date::parse(text.trim(), &format).map_err(|_| bad())
}

fn read_secret() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| anyhow!("reading the client secret from stdin: {e}"))?;
    let secret = text.trim().to_string();
    if secret.is_empty() {
        bail!("give the client secret's Value on standard input (for example: lockstep graph connect … < secret.txt)");
    }
    Ok(secret)
}

fn connection_text(c: &Connection) -> String {
    let m = &c.mapping;
    format!(
        "Microsoft Graph connection \"{}\" ({})\n  directory (tenant) id:   {}\n  application (client) id: {}\n  \
         client secret:           stored; expires {}\n  userName from:           {}\n  unit from:               {} (units: {})\n  \
         user types from:         {} (user types: {})\n  deletion guard:          a round may soft-delete at most {}% of the users",
        c.name,
        if c.enabled { "enabled" } else { "disabled" },
        c.directory_id,
        c.client_id,
        c.secret_expires,
        match m.user_name_from {
            UserNameSource::UserPrincipalName => "userPrincipalName",
            UserNameSource::Mail => "mail",
        },
        m.unit_field.graph_name(),
        m.units.join(", "),
        m.user_types_field.graph_name(),
        m.user_types.join(", "),
        c.max_delete_percent
    )
}

fn connection_json(c: &Connection) -> serde_json::Value {
    // The connection holds no secret; this is said to be sure.
    json!({ "connection": c, "secret": "stored" })
}

async fn connect(backend: &Backend, args: ConnectArgs) -> anyhow::Result<Report> {
    let tenant = backend.existing_tenant(&args.tenant).await?;
    let mapping = Mapping {
        user_name_from: if args.user_name_from_mail { UserNameSource::Mail } else { UserNameSource::UserPrincipalName },
        unit_field: field(&args.unit_field)?,
        user_types_field: field(&args.user_types_field)?,
        units: args.units,
        user_types: args.user_types,
    };
    expiry_date(&args.secret_expires)?;
    let connection = Connection {
        name: args.name,
        directory_id: args.directory_id.trim().to_string(),
        client_id: args.client_id.trim().to_string(),
        secret_expires: args.secret_expires.trim().to_string(),
        enabled: true,
        mapping,
        max_delete_percent: args.max_delete_percent,
    };
    connection.check().map_err(|e| anyhow!("{e}"))?;
    let secret = read_secret()?;
    backend.secrets.put(&tenant.id, SECRET_NAME, &secret).await.map_err(|e| anyhow!("storing the secret: {e}"))?;
    let done = sync::connect(&backend.roster, &tenant, &connection).await.map_err(|e| anyhow!("{e}"))?;
    let mut text = connection_text(&connection);
    if done.unique_work_emails {
        text.push_str("\nWork emails are now unique in this tenant (the pull matches users by them).");
    }
    for (id, why) in &done.shared_work_emails {
        text.push_str(&format!("\n  user {id} shares its work email with another user: {why}"));
    }
    text.push('\n');
    text.push_str(&if done.remapped {
        "The mapping changed: the next pull is a full round that maps every user anew.".to_string()
    } else {
        format!(
            "Next: `lockstep graph sync {} --full` pulls every user now; the scheduled job pulls changes every hour.",
            tenant.id
        )
    });
    let mut json = connection_json(&connection);
    json["remapped"] = json!(done.remapped);
    json["shared_work_emails"] = json!(done.shared_work_emails);
    Ok(Report { text, json })
}

async fn existing(backend: &Backend, tenant: &str) -> anyhow::Result<(lockstep_core::Tenant, Connection)> {
    let tenant = backend.existing_tenant(tenant).await?;
    let connection = state::connection(&backend.roster, &tenant.id).await.map_err(|e| anyhow!("{e}"))?;
    let connection = connection.ok_or_else(|| {
        anyhow!("tenant {} has no Microsoft Graph connection; make one with `lockstep graph connect`", tenant.id)
    })?;
    Ok((tenant, connection))
}

async fn set_enabled(backend: &Backend, tenant: &str, enabled: bool) -> anyhow::Result<Report> {
    let (tenant, mut connection) = existing(backend, tenant).await?;
    connection.enabled = enabled;
    state::save_connection(&backend.roster, &tenant.id, &connection).await.map_err(|e| anyhow!("{e}"))?;
    let what = if enabled { "enabled: the scheduled job pulls it" } else { "disabled: nothing is pulled" };
    Ok(Report {
        text: format!("The Microsoft Graph connection of {} is {what}.", tenant.id),
        json: connection_json(&connection),
    })
}

async fn run_sync(backend: &Backend, tenant: &str, request: Request) -> anyhow::Result<Report> {
    let (tenant, connection) = existing(backend, tenant).await?;
    if !connection.enabled {
        bail!("the connection of {} is disabled; `lockstep graph enable {}` first", tenant.id, tenant.id);
    }
    let run = sync::pull(&backend.roster, backend.secrets.as_ref(), &backend.graph, &tenant, request, &|| false)
        .await
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("nothing to pull"))?;
    let c = &run.counts;
    let mut text = format!(
        "Pull of {}: {}. {} created, {} updated, {} unchanged, {} restored, {} deleted, {} skipped, {} pages, {} \
         throttled, {} failed.",
        tenant.id,
        run.result,
        c.created,
        c.updated,
        c.unchanged,
        c.restored,
        c.deleted,
        c.skipped,
        c.pages,
        c.throttled,
        c.failed
    );
    text.push_str(&skipped_lines(c));
    if let Some(error) = &run.error {
        text.push_str(&format!("\n{error}"));
    }
    let report = Report { text, json: json!(run) };
    if run.result.needs_attention() { Err(crate::Unsuccessful(report).into()) } else { Ok(report) }
}

/// How many skipped users the text output names (`--json` has them all).
const SKIPPED_SHOWN: usize = 5;

/// Why users were skipped, with the first few by name; and how many pulled
/// users have no unit or no user type, and why.
fn skipped_lines(c: &state::Counts) -> String {
    let mut text = String::new();
    for (what, gaps) in
        [("without a unit (unassigned)", &c.without_unit), ("without a user type", &c.without_user_types)]
    {
        for (why, n) in gaps {
            text.push_str(&format!("\n  {n} {what}: {why}"));
        }
    }
    for (why, n) in &c.skipped_why {
        text.push_str(&format!("\n  skipped {n}: {why}"));
    }
    for (user, why) in c.skipped_users.iter().take(SKIPPED_SHOWN) {
        text.push_str(&format!("\n    {user}: {why}"));
    }
    if c.skipped_users.len() > SKIPPED_SHOWN {
        text.push_str(&format!("\n    … {} more (--json lists them)", c.skipped_users.len() - SKIPPED_SHOWN));
    }
    text
}

async fn status(backend: &Backend, tenant: &str) -> anyhow::Result<Report> {
    let (tenant, connection) = existing(backend, tenant).await?;
    let st = state::state(&backend.roster, &tenant.id).await.map_err(|e| anyhow!("{e}"))?;
    let mut lines = vec![connection_text(&connection)];
    let today = OffsetDateTime::now_utc().date();
    let days_left = expiry_date(&connection.secret_expires).map(|d| (d - today).whole_days()).ok();
    let expiry_warning = match days_left {
        Some(d) if d < 0 => Some(format!(
            "WARNING: the client secret expired on {}; pulls fail until a new one is connected",
            connection.secret_expires
        )),
        Some(d) if d < EXPIRY_WARNING_DAYS => Some(format!(
            "WARNING: the client secret expires in {d} days ({}): create a new one in Azure and connect again before then",
            connection.secret_expires
        )),
        _ => None,
    };
    if let Some(w) = &expiry_warning {
        lines.push(w.clone());
    }
    match &st.last_run {
        Some(run) => {
            let c = &run.counts;
            lines.push(format!(
                "Last run: {} at {}: {} created, {} updated, {} restored, {} deleted, {} skipped, {} failed.{}",
                run.result,
                run.at,
                c.created,
                c.updated,
                c.restored,
                c.deleted,
                c.skipped,
                c.failed,
                skipped_lines(c)
            ));
            if let Some(e) = &run.error {
                lines.push(format!("Last error: {e}"));
            }
        }
        None => lines.push("Last run: none yet.".into()),
    }
    let next = match (&st.held, &st.round, connection.enabled) {
        (_, _, false) => "Next run: none (disabled).".to_string(),
        (Some(_), _, _) => format!(
            "Next run: the scheduled job's next run pulls the changes; removals wait for review: confirm them with \
             `lockstep graph sync {} --full --allow-deletions`.",
            tenant.id
        ),
        (None, Some(round), _) => format!(
            "Next run: the scheduled job's next run resumes the {} round at page {}.",
            if round.full { "full" } else { "delta" },
            round.pages + 1
        ),
        (None, None, _) => {
            "Next run: the scheduled job's next run (every hour by default) pulls the changes.".to_string()
        }
    };
    lines.push(next);
    let checked = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    Ok(Report {
        text: lines.join("\n"),
        json: json!({ "connection": connection, "state": { "last_run": st.last_run, "held": st.held,
                      "in_progress": st.round.is_some() }, "secret_expires_in_days": days_left,
                      "warning": expiry_warning, "checked": checked }),
    })
}

/// Every tenant's connection: name, enabled, last run and its result.
async fn list(backend: &Backend) -> anyhow::Result<Report> {
    let roster = &backend.roster;
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for t in roster.tenants().await.map_err(|e| anyhow!("{e}"))? {
        let Some(connection) = state::connection(roster, &t).await.map_err(|e| anyhow!("{e}"))? else { continue };
        let st = state::state(roster, &t).await.map_err(|e| anyhow!("{e}"))?;
        let last = st.last_run.as_ref().map_or("never run".to_string(), |r| format!("{} at {}", r.result, r.at));
        let next = match (connection.enabled, &st.round) {
            (false, _) => "none (disabled)",
            (true, Some(_)) => "resumes the round in progress",
            (true, None) => "the scheduled job's next run",
        };
        lines.push(format!(
            "{t}  \"{}\"  {}  last run: {last}  next: {next}",
            connection.name,
            if connection.enabled { "enabled" } else { "disabled" }
        ));
        rows.push(json!({ "tenant": t, "name": connection.name, "enabled": connection.enabled,
                          "last_run": st.last_run, "held": st.held, "next": next }));
    }
    if lines.is_empty() {
        lines.push("No tenant has a Microsoft Graph connection.".into());
    }
    Ok(Report { text: lines.join("\n"), json: json!({ "connections": rows }) })
}

pub async fn graph(backend: &Backend, command: GraphCommand) -> anyhow::Result<Report> {
    match command {
        GraphCommand::Connect(args) => connect(backend, args).await,
        GraphCommand::Show { tenant } => {
            let (_, connection) = existing(backend, &tenant).await?;
            Ok(Report { text: connection_text(&connection), json: connection_json(&connection) })
        }
        GraphCommand::Enable { tenant } => set_enabled(backend, &tenant, true).await,
        GraphCommand::Disable { tenant } => set_enabled(backend, &tenant, false).await,
        GraphCommand::Sync { tenant, full, allow_deletions } => {
            if allow_deletions && !full {
                bail!("--allow-deletions confirms a full round: use it with --full");
            }
            run_sync(backend, &tenant, Request { full, allow_deletions }).await
        }
        GraphCommand::Status { tenant } => status(backend, &tenant).await,
        GraphCommand::List => list(backend).await,
    }
}
