//! Tenants and their policy: the product rules that differ between
//! customers are settings with defaults, not forks of the code.

use serde::{Deserialize, Serialize};

use scim_protocol::ScimError;

/// A tenant id: lowercase letters, digits and `-`, 1 to 63 characters, so
/// it is safe in URLs and in keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(text: &str) -> Result<Self, ScimError> {
        let ok = !text.is_empty()
            && text.len() <= 63
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !text.starts_with('-');
        if ok { Ok(Self(text.to_string())) } else { Err(ScimError::not_found(format!("no tenant '{text}'"))) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|e| e.detail)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `active: false` does to a user. A reactivated user does not get
/// back the groups it was removed from: the directory pushes them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deactivation {
    /// Only mark the user inactive.
    #[default]
    Disable,
    /// Mark inactive and remove from every group.
    RemoveFromGroups,
    /// Soft-delete the user, as a `DELETE` does: for products without a
    /// deactivated state, where a user who comes back is created anew.
    SoftDelete,
}

/// Per-tenant policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// userName must be an email address (products that sign users in by
    /// email).
    pub user_name_must_be_email: bool,
    /// userName may change after creation. Products that key accounts on it
    /// turn this off: a renamed user is then created anew.
    pub user_name_mutable: bool,
    pub deactivation: Deactivation,
    /// Days soft-deleted users are kept before the scheduler purges them.
    pub retention_days: u32,
    /// Keep a group, unlinked, when the directory deletes it: the product's
    /// own data that hangs on the group survives.
    pub keep_groups_deleted_by_directory: bool,
    /// Group displayNames must be unique within the tenant. On by default:
    /// Microsoft Entra ID matches groups by displayName, and duplicates make
    /// its matching ambiguous.
    pub unique_group_names: bool,
    /// externalIds must be unique among the tenant's users (and among its
    /// groups). Off by default: RFC 7643 §3.1 gives externalId no
    /// uniqueness, and identity providers send duplicates (Entra's default
    /// user mapping takes `mailNickname`, which is not unique).
    pub unique_external_ids: bool,
    /// No two live users share a work email (`409 uniqueness` for the
    /// second). Set by `lockstep graph connect`: the pull matches users by
    /// work email, so in a tenant that pulls from Microsoft Graph a user
    /// made in the application after its Azure twin was pulled would
    /// otherwise be a second user with the same email, never matched.
    pub unique_work_emails: bool,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            user_name_must_be_email: false,
            user_name_mutable: true,
            deactivation: Deactivation::Disable,
            retention_days: 90,
            keep_groups_deleted_by_directory: false,
            unique_group_names: true,
            unique_external_ids: false,
            unique_work_emails: false,
        }
    }
}

impl TenantSettings {
    /// Check a user's userName against the tenant's rules; `before` is the
    /// stored userName when the user is being updated.
    pub fn check_user_name(&self, user_name: &str, before: Option<&str>) -> Result<(), ScimError> {
        if self.user_name_must_be_email && !is_email(user_name) {
            return Err(ScimError::invalid_value(format!(
                "userName must be an email address in this tenant; '{user_name}' is not"
            )));
        }
        if let Some(old) = before
            && !self.user_name_mutable
            && scim_protocol::text::fold(old) != scim_protocol::text::fold(user_name)
        {
            return Err(ScimError::mutability(format!(
                "userName cannot change in this tenant ('{old}' to '{user_name}'); create a new user instead"
            )));
        }
        Ok(())
    }
}

/// An email address as far as a userName rule cares: something, `@`, and a
/// dotted domain, without spaces.
fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created: String,
    #[serde(default)]
    pub settings: TenantSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_url_and_key_safe() {
        for ok in ["acme", "acme-prod", "t1", "a"] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "a#b", "a/b", "-a", "a b", &"x".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_rule() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b.c.", "a@.b", "a@b@c.d"] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn settings_default_and_refuse_unknown_fields() {
        let s: TenantSettings = serde_json::from_str("{}").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s, TenantSettings::default());
        assert!(serde_json::from_str::<TenantSettings>(r#"{"nope":1}"#).is_err());
        let s: TenantSettings =
            serde_json::from_str(r#"{"deactivation":"remove_from_groups"}"#).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(s.deactivation, Deactivation::RemoveFromGroups);
    }
}
