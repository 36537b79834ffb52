//! The path of a PATCH operation, and of an attribute named with a value
//! filter in `attributes`: `PATH = attrPath / valuePath [subAttr]`
//! (RFC 7644 §3.5.2 figure 1), parsed with the filter grammar.

use std::fmt;

use crate::error::Result;
use crate::filter::{Filter, Input, parse_with};
use crate::path::AttrPath;

/// An attribute path, with a value filter and a sub-attribute after it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

impl PatchPath {
    pub fn parse(text: &str) -> Result<Self> {
        parse_with(text, Input::Path, |p| {
            let attr = p.attr_path()?;
            let filter = if p.eat('[') { Some(p.value_filter(&attr)?) } else { None };
            let sub = if filter.is_some() && p.eat('.') {
                let word = p.word();
                match AttrPath::parse(word) {
                    Ok(AttrPath { urn: None, name, sub: None }) => Some(name),
                    _ => return Err(p.error(format!("'{word}' is not a sub-attribute name"))),
                }
            } else {
                None
            };
            Ok(PatchPath { attr, filter, sub })
        })
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}
