//! SCIM filters (RFC 7644 §3.4.2.2): parse, print, validate against a
//! schema, evaluate against a resource, and recognise the equality lookups
//! that storage can answer by key.
//!
//! Grammar (figure 1 of §3.4.2.2, operators and keywords case-insensitive),
//! with the precedence `not` > `and` > `or`:
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string
//! ```
//!
//! The parser is a hand-written recursive descent over the input string:
//! it reports the character position of every error, which a combinator
//! library would make harder, and it bounds nesting depth and input length
//! so that hostile input costs little.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Result, ScimError};
use crate::json::Object;
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, ResourceType};

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// The deepest nesting of parentheses, `not` and value paths accepted.
pub const MAX_FILTER_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
        }
    }

    fn is_ordering(self) -> bool {
        matches!(self, Self::Gt | Self::Ge | Self::Lt | Self::Le)
    }

    fn is_substring(self) -> bool {
        matches!(self, Self::Co | Self::Sw | Self::Ew)
    }
}

/// A comparison literal.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(Number),
    Bool(bool),
    Null,
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Str(s) => f.write_str(&Value::String(s.clone()).to_string()),
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

/// A parsed filter. Paths inside a [`Filter::ValuePath`] are relative to
/// the complex attribute it names.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare { path: AttrPath, op: CompareOp, value: CompValue },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    ValuePath { path: AttrPath, filter: Box<Filter> },
}

/// The attributes that storage indexes for exact lookups, most selective
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexedAttr {
    Id,
    UserName,
    /// A user's email of type `work`.
    WorkEmail,
    ExternalId,
    DisplayName,
    MemberValue,
}

/// The filters served by an index lookup on `rt`, as a client writes
/// them: the equalities [`Filter::indexed_equality`] recognises, for
/// messages that tell a client what to ask instead.
pub fn indexed_filters(rt: &ResourceType) -> &'static str {
    if rt.id == "Group" {
        r#"id, externalId, displayName or members.value eq "...""#
    } else {
        r#"id, userName, externalId eq "...", or emails[type eq "work" and value eq "..."]"#
    }
}

/// `attr eq "value"` on an indexed attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedEq {
    pub attr: IndexedAttr,
    pub value: String,
}

impl Filter {
    /// Parse a filter (syntax only; see [`Filter::validate`]).
    pub fn parse(text: &str) -> Result<Filter> {
        parse_with(text, Input::Filter, |p| p.or_expr(false))
    }

    /// Parse and check against a resource type, as a request handler needs.
    pub fn parse_for(text: &str, rt: &ResourceType) -> Result<Filter> {
        let f = Self::parse(text)?;
        f.validate(rt)?;
        Ok(f)
    }

    /// Check every path against the schema and every operator against the
    /// attribute's type: an unknown attribute, an ordering operator on a
    /// boolean or binary (RFC 7644 §3.4.2.2) or a literal of the wrong type
    /// is an `invalidFilter` error.
    pub fn validate(&self, rt: &ResourceType) -> Result<()> {
        self.validate_in(Scope::Resource(rt))
    }

    /// Check a value filter against the complex attribute it selects from
    /// (`emails[type eq "work"]` against `emails`).
    pub fn validate_element(&self, parent: &AttributeDef) -> Result<()> {
        self.validate_in(Scope::Complex(parent))
    }

    /// Evaluate a value filter against one value of a complex attribute.
    pub fn matches_element(&self, parent: &AttributeDef, element: &Object) -> bool {
        self.eval(Scope::Complex(parent), element)
    }

