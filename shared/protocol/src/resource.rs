//! Resources in and out.
//!
//! In: [`parse_resource`] turns a client's body into the canonical form the
//! rest of the service works on: canonical attribute names (input names are
//! case-insensitive, RFC 7643 §2.1), values coerced to their schema types
//! (`"False"` becomes `false`), read-only attributes dropped (RFC 7643 §7
//! "readOnly ... SHALL be ignored"), extension attributes under their URN,
//! required attributes and the single `primary` checked.
//!
//! Out: [`render`] applies the `returned` characteristic and the
//! `attributes` / `excludedAttributes` parameters (RFC 7644 §3.4.2.5, §3.9),
//! in schema order so that output is stable.

use serde_json::Value;

use crate::error::{Result, ScimError};
use crate::filter::{parse_bool, parse_datetime};
use crate::json::Object;
use crate::path::AttrPath;
use crate::value_path::PatchPath;
use base64::Engine as _;

use crate::schema::{AttrType, AttributeDef, Mutability, ResourceType, Returned, Schema, Target, Uniqueness};

/// Who writes a resource: a SCIM client, or the service itself (the
/// Graph pull), which also writes the read-only attributes of extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Author {
    Client,
    Service,
}

/// Parse and validate a resource body (POST, PUT, and the result of a PATCH).
pub fn parse_resource(rt: &ResourceType, body: &Value) -> Result<Object> {
    parse_by(rt, body, Author::Client)
}

/// [`parse_resource`] for what the service writes itself: the read-only
/// attributes of extensions (the directory placement) are kept.
pub fn parse_service_resource(rt: &ResourceType, body: &Value) -> Result<Object> {
    parse_by(rt, body, Author::Service)
}

fn parse_by(rt: &ResourceType, body: &Value, author: Author) -> Result<Object> {
    let body =
        body.as_object().ok_or_else(|| ScimError::invalid_syntax(format!("a {} must be a JSON object", rt.name)))?;
    check_schemas(rt, body)?;
    let mut out = Object::new();
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            put_extension(&mut out, ext, value, author)?;
            continue;
        }
        let target = if crate::path::has_urn_prefix(key) {
            AttrPath::parse(key).ok().and_then(|p| rt.resolve(&p))
        } else {
            rt.core_attribute(key).map(|attr| {
                Target::Attribute(crate::schema::Resolved { schema: &rt.core, extension: false, attr, sub: None })
            })
        };
        // Attributes the schema does not define are ignored rather than
        // rejected: identity providers send whatever an admin mapped, and
        // failing the whole user for one unmapped field helps nobody.
        match target {
            Some(Target::Extension(ext)) => put_extension(&mut out, ext, value, author)?,
            Some(Target::Attribute(r)) => {
                if !accepted(r.attr) || r.sub.is_some_and(|s| !accepted(s)) {
                    continue;
                }
                let holder = holder_mut(&mut out, r.extension, r.schema.id);
                if r.sub.is_none() && holder.contains_key(r.attr.name) {
                    return Err(ScimError::invalid_syntax(format!(
                        "'{key}' names '{}' a second time; send each attribute once",
                        r.display()
                    )));
                }
                match r.sub {
                    None => set_or_remove(holder, r.attr.name, coerce(r.attr, value, Name::Plain(key))?),
                    Some(sub) if !r.attr.multi_valued => {
                        let v = coerce(sub, value, Name::Plain(key))?;
                        set_sub(holder, r.attr.name, sub.name, v);
                    }
                    Some(_) => {
                        return Err(ScimError::invalid_path(format!(
                            "'{key}' names a sub-attribute of the multi-valued '{}'; send the whole attribute",
                            r.attr.name
                        )));
                    }
                }
            }
            None => {}
        }
    }
    drop_empty_extensions(rt, &mut out);
    check_required(rt, &out)?;
    Ok(out)
}

/// Whether a client's value for `attr` is kept. Read-only attributes are
/// ignored (RFC 7643 §7: "readOnly ... SHALL be ignored"). So are those
/// never returned (`password`): users sign in through their identity
/// provider, so such a value has no use here, and a value that is never
/// kept can never leak through a filter, a log or a backup.
fn accepted(attr: &AttributeDef) -> bool {
    !attr.is_read_only() && !attr.is_never_returned()
}

