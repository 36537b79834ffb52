//! `lockstep`: the operator CLI and the local runner.
//!
//! Every command works on one of two backends: the local store (a redb file
//! and token files under `--data-dir`, what `lockstep serve` serves) or a
//! deployment on AWS (`--backend aws`: the DynamoDB table and the Secrets
//! Manager tokens named by `TABLE_NAME` and `TOKEN_SECRET_PREFIX`, with the
//! SDK's usual credentials, region and endpoint overrides).
//!
//! Commands return a [`Report`]: text for people, or JSON with `--json`.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod admin;
mod backend;
mod graph;
mod lifecycle;
pub mod seed;
mod serve;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

pub use backend::Backend;

#[derive(Debug, Parser)]
#[command(name = "lockstep", version, about = "Lockstep SCIM 2.0 provisioning: local runner and operator CLI")]
pub struct Cli {
    /// Where tenants, users, groups and tokens live.
    #[arg(long, value_enum, global = true, env = "LOCKSTEP_BACKEND", default_value = "local")]
    pub backend: BackendKind,
    /// The local store's folder (backend `local`).
    #[arg(long, global = true, env = "LOCKSTEP_DATA_DIR", default_value = ".lockstep")]
    pub data_dir: PathBuf,
    /// The URL clients reach the service at, for printing base URLs (the
    /// stack's `ApiUrl` output, a custom domain, or a tunnel).
    #[arg(long, global = true, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The embedded store under `--data-dir`.
    Local,
    /// DynamoDB and Secrets Manager (`TABLE_NAME`, `TOKEN_SECRET_PREFIX`).
    Aws,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every SCIM route on localhost over the local store. On first
    /// start, creates the tenant and prints its base URL and a token.
    Serve(ServeArgs),
    /// Load generated users (and one group) into a local tenant, for load
    /// tests and demos.
    Seed(SeedArgs),
    /// Create, list and show tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Show and change a tenant's policy settings.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Issue, list and revoke a tenant's bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Rewrite a tenant's index entries to match its resources and current
    /// settings: after an upgrade that adds an index, or after changing
    /// `unique_group_names` or `unique_external_ids`. Safe to repeat.
    Reindex { tenant: String },
    /// List and show a tenant's users, deleted ones included.
    #[command(subcommand)]
    Users(UsersCommand),
    /// List and show a tenant's groups, kept and unlinked ones included.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Restore a deleted user.
    #[command(subcommand)]
    User(UserCommand),
    /// Unlink a group from the roster, or delete a kept or unlinked one.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Show (`--dry-run`) or purge (`--now`) what is past retention in a
    /// tenant, without waiting for the scheduled job.
    Purge(PurgeArgs),
    /// The scheduled job (sweep, purge, Microsoft Graph pull, over every
    /// tenant).
    #[command(subcommand)]
    Job(JobCommand),
    /// A tenant's Microsoft Graph connection (users pulled from Microsoft
    /// Entra ID): connect, show, enable, disable, sync, status.
    #[command(subcommand)]
    Graph(GraphCommand),
}