    fn validate_in(&self, scope: Scope<'_>) -> Result<()> {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => {
                a.validate_in(scope)?;
                b.validate_in(scope)
            }
            Filter::Not(inner) => inner.validate_in(scope),
            Filter::Present(path) => scope.comparable(path).map(|_| ()),
            Filter::Compare { path, op, value } => {
                let def = scope.comparable(path)?;
                check_operands(path, def, *op, value)
            }
            Filter::ValuePath { path, filter } => {
                let Scope::Resource(rt) = scope else {
                    return Err(ScimError::invalid_filter(format!("value path '{path}' cannot be nested")));
                };
                let def = complex_target(rt, path)?;
                filter.validate_in(Scope::Complex(def))
            }
        }
    }

    /// Evaluate against a resource in canonical form (as produced by
    /// [`crate::resource::parse_resource`]). Assumes [`Filter::validate`]
    /// passed; a path that does not resolve matches nothing.
    pub fn matches(&self, rt: &ResourceType, resource: &Object) -> bool {
        self.eval(Scope::Resource(rt), resource)
    }

    fn eval(&self, scope: Scope<'_>, obj: &Object) -> bool {
        match self {
            Filter::And(a, b) => a.eval(scope, obj) && b.eval(scope, obj),
            Filter::Or(a, b) => a.eval(scope, obj) || b.eval(scope, obj),
            Filter::Not(inner) => !inner.eval(scope, obj),
            Filter::Present(path) => scope.values(path, obj).is_some_and(|(_, vs)| vs.iter().any(|v| present(v))),
            Filter::Compare { path, op, value } => {
                let Some((def, values)) = scope.values(path, obj) else {
                    // Absent: equal to null, and unequal to anything else.
                    return match op {
                        CompareOp::Eq => *value == CompValue::Null,
                        CompareOp::Ne => *value != CompValue::Null,
                        _ => false,
                    };
                };
                match (op, value) {
                    (CompareOp::Eq, CompValue::Null) => !values.iter().any(|v| present(v)),
                    (CompareOp::Ne, CompValue::Null) => values.iter().any(|v| present(v)),
                    (CompareOp::Ne, _) => !values.iter().any(|v| compare(def, v, CompareOp::Eq, value)),
                    _ => values.iter().any(|v| compare(def, v, *op, value)),
                }
            }
            Filter::ValuePath { path, filter } => {
                let Scope::Resource(rt) = scope else { return false };
                let Some(r) = rt.resolve_attribute(path) else { return false };
                let Some(v) = container(obj, r.extension, r.schema.id).and_then(|c| c.get(r.attr.name)) else {
                    return false;
                };
                elements(v).any(|e| e.as_object().is_some_and(|o| filter.eval(Scope::Complex(r.attr), o)))
            }
        }
    }

    /// The equality lookup that storage can answer by key, if this filter is
    /// one, or is an `and` of which one side is one (the rest is then
    /// evaluated on the few candidates). When several sides qualify the most
    /// selective is chosen.
    pub fn indexed_equality(&self, rt: &ResourceType) -> Option<IndexedEq> {
        match self {
            Filter::And(a, b) => match (a.indexed_equality(rt), b.indexed_equality(rt)) {
                (Some(x), Some(y)) => Some(if y.attr < x.attr { y } else { x }),
                (x, y) => x.or(y),
            },
            Filter::Compare { path, op: CompareOp::Eq, value: CompValue::Str(v) } => {
                let r = rt.resolve_attribute(path)?;
                if r.extension {
                    return None;
                }
                let attr = match (rt.id, r.attr.name, r.sub.map(|s| s.name)) {
                    (_, "id", None) => IndexedAttr::Id,
                    (_, "externalId", None) => IndexedAttr::ExternalId,
                    ("User", "userName", None) => IndexedAttr::UserName,
                    ("Group", "displayName", None) => IndexedAttr::DisplayName,
                    ("Group", "members", Some("value")) => IndexedAttr::MemberValue,
                    _ => return None,
                };
                Some(IndexedEq { attr, value: v.clone() })
            }
            Filter::ValuePath { path, filter } => {
                let r = rt.resolve_attribute(path)?;
                match (rt.id, r.extension, r.attr.name) {
                    ("Group", false, "members") => {
                        sub_equality(filter, "value").map(|v| IndexedEq { attr: IndexedAttr::MemberValue, value: v })
                    }
                    // `emails[type eq "work" and value eq "x"]`, in either order.
                    ("User", false, "emails") => match filter.as_ref() {
                        Filter::And(a, b) => {
                            let work =
                                |f: &Filter| sub_equality(f, "type").is_some_and(|t| t.eq_ignore_ascii_case("work"));
                            let value = if work(a) { sub_equality(b, "value") } else { None };
                            let value = value.or_else(|| if work(b) { sub_equality(a, "value") } else { None });
                            value.map(|v| IndexedEq { attr: IndexedAttr::WorkEmail, value: v })
                        }
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The string `x` of `sub eq "x"`, inside a value path.
fn sub_equality(f: &Filter, sub: &str) -> Option<String> {
    match f {
        Filter::Compare { path, op: CompareOp::Eq, value: CompValue::Str(v) }
            if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case(sub) =>
        {
            Some(v.clone())
        }
        _ => None,
    }
}

/// Where paths are resolved: at the resource, or inside a value path.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Resource(&'a ResourceType),
    Complex(&'a AttributeDef),
}

impl<'a> Scope<'a> {
    /// The definition a comparison on `path` compares against: a simple
    /// attribute, a sub-attribute, or the `value` of a complex attribute.
    fn comparable(self, path: &AttrPath) -> Result<&'a AttributeDef> {
        let unknown = || ScimError::invalid_filter(format!("unknown attribute '{path}'"));
        let def = match self {
            Scope::Resource(rt) => {
                let r = rt.resolve_attribute(path).ok_or_else(unknown)?;
                refuse_never_returned(path, r.attr)?;
                r.leaf()
            }
            Scope::Complex(parent) => {
                if path.urn.is_some() || path.sub.is_some() {
                    return Err(ScimError::invalid_filter(format!(
                        "'{path}' inside a value path must name a sub-attribute of '{}'",
                        parent.name
                    )));
                }
                parent.sub(&path.name).ok_or_else(unknown)?
            }
        };
        refuse_never_returned(path, def)?;
        // `emails co "x"` compares the emails' `value` (RFC 7644 §3.4.2.2).
        Ok(if def.is_complex() { def.sub("value").unwrap_or(def) } else { def })
    }

    /// The definition and the values at `path` in `obj`.
    fn values<'v>(self, path: &AttrPath, obj: &'v Object) -> Option<(&'a AttributeDef, Vec<Cow<'v, Value>>)> {
        let (holder, attr, sub) = match self {
            Scope::Resource(rt) => {
                let r = rt.resolve_attribute(path).filter(|r| !r.attr.is_never_returned())?;
                if !r.extension && r.attr.name == "schemas" {
                    return Some((r.attr, schemas_of(rt, obj).into_iter().map(Cow::Owned).collect()));
                }
                (container(obj, r.extension, r.schema.id)?, r.attr, r.sub)
            }
            Scope::Complex(parent) => (obj, parent.sub(&path.name).filter(|a| !a.is_never_returned())?, None),
        };
        let v = holder.get(attr.name)?;
        let (def, values): (_, Vec<&Value>) = match sub {
            Some(sub) => (sub, elements(v).filter_map(|e| e.get(sub.name)).collect()),
            None if attr.is_complex() => match attr.sub("value") {
                Some(value) => (value, elements(v).filter_map(|e| e.get("value")).collect()),
                None => (attr, elements(v).collect()),
            },
            None => (attr, elements(v).collect()),
        };
        Some((def, values.into_iter().map(Cow::Borrowed).collect()))
    }
}

/// The `schemas` of a resource in canonical form: the core schema and each
/// extension it has data for.
fn schemas_of(rt: &ResourceType, obj: &Object) -> Vec<Value> {
    std::iter::once(rt.core.id)
        .chain(rt.extensions.iter().map(|(s, _)| s.id).filter(|id| obj.contains_key(*id)))
        .map(|id| Value::String(id.to_string()))
        .collect()
}

/// The object holding an attribute: the resource for core attributes, the
/// URN-keyed object for extension attributes.
pub(crate) fn container<'v>(obj: &'v Object, extension: bool, schema: &str) -> Option<&'v Object> {
    if extension { obj.get(schema)?.as_object() } else { Some(obj) }
}

/// The values of an attribute: each element of a multi-valued one, or the
/// single value itself.
pub(crate) fn elements(v: &Value) -> std::slice::Iter<'_, Value> {
    match v {
        Value::Array(items) => items.iter(),
        other => std::slice::from_ref(other).iter(),
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// An attribute that is never returned (`password`) is never compared
/// either: a filter that could test it would answer, one request at a time,
/// what the value is.
fn refuse_never_returned(path: &AttrPath, def: &AttributeDef) -> Result<()> {
    if def.is_never_returned() {
        return Err(ScimError::invalid_filter(format!("'{path}' is never returned, so it cannot be filtered on")));
    }
    Ok(())
}

fn complex_target<'a>(rt: &'a ResourceType, path: &AttrPath) -> Result<&'a AttributeDef> {
    let r =
        rt.resolve_attribute(path).ok_or_else(|| ScimError::invalid_filter(format!("unknown attribute '{path}'")))?;
    refuse_never_returned(path, r.attr)?;
    if r.sub.is_some() || !r.attr.is_complex() {
        return Err(ScimError::invalid_filter(format!(
            "'{path}' is not a complex attribute; a value filter '[...]' needs one"
        )));
    }
    Ok(r.attr)
}

