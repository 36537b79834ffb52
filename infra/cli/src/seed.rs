//! Generated users and a group, loaded through the real create and PATCH
//! paths, for load tests and demos.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use lockstep_core::{Kind, Roster, Tenant};
use scim_protocol::schema::{group, user};
use scim_protocol::{PatchRequest, parse_resource};
use serde_json::json;

use crate::backend::{Backend, parse_tenant};
use crate::{Report, SeedArgs};

/// What a load made.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub user_ids: Vec<String>,
    pub group_id: Option<String>,
    pub users_took: Duration,
    pub group_took: Duration,
}

/// The userName of generated user `i`.
pub fn user_name(i: usize) -> String {
    format!("user{i:06}@example.com")
}

/// Create `users` users (`user000000@example.com`, ...) and, when
/// `group_members > 0`, one group "Everyone" holding the first ones.
pub async fn load(roster: &Roster, tenant: &Tenant, users: usize, group_members: usize) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let mut user_ids = Vec::with_capacity(users);
    for i in 0..users {
        let attrs = parse_resource(
            user(),
            &json!({
                "userName": user_name(i),
                "externalId": format!("ext-{i:06}"),
                "name": { "givenName": "Test", "familyName": format!("User {i}") },
                "emails": [{ "value": user_name(i), "type": "work", "primary": true }],
                "active": true
            }),
        )?;
        user_ids.push(roster.create(tenant, Kind::User, attrs, &[]).await.map_err(|e| anyhow!("{e}"))?.id);
    }
    let users_took = started.elapsed();
    let started = Instant::now();
    let mut group_id = None;
    if group_members > 0 {
        let attrs = parse_resource(group(), &json!({ "displayName": "Everyone" }))?;
        let everyone = roster.create(tenant, Kind::Group, attrs, &[]).await.map_err(|e| anyhow!("{e}"))?;
        // In PATCHes of 100, the way identity providers add members.
        for chunk in user_ids[..group_members.min(users)].chunks(100) {
            let values: Vec<_> = chunk.iter().map(|id| json!({ "value": id })).collect();
            let add =
                PatchRequest::parse(&json!({ "Operations": [{ "op": "Add", "path": "members", "value": values }] }))?;
            roster.patch(tenant, Kind::Group, &everyone.id, &add, None).await.map_err(|e| anyhow!("{e}"))?;
        }
        group_id = Some(everyone.id);
    }
    Ok(Loaded { user_ids, group_id, users_took, group_took: started.elapsed() })
}

pub async fn seed(backend: &Backend, args: &SeedArgs) -> anyhow::Result<Report> {
    let table = backend.local_only("seed")?;
    let id = parse_tenant(&args.tenant)?;
    let (tenant, _) = backend.tenant_or_create(&id).await?;
    // Bulk mode: one durable commit at the end instead of one per write.
    table.bulk_load();
    let loaded = load(&backend.roster, &tenant, args.users, args.group_members).await;
    table.finish_bulk_load().await.map_err(|e| anyhow!("{e}"))?;
    let loaded = loaded?;
    let sample = loaded.user_ids.get(loaded.user_ids.len() / 2).cloned();
    Ok(Report {
        text: format!(
            "Loaded {} users into tenant {} in {:.1} s{}.{}",
            loaded.user_ids.len(),
            tenant.id,
            loaded.users_took.as_secs_f64(),
            loaded
                .group_id
                .as_ref()
                .map(|g| format!(" and group {g} with {} members", args.group_members))
                .unwrap_or_default(),
            sample
                .as_ref()
                .map(|s| format!("\nA user in the middle: id {s}, userName {}", user_name(loaded.user_ids.len() / 2)))
                .unwrap_or_default()
        ),
        json: json!({
            "tenant": tenant.id,
            "users": loaded.user_ids.len(),
            "group_id": loaded.group_id,
            "sample_user_id": sample,
            "sample_user_name": (!loaded.user_ids.is_empty()).then(|| user_name(loaded.user_ids.len() / 2)),
            "seconds": loaded.users_took.as_secs_f64() + loaded.group_took.as_secs_f64(),
        }),
    })
}
