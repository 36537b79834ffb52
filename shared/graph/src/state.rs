//! A tenant's Microsoft Graph connection and the state of its sync, as
//! typed documents the directory keeps for the tenant (the client secret
//! is not here: it is in the secret store).

use lockstep_core::{PullDocument, Pulled, Roster, TenantId};
use serde::{Deserialize, Serialize};

use crate::client::is_platform_id;
use crate::mapping::Mapping;

/// The secret store name of the client secret.
pub const SECRET_NAME: &str = "graph-client-secret";

/// The share of a tenant's Graph users one round may soft-delete before it
/// holds for review, by default.
pub const DEFAULT_MAX_DELETE_PERCENT: u8 = 20;

/// A tenant's connection to its Microsoft Entra directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// What the operator calls it.
    pub name: String,
    /// The Directory (tenant) id.
    pub directory_id: String,
    /// The Application (client) id.
    pub client_id: String,
    /// When the client secret expires, as the admin sees it in Azure
    /// (`YYYY-MM-DD`).
    pub secret_expires: String,
    pub enabled: bool,
    pub mapping: Mapping,
    /// A round that would soft-delete more than this share of the tenant's
    /// Graph users deletes nothing and holds for review.
    #[serde(default = "default_max_delete_percent")]
    pub max_delete_percent: u8,
}

impl Connection {
    /// What a connection must be before it is stored: ids the identity
    /// platform's URLs can carry (a directory id may be a GUID or a domain
    /// such as `contoso.onmicrosoft.com`), a share for the guard, and a
    /// mapping with two different fields.
    pub fn check(&self) -> Result<(), String> {
        if !is_platform_id(&self.directory_id) {
            return Err(format!("'{}' is not a Directory (tenant) id: a GUID or a domain name", self.directory_id));
        }
        if !is_platform_id(&self.client_id) {
            return Err(format!("'{}' is not an Application (client) id: a GUID", self.client_id));
        }
        if self.max_delete_percent > 100 {
            return Err("the deletion guard is a share of the users, 0 to 100 percent".into());
        }
        self.mapping.check()
    }
}

fn default_max_delete_percent() -> u8 {
    DEFAULT_MAX_DELETE_PERCENT
}

/// Counts of a run (or a round), the metrics of a tenant's pull.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    /// Users the directory restored, restored here with their ids.
    #[serde(default)]
    pub restored: u64,
    pub skipped: u64,
    pub pages: u64,
    pub throttled: u64,
    pub failed: u64,
    /// Users pulled without a unit (unassigned), and without a user type,
    /// with why (the field is empty, or names nothing known).
    #[serde(default)]
    pub without_unit: std::collections::BTreeMap<String, u64>,
    #[serde(default)]
    pub without_user_types: std::collections::BTreeMap<String, u64>,
    /// Why users were skipped, with how many.
    #[serde(default)]
    pub skipped_why: std::collections::BTreeMap<String, u64>,
    /// The first skipped users by name (user principal name, mail, or
    /// object id), with why: at most [`SKIPPED_NAMED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_users: Vec<(String, String)>,
}

/// How many skipped users a run names.
pub const SKIPPED_NAMED: usize = 100;

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.deleted += other.deleted;
        self.restored += other.restored;
        self.skipped += other.skipped;
        self.pages += other.pages;
        self.throttled += other.throttled;
        self.failed += other.failed;
        for (why, n) in &other.skipped_why {
            *self.skipped_why.entry(why.clone()).or_default() += n;
        }
        for (why, n) in &other.without_unit {
            *self.without_unit.entry(why.clone()).or_default() += n;
        }
        for (why, n) in &other.without_user_types {
            *self.without_user_types.entry(why.clone()).or_default() += n;
        }
        let room = SKIPPED_NAMED.saturating_sub(self.skipped_users.len());
        self.skipped_users.extend(other.skipped_users.iter().take(room).cloned());
    }

    /// Count what the pull did with one user.
    pub(crate) fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Pulled(pulled, (no_unit, no_types)) => {
                match pulled {
                    Pulled::Created => self.created += 1,
                    Pulled::Updated => self.updated += 1,
                    Pulled::Unchanged => self.unchanged += 1,
                    Pulled::Restored => self.restored += 1,
                }
                if let Some(why) = no_unit {
                    *self.without_unit.entry(why).or_default() += 1;
                }
                if let Some(why) = no_types {
                    *self.without_user_types.entry(why).or_default() += 1;
                }
            }
            Outcome::Skipped { user, why } => {
                self.skipped += 1;
                *self.skipped_why.entry(why.clone()).or_default() += 1;
                if self.skipped_users.len() < SKIPPED_NAMED {
                    self.skipped_users.push((user, why));
                }
            }
            Outcome::Failed => self.failed += 1,
        }
    }
}