#[derive(Debug, Subcommand)]
pub enum GraphCommand {
    /// Connect a tenant to its Microsoft Entra roster. The client
    /// secret's Value is read from standard input and never shown again.
    Connect(ConnectArgs),
    /// The connection (never the secret).
    Show { tenant: String },
    /// Let the scheduled job pull the tenant's users.
    Enable { tenant: String },
    /// Stop pulling (users already pulled stay as they are).
    Disable { tenant: String },
    /// Pull now: the changes since the last run, or with `--full` every
    /// user (then users no longer in the directory are soft-deleted).
    Sync {
        tenant: String,
        #[arg(long)]
        full: bool,
        /// Confirm a full round whose deletions the guard held.
        #[arg(long)]
        allow_deletions: bool,
    },
    /// The last run, its counts and error (skipped users by name), the
    /// next run, and the secret's expiry.
    Status { tenant: String },
    /// Every tenant's connection: name, enabled, last run, next run.
    List,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    pub tenant: String,
    /// What to call the connection.
    #[arg(long, default_value = "Microsoft Entra ID")]
    pub name: String,
    /// The Directory (tenant) id, from the app registration's Overview.
    #[arg(long)]
    pub directory_id: String,
    /// The Application (client) id, from the app registration's Overview.
    #[arg(long)]
    pub client_id: String,
    /// When the client secret expires, as Azure shows it (YYYY-MM-DD).
    #[arg(long)]
    pub secret_expires: String,
    /// The Azure field the unit comes from (jobTitle, companyName,
    /// department, streetAddress, state, country, officeLocation, city,
    /// postalCode).
    #[arg(long)]
    pub unit_field: String,
    /// The Azure field the user types come from (another one).
    #[arg(long)]
    pub user_types_field: String,
    /// A unit the product knows; repeat for each.
    #[arg(long = "unit", value_name = "UNIT")]
    pub units: Vec<String>,
    /// A user type the product knows; repeat for each.
    #[arg(long = "user-type", value_name = "TYPE")]
    pub user_types: Vec<String>,
    /// userName from the mail instead of the user principal name.
    #[arg(long)]
    pub user_name_from_mail: bool,
    /// A round that would soft-delete more than this share of the
    /// tenant's users from Graph deletes nothing and holds for review.
    #[arg(long, default_value_t = lockstep_graph::state::DEFAULT_MAX_DELETE_PERCENT)]
    pub max_delete_percent: u8,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Every user: live (active or inactive) and deleted, with when, why
    /// and until when a deleted one is kept.
    List { tenant: String },
    /// One user, live or deleted.
    Show { tenant: String, id: String },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Every group: linked to the roster, kept after the roster
    /// deleted it, or unlinked.
    List { tenant: String },
    /// One group.
    Show { tenant: String, id: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Bring a deleted user back as it was: same id, deactivated, in the
    /// groups it was in that still exist. Refused if its userName (or a
    /// unique externalId) has been taken meanwhile.
    Restore { tenant: String, id: String },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Unlink a group: it keeps its members and becomes the application's
    /// own; the directory no longer updates it, and a later push of the
    /// same group creates a new one.
    Unlink { tenant: String, id: String },
    /// Delete a kept or unlinked group for good, with its memberships.
    Delete { tenant: String, id: String },
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    pub tenant: String,
    /// List what is due for purge; change nothing.
    #[arg(long, conflicts_with = "now", required_unless_present = "now")]
    pub dry_run: bool,
    /// Purge what is due now.
    #[arg(long)]
    pub now: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Run the scheduled job once, over every tenant.
    Run,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// The address to listen on; `0.0.0.0` to accept other machines.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// The tenant created on first start.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Issue one more token for the tenant at start.
    #[arg(long)]
    pub new_token: bool,
    /// The most connections served at once; more are answered 503.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Seconds a connection has to send each request head (also how long
    /// an idle kept-alive connection stays open).
    #[arg(long, default_value_t = 15)]
    pub header_timeout: u64,
    /// The most connections from one address at once (trusted proxies
    /// excepted); more are answered 503.
    #[arg(long, default_value_t = 64)]
    pub max_connections_per_peer: usize,
    /// Seconds a new connection has to send its first byte.
    #[arg(long, default_value_t = 5)]
    pub first_byte_timeout: u64,
    /// The most requests of one tenant in progress at once; more wait up
    /// to 10 s for a place, then are answered 429.
    #[arg(long, default_value_t = 8)]
    pub max_requests_per_tenant: usize,
    /// Seconds between log lines that count refused and timed-out
    /// connections (one line per interval at most, only when there were some).
    #[arg(long, default_value_t = 10)]
    pub connection_report_secs: u64,
    /// A proxy (address or CIDR) whose X-Forwarded-Host, -Proto and -For
    /// headers are believed, such as the local end of a tunnel. Repeatable.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,
    /// How often the scheduled job (purge past retention, finish half-done
    /// deletes) runs in-process, from start: `30s`, `10m`, `1h`, or `off`.
    #[arg(long, default_value = "1h", value_parser = parse_interval)]
    pub job_interval: Interval,
}

/// How often something runs, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Option<std::time::Duration>);

fn parse_interval(text: &str) -> Result<Interval, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(Interval(None));
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("'{text}' is not an interval like 30s, 10m, 1h or off"))?;
    let seconds = match unit {
        "s" | "" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        _ => return Err(format!("'{text}': the unit is s, m or h")),
    };
    if seconds == 0 {
        return Err("the interval must be at least 1s (or off)".into());
    }
    Ok(Interval(Some(std::time::Duration::from_secs(seconds))))
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The tenant to load into (created if missing).
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// How many users to create.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Members of the one group created (0: no group).
    #[arg(long, default_value_t = 0)]
    pub group_members: usize,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its SCIM base URL.
    Create {
        /// Lowercase letters, digits and `-`: it appears in the URL.
        id: String,
        /// A display name (defaults to the id).
        #[arg(long)]
        name: Option<String>,
        /// Initial settings, `key=value` (see `lockstep settings show`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// List tenants.
    List,
    /// Show a tenant: base URL, settings, tokens.
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Show a tenant's settings.
    Show { tenant: String },
    /// Change settings, `key=value` (values are JSON or plain words).
    Set {
        tenant: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        changes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token. It is printed once; only its hash is stored.
    Issue {
        tenant: String,
        /// What the token is for, e.g. `entra-prod`.
        #[arg(long)]
        label: Option<String>,
        /// When it stops working: RFC 3339 (`2027-06-30T00:00:00Z`) or days
        /// from now (`90d`).
        #[arg(long)]
        expires: Option<String>,
        /// An address or CIDR block it may be used from; repeat for several.
        /// Without any, it works from anywhere.
        #[arg(long = "allow", value_name = "CIDR")]
        allow: Vec<String>,
    },
    /// List a tenant's tokens (ids and metadata, never the tokens).
    List { tenant: String },
    /// Revoke a token by its id. Running functions stop accepting it within
    /// their cache time (60 s).
    Revoke { tenant: String, id: String },
}

/// A command's result, printable for people or as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub text: String,
    pub json: Value,
}

