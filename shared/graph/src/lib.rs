//! The Microsoft Graph pull: for customers who do not push users over SCIM,
//! Lockstep pulls them from their Microsoft Entra directory.
//!
//! - [`client`]: the identity platform (client-credentials token, cached)
//!   and Graph's users delta, with retries and plain-words refusals;
//! - [`mapping`]: a Graph user as a Lockstep user (pure, table-tested);
//! - [`state`]: a tenant's connection and sync state in the table;
//! - [`sync`]: one tenant's pull, resumable page by page, with the
//!   deletion guard;
//! - [`GraphPull`]: the pull as a step of the scheduled job.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod client;
pub mod mapping;
pub mod state;
pub mod sync;

use std::sync::Arc;

use async_trait::async_trait;
use lockstep_core::job::{StepReport, TenantStep};
use lockstep_core::secrets::SecretStore;
use lockstep_core::{Roster, TenantId};

pub use client::Endpoints;

/// The pull as a step of the scheduled job: every tenant with an enabled
/// connection is pulled in its turn.
pub struct GraphPull {
    pub secrets: Arc<dyn SecretStore>,
    pub endpoints: Endpoints,
}

#[async_trait]
impl TenantStep for GraphPull {
    fn name(&self) -> &'static str {
        "graph pull"
    }

    async fn run(
        &self,
        roster: &Roster,
        tenant: &TenantId,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> lockstep_core::Result<StepReport> {
        let Some(tenant) = roster.tenant(tenant).await? else { return Ok(StepReport::nothing()) };
        let request = sync::Request::default();
        let Some(run) = sync::pull(roster, self.secrets.as_ref(), &self.endpoints, &tenant, request, stop).await?
        else {
            return Ok(StepReport::nothing());
        };
        let c = &run.counts;
        Ok(StepReport {
            complete: run.result != state::RunResult::InProgress,
            failure: run.result.needs_attention().then(|| run.error.clone()).flatten(),
            metrics: vec![
                ("GraphCreated", c.created),
                ("GraphUpdated", c.updated),
                ("GraphDeleted", c.deleted),
                ("GraphRestored", c.restored),
                ("GraphSkipped", c.skipped),
                ("GraphPages", c.pages),
                ("GraphThrottled", c.throttled),
                ("GraphFailed", c.failed + u64::from(run.result == state::RunResult::Failed)),
                ("GraphHeld", u64::from(run.result == state::RunResult::Held)),
            ],
        })
    }
}
