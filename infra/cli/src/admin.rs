//! Tenants, their settings and their tokens.

use anyhow::{anyhow, bail};
use lockstep_core::tokens::{self, TokenRecord};
use lockstep_core::{Tenant, TenantSettings};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::backend::{Backend, parse_tenant};
use crate::{Report, SettingsCommand, TenantCommand, TokenCommand};

fn base_url_line(backend: &Backend, tenant: &Tenant) -> String {
    match backend.base_url(&tenant.id) {
        Some(url) => url,
        None => format!("<API URL>/{}/scim/v2   (pass --public-url or set PUBLIC_URL to print it whole)", tenant.id),
    }
}

/// Apply `key=value` changes to settings; the keys and values are checked
/// by the settings type itself, so the CLI cannot drift from it.
fn apply_settings(settings: &TenantSettings, changes: &[String]) -> anyhow::Result<TenantSettings> {
    let mut object = match serde_json::to_value(settings)? {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    for change in changes {
        let (key, value) = change
            .split_once('=')
            .ok_or_else(|| anyhow!("'{change}' is not KEY=VALUE (e.g. deactivation=remove_from_groups)"))?;
        let key = key.trim();
        if !object.contains_key(key) {
            let known: Vec<&str> = object.keys().map(String::as_str).collect();
            bail!("there is no setting '{key}'; the settings are: {}", known.join(", "));
        }
        let value = serde_json::from_str(value.trim()).unwrap_or_else(|_| Value::String(value.trim().to_string()));
        object.insert(key.to_string(), value);
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| anyhow!("invalid setting: {e}"))
}

fn settings_text(settings: &TenantSettings) -> String {
    let value = serde_json::to_value(settings).unwrap_or_default();
    value
        .as_object()
        .map(|o| o.iter().map(|(k, v)| format!("  {k:<34} {v}")).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

pub async fn tenant(backend: &Backend, command: TenantCommand) -> anyhow::Result<Report> {
    match command {
        TenantCommand::Create { id, name, settings } => {
            let tid = parse_tenant(&id)?;
            let settings = apply_settings(&TenantSettings::default(), &settings)?;
            let tenant = backend
                .roster
                .create_tenant(&tid, name.as_deref().unwrap_or(&id), settings)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            let base_url = base_url_line(backend, &tenant);
            Ok(Report {
                text: format!(
                    "Created tenant {id}.\n  SCIM base URL: {base_url}\nNext: issue a token for it with\n  lockstep token issue {id} --label <what-it-is-for>"
                ),
                json: json!({ "tenant": tenant, "base_url": backend.base_url(&tenant.id) }),
            })
        }
        TenantCommand::List => {
            let ids = backend.roster.tenants().await.map_err(|e| anyhow!("{e}"))?;
            let text = if ids.is_empty() {
                format!("No tenants in {}.", backend.location)
            } else {
                ids.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
            };
            Ok(Report { text, json: json!({ "tenants": ids }) })
        }
        TenantCommand::Show { id } => {
            let tenant = backend.existing_tenant(&id).await?;
            let tokens = backend.tokens.load(&tenant.id).await.map_err(|e| anyhow!("{e}"))?;
            let graph =
                lockstep_graph::state::connection(&backend.roster, &tenant.id).await.map_err(|e| anyhow!("{e}"))?;
            let graph_line = match &graph {
                Some(c) => format!(
                    "\"{}\", {} (`lockstep graph status {}`)",
                    c.name,
                    if c.enabled { "enabled" } else { "disabled" },
                    tenant.id
                ),
                None => "none".to_string(),
            };
            let text = format!(
                "Tenant {}  ({})\n  created:       {}\n  SCIM base URL: {}\n  tokens:        {}\n  Graph pull:    {}\n\
                 Settings:\n{}",
                tenant.id,
                tenant.name,
                tenant.created,
                base_url_line(backend, &tenant),
                tokens.tokens.len(),
                graph_line,
                settings_text(&tenant.settings)
            );
            let json = json!({ "tenant": tenant, "base_url": backend.base_url(&tenant.id), "tokens": tokens.tokens.len(),
                               "graph": graph.map(|c| json!({ "name": c.name, "enabled": c.enabled })) });
            Ok(Report { text, json })
        }
    }
}

pub async fn settings(backend: &Backend, command: SettingsCommand) -> anyhow::Result<Report> {
    match command {
        SettingsCommand::Show { tenant } => {
            let tenant = backend.existing_tenant(&tenant).await?;
            Ok(Report {
                text: format!("Settings of {}:\n{}", tenant.id, settings_text(&tenant.settings)),
                json: serde_json::to_value(&tenant.settings)?,
            })
        }
        SettingsCommand::Set { tenant, changes } => {
            let current = backend.existing_tenant(&tenant).await?;
            let settings = apply_settings(&current.settings, &changes)?;
            let updated =
                backend.roster.update_tenant_settings(&current.id, settings).await.map_err(|e| anyhow!("{e}"))?;
            Ok(Report {
                text: format!(
                    "Updated the settings of {}:\n{}\nRunning functions apply them within their cache time (60 s).",
                    updated.id,
                    settings_text(&updated.settings)
                ),
                json: serde_json::to_value(&updated.settings)?,
            })
        }
    }
}

pub async fn reindex(backend: &Backend, tenant: &str) -> anyhow::Result<Report> {
    let tenant = backend.existing_tenant(tenant).await?;
    let done = backend.roster.reindex(&tenant).await.map_err(|e| anyhow!("{e}"))?;
    let mut text = format!(
        "Reindexed {}: {} resources checked, {} rewritten, {} refused.",
        tenant.id,
        done.checked,
        done.rewritten,
        done.refused.len()
    );
    for (id, why) in &done.refused {
        text.push_str(&format!("\n  {id}: {why}"));
    }
    let refused: Vec<Value> = done.refused.iter().map(|(id, why)| json!({ "id": id, "detail": why })).collect();
    Ok(Report {
        text,
        json: json!({ "tenant": tenant.id, "checked": done.checked, "rewritten": done.rewritten, "refused": refused }),
    })
}

/// `90d` or an RFC 3339 time, as an RFC 3339 time.
fn parse_expiry(text: &str, now: OffsetDateTime) -> anyhow::Result<String> {
    if let Some(days) = text.strip_suffix('d').and_then(|d| d.parse::<i64>().ok()) {
        if days <= 0 {
            bail!("--expires must be in the future");
        }
        return Ok(lockstep_core::clock::rfc3339(now + time::Duration::days(days)));
    }
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| anyhow!("--expires '{text}' is neither days (90d) nor an RFC 3339 time (2027-06-30T00:00:00Z)"))?;
    if at <= now {
        bail!("--expires {text} is in the past");
    }
    Ok(text.to_string())
}

fn token_line(t: &TokenRecord) -> String {
    format!(
        "{:<14} {:<20} created {}  expires {}  from {}",
        t.id,
        t.label.as_deref().unwrap_or("-"),
        t.created,
        t.expires.as_deref().unwrap_or("never"),
        if t.allow.is_empty() { "anywhere".to_string() } else { t.allow.join(", ") }
    )
}

/// The token's metadata for `--json`: everything but the hash.
fn token_json(t: &TokenRecord) -> Value {
    json!({ "id": t.id, "label": t.label, "created": t.created, "expires": t.expires, "allow": t.allow })
}

pub async fn token(backend: &Backend, command: TokenCommand) -> anyhow::Result<Report> {
    let now = OffsetDateTime::now_utc();
    match command {
        TokenCommand::Issue { tenant, label, expires, allow } => {
            let tenant = backend.existing_tenant(&tenant).await?;
            let expires = expires.map(|e| parse_expiry(&e, now)).transpose()?;
            let (text, record) = tokens::issue(label, expires, allow, now).map_err(|e| anyhow!("{e}"))?;
            tokens::add(backend.tokens.as_ref(), &tenant.id, &record).await.map_err(|e| anyhow!("{e}"))?;
            let base_url = base_url_line(backend, &tenant);
            Ok(Report {
                text: format!(
                    "Issued token {} for tenant {}.\n\n  Tenant URL:   {base_url}\n  Secret Token: {text}\n\n\
                     Copy the token now: it is not shown again (only its hash is kept).",
                    record.id, tenant.id
                ),
                json: json!({ "tenant": tenant.id, "base_url": backend.base_url(&tenant.id), "token": text,
                              "metadata": token_json(&record) }),
            })
        }
        TokenCommand::List { tenant } => {
            let tenant = backend.existing_tenant(&tenant).await?;
            let set = backend.tokens.load(&tenant.id).await.map_err(|e| anyhow!("{e}"))?;
            let text = if set.tokens.is_empty() {
                format!("Tenant {} has no tokens.", tenant.id)
            } else {
                set.tokens.iter().map(token_line).collect::<Vec<_>>().join("\n")
            };
            Ok(Report { text, json: json!({ "tokens": set.tokens.iter().map(token_json).collect::<Vec<_>>() }) })
        }
        TokenCommand::Revoke { tenant, id } => {
            let tenant = backend.existing_tenant(&tenant).await?;
            let revoked = tokens::revoke(backend.tokens.as_ref(), &tenant.id, &id).await.map_err(|e| anyhow!("{e}"))?;
            let Some(set) = revoked else {
                bail!("tenant {} has no token '{id}' (see: lockstep token list {})", tenant.id, tenant.id);
            };
            Ok(Report {
                text: format!(
                    "Revoked token {id} of tenant {}. Running functions refuse it within their cache time (60 s); \
                     {} token(s) remain.",
                    tenant.id,
                    set.tokens.len()
                ),
                json: json!({ "revoked": id, "remaining": set.tokens.len() }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_changes_are_checked_by_the_settings_type() {
        let base = TenantSettings::default();
        let s = apply_settings(&base, &["deactivation=remove_from_groups".into(), "retention_days=30".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.retention_days, 30);
        assert_eq!(s.deactivation, lockstep_core::tenant::Deactivation::RemoveFromGroups);
        let unknown = apply_settings(&base, &["nope=1".into()]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(unknown.contains("no setting 'nope'") && unknown.contains("retention_days"), "{unknown}");
        assert!(apply_settings(&base, &["deactivation=explode".into()]).is_err());
        assert!(apply_settings(&base, &["retention_days=-1".into()]).is_err());
        assert!(apply_settings(&base, &["no-equals".into()]).is_err());
    }

    #[test]
    fn expiry_is_days_or_a_future_time() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(parse_expiry("1d", now).ok().as_deref(), Some("2027-01-16T08:00:00Z"));
        assert!(parse_expiry("2030-01-01T00:00:00Z", now).is_ok());
        assert!(parse_expiry("2020-01-01T00:00:00Z", now).is_err());
        assert!(parse_expiry("0d", now).is_err());
        assert!(parse_expiry("soon", now).is_err());
    }
}