fn check_operands(path: &AttrPath, def: &AttributeDef, op: CompareOp, value: &CompValue) -> Result<()> {
    let fail = |why: &str| Err(ScimError::invalid_filter(format!("'{path} {} {value}': {why}", op.as_str())));
    if matches!(value, CompValue::Null) {
        return if matches!(op, CompareOp::Eq | CompareOp::Ne) {
            Ok(())
        } else {
            fail("null only compares with eq or ne")
        };
    }
    match def.ty {
        AttrType::Complex => fail("a complex attribute is compared through one of its sub-attributes"),
        AttrType::Boolean => {
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return fail("a boolean attribute only compares with eq or ne");
            }
            match value {
                CompValue::Bool(_) => Ok(()),
                CompValue::Str(s) if parse_bool(s).is_some() => Ok(()),
                _ => fail("a boolean attribute compares with true or false"),
            }
        }
        AttrType::Binary if op.is_ordering() => fail("a binary attribute cannot be ordered"),
        AttrType::Integer | AttrType::Decimal => match value {
            CompValue::Num(_) if !op.is_substring() => Ok(()),
            CompValue::Num(_) => fail("co, sw and ew compare strings"),
            _ => fail("a number attribute compares with a number"),
        },
        AttrType::DateTime => match value {
            CompValue::Str(s) if op.is_substring() || parse_datetime(s).is_some() => Ok(()),
            _ => fail("a dateTime attribute compares with an RFC 3339 date-time string"),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            CompValue::Str(_) => Ok(()),
            _ => fail("a string attribute compares with a string in double quotes"),
        },
    }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

