//! What characters a string attribute may hold.
//!
//! Three rules, by what the attribute is for:
//!
//! - [`TextRule::Free`] (most attributes): no control characters, except
//!   tab, line feed and carriage return (a formatted address has lines).
//! - [`TextRule::Name`] (names a person reads: `displayName`, `name.*`,
//!   `nickName`, a group's `displayName`): no control characters at all, no
//!   bidirectional embeddings, overrides or isolates (they make
//!   `admin\u{202e}gpj.exe` display as `adminexe.jpg`), and no invisible
//!   characters that only serve to make look-alikes (zero-width space, word
//!   joiner, BOM, soft hyphen, Hangul fillers). Zero-width joiner and
//!   non-joiner stay allowed: Persian, Indic scripts and emoji need them.
//! - [`TextRule::Identifier`] (`userName`, `externalId`, member and manager
//!   ids): all of the above, every other invisible format character
//!   (joiners, direction marks, tags), whitespace other than the ASCII
//!   space, and whitespace at either end.
//!
//! Strings that are compared case-insensitively for uniqueness (`userName`)
//! are also stored in Unicode Normalization Form C, so that one name typed
//! with a precomposed `é` and one with `e` + combining accent are the same
//! user. Case-insensitive comparison is Unicode lower-casing of the NFC form.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::is_nfc_quick;

use crate::error::{Result, ScimError};

/// What characters a string attribute may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextRule {
    #[default]
    Free,
    Name,
    Identifier,
}

fn is_control(c: char) -> bool {
    c.is_control()
}

