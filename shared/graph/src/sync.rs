//! The pull of one tenant: a round of Graph's users delta, page by page,
//! each page applied (create, update, link by email, deactivate) and
//! checkpointed, so that a run cut off by its time budget resumes at the
//! next link. A round ends with the delta link the next round starts from;
//! a full round also soft-deletes the Graph users it did not see. The
//! deletion guard holds a round whose deletions are too many.

use std::collections::HashMap;

use futures::StreamExt;
use lockstep_core::secrets::SecretStore;
use lockstep_core::{Link, Roster, RoundNote, Tenant};

use crate::client::{Credentials, DeltaPage, DeltaUser, Endpoints, GraphClient, GraphError};
use crate::mapping::{GraphUser, map_user, merge_delta, placement_gaps};
use crate::state::{self, Connection, Counts, LastRun, Outcome, Round, RunResult, SECRET_NAME, SyncState};

/// Users of a page pulled at once.
const CONCURRENCY: usize = 8;

/// What an operator asks of a run (`graph sync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Request {
    /// Start a full round now.
    pub full: bool,
    /// Apply the deletions of this round even beyond the guard.
    pub allow_deletions: bool,
}

fn now() -> String {
    lockstep_core::clock::rfc3339(time::OffsetDateTime::now_utc())
}

/// Pull a tenant's users until the round ends or `stop` says the time is
/// up. `None` when the tenant has no enabled connection. The outcome is
/// also stored as the tenant's last run.
pub async fn pull(
    roster: &Roster,
    secrets: &dyn SecretStore,
    endpoints: &Endpoints,
    tenant: &Tenant,
    request: Request,
    stop: &(dyn Fn() -> bool + Sync),
) -> lockstep_core::Result<Option<LastRun>> {
    let t = &tenant.id;
    let Some(connection) = state::connection(roster, t).await? else { return Ok(None) };
    if !connection.enabled {
        return Ok(None);
    }
    let mut st = state::state(roster, t).await?;
    if request.full {
        // A full round starts over: what a round in progress noted goes.
        if let Some(old) = st.round.take() {
            roster.forget_round(&tenant.id, &old.id).await?;
        }
        st.full_requested = true;
        st.held = None;
        st.allow_deletions = request.allow_deletions;
    }
    // Held deletions hold only the deletions: creates, updates and
    // deactivations go on every run until an operator decides.
    let run = run_round(roster, secrets, endpoints, tenant, &connection, &mut st, stop).await?;
    st.last_run = Some(run.clone());
    state::save_state(roster, t, &st).await?;
    Ok(Some(run))
}

/// What connecting did besides storing the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connected {
    /// The mapping (or the directory) changed: the next pull is a full round.
    pub remapped: bool,
    /// Work emails were made unique in the tenant just now.
    pub unique_work_emails: bool,
    /// Users whose work email another user has too (id, why): they keep
    /// their email, but no other user may take it, and the pull cannot
    /// match them by it until one of them changes.
    pub shared_work_emails: Vec<(String, String)>,
}

/// Store a tenant's connection. Connecting again with another mapping (or
/// to another directory) starts a full round, so that every user is mapped
/// anew and the delta link of the old mapping (which selected other
/// fields) is not followed again. A tenant that pulls matches users by work
/// email, so its work emails become unique (`unique_work_emails`, the
/// index entries rewritten at once).
pub async fn connect(roster: &Roster, tenant: &Tenant, connection: &Connection) -> lockstep_core::Result<Connected> {
    let t = &tenant.id;
    let mut outcome = Connected::default();
    if !tenant.settings.unique_work_emails {
        let settings = lockstep_core::TenantSettings { unique_work_emails: true, ..tenant.settings.clone() };
        let updated = roster.update_tenant_settings(t, settings).await?;
        outcome.shared_work_emails = roster.reindex(&updated).await?.refused;
        outcome.unique_work_emails = true;
    }
    let before = state::connection(roster, t).await?;
    state::save_connection(roster, t, connection).await?;
    outcome.remapped =
        before.is_some_and(|b| b.mapping != connection.mapping || b.directory_id != connection.directory_id);
    if outcome.remapped {
        let mut st = state::state(roster, t).await?;
        if let Some(old) = st.round.take() {
            roster.forget_round(&tenant.id, &old.id).await?;
        }
        st.delta_link = None;
        st.full_requested = true;
        state::save_state(roster, t, &st).await?;
    }
    Ok(outcome)
}