pub(crate) fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Compare one actual value with a literal under the attribute's type and
/// `caseExact` (RFC 7644 §3.4.2.2).
fn compare(def: &AttributeDef, actual: &Value, op: CompareOp, expected: &CompValue) -> bool {
    match (actual, expected) {
        (Value::Bool(a), CompValue::Bool(e)) => op == CompareOp::Eq && a == e,
        (Value::Bool(a), CompValue::Str(e)) => op == CompareOp::Eq && parse_bool(e) == Some(*a),
        (Value::Number(a), CompValue::Num(e)) => order_numbers(a, e).is_some_and(|o| ordering_holds(op, o)),
        (Value::String(a), CompValue::Str(e)) => {
            if def.ty == AttrType::DateTime
                && !op.is_substring()
                && let (Some(a), Some(e)) = (parse_datetime(a), parse_datetime(e))
            {
                return ordering_holds(op, a.cmp(&e));
            }
            if def.case_exact {
                compare_strings(a, e, op)
            } else if a.is_ascii() && e.is_ascii() {
                compare_strings(&a.to_ascii_lowercase(), &e.to_ascii_lowercase(), op)
            } else {
                compare_strings(&crate::text::fold(a), &crate::text::fold(e), op)
            }
        }
        _ => false,
    }
}