/// Bidirectional embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Invisible characters that have no place in a name.
fn is_invisible_filler(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// The remaining format characters (Unicode category Cf) that a name may
/// hold but an identifier may not: joiners, direction marks, tags.
fn is_other_format(c: char) -> bool {
    matches!(
        c,
        '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{08E2}'
            | '\u{200C}'..='\u{200F}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// The first character `rule` refuses in `s`, with why.
fn refused(rule: TextRule, s: &str) -> Option<(char, &'static str)> {
    // A blank value is left to the `required` check, which says it better.
    let blank = s.trim().is_empty();
    if rule == TextRule::Identifier
        && !blank
        && (s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace))
    {
        return Some((' ', "whitespace at the start or end"));
    }
    s.chars().find_map(|c| {
        let why = match rule {
            TextRule::Free if is_control(c) && !matches!(c, '\t' | '\n' | '\r') => "a control character",
            TextRule::Free => return None,
            _ if is_control(c) => "a control character",
            _ if is_bidi_control(c) => "a bidirectional override",
            _ if is_invisible_filler(c) => "an invisible character",
            TextRule::Identifier if is_other_format(c) => "an invisible format character",
            TextRule::Identifier if c.is_whitespace() && c != ' ' => "whitespace other than a space",
            _ => return None,
        };
        Some((c, why))
    })
}

/// Check `s` against `rule`; the error names the attribute, the character
/// (as a code point, since it may not print) and its position.
pub fn check(rule: TextRule, s: &str, name: &dyn std::fmt::Display) -> Result<()> {
    match refused(rule, s) {
        None => Ok(()),
        Some((c, why)) => {
            let at = s.chars().position(|x| x == c).unwrap_or_default();
            Err(ScimError::invalid_value(format!(
                "'{name}' holds {why} (U+{:04X} at character {at}); it is not accepted in this attribute",
                u32::from(c)
            )))
        }
    }
}

/// `s` in Unicode Normalization Form C.
pub fn nfc(s: &str) -> String {
    if is_nfc_quick(s.chars()) == unicode_normalization::IsNormalized::Yes { s.to_string() } else { s.nfc().collect() }
}

/// The form in which case-insensitive identifiers are compared: NFC,
/// lower-cased.
pub fn fold(s: &str) -> String {
    nfc(s).to_lowercase()
}

/// The key under which two identifiers are the same for uniqueness
/// (userName, group names, work emails): compatibility forms as their
/// plain letters (NFKC: fullwidth `ａ` is `a`), lower case, and then each
/// non-ASCII character that Unicode's confusables table (UTS #39) draws as
/// ASCII text, as that text (dotless `ı` and Cyrillic `а` are `i` and
/// `a`). So `ａdmin`, `admın` and `аdmin` cannot be created beside
/// `admin`. ASCII is only lower-cased: `rn` and `m` stay apart, and
/// accented letters (`é`) stay themselves.
///
/// Every value equal under [`fold`] has the same key; the key is coarser,
/// so a lookup by key is re-checked with the filter's own comparison.
pub fn uniqueness_key(s: &str) -> String {
    let lowered = s.nfkc().collect::<String>().to_lowercase();
    if lowered.is_ascii() {
        return lowered;
    }
    let mut out = String::with_capacity(lowered.len());
    let mut buf = [0u8; 4];
    for c in lowered.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let drawn: String = unicode_security::confusable_detection::skeleton(c.encode_utf8(&mut buf)).collect();
        if !drawn.is_empty() && drawn.is_ascii() {
            out.push_str(&drawn.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    // Lower-casing can leave text that is not NFC (`İ` is `i` and a dot).
    nfc(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rule: TextRule, s: &str) -> bool {
        check(rule, s, &"x").is_ok()
    }

    #[test]
    fn free_text_takes_lines_but_no_other_controls() {
        assert!(ok(TextRule::Free, "100 Universal City Plaza\nHollywood, CA 91608\r\n\tUSA"));
        assert!(ok(TextRule::Free, "\u{202E}right to left is allowed in free text"));
        for bad in ["a\0b", "a\u{7}b", "a\u{1b}[31mred", "a\u{7f}", "a\u{85}b"] {
            assert!(!ok(TextRule::Free, bad), "{bad:?}");
        }
    }

    #[test]
    fn names_refuse_controls_bidi_overrides_and_fillers() {
        for good in ["Barbara Jensen", "José Núñez", "محمد", "שלום", "می\u{200C}خواهم", "👩\u{200D}💻", "李小龍"]
        {
            assert!(ok(TextRule::Name, good), "{good:?}");
        }
        for bad in [
            "admin\u{202E}gpj.exe",
            "a\u{2066}b",
            "line\nbreak",
            "tab\there",
            "nul\0",
            "ad\u{200B}min",
            "ad\u{2060}min",
            "\u{FEFF}admin",
            "ad\u{00AD}min",
            "\u{3164}",
        ] {
            assert!(!ok(TextRule::Name, bad), "{bad:?}");
        }
    }

    #[test]
    fn identifiers_refuse_every_invisible_and_edge_whitespace() {
        for good in
            ["bjensen@example.com", "Barbara Jensen", "0f1c9e3a-5d1b-4bb0-9d0c-7b0f1c9e3a5d", "josé@example.com"]
        {
            assert!(ok(TextRule::Identifier, good), "{good:?}");
        }
        for bad in [
            "admin\u{200D}",
            "ad\u{200C}min",
            "admin\u{200E}",
            " admin",
            "admin ",
            "ad\u{00A0}min",
            "ad\u{3000}min",
            "admin\u{E0041}",
            "admin\u{202E}",
        ] {
            assert!(!ok(TextRule::Identifier, bad), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_attribute_and_the_code_point() {
        let e = check(TextRule::Name, "admin\u{202E}gpj.exe", &"displayName").err().map(|e| e.detail);
        let detail = e.unwrap_or_default();
        assert!(
            detail.contains("'displayName'") && detail.contains("U+202E") && detail.contains("character 5"),
            "{detail}"
        );
    }

    #[test]
    fn uniqueness_keys_make_look_alikes_one() {
        let admin = uniqueness_key("admin@example.com");
        for look_alike in [
            "ＡＤＭＩＮ@example.com",
            "\u{ff41}dmin@example.com",
            "adm\u{131}n@example.com",
            "\u{430}dmin@example.com",
            "Admin@Example.COM",
            "admin@ｅxample.com",
        ] {
            assert_eq!(uniqueness_key(look_alike), admin, "{look_alike}");
        }
        // Different names stay different.
        for other in ["adrnin@example.com", "admln@example.com", "admin2@example.com", "admín@example.com"] {
            assert_ne!(uniqueness_key(other), admin, "{other}");
        }
        // Every fold-equal pair has one key.
        for (a, b) in [("JOSE\u{301}@x", "jos\u{e9}@x"), ("İstanbul", "i\u{307}stanbul"), ("Straße", "straße")] {
            assert_eq!(fold(a), fold(b));
            assert_eq!(uniqueness_key(a), uniqueness_key(b), "{a} {b}");
        }
    }

    #[test]
    fn nfc_and_fold_make_look_alike_compositions_one() {
        let composed = "jos\u{E9}@example.com";
        let decomposed = "jose\u{301}@example.com";
        assert_ne!(composed, decomposed);
        assert_eq!(nfc(decomposed), composed);
        assert_eq!(fold("JOSE\u{301}@Example.com"), fold(composed));
    }
}