fn check_schemas(rt: &ResourceType, body: &Object) -> Result<()> {
    let Some((_, schemas)) = body.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")) else {
        // Absent `schemas` is read as the core schema: tolerated because the
        // endpoint already says which resource type is meant.
        return Ok(());
    };
    let list =
        schemas.as_array().ok_or_else(|| ScimError::invalid_syntax("'schemas' must be an array of schema URNs"))?;
    let mut has_core = false;
    for s in list {
        let s = s.as_str().ok_or_else(|| ScimError::invalid_syntax("'schemas' must be an array of schema URNs"))?;
        if !rt.knows_schema(s) && !crate::schema::is_declaration_only(s) {
            return Err(ScimError::invalid_value(format!(
                "unknown schema '{s}' for a {}; supported: {}",
                rt.name,
                rt.schemas().map(|s| s.id).collect::<Vec<_>>().join(", ")
            )));
        }
        has_core |= rt.core.id.eq_ignore_ascii_case(s);
    }
    if !has_core {
        return Err(ScimError::invalid_value(format!("'schemas' must include '{}'", rt.core.id)));
    }
    Ok(())
}

fn put_extension(out: &mut Object, ext: &Schema, value: &Value, author: Author) -> Result<()> {
    let fields = match value {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(ScimError::invalid_syntax(format!("'{}' must be a JSON object", ext.id))),
    };
    for (k, v) in fields {
        let Some(attr) = ext.attribute(k) else { continue };
        let owned_by_service = author == Author::Service && attr.is_read_only() && !attr.is_never_returned();
        if !accepted(attr) && !owned_by_service {
            continue;
        }
        let coerced = coerce(attr, v, Name::Qualified(ext.id, attr.name))?;
        set_or_remove(holder_mut(out, true, ext.id), attr.name, coerced);
    }
    Ok(())
}

/// The object that holds an attribute, created on demand: the resource for
/// core attributes, the URN-keyed object for extension attributes.
pub(crate) fn holder_mut<'o>(out: &'o mut Object, extension: bool, schema: &str) -> &'o mut Object {
    if !extension {
        return out;
    }
    let slot = out.entry(schema.to_string()).or_insert_with(|| Value::Object(Object::new()));
    if !slot.is_object() {
        *slot = Value::Object(Object::new());
    }
    match slot {
        Value::Object(o) => o,
        _ => unreachable!("the slot was made an object just above"),
    }
}

pub(crate) fn set_or_remove(holder: &mut Object, name: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            holder.insert(name.to_string(), v);
        }
        None => {
            holder.remove(name);
        }
    }
}

/// Set (or with `None` remove) a sub-attribute of a single-valued complex
/// attribute, dropping the attribute when it becomes empty.
pub(crate) fn set_sub(holder: &mut Object, attr: &str, sub: &str, value: Option<Value>) {
    let complex = holder.entry(attr.to_string()).or_insert_with(|| Value::Object(Object::new()));
    if let Value::Object(o) = complex {
        set_or_remove(o, sub, value);
        if o.is_empty() {
            holder.remove(attr);
        }
    } else {
        let mut o = Object::new();
        set_or_remove(&mut o, sub, value);
        if o.is_empty() {
            holder.remove(attr);
        } else {
            holder.insert(attr.to_string(), Value::Object(o));
        }
    }
}

pub(crate) fn drop_empty_extensions(rt: &ResourceType, out: &mut Object) {
    for (ext, _) in &rt.extensions {
        if out.get(ext.id).is_some_and(|v| v.as_object().is_none_or(|o| o.is_empty())) {
            out.remove(ext.id);
        }
    }
}

fn check_required(rt: &ResourceType, out: &Object) -> Result<()> {
    for attr in rt.core.attributes.iter().filter(|a| a.required && !a.is_read_only()) {
        if !out.get(attr.name).is_some_and(is_assigned) {
            return Err(ScimError::invalid_value(format!("'{}' is required for a {}", attr.name, rt.name)));
        }
    }
    for (ext, required) in &rt.extensions {
        let data = out.get(ext.id).and_then(Value::as_object);
        if *required && data.is_none() {
            return Err(ScimError::invalid_value(format!("the extension '{}' is required", ext.id)));
        }
        if let Some(data) = data {
            for attr in ext.attributes.iter().filter(|a| a.required && !a.is_read_only()) {
                if !data.get(attr.name).is_some_and(is_assigned) {
                    return Err(ScimError::invalid_value(format!("'{}:{}' is required", ext.id, attr.name)));
                }
            }
        }
    }
    Ok(())
}