async fn run_round(
    roster: &Roster,
    secrets: &dyn SecretStore,
    endpoints: &Endpoints,
    tenant: &Tenant,
    connection: &Connection,
    st: &mut SyncState,
    stop: &(dyn Fn() -> bool + Sync),
) -> lockstep_core::Result<LastRun> {
    let t = &tenant.id;
    let failed =
        |counts: Counts, why: String| LastRun { at: now(), result: RunResult::Failed, counts, error: Some(why) };
    let Some(secret) = secrets.get(t, SECRET_NAME).await? else {
        return Ok(failed(Counts::default(), "no client secret is stored: connect again with the secret".into()));
    };
    let credentials =
        Credentials { directory_id: connection.directory_id.clone(), client_id: connection.client_id.clone(), secret };
    let client = match GraphClient::new(endpoints.clone(), credentials) {
        Ok(c) => c,
        Err(e) => return Ok(failed(Counts::default(), e.to_string())),
    };
    let select = connection.mapping.select();
    let mut round = match st.round.take() {
        Some(r) => r,
        None => new_round(&client, &select, st),
    };
    loop {
        if stop() {
            let counts = round.counts.clone();
            st.round = Some(round);
            return Ok(LastRun { at: now(), result: RunResult::InProgress, counts, error: None });
        }
        let page = match client.delta_page(&round.next_link).await {
            Ok(page) => page,
            Err(GraphError::Resync) if !(round.full && round.pages == 0) => {
                // The delta state expired: start over with a full round.
                roster.forget_round(&tenant.id, &round.id).await?;
                st.delta_link = None;
                st.full_requested = true;
                round = new_round(&client, &select, st);
                continue;
            }
            Err(e) => {
                let counts = round.counts.clone();
                st.round = Some(round);
                return Ok(failed(counts, e.to_string()));
            }
        };
        apply_page(roster, tenant, connection, &mut round, &page).await?;
        match (page.next_link, page.delta_link) {
            (Some(next), _) => {
                round.next_link = next;
                st.round = Some(round.clone());
                state::save_state(roster, t, st).await?;
            }
            (None, Some(delta)) => return finish_round(roster, tenant, connection, st, round, delta).await,
            (None, None) => {
                let counts = round.counts.clone();
                return Ok(failed(
                    counts,
                    "a page of Microsoft Graph's answer had neither a next nor a delta link".into(),
                ));
            }
        }
    }
}

fn new_round(client: &GraphClient, select: &str, st: &SyncState) -> Round {
    let full = st.full_requested || st.delta_link.is_none();
    let next_link = match (&st.delta_link, full) {
        (Some(delta), false) => delta.clone(),
        _ => client.first_page_url(select),
    };
    Round {
        id: uuid::Uuid::new_v4().simple().to_string(),
        full,
        next_link,
        pages: 0,
        allow_deletions: st.allow_deletions,
        counts: Counts::default(),
    }
}

/// Apply one page: removals are noted for the round's end; users are
/// mapped and pulled (a few at a time); a full round notes whom it saw.
async fn apply_page(
    roster: &Roster,
    tenant: &Tenant,
    connection: &Connection,
    round: &mut Round,
    page: &DeltaPage,
) -> lockstep_core::Result<()> {
    round.pages += 1;
    round.counts.pages += 1;
    round.counts.throttled += u64::from(page.throttled);
    let (removed, present): (Vec<&DeltaUser>, Vec<&DeltaUser>) = page.users.iter().partition(|u| u.removed);
    let ids: Vec<String> = present.iter().map(|u| u.id.clone()).collect();
    let links = roster.links(&tenant.id, &ids).await?;
    // The futures are made first: a stream that maps borrowed users as it
    // goes is not provably `Send` (a known limit of the compiler).
    let pulls: Vec<_> = present.iter().map(|u| pull_one(roster, tenant, connection, u, links.get(&u.id))).collect();
    let outcomes: Vec<Outcome> = futures::stream::iter(pulls).buffer_unordered(CONCURRENCY).collect().await;
    for outcome in outcomes {
        round.counts.count(outcome);
    }
    let gone: Vec<String> = removed.iter().map(|u| u.id.clone()).collect();
    if !gone.is_empty() {
        roster.note_round_page(&tenant.id, &round.id, round.pages, RoundNote::Gone, &gone).await?;
    }
    if round.full && !ids.is_empty() {
        roster.note_round_page(&tenant.id, &round.id, round.pages, RoundNote::Seen, &ids).await?;
    }
    Ok(())
}