/// A round in progress: a full one starts from the beginning and, at its
/// end, soft-deletes the Graph users it did not see; a delta round starts
/// from the last delta link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub id: String,
    pub full: bool,
    /// Where it resumes.
    pub next_link: String,
    pub pages: u64,
    /// Deletions beyond the guard were confirmed by an operator.
    #[serde(default)]
    pub allow_deletions: bool,
    /// The counts so far.
    #[serde(default)]
    pub counts: Counts,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// The round ended: the next run starts from its delta link.
    Ok,
    /// Cut off by its time budget; the next run resumes where it stopped.
    InProgress,
    /// Deletions wait for an operator's review (everything else applied).
    Held,
    /// The run could not finish (refused credentials, Graph unreachable).
    Failed,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::InProgress => "in_progress",
            RunResult::Held => "held",
            RunResult::Failed => "failed",
        }
    }

    /// Whether the run needs a person: a failure, or deletions held.
    pub fn needs_attention(self) -> bool {
        matches!(self, RunResult::Held | RunResult::Failed)
    }
}

impl std::fmt::Display for RunResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RunResult {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How the last run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub at: String,
    pub result: RunResult,
    pub counts: Counts,
    /// What went wrong, in plain words.
    #[serde(default)]
    pub error: Option<String>,
}

/// A tenant's sync state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    #[serde(default)]
    pub round: Option<Round>,
    /// Where the next delta round starts.
    #[serde(default)]
    pub delta_link: Option<String>,
    /// An operator asked for a full round (`graph sync --full`).
    #[serde(default)]
    pub full_requested: bool,
    #[serde(default)]
    pub allow_deletions: bool,
    /// Set while deletions are held for review: runs go on with everything
    /// else, and delete nobody, until an operator confirms or starts over.
    #[serde(default)]
    pub held: Option<String>,
    #[serde(default)]
    pub last_run: Option<LastRun>,
}

pub async fn connection(roster: &Roster, t: &TenantId) -> lockstep_core::Result<Option<Connection>> {
    roster.pull_document(t, PullDocument::Connection).await
}

pub async fn save_connection(roster: &Roster, t: &TenantId, c: &Connection) -> lockstep_core::Result<()> {
    roster.save_pull_document(t, PullDocument::Connection, c).await
}

pub async fn state(roster: &Roster, t: &TenantId) -> lockstep_core::Result<SyncState> {
    Ok(roster.pull_document(t, PullDocument::State).await?.unwrap_or_default())
}

pub async fn save_state(roster: &Roster, t: &TenantId, s: &SyncState) -> lockstep_core::Result<()> {
    roster.save_pull_document(t, PullDocument::State, s).await
}

/// What the pull did with one user of a page.
pub(crate) enum Outcome {
    /// Pulled, with why it has no unit or no user type, if so.
    Pulled(Pulled, (Option<String>, Option<String>)),
    /// Not pulled, and why; the user as named in the directory.
    Skipped {
        user: String,
        why: String,
    },
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{SourceField, UserNameSource};

    fn connection() -> Connection {
        Connection {
            name: "Contoso".into(),
            directory_id: "8d9e3a1f-0000-4000-8000-00000000d1d1".into(),
            client_id: "2b6c0f9e-0000-4000-8000-00000000c11e".into(),
            secret_expires: "2027-06-30".into(),
            enabled: true,
            mapping: Mapping {
                user_name_from: UserNameSource::UserPrincipalName,
                unit_field: SourceField::Department,
                user_types_field: SourceField::JobTitle,
                units: Vec::new(),
                user_types: Vec::new(),
            },
            max_delete_percent: 20,
        }
    }

    #[test]
    fn connections_carry_only_ids_a_url_can_hold() {
        assert!(connection().check().is_ok());
        assert!(Connection { directory_id: "contoso.onmicrosoft.com".into(), ..connection() }.check().is_ok());
        for bad in ["", "a/b", "x?y=1", "evil.example/#", "a b", "..%2f", &"a".repeat(101)] {
            assert!(Connection { directory_id: bad.into(), ..connection() }.check().is_err(), "{bad}");
            assert!(Connection { client_id: bad.into(), ..connection() }.check().is_err(), "{bad}");
        }
        assert!(Connection { max_delete_percent: 101, ..connection() }.check().is_err());
        let same = Mapping { user_types_field: SourceField::Department, ..connection().mapping };
        assert!(Connection { mapping: same, ..connection() }.check().is_err());
    }
}
