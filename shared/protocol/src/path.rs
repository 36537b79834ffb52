//! Attribute paths: `[URI ":"] ATTRNAME ["." subAttr]` (RFC 7644 §3.4.2.2,
//! `attrPath` in figure 1 of §3.10). Purely syntactic: resolution against a
//! schema is [`crate::schema::ResourceType::resolve`].

use std::fmt;

/// A syntactic attribute path, names kept as the client wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute, unqualified.
    pub fn attr(name: impl Into<String>) -> Self {
        Self { urn: None, name: name.into(), sub: None }
    }

    /// Parse `urn:...:name.sub`. The URN is everything up to the last `:`
    /// because attribute names cannot contain one, while URNs contain
    /// both `:` and `.` (`...:2.0:User`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (urn, rest) = if has_urn_prefix(text) {
            match text.rfind(':') {
                Some(i) if i > 3 => (Some(text[..i].to_string()), &text[i + 1..]),
                _ => return Err(format!("'{text}' is not a valid attribute path")),
            }
        } else {
            (None, text)
        };
        if let Some(u) = &urn
            && (u.len() <= 4 || u.chars().any(|c| c.is_whitespace() || c == '"'))
        {
            return Err(format!("'{text}' does not start with a valid schema URN"));
        }
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        check_name(name).map_err(|why| format!("'{text}': {why}"))?;
        if let Some(s) = sub {
            check_name(s).map_err(|why| format!("'{text}': {why}"))?;
        }
        Ok(Self { urn, name: name.to_string(), sub: sub.map(str::to_string) })
    }
}

/// Whether `text` starts with `urn:`, in any case.
pub(crate) fn has_urn_prefix(text: &str) -> bool {
    text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// `ATTRNAME = ALPHA *(nameChar)`, plus `$ref` (RFC 7643 §2.1 allows the
/// `$` of `$ref`).
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok_first = match chars.next() {
        Some(c) => c.is_ascii_alphabetic() || c == '$',
        None => return Err("empty attribute name".into()),
    };
    if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("'{name}' is not a valid attribute name"));
    }
    Ok(())
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_sub_and_urn_paths() {
        assert_eq!(AttrPath::parse("userName"), Ok(AttrPath::attr("userName")));
        let p = AttrPath::parse("name.givenName");
        assert_eq!(p.map(|p| (p.name, p.sub)), Ok(("name".into(), Some("givenName".into()))));
        let p = AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value");
        assert_eq!(
            p.map(|p| (p.urn, p.name, p.sub)),
            Ok((
                Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".into()),
                "manager".into(),
                Some("value".into())
            ))
        );
        assert_eq!(AttrPath::parse("members.$ref").map(|p| p.sub), Ok(Some("$ref".into())));
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["", "1abc", "a b", "name.", ".x", "a.b.c", "urn:", "urn::x", "na!me", "urn:x:"] {
            assert!(AttrPath::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["userName", "name.givenName", "urn:a:b:c:attr.sub", "emails"] {
            assert_eq!(AttrPath::parse(s).map(|p| p.to_string()).as_deref(), Ok(s));
        }
    }
}
