//! Opaque, tamper-evident paging cursors (RFC 9865): the position in the
//! table plus what the query was and when the cursor expires, signed with
//! HMAC-SHA256. A cursor from another tenant, resource type or filter, or
//! an edited one, is `invalidCursor`; an old one is `expiredCursor`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use scim_protocol::ScimError;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::PageKey;

type HmacSha256 = Hmac<Sha256>;

/// The signing key. At least 32 bytes; from configuration in production.
#[derive(Clone)]
pub struct CursorKey(Vec<u8>);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

impl CursorKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, String> {
        let secret = secret.into();
        if secret.len() < 32 {
            return Err("the cursor signing key must be at least 32 bytes".into());
        }
        Ok(Self(secret))
    }

    /// A fresh random key, for a process that issues no cursors (or whose
    /// cursors need not outlive it).
    pub fn random() -> Result<Self, String> {
        let mut secret = vec![0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("no randomness for a cursor key: {e}"))?;
        Self::new(secret)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; the error arm cannot happen.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }
}

/// What a cursor says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorState {
    /// Tenant, resource kind and query digest the cursor belongs to.
    pub scope: String,
    /// Where to continue.
    pub after: Option<PageKey>,
    /// Matches already returned before this page (for `totalResults`).
    pub seen: u64,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

pub fn encode(key: &CursorKey, state: &CursorState) -> String {
    let payload = serde_json::to_vec(state).unwrap_or_default();
    let mut mac = key.mac();
    mac.update(&payload);
    let tag = mac.finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(tag))
}

pub fn decode(key: &CursorKey, text: &str, scope: &str, now: i64) -> Result<CursorState, ScimError> {
    let invalid = || ScimError::invalid_cursor("the cursor is not one this service issued for this query");
    let (payload, tag) = text.split_once('.').ok_or_else(invalid)?;
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
    let mut mac = key.mac();
    mac.update(&payload);
    mac.verify_slice(&tag).map_err(|_| invalid())?;
    let state: CursorState = serde_json::from_slice(&payload).map_err(|_| invalid())?;
    if state.scope != scope {
        return Err(invalid());
    }
    if state.exp < now {
        return Err(ScimError::expired_cursor("the cursor has expired; start again without one"));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Key;
    use scim_protocol::ScimType;

    fn key() -> CursorKey {
        CursorKey::new(vec![7u8; 32]).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn state() -> CursorState {
        CursorState {
            scope: "t|USERS|abc".into(),
            after: Some(PageKey { key: Key::new("T#t#USERS", "u1"), gsi1: None }),
            seen: 100,
            exp: 1_000,
        }
    }

    #[test]
    fn round_trips_within_scope_and_time() {
        let text = encode(&key(), &state());
        assert_eq!(decode(&key(), &text, "t|USERS|abc", 999), Ok(state()));
    }

    #[test]
    fn refuses_tampering_other_scopes_other_keys_and_expiry() {
        let text = encode(&key(), &state());
        let kind = |r: Result<CursorState, ScimError>| r.err().and_then(|e| e.scim_type);
        assert_eq!(kind(decode(&key(), &text, "other|USERS|abc", 0)), Some(ScimType::InvalidCursor));
        let other = CursorKey::new(vec![8u8; 32]).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(kind(decode(&other, &text, "t|USERS|abc", 0)), Some(ScimType::InvalidCursor));
        let mut edited = text.clone();
        edited.replace_range(0..1, if edited.starts_with('A') { "B" } else { "A" });
        assert_eq!(kind(decode(&key(), &edited, "t|USERS|abc", 0)), Some(ScimType::InvalidCursor));
        assert_eq!(kind(decode(&key(), "garbage", "t|USERS|abc", 0)), Some(ScimType::InvalidCursor));
        assert_eq!(kind(decode(&key(), &text, "t|USERS|abc", 1_001)), Some(ScimType::ExpiredCursor));
        assert!(CursorKey::new(vec![1u8; 31]).is_err());
    }
}
