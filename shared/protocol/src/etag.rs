//! Versions as ETags (RFC 7644 §3.14): `W/"<version>"`, and the
//! `If-Match` / `If-None-Match` comparison.

/// The weak ETag of a resource version.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-Match` / `If-None-Match` header value (a `*` or a
/// comma-separated list of entity tags) names `version`. Comparison is
/// weak: `"3"` and `W/"3"` both name version 3.
pub fn header_matches(header: &str, version: u64) -> bool {
    let wanted = version.to_string();
    header.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        let tag = tag.strip_prefix("W/").or_else(|| tag.strip_prefix("w/")).unwrap_or(tag);
        tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(wanted.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_strong_tags_match_by_version() {
        assert_eq!(etag(3), "W/\"3\"");
        assert!(header_matches("W/\"3\"", 3));
        assert!(header_matches("\"3\"", 3));
        assert!(header_matches("W/\"1\", W/\"3\"", 3));
        assert!(header_matches("*", 9));
        assert!(!header_matches("W/\"4\"", 3));
        assert!(!header_matches("3", 3));
        assert!(!header_matches("", 3));
    }
}