async fn pull_one(
    roster: &Roster,
    tenant: &Tenant,
    connection: &Connection,
    delta: &DeltaUser,
    link: Option<&Link>,
) -> Outcome {
    let skipped = |why: String| Outcome::Skipped { user: delta.id.clone(), why };
    // The object id becomes a key: one that cannot be an id is refused
    // before anything is written.
    if !lockstep_core::is_possible_id(&delta.id) {
        return skipped("an object id that is not a valid id".into());
    }
    // A delta object may carry only what changed: the rest is what was
    // known of the user.
    let known = merge_delta(link.map(|l| &l.known), &delta.properties);
    let user = GraphUser::from_properties(&delta.id, &known);
    let named = |why: String| Outcome::Skipped {
        user: user.user_principal_name.clone().or_else(|| user.mail.clone()).unwrap_or_else(|| delta.id.clone()),
        why,
    };
    let attrs = match map_user(&user, &connection.mapping) {
        Ok(attrs) => attrs,
        Err(skip) => return named(skip.describe().to_string()),
    };
    let attrs =
        match scim_protocol::parse_service_resource(scim_protocol::schema::user(), &serde_json::Value::Object(attrs)) {
            Ok(attrs) => attrs,
            Err(e) => return named(format!("refused by the SCIM rules: {}", e.detail)),
        };
    let gaps = placement_gaps(&user, &connection.mapping);
    match roster.pull_user(tenant, &delta.id, link, &attrs, &known).await {
        Ok(p) => Outcome::Pulled(p, gaps),
        Err(e) if !e.is_server_error() => named(format!("refused: {}", scim_protocol::ScimError::from(e).detail)),
        Err(e) => {
            tracing::error!(tenant = %tenant.id, graph_user = %delta.id, error = %e, "graph pull: a user failed");
            Outcome::Failed
        }
    }
}

/// The end of a round: soft-delete what the directory removed (and, after
/// a full round, the Graph users not seen), unless that is more than the
/// guard allows; then keep the delta link for the next round.
async fn finish_round(
    roster: &Roster,
    tenant: &Tenant,
    connection: &Connection,
    st: &mut SyncState,
    mut round: Round,
    delta_link: String,
) -> lockstep_core::Result<LastRun> {
    let (seen, gone) = roster.round_notes(&tenant.id, &round.id).await?;
    let links: HashMap<String, String> = roster.all_links(&tenant.id).await?.into_iter().collect();
    let mut deletions: Vec<(&String, &String)> = links
        .iter()
        .filter(|(graph_id, _)| gone.contains(*graph_id) || (round.full && !seen.contains(*graph_id)))
        .collect();
    deletions.sort();
    let allowed = u64::from(connection.max_delete_percent) * (links.len() as u64);
    let too_many = (deletions.len() as u64) * 100 > allowed;
    if (too_many || st.held.is_some()) && !round.allow_deletions {
        // The deletions wait for an operator; the round's other changes are
        // applied, and the next rounds go on from its delta link. The
        // confirming full round finds every user to delete again.
        let why = match (&st.held, too_many) {
            (Some(held), false) => held.clone(),
            _ => format!(
                "this round would soft-delete {} of the tenant's {} users from Microsoft Graph, more than {}%: no \
                 user was deleted (creates and updates go on). If that is right, confirm with `lockstep graph sync {} \
                 --full --allow-deletions`",
                deletions.len(),
                links.len(),
                connection.max_delete_percent,
                tenant.id
            ),
        };
        tracing::warn!(tenant = %tenant.id, deletions = deletions.len(), "graph pull: deletions held for review");
        roster.forget_round(&tenant.id, &round.id).await?;
        st.held = Some(why.clone());
        st.round = None;
        st.delta_link = Some(delta_link);
        st.full_requested = false;
        return Ok(LastRun { at: now(), result: RunResult::Held, counts: round.counts, error: Some(why) });
    }
    // What the round noted goes only after the deletions: a run that fails
    // among them resumes at the round's last page and finds it all again.
    for (graph_id, user_id) in deletions {
        if roster.remove_pulled(tenant, graph_id, user_id).await? {
            round.counts.deleted += 1;
        }
    }
    roster.forget_round(&tenant.id, &round.id).await?;
    st.delta_link = Some(delta_link);
    st.round = None;
    st.full_requested = false;
    st.allow_deletions = false;
    st.held = None;
    Ok(LastRun { at: now(), result: RunResult::Ok, counts: round.counts, error: None })
}