fn is_assigned(v: &Value) -> bool {
    !matches!(v, Value::Null) && v.as_str().is_none_or(|s| !s.trim().is_empty())
}

/// An attribute's name for error messages. Formatting happens only when
/// an error is reported, so validation allocates nothing for names.
#[derive(Clone, Copy)]
pub(crate) enum Name<'a> {
    Plain(&'a str),
    /// `urn:attr` of an extension attribute.
    Qualified(&'a str, &'a str),
    Sub(&'a Name<'a>, &'a str),
}

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Plain(n) => f.write_str(n),
            Name::Qualified(urn, n) => write!(f, "{urn}:{n}"),
            Name::Sub(parent, n) => write!(f, "{parent}.{n}"),
        }
    }
}

/// Coerce a client value to the attribute's type. `None` means unassigned
/// (JSON null, or nothing left after dropping read-only parts).
pub(crate) fn coerce(def: &AttributeDef, value: &Value, name: Name<'_>) -> Result<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if def.multi_valued {
        let Value::Array(items) = value else {
            return Err(ScimError::invalid_value(format!(
                "'{name}' is multi-valued and must be a JSON array; got {}",
                describe(value)
            )));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if item.is_array() {
                return Err(ScimError::invalid_value(format!("'{name}' holds a nested array")));
            }
            if let Some(v) = coerce_single(def, item, name)? {
                out.push(v);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        check_one_primary(def, &out, name)?;
        return Ok(Some(Value::Array(out)));
    }
    if value.is_array() {
        return Err(ScimError::invalid_value(format!("'{name}' is single-valued but an array was sent")));
    }
    coerce_single(def, value, name)
}

/// Check one value (one element, for a multi-valued attribute) against
/// the attribute's type. A value of another JSON type is refused, naming
/// the attribute; the only conversions are the ones identity providers
/// need, each listed in the README: booleans sent as the strings `"True"`
/// / `"False"` (Microsoft Entra ID), and a single-valued complex attribute
/// sent as its plain `value` (Entra's `manager`).
pub(crate) fn coerce_single(def: &AttributeDef, value: &Value, name: Name<'_>) -> Result<Option<Value>> {
    let wrong =
        |expected: &str| Err(ScimError::invalid_value(format!("'{name}' must be {expected}; got {}", describe(value))));
    Ok(Some(match def.ty {
        AttrType::String => match value {
            Value::String(s) => {
                crate::text::check(def.text, s, &name)?;
                if def.uniqueness != Uniqueness::None && !def.case_exact {
                    Value::String(crate::text::nfc(s))
                } else {
                    value.clone()
                }
            }
            _ => return wrong("a string"),
        },
        AttrType::Reference => match value {
            Value::String(s) => {
                check_reference(def, s, name)?;
                value.clone()
            }
            _ => return wrong("a URI string"),
        },
        AttrType::Binary => match value {
            Value::String(s) if BASE64.decode(s).is_ok() => value.clone(),
            Value::String(_) => return wrong("base64 text (RFC 4648 section 4)"),
            _ => return wrong("a base64 string"),
        },
        AttrType::Boolean => match value {
            Value::Bool(_) => value.clone(),
            // Entra sends booleans as "True" / "False".
            Value::String(s) => match parse_bool(s.trim()) {
                Some(b) => Value::Bool(b),
                None => return wrong("a boolean"),
            },
            _ => return wrong("a boolean"),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
            _ => return wrong("an integer"),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => value.clone(),
            _ => return wrong("a decimal number"),
        },
        AttrType::DateTime => match value {
            Value::String(s) if parse_datetime(s).is_some() => value.clone(),
            _ => return wrong("an RFC 3339 date-time such as \"2024-05-01T12:00:00Z\""),
        },
        AttrType::Complex => match value {
            Value::Object(o) => return coerce_complex(def, o, name),
            // A plain id where a single complex value with a `value` is
            // expected: Entra sends the enterprise `manager` this way.
            Value::String(_) if !def.multi_valued && def.sub("value").is_some() => {
                let mut o = Object::new();
                o.insert("value".into(), value.clone());
                return coerce_complex(def, &o, name);
            }
            _ => return wrong("a JSON object"),
        },
    }))
}

/// Base64 as RFC 4648 §4 defines it, padding optional.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// A reference is a URI without spaces or control characters. One that
/// names a scheme must name `http` or `https` (or `urn` where the attribute
/// takes schema URIs): a `javascript:` or `data:` profile URL would run in
/// the browser of whoever opens it in the product. References to things
/// outside the service (`external`, and attributes that do not say) must
/// be absolute.
fn check_reference(def: &AttributeDef, s: &str, name: Name<'_>) -> Result<()> {
    let bad = |why: &str| Err(ScimError::invalid_value(format!("'{name}' must be {why}")));
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("a URI without spaces or control characters");
    }
    let scheme = s.split_once(':').map(|(scheme, _)| scheme).filter(|scheme| {
        scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let external = def.reference_types.is_empty() || def.reference_types.contains(&"external");
    match scheme {
        Some(sc) if sc.eq_ignore_ascii_case("http") || sc.eq_ignore_ascii_case("https") => Ok(()),
        Some(sc) if sc.eq_ignore_ascii_case("urn") && def.reference_types.contains(&"uri") => Ok(()),
        Some(_) => bad("an http or https URL"),
        None if external => bad("an absolute http or https URL"),
        None => Ok(()),
    }
}

fn coerce_complex(def: &AttributeDef, value: &Object, name: Name<'_>) -> Result<Option<Value>> {
    let mut out = Object::new();
    for (k, v) in value {
        let Some(sub) = def.sub(k) else { continue };
        if !accepted(sub) {
            continue;
        }
        if let Some(c) = coerce(sub, v, Name::Sub(&name, sub.name))? {
            out.insert(sub.name.to_string(), c);
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    if let Some(missing) = def.sub_attributes.iter().find(|s| s.required && !out.contains_key(s.name)) {
        return Err(ScimError::invalid_value(format!("'{name}.{}' is required", missing.name)));
    }
    Ok(Some(Value::Object(out)))
}

fn check_one_primary(def: &AttributeDef, values: &[Value], name: Name<'_>) -> Result<()> {
    if def.sub("primary").is_none() {
        return Ok(());
    }
    let primaries = values.iter().filter(|v| v.get("primary") == Some(&Value::Bool(true))).count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!("at most one value of '{name}' may be primary; {primaries} are")));
    }
    Ok(())
}

fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    kind.to_string()
}