fn compare_strings(a: &str, e: &str, op: CompareOp) -> bool {
    match op {
        CompareOp::Co => a.contains(e),
        CompareOp::Sw => a.starts_with(e),
        CompareOp::Ew => a.ends_with(e),
        _ => ordering_holds(op, a.cmp(e)),
    }
}

fn order_numbers(a: &Number, e: &Number) -> Option<Ordering> {
    match (a.as_i64(), e.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&e.as_f64()?),
    }
}

fn ordering_holds(op: CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

// ---------------------------------------------------------------------------
// Printing: the canonical text of a filter, parenthesised exactly where
// precedence and left-associativity require, so that it parses back to the
// same tree.

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(f, self, 0)
    }
}

fn precedence(f: &Filter) -> u8 {
    match f {
        Filter::Or(..) => 1,
        Filter::And(..) => 2,
        _ => 3,
    }
}

fn write_filter(out: &mut fmt::Formatter<'_>, f: &Filter, min_prec: u8) -> fmt::Result {
    let parens = precedence(f) < min_prec;
    if parens {
        out.write_str("(")?;
    }
    match f {
        Filter::Or(a, b) | Filter::And(a, b) => {
            let p = precedence(f);
            write_filter(out, a, p)?;
            out.write_str(if p == 1 { " or " } else { " and " })?;
            write_filter(out, b, p + 1)?;
        }
        Filter::Not(inner) => {
            out.write_str("not (")?;
            write_filter(out, inner, 0)?;
            out.write_str(")")?;
        }
        Filter::Present(path) => write!(out, "{path} pr")?,
        Filter::Compare { path, op, value } => write!(out, "{path} {} {value}", op.as_str())?,
        Filter::ValuePath { path, filter } => {
            write!(out, "{path}[")?;
            write_filter(out, filter, 0)?;
            out.write_str("]")?;
        }
    }
    if parens {
        out.write_str(")")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Parsing.

/// Run a parse over the whole of `text`, failing on anything left over.
pub(crate) fn parse_with<T>(text: &str, input: Input, parse: impl FnOnce(&mut Parser<'_>) -> Result<T>) -> Result<T> {
    if text.len() > MAX_FILTER_LEN {
        return Err(input.error(format!(
            "the {} is {} bytes long; at most {MAX_FILTER_LEN} are accepted",
            input.noun(),
            text.len()
        )));
    }
    let mut p = Parser { src: text, pos: 0, depth: 0, input };
    let out = parse(&mut p)?;
    p.skip_ws();
    if p.pos < text.len() {
        return Err(p.error(format!("unexpected '{}'", p.rest_preview())));
    }
    Ok(out)
}

/// What is being parsed: decides the wording and `scimType` of errors.
#[derive(Clone, Copy)]
pub(crate) enum Input {
    /// A `filter` parameter: errors are `invalidFilter`.
    Filter,
    /// A PATCH `path`: errors are `invalidPath`.
    Path,
}

impl Input {
    fn noun(self) -> &'static str {
        match self {
            Input::Filter => "filter",
            Input::Path => "path",
        }
    }

    fn error(self, detail: String) -> ScimError {
        match self {
            Input::Filter => ScimError::invalid_filter(detail),
            Input::Path => ScimError::invalid_path(detail),
        }
    }
}

pub(crate) struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    input: Input,
}

/// Characters that end a bare word (attribute path, operator, keyword, literal).
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"')
}

