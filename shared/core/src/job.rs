//! The scheduled job: for every tenant, in turn, finish the membership
//! cleanups that deletes left unfinished, then purge what is past
//! retention. The Lambda function `job` runs it on an EventBridge schedule,
//! and `lockstep serve` in-process.
//!
//! - Bounded: `stop` is asked before each tenant and each purge, and the run
//!   ends when it says the time is up (the function stops well before its
//!   Lambda timeout). A checkpoint names the tenant to start with next, so
//!   the next run resumes there and every tenant gets its turn.
//! - Idempotent: every step can run twice, or in two overlapping runs, with
//!   the same result; each purged resource is counted by one run only.
//! - No Scan: tenants come from the sparse tenant index, due resources from
//!   the purge index, unfinished cleanups from their own partition.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model;
use crate::roster::Roster;
use crate::store::{Cond, Item, Write};
use crate::tenant::TenantId;

/// How old an unfinished membership cleanup must be before the job takes
/// it over: a younger one may belong to a delete that is still running.
pub const SWEEP_GRACE_SECS: i64 = 15 * 60;

/// What one tenant's turn does, in order: the job's own steps, then the
/// steps the running process adds (the Microsoft Graph pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Sweep,
    Purge,
}

const STEPS: [Step; 2] = [Step::Sweep, Step::Purge];

/// A step of every tenant's turn that lives outside the domain crate (the
/// Microsoft Graph pull, which needs an HTTP client).
#[async_trait]
pub trait TenantStep: Send + Sync {
    fn name(&self) -> &'static str;

    /// Run for one tenant until done or until `stop` says the time is up.
    async fn run(&self, roster: &Roster, tenant: &TenantId, stop: &(dyn Fn() -> bool + Sync)) -> Result<StepReport>;
}

/// What a step did for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// False when `stop` cut it short: the tenant's turn resumes next run.
    pub complete: bool,
    /// Why it failed (in plain words), if it did.
    pub failure: Option<String>,
    /// The step's metrics for this tenant (CloudWatch `Lockstep/<name>`,
    /// by stage and tenant).
    pub metrics: Vec<(&'static str, u64)>,
}

impl StepReport {
    /// A step with nothing to do for the tenant.
    pub fn nothing() -> Self {
        Self { complete: true, failure: None, metrics: Vec::new() }
    }
}

/// What a step did, for one tenant, in a run's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantStepReport {
    pub tenant: TenantId,
    pub step: &'static str,
    pub report: StepReport,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobReport {
    /// Tenants whose turn was finished.
    pub tenants: u64,
    pub purged_users: u64,
    pub purged_groups: u64,
    /// Membership cleanups finished for deletes that failed half-way.
    pub swept: u64,
    /// One line per tenant whose turn (or a step of it) failed; the others
    /// went on.
    pub failures: Vec<String>,
    /// What the added steps did, per tenant.
    pub steps: Vec<TenantStepReport>,
    /// Whether every tenant had its turn before `stop` said to end.
    pub complete: bool,
}