/// Check a PUT against the stored resource: an `immutable` attribute that
/// has a value cannot change (RFC 7643 §2.2, RFC 7644 §3.5.1).
pub fn check_replace(rt: &ResourceType, existing: &Object, replacement: &Object) -> Result<()> {
    for schema in rt.schemas() {
        let extension = schema.id != rt.core.id;
        let old = if extension { existing.get(schema.id).and_then(Value::as_object) } else { Some(existing) };
        let new = if extension { replacement.get(schema.id).and_then(Value::as_object) } else { Some(replacement) };
        let Some(old) = old else { continue };
        for attr in &schema.attributes {
            let (Some(before), after) = (old.get(attr.name), new.and_then(|n| n.get(attr.name))) else {
                continue;
            };
            if attr.mutability == Mutability::Immutable && Some(before) != after {
                return Err(ScimError::mutability(format!("'{}' is immutable", attr.name)));
            }
            if attr.is_complex() && !attr.multi_valued {
                for sub in attr.sub_attributes.iter().filter(|s| s.mutability == Mutability::Immutable) {
                    let b = before.get(sub.name);
                    if b.is_some() && b != after.and_then(|a| a.get(sub.name)) {
                        return Err(ScimError::mutability(format!("'{}.{}' is immutable", attr.name, sub.name)));
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Output.

/// Which attributes a response carries (RFC 7644 §3.4.2.5).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Projection {
    /// The attributes whose `returned` is `always` or `default`.
    #[default]
    Default,
    /// `attributes=`: only these, plus `always`.
    Include(Vec<AttrPath>),
    /// `excludedAttributes=`: the default set minus these (`always` stays).
    Exclude(Vec<AttrPath>),
}

/// The most distinct names `attributes` or `excludedAttributes` may hold:
/// more than every attribute and sub-attribute of every schema, so a
/// client never needs more, and a request cannot make the service resolve
/// an unbounded list.
pub const MAX_PROJECTION_NAMES: usize = 256;

impl Projection {
    /// From the comma-separated query parameters (or SearchRequest fields).
    /// When both are given, `attributes` wins: it is the narrower request.
    ///
    /// Names are trimmed and deduplicated (case-insensitively) before they
    /// are parsed; more than [`MAX_PROJECTION_NAMES`] distinct names is a
    /// `tooMany` error.
    ///
    /// A name with a value filter (`emails[type eq "work"]`, which some
    /// clients send) stands for the attribute it filters: the answer holds
    /// all of `emails`, a superset of what was asked, which a client can
    /// narrow itself; `attributes` selects attributes, not values (RFC 7644
    /// §3.4.2.5).
    pub fn from_params(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self> {
        let list = |param: &str, text: &str| -> Result<Vec<AttrPath>> {
            let mut seen = std::collections::HashSet::new();
            let mut names = Vec::new();
            for name in split_outside_brackets(text).into_iter().map(str::trim).filter(|s| !s.is_empty()) {
                if seen.insert(name.to_ascii_lowercase()) {
                    names.push(name);
                    if names.len() > MAX_PROJECTION_NAMES {
                        return Err(ScimError::too_many(format!(
                            "'{param}' names more than {MAX_PROJECTION_NAMES} distinct attributes; \
                             name each attribute once"
                        )));
                    }
                }
            }
            names
                .into_iter()
                .map(|s| {
                    if !s.contains('[') {
                        return AttrPath::parse(s).map_err(ScimError::invalid_path);
                    }
                    let p = PatchPath::parse(s)?;
                    Ok(match p.sub {
                        Some(sub) => AttrPath { urn: p.attr.urn, name: p.attr.name, sub: Some(sub) },
                        None => p.attr,
                    })
                })
                .collect()
        };
        let attributes = attributes.map(|a| list("attributes", a)).transpose()?;
        // `attributes` wins: the excluded list is not even parsed then.
        if let Some(a) = attributes.filter(|a| !a.is_empty()) {
            return Ok(Projection::Include(a));
        }
        match excluded.map(|e| list("excludedAttributes", e)).transpose()? {
            Some(e) if !e.is_empty() => Ok(Projection::Exclude(e)),
            _ => Ok(Projection::Default),
        }
    }

    /// This projection resolved against one resource type, once per
    /// request: rendering each resource then costs no path resolution.
    pub fn select(&self, rt: &'static ResourceType) -> Selection {
        Selection::new(rt, self)
    }

    /// Whether the response will carry top-level core attribute `name`:
    /// lets storage skip loading what will not be shown (a group's members).
    pub fn includes(&self, rt: &'static ResourceType, name: &str) -> bool {
        self.select(rt).includes(name)
    }

    /// Whether `name` (a core attribute of `rt`) is named in `attributes`.
    pub fn names(&self, rt: &ResourceType, name: &str) -> bool {
        matches!(self, Projection::Include(paths)
            if paths.iter().any(|p| rt.resolve_attribute(p).is_some_and(|r| !r.extension && r.attr.name == name)))
    }
}

/// Split a comma-separated list, leaving commas inside `[...]` alone.
fn split_outside_brackets(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A projection with its paths resolved to canonical names for one
/// resource type, deduplicated: what rendering consults per attribute.
pub struct Selection {
    rt: &'static ResourceType,
    mode: Mode,
    /// (schema id, attribute, sub-attribute); attribute `None` = the whole extension.
    paths: Vec<(&'static str, Option<&'static str>, Option<&'static str>)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Default,
    Include,
    Exclude,
}

/// What to emit of one attribute.
enum Emit<'a> {
    Whole,
    /// Only these sub-attributes are named (include) or excluded (exclude).
    Subs(Vec<&'a str>),
}

impl Selection {
    fn new(rt: &'static ResourceType, p: &Projection) -> Self {
        let (mode, list) = match p {
            Projection::Default => (Mode::Default, &[][..]),
            Projection::Include(l) => (Mode::Include, l.as_slice()),
            Projection::Exclude(l) => (Mode::Exclude, l.as_slice()),
        };
        let paths = list
            .iter()
            .filter_map(|path| match rt.resolve(path)? {
                Target::Extension(s) => Some((s.id, None, None)),
                Target::Attribute(r) => Some((r.schema.id, Some(r.attr.name), r.sub.map(|s| s.name))),
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        Self { rt, mode, paths }
    }

    /// Whether the output carries top-level core attribute `name`.
    pub fn includes(&self, name: &str) -> bool {
        self.rt.core_attribute(name).is_some_and(|attr| self.decide(&self.rt.core, attr).is_some())
    }

    fn decide(&self, schema: &Schema, attr: &'static AttributeDef) -> Option<Emit<'static>> {
        match attr.returned {
            Returned::Never => return None,
            Returned::Always => return Some(Emit::Whole),
            _ => {}
        }
        let named = |p: &&(&str, Option<&str>, Option<&str>)| p.0 == schema.id && p.1.is_none_or(|a| a == attr.name);
        let whole = self.paths.iter().filter(named).any(|p| p.2.is_none());
        let subs: Vec<&'static str> =
            self.paths.iter().filter(named).filter_map(|p| p.2).filter_map(|s| attr.sub(s).map(|d| d.name)).collect();
        match self.mode {
            Mode::Default => (attr.returned == Returned::Default).then_some(Emit::Whole),
            Mode::Include if whole => Some(Emit::Whole),
            Mode::Include if !subs.is_empty() => Some(Emit::Subs(subs)),
            Mode::Include => None,
            Mode::Exclude if whole || attr.returned == Returned::Request => None,
            Mode::Exclude if !subs.is_empty() => Some(Emit::Subs(subs)),
            Mode::Exclude => Some(Emit::Whole),
        }
    }

    fn project(&self, attr: &AttributeDef, emit: &Emit<'_>, value: &Value) -> Option<Value> {
        if !attr.is_complex() {
            return Some(value.clone());
        }
        let keep = |sub: &AttributeDef| {
            sub.returned == Returned::Always
                || match emit {
                    Emit::Whole => sub.returned == Returned::Default,
                    Emit::Subs(named) if self.mode == Mode::Include => named.contains(&sub.name),
                    Emit::Subs(named) => sub.returned == Returned::Default && !named.contains(&sub.name),
                }
        };
        let one = |v: &Value| -> Option<Value> {
            let o = v.as_object()?;
            let kept: Object = attr
                .sub_attributes
                .iter()
                .filter(|s| keep(s))
                .filter_map(|s| o.get(s.name).map(|x| (s.name.to_string(), x.clone())))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        };
        match value {
            Value::Array(items) => {
                let kept: Vec<Value> = items.iter().filter_map(one).collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            single => one(single),
        }
    }
}

/// Render a stored resource for a response: `schemas` first, then `id`,
/// `externalId`, the core attributes in schema order, the extensions, and
/// `meta` last.
pub fn render(rt: &'static ResourceType, resource: &Object, projection: &Projection) -> Value {
    render_selected(resource, &projection.select(rt))
}

/// [`render`] with the projection already resolved ([`Projection::select`]).
pub fn render_selected(resource: &Object, sel: &Selection) -> Value {
    let rt = sel.rt;
    let common = crate::schema::common_attributes();
    let mut out = Object::new();
    out.insert("schemas".into(), Value::Array(vec![Value::String(rt.core.id.into())]));

    let emit_attrs =
        |out: &mut Object, schema: &Schema, attrs: &mut dyn Iterator<Item = &'static AttributeDef>, from: &Object| {
            for attr in attrs {
                let Some(value) = from.get(attr.name) else { continue };
                if value.is_null() {
                    continue;
                }
                if let Some(emit) = sel.decide(schema, attr)
                    && let Some(v) = sel.project(attr, &emit, value)
                {
                    out.insert(attr.name.to_string(), v);
                }
            }
        };
    let (meta, ids): (Vec<_>, Vec<_>) = common.iter().filter(|a| a.name != "schemas").partition(|a| a.name == "meta");
    emit_attrs(&mut out, &rt.core, &mut ids.into_iter(), resource);
    emit_attrs(&mut out, &rt.core, &mut rt.core.attributes.iter(), resource);
    let mut extension_ids = Vec::new();
    for (ext, _) in &rt.extensions {
        let Some(data) = resource.get(ext.id).and_then(Value::as_object) else { continue };
        let mut ext_out = Object::new();
        emit_attrs(&mut ext_out, ext, &mut ext.attributes.iter(), data);
        if !ext_out.is_empty() {
            out.insert(ext.id.to_string(), Value::Object(ext_out));
            extension_ids.push(Value::String(ext.id.into()));
        }
    }
    emit_attrs(&mut out, &rt.core, &mut meta.into_iter(), resource);
    if let Some(Value::Array(schemas)) = out.get_mut("schemas") {
        schemas.extend(extension_ids);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
