//! Tenant bearer tokens. Only SHA-256 hashes are stored (tokens are 256
//! random bits, so a fast unsalted hash is enough: there is nothing to
//! guess), with a label, creation and expiry times and an optional IP
//! allow-list of source addresses. Several tokens can be valid at once, for rotation.
//! Verification compares against every token in constant time.

use std::net::IpAddr;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::store::StoreError;
use crate::tenant::TenantId;

/// Every token starts with this, so that secret scanners can spot leaks.
pub const TOKEN_PREFIX: &str = "lst_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// A short public id, for listing and revoking.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Hex SHA-256 of the token.
    pub hash: String,
    pub created: String,
    /// RFC 3339; absent: never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// CIDR blocks the token may be used from; empty: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub tokens: Vec<TokenRecord>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token of this tenant matched, or it expired: 401.
    Unauthorized(Unauthorized),
    /// The token matched but not from this address: 403.
    Forbidden,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthorized {
    /// No token of the tenant matches.
    Unknown,
    /// It matched a token that has expired.
    Expired,
}

pub fn hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// Equal-length byte comparison whose time does not depend on where the
/// inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A CIDR block or a single address.
pub fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("'{text}' is not an IP address or CIDR block"))
}

impl TokenSet {
    /// Check a presented token. Every stored hash is compared, so timing
    /// does not tell which token (if any) was close.
    pub fn verify(
        &self,
        presented: &str,
        client: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<&TokenRecord, Refusal> {
        let presented = hash(presented);
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.hash.as_bytes(), presented.as_bytes()) {
                found = Some(t);
            }
        }
        let token = found.ok_or(Refusal::Unauthorized(Unauthorized::Unknown))?;
        if let Some(expires) = &token.expires {
            let expired = OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
                .map(|e| e <= now)
                .unwrap_or(true);
            if expired {
                return Err(Refusal::Unauthorized(Unauthorized::Expired));
            }
        }
        if !token.allow.is_empty() {
            let allowed = client.is_some_and(|ip| {
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
                    v4 => v4,
                };
                token.allow.iter().filter_map(|c| parse_cidr(c).ok()).any(|net| net.contains(&ip))
            });
            if !allowed {
                return Err(Refusal::Forbidden);
            }
        }
        Ok(token)
    }
}

/// A new token: its text (shown once) and its record (stored).
pub fn issue(
    label: Option<String>,
    expires: Option<String>,
    allow: Vec<String>,
    now: OffsetDateTime,
) -> Result<(String, TokenRecord), String> {
    for cidr in &allow {
        parse_cidr(cidr)?;
    }
    if let Some(e) = &expires {
        OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
            .map_err(|_| format!("expiry '{e}' is not an RFC 3339 time such as 2027-01-31T00:00:00Z"))?;
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness available: {e}"))?;
    let text = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let id = hash(&text)[..12].to_string();
    let record = TokenRecord { id, label, hash: hash(&text), created: crate::clock::rfc3339(now), expires, allow };
    Ok((text, record))
}

/// Which stored version of a tenant's token set was read (`None`: none is
/// stored yet). A save conditioned on it fails if another writer saved in
/// between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision(pub Option<String>);

/// Where token sets live: Secrets Manager in AWS, a local file for the
/// local runner.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The tenant's tokens (an empty set when it has none), and the
    /// revision read.
    async fn read(&self, tenant: &TenantId) -> Result<(TokenSet, Revision), StoreError>;

    /// Store `tokens` if the stored set is still the revision `read`;
    /// [`StoreError::ConditionFailed`] if another writer saved since.
    async fn save_if(&self, tenant: &TenantId, tokens: &TokenSet, read: &Revision) -> Result<(), StoreError>;

    /// The tenant's tokens; an empty set when it has none.
    async fn load(&self, tenant: &TenantId) -> Result<TokenSet, StoreError> {
        Ok(self.read(tenant).await?.0)
    }
}

