//! The storage conformance suite: every access pattern of
//! docs/DATA_MODEL.md, run against both adapters (embedded redb, and
//! DynamoDB through the real AWS SDK against the emulator), plus the cost
//! of each operation counted per call.
//!
//! - `port`: the storage port itself, as DynamoDB behaves;
//! - `roster`: users, groups, membership, uniqueness, paging, costs;
//! - `lifecycle`: soft delete, restore, kept and unlinked groups, purge,
//!   and the scheduled job;
//! - `graph`: the Microsoft Graph pull against a fake Graph over HTTP;
//! - `token_sets`: tenant token sets in files and in Secrets Manager.

mod graph;
mod lifecycle;
mod port;
mod roster;
mod token_sets;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use lockstep_aws::SecretsManagerTokens;
use lockstep_core::clock::SystemClock;
use lockstep_core::counting::{Calls, CountingTable};
use lockstep_core::cursor::CursorKey;
use lockstep_core::store::{Cond, Index, Item, Key, Page, Query, SortKey, StoreError, Table, Write};
use lockstep_core::tenant::Deactivation;
use lockstep_core::tokens::{self, Revision, TokenSet, TokenStore};
use lockstep_core::{Kind, Limits, Roster, Stored, Tenant, TenantId, TenantSettings};
use lockstep_embedded::FileTokens;
use lockstep_tests::{Adapter, TestTable, fresh_table};
use scim_protocol::filter::Filter;
use scim_protocol::patch::MemberRef;
use scim_protocol::schema::{group, user};
use scim_protocol::{Object, Paging, PatchRequest, ScimError, ScimType, parse_resource};
use serde_json::{Value, json};

// -- fixtures ----------------------------------------------------------------

fn roster_on(table: Arc<dyn Table>) -> Roster {
    roster_with(table, Limits::default())
}

fn roster_with(table: Arc<dyn Table>, limits: Limits) -> Roster {
    let key = CursorKey::new(vec![7u8; 32]).unwrap_or_else(|e| panic!("{e}"));
    Roster::new(table, Arc::new(SystemClock), key, limits)
}

async fn tenant(roster: &Roster, id: &str) -> Tenant {
    tenant_with(roster, id, TenantSettings::default()).await
}

async fn tenant_with(roster: &Roster, id: &str, settings: TenantSettings) -> Tenant {
    let id = TenantId::parse(id).unwrap_or_else(|e| panic!("{e}"));
    roster.create_tenant(&id, "Test tenant", settings).await.unwrap_or_else(|e| panic!("{e}"))
}

fn user_attrs(user_name: &str) -> Object {
    parse_resource(user(), &json!({ "userName": user_name, "active": true })).unwrap_or_else(|e| panic!("{e}"))
}

fn group_attrs(name: &str) -> Object {
    parse_resource(group(), &json!({ "displayName": name })).unwrap_or_else(|e| panic!("{e}"))
}

async fn new_user(roster: &Roster, t: &Tenant, user_name: &str) -> Stored {
    roster.create(t, Kind::User, user_attrs(user_name), &[]).await.unwrap_or_else(|e| panic!("create {user_name}: {e}"))
}

async fn new_group(roster: &Roster, t: &Tenant, name: &str, members: &[&Stored]) -> Stored {
    let refs: Vec<MemberRef> = members.iter().map(|m| MemberRef { value: m.id.clone(), kind: None }).collect();
    roster.create(t, Kind::Group, group_attrs(name), &refs).await.unwrap_or_else(|e| panic!("create group {name}: {e}"))
}

fn scim(e: lockstep_core::Error) -> ScimError {
    ScimError::from(e)
}

fn filter(text: &str) -> Filter {
    Filter::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn index(start_index: u64, count: u64) -> Paging {
    Paging::Index { start_index, count: Some(count) }
}

async fn find(roster: &Roster, t: &Tenant, kind: Kind, text: &str) -> Vec<String> {
    let page = roster.search(&t.id, kind, Some(&filter(text)), &index(1, 100)).await.unwrap_or_else(|e| panic!("{e}"));
    page.resources.into_iter().map(|s| s.id).collect()
}

async fn member_ids(roster: &Roster, t: &Tenant, group: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let (page, next) = roster.members(&t.id, group, after, 500).await.unwrap_or_else(|e| panic!("{e}"));
        out.extend(page.into_iter().map(|m| m.id));
        match next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

fn item(pk: &str, sk: &str, version: u64) -> Item {
    Item { pk: pk.into(), sk: sk.into(), version, data: "{}".into(), ..Item::default() }
}

fn patch(body: Value) -> PatchRequest {
    PatchRequest::parse(&body).unwrap_or_else(|e| panic!("{e}"))
}

macro_rules! conformance {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::$module::$name(crate::fresh_table(crate::Adapter::Embedded).await).await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::$module::$name(crate::fresh_table(crate::Adapter::DynamoDb).await).await
                }
            )*
        }
    };
}

conformance!(
    port::conditional_writes,
    port::transactions_are_all_or_nothing,
    port::key_range_queries_page,
    roster::users_are_found_by_key,
    roster::unique_user_name_and_external_id,
    roster::concurrent_creates_one_winner,
    roster::updates_move_claims_and_check_versions,
    roster::tenant_policy_is_enforced,
    roster::membership_both_ways,
    roster::concurrent_member_adds_lose_nothing,
    roster::memberships_never_outlive_a_concurrent_delete,
    roster::a_retried_delete_finishes_the_cleanup,
    roster::a_delete_of_the_wrong_kind_touches_nothing,
    roster::concurrent_patches_are_serialised_not_refused,
    roster::oversized_resources_are_refused_alike,
    roster::external_id_uniqueness_by_policy,
    roster::work_emails_are_indexed,
    roster::reindex_brings_older_entries_in_line,
    roster::member_add_cost_is_independent_of_group_size,
    roster::operation_costs,
    roster::index_paging,
    roster::filters_and_cursors,
    roster::tenants_are_isolated,
    roster::group_names_by_policy,
    roster::look_alike_user_names_are_one_name,
    roster::the_directory_placement_is_owned_by_the_service,
    roster::reindex_moves_entries_to_the_current_key_form,
    lifecycle::deleted_users_leave_scim_and_free_their_names,
    lifecycle::restore_brings_a_user_back_or_says_why_not,
    lifecycle::purge_after_retention_leaves_nothing,
    lifecycle::every_change_is_reported_once,
    lifecycle::kept_and_unlinked_groups,
    lifecycle::soft_delete_deactivation,
    lifecycle::the_job_sweeps_a_half_failed_delete,
    lifecycle::overlapping_job_runs_purge_each_user_once,
    lifecycle::a_job_cut_off_by_its_budget_resumes,
    lifecycle::a_purge_removes_references_to_the_purged_user,
    lifecycle::purged_users_leave_nothing_in_the_store_file,
    graph::graph_pull_creates_updates_and_removes,
    graph::graph_users_match_existing_users_by_email,
    graph::graph_faults_are_retried_or_resynchronised,
    graph::graph_deletion_guard_holds_mass_deletions,
    graph::a_graph_pull_cut_off_resumes_at_its_next_link,
    graph::what_disappears_in_azure_disappears_here,
    graph::partial_delta_objects_change_only_what_they_carry,
    graph::a_changed_mapping_maps_every_user_anew,
    graph::held_deletions_hold_only_deletions,
    graph::a_user_restored_in_azure_is_restored_here,
    graph::a_pulling_tenant_never_has_two_users_with_one_work_email,
    graph::user_types_belong_to_a_unit,
);