impl<'a> Parser<'a> {
    pub(crate) fn error(&self, what: impl fmt::Display) -> ScimError {
        let at = self.src[..self.pos].chars().count() + 1;
        self.input.error(format!("{what} at character {at} of the {}", self.input.noun()))
    }

    fn rest_preview(&self) -> String {
        self.src[self.pos..].chars().take(20).collect()
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
        self.pos > start
    }

    pub(crate) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else if self.at_end() {
            Err(self.error(format!("expected '{c}' but the {} ended", self.input.noun())))
        } else {
            Err(self.error(format!("expected '{c}', found '{}'", self.rest_preview())))
        }
    }

    pub(crate) fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|c| !ends_word(*c)) {
            self.pos += c.len_utf8();
        }
        &self.src[start..self.pos]
    }

    /// Consume `keyword` (case-insensitively) if it stands next, followed by
    /// a word boundary.
    fn keyword(&mut self, keyword: &str) -> bool {
        let rest = &self.src[self.pos..];
        let matched = rest.len() >= keyword.len()
            && rest.is_char_boundary(keyword.len())
            && rest[..keyword.len()].eq_ignore_ascii_case(keyword)
            && rest[keyword.len()..].chars().next().is_none_or(ends_word);
        if matched {
            self.pos += keyword.len();
        }
        matched
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.error(format!("nesting deeper than {MAX_FILTER_DEPTH} levels")));
        }
        Ok(())
    }

    pub(crate) fn or_expr(&mut self, in_value_path: bool) -> Result<Filter> {
        self.chain(in_value_path, "or", Self::and_expr, Filter::Or)
    }

    fn and_expr(&mut self, in_value_path: bool) -> Result<Filter> {
        self.chain(in_value_path, "and", Self::unary, Filter::And)
    }

    /// `operand *(SP keyword SP operand)`, associating to the left.
    fn chain(
        &mut self,
        in_value_path: bool,
        keyword: &str,
        operand: fn(&mut Self, bool) -> Result<Filter>,
        join: fn(Box<Filter>, Box<Filter>) -> Filter,
    ) -> Result<Filter> {
        let mut left = operand(self, in_value_path)?;
        loop {
            let save = self.pos;
            if self.skip_ws() && self.keyword(keyword) {
                let right = operand(self, in_value_path)?;
                left = join(Box::new(left), Box::new(right));
            } else {
                self.pos = save;
                return Ok(left);
            }
        }
    }

    /// The rest of `"(" FILTER ")"` after its opening parenthesis.
    fn group(&mut self, in_value_path: bool) -> Result<Filter> {
        self.enter()?;
        let inner = self.or_expr(in_value_path)?;
        self.skip_ws();
        self.expect(')')?;
        self.depth -= 1;
        Ok(inner)
    }

    fn unary(&mut self, in_value_path: bool) -> Result<Filter> {
        self.skip_ws();
        if self.eat('(') {
            return self.group(in_value_path);
        }
        let save = self.pos;
        if self.keyword("not") {
            self.skip_ws();
            if self.eat('(') {
                return Ok(Filter::Not(Box::new(self.group(in_value_path)?)));
            }
            self.pos = save;
        }
        self.attr_expr(in_value_path)
    }

    pub(crate) fn attr_path(&mut self) -> Result<AttrPath> {
        if self.at_end() {
            return Err(self.error(format!("expected an attribute name but the {} ended", self.input.noun())));
        }
        let start = self.pos;
        let word = self.word();
        if word.is_empty() {
            return Err(self.error(format!("expected an attribute name, found '{}'", self.rest_preview())));
        }
        AttrPath::parse(word).map_err(|why| {
            self.pos = start;
            self.error(why)
        })
    }

    /// Parse `[valFilter]` after an attribute path.
    pub(crate) fn value_filter(&mut self, path: &AttrPath) -> Result<Filter> {
        if path.sub.is_some() {
            return Err(self.error(format!("a value filter follows an attribute, not the sub-attribute '{path}'")));
        }
        self.enter()?;
        let inner = self.or_expr(true)?;
        self.skip_ws();
        self.expect(']')?;
        self.depth -= 1;
        Ok(inner)
    }

    fn attr_expr(&mut self, in_value_path: bool) -> Result<Filter> {
        let path = self.attr_path()?;
        if self.eat('[') {
            if in_value_path {
                return Err(self.error("value filters cannot be nested"));
            }
            let filter = self.value_filter(&path)?;
            if !self.eat('.') {
                return Ok(Filter::ValuePath { path, filter: Box::new(filter) });
            }
            // `emails[type eq "work"].value eq "a@b.c"`: a value path
            // followed by a sub-attribute, as Microsoft Entra ID asks when
            // it matches users on their work email. It means
            // `emails[type eq "work" and value eq "a@b.c"]`, and is read so.
            let sub_at = self.pos;
            let word = self.word();
            let sub = match AttrPath::parse(word) {
                Ok(sub) if sub.urn.is_none() && sub.sub.is_none() => sub,
                _ => {
                    self.pos = sub_at;
                    return Err(self.error(format!("'{word}' is not a sub-attribute name")));
                }
            };
            let test = self.comparison(sub)?;
            return Ok(Filter::ValuePath { path, filter: Box::new(Filter::And(Box::new(filter), Box::new(test))) });
        }
        self.comparison(path)
    }

    /// The operator and value after `path`: `pr`, or a comparison.
    fn comparison(&mut self, path: AttrPath) -> Result<Filter> {
        if !self.skip_ws() {
            return Err(self.error(format!("expected an operator after '{path}'")));
        }
        let op_at = self.pos;
        let op_word = self.word();
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(op_word) else {
            self.pos = op_at;
            return Err(self.error(if op_word.is_empty() {
                format!("expected an operator after '{path}'")
            } else {
                format!("'{op_word}' is not an operator (eq ne co sw ew gt ge lt le pr)")
            }));
        };
        if !self.skip_ws() {
            return Err(self.error(format!("expected a value after '{path} {}'", op.as_str())));
        }
        let value = self.comp_value()?;
        Ok(Filter::Compare { path, op, value })
    }

    fn comp_value(&mut self) -> Result<CompValue> {
        let start = self.pos;
        if self.peek() == Some('"') {
            return self.string_literal().map(CompValue::Str);
        }
        let word = self.word();
        let value = match word.to_ascii_lowercase().as_str() {
            "true" => CompValue::Bool(true),
            "false" => CompValue::Bool(false),
            "null" => CompValue::Null,
            _ => match parse_number(word) {
                Some(n) => CompValue::Num(n),
                None => {
                    self.pos = start;
                    return Err(self.error(if word.is_empty() {
                        "expected a value (a string in double quotes, a number, true, false or null)".to_string()
                    } else {
                        format!("'{word}' is not a value; strings go in double quotes")
                    }));
                }
            },
        };
        Ok(value)
    }

    /// A JSON string literal (RFC 7644 §3.4.2.2: "as JSON strings"), decoded
    /// by serde_json so escapes follow RFC 8259 exactly.
    fn string_literal(&mut self) -> Result<String> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut i = start + 1;
        loop {
            match bytes.get(i) {
                None => return Err(self.error("a string value is missing its closing '\"'")),
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        let literal = self.src.get(start..=i).unwrap_or_default();
        let decoded =
            serde_json::from_str::<String>(literal).map_err(|e| self.error(format!("invalid string value ({e})")))?;
        self.pos = i + 1;
        Ok(decoded)
    }
}

/// A JSON number (RFC 8259 §6), rejecting what serde_json would read more
/// loosely (leading `+`, hex, trailing text).
fn parse_number(word: &str) -> Option<Number> {
    let first = word.chars().next()?;
    if !(first == '-' || first.is_ascii_digit()) {
        return None;
    }
    if !word.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')) {
        return None;
    }
    match serde_json::from_str::<Value>(word).ok()? {
        Value::Number(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