/// How many times [`update`] reads again after losing to another writer.
const UPDATE_ATTEMPTS: usize = 8;

/// Change a tenant's token set without losing a concurrent change (two
/// operators issuing tokens at once both keep theirs): read, change, save
/// conditioned on the revision read, and again if another writer came
/// first. `change` returns `None` to leave the set as it is; the result is
/// what it returned, with the set saved.
pub async fn update<T>(
    store: &dyn TokenStore,
    tenant: &TenantId,
    change: impl Fn(&mut TokenSet) -> Option<T> + Send + Sync,
) -> Result<Option<(T, TokenSet)>, StoreError> {
    for _ in 0..UPDATE_ATTEMPTS {
        let (mut set, revision) = store.read(tenant).await?;
        let Some(out) = change(&mut set) else {
            return Ok(None);
        };
        match store.save_if(tenant, &set, &revision).await {
            Ok(()) => return Ok(Some((out, set))),
            Err(StoreError::ConditionFailed { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict)
}

/// Add an issued token to a tenant's set.
pub async fn add(store: &dyn TokenStore, tenant: &TenantId, record: &TokenRecord) -> Result<(), StoreError> {
    update(store, tenant, |set| {
        set.tokens.push(record.clone());
        Some(())
    })
    .await
    .map(drop)
}

/// Remove a token from a tenant's set: the set left, or `None` when it has
/// no token `token_id`.
pub async fn revoke(store: &dyn TokenStore, tenant: &TenantId, token_id: &str) -> Result<Option<TokenSet>, StoreError> {
    let revoked = update(store, tenant, |set| {
        let before = set.tokens.len();
        set.tokens.retain(|t| t.id != token_id);
        (set.tokens.len() < before).then_some(())
    })
    .await?;
    Ok(revoked.map(|((), set)| set))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let (text, record) = issue(Some("entra".into()), None, vec![], now()).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(text.starts_with(TOKEN_PREFIX));
        assert_eq!(text.len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(record.hash, text, "only the hash is kept");
        let (other, other_record) = issue(None, None, vec![], now()).unwrap_or_else(|e| unreachable!("{e}"));
        let set = TokenSet { tokens: vec![record.clone(), other_record] };
        assert_eq!(set.verify(&text, None, now()).map(|t| t.id.clone()), Ok(record.id.clone()));
        assert!(set.verify(&other, None, now()).is_ok(), "rotation: both tokens work");
        assert!(matches!(set.verify("lst_wrong", None, now()), Err(Refusal::Unauthorized(_))));
        assert!(matches!(TokenSet::default().verify(&text, None, now()), Err(Refusal::Unauthorized(_))));
    }

    #[test]
    fn expiry_and_allow_lists() {
        let (text, record) =
            issue(None, Some("2027-06-01T00:00:00Z".into()), vec!["10.0.0.0/8".into(), "2001:db8::1".into()], now())
                .unwrap_or_else(|e| unreachable!("{e}"));
        let set = TokenSet { tokens: vec![record] };
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(set.verify(&text, ip("10.1.2.3"), now()).is_ok());
        assert!(set.verify(&text, ip("::ffff:10.1.2.3"), now()).is_ok(), "IPv4-mapped IPv6 counts as IPv4");
        assert!(set.verify(&text, ip("2001:db8::1"), now()).is_ok());
        assert_eq!(set.verify(&text, ip("192.168.1.1"), now()).err(), Some(Refusal::Forbidden));
        assert_eq!(set.verify(&text, None, now()).err(), Some(Refusal::Forbidden));
        let later = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(set.verify(&text, ip("10.1.2.3"), later).err(), Some(Refusal::Unauthorized(Unauthorized::Expired)));
        assert!(issue(None, None, vec!["not-an-ip".into()], now()).is_err());
        assert!(issue(None, Some("tomorrow".into()), vec![], now()).is_err());
    }
}