/// A command that ran to its end but did not succeed (a pull that failed
/// or is held for review, a job run with a failed tenant): its report is
/// printed as usual, and the exit status is 2, so that scripts and
/// schedulers see it.
#[derive(Debug)]
pub struct Unsuccessful(pub Report);

impl std::fmt::Display for Unsuccessful {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl std::error::Error for Unsuccessful {}

impl Report {
    pub fn render(&self, json: bool) -> String {
        if json { serde_json::to_string_pretty(&self.json).unwrap_or_default() } else { self.text.clone() }
    }
}

/// Run a parsed command line. `serve` runs until interrupted.
pub async fn run(cli: Cli) -> anyhow::Result<Report> {
    let backend = Backend::open(cli.backend, &cli.data_dir, cli.public_url.clone()).await?;
    match cli.command {
        Command::Serve(args) => serve::serve(backend, args, cli.json).await,
        Command::Seed(args) => seed::seed(&backend, &args).await,
        Command::Tenant(c) => admin::tenant(&backend, c).await,
        Command::Settings(c) => admin::settings(&backend, c).await,
        Command::Token(c) => admin::token(&backend, c).await,
        Command::Reindex { tenant } => admin::reindex(&backend, &tenant).await,
        Command::Users(c) => lifecycle::users(&backend, c).await,
        Command::Groups(c) => lifecycle::groups(&backend, c).await,
        Command::User(c) => lifecycle::user(&backend, c).await,
        Command::Group(c) => lifecycle::group(&backend, c).await,
        Command::Purge(args) => lifecycle::purge(&backend, args).await,
        Command::Job(JobCommand::Run) => lifecycle::job_run(&backend).await,
        Command::Graph(c) => graph::graph(&backend, c).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_intervals_are_seconds_minutes_hours_or_off() {
        let secs = |n| Ok(Interval(Some(std::time::Duration::from_secs(n))));
        assert_eq!(parse_interval("30s"), secs(30));
        assert_eq!(parse_interval("10m"), secs(600));
        assert_eq!(parse_interval("1h"), secs(3600));
        assert_eq!(parse_interval("45"), secs(45));
        assert_eq!(parse_interval("OFF"), Ok(Interval(None)));
        for bad in ["", "0s", "h", "1d", "-1m", "1.5h", "99999999999999999999s"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