impl JobReport {
    /// The run's metrics, by name (CloudWatch `Lockstep/<name>`).
    pub fn counts(&self) -> [(&'static str, u64); 4] {
        [
            ("JobFailures", self.failures.len() as u64),
            ("PurgedUsers", self.purged_users),
            ("PurgedGroups", self.purged_groups),
            ("SweptDeletes", self.swept),
        ]
    }

    /// The metrics of a run that could not start (the tenants could not be
    /// listed): one failure.
    pub fn failed_counts() -> [(&'static str, u64); 4] {
        JobReport { failures: vec![String::new()], ..JobReport::default() }.counts()
    }
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    /// The tenant the next run starts with.
    next: TenantId,
}

/// Run the job once over every tenant, starting where the last run that
/// was cut short stopped. Fails only when the tenants cannot be listed;
/// a tenant's failure is reported and the others go on.
pub async fn run(roster: &Roster, steps: &[&dyn TenantStep], stop: &(dyn Fn() -> bool + Sync)) -> Result<JobReport> {
    let report = run_tenants(roster, steps, stop).await?;
    erase_if_purged(roster, &report).await?;
    Ok(report)
}

async fn run_tenants(
    roster: &Roster,
    steps: &[&dyn TenantStep],
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<JobReport> {
    let mut tenants = roster.tenants().await?;
    tenants.sort();
    if let Some(next) = read_checkpoint(roster).await? {
        let start = tenants.iter().position(|t| *t >= next.next).unwrap_or(0);
        tenants.rotate_left(start);
    }
    let mut report = JobReport::default();
    for tenant in &tenants {
        if stop() {
            write_checkpoint(roster, Some(tenant)).await?;
            return Ok(report);
        }
        match tenant_turn(roster, tenant, steps, stop, &mut report).await {
            Ok(true) => report.tenants += 1,
            Ok(false) => {
                write_checkpoint(roster, Some(tenant)).await?;
                return Ok(report);
            }
            Err(e) => {
                tracing::error!(tenant = %tenant, error = %e, "scheduled job: tenant failed");
                report.failures.push(format!("{tenant}: {e}"));
            }
        }
    }
    write_checkpoint(roster, None).await?;
    report.complete = true;
    Ok(report)
}

/// After a run that purged something, make the purged data unreadable
/// from the store's medium as well (the local file; nothing on DynamoDB).
async fn erase_if_purged(roster: &Roster, report: &JobReport) -> Result<()> {
    if report.purged_users + report.purged_groups > 0 {
        roster.erase_deleted().await?;
    }
    Ok(())
}

/// Finish every delete left unfinished, however recent: for a process
/// that has the store to itself and has just started, when no delete can
/// still be running (the local runner at start). Returns how many.
pub async fn sweep_all_now(roster: &Roster) -> Result<u64> {
    let mut finished = 0;
    for tenant in roster.tenants().await? {
        finished += roster.sweep(&tenant, 0).await?;
    }
    Ok(finished)
}

/// One tenant's steps; false when `stop` cut it short.
async fn tenant_turn(
    roster: &Roster,
    tenant: &TenantId,
    steps: &[&dyn TenantStep],
    stop: &(dyn Fn() -> bool + Sync),
    report: &mut JobReport,
) -> Result<bool> {
    for step in STEPS {
        match step {
            Step::Sweep => report.swept += roster.sweep(tenant, SWEEP_GRACE_SECS).await?,
            Step::Purge => {
                let purged = roster.purge(tenant, stop).await?;
                report.purged_users += purged.users;
                report.purged_groups += purged.groups;
                if !purged.complete {
                    return Ok(false);
                }
            }
        }
    }
    for step in steps {
        let done = step.run(roster, tenant, stop).await?;
        if let Some(why) = &done.failure {
            tracing::error!(tenant = %tenant, step = step.name(), error = %why, "scheduled job: step failed");
            report.failures.push(format!("{tenant}: {}: {why}", step.name()));
        }
        let complete = done.complete;
        // A step with nothing to do for the tenant (no Graph connection)
        // leaves no trace in the report or the logs.
        if !done.metrics.is_empty() || done.failure.is_some() {
            report.steps.push(TenantStepReport { tenant: tenant.clone(), step: step.name(), report: done });
        }
        if !complete {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn read_checkpoint(roster: &Roster) -> Result<Option<Checkpoint>> {
    let key = model::job_checkpoint();
    match roster.table().get(&key).await? {
        Some(item) => serde_json::from_str(&item.data).map(Some).map_err(|e| Error::corrupt(&key, e)),
        None => Ok(None),
    }
}

/// Overlapping runs may both write it: the last one wins, and either way
/// every tenant keeps getting its turn.
async fn write_checkpoint(roster: &Roster, next: Option<&TenantId>) -> Result<()> {
    let key = model::job_checkpoint();
    let write = match next {
        Some(next) => {
            let data =
                serde_json::to_string(&Checkpoint { next: next.clone() }).map_err(|e| Error::corrupt(&key, e))?;
            Write::Put {
                item: Item { pk: key.pk, sk: key.sk, version: 1, data, ..Item::default() },
                cond: Cond::Always,
            }
        }
        None => Write::Delete { key, cond: Cond::Always },
    };
    roster.table().write(write).await.map_err(Error::from)
}
