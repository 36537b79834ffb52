//! PATCH (RFC 7644 §3.5.2): parse a PatchOp request and apply it to a
//! resource in canonical form, then re-validate the result.
//!
//! Besides the RFC, it accepts what Microsoft Entra ID and Okta send:
//! capitalised `op` (`"Replace"`), booleans as strings (`"False"`),
//! path-less value maps whose keys are dotted or URN-qualified paths,
//! member removal by a `value` array, the enterprise `manager` as a plain
//! id, and Okta's `{"op":"replace","value":{"id":..,"displayName":..}}`
//! (read-only keys in a value map are ignored).
//!
//! For groups, changes to `members` are not applied to the resource: they
//! are folded into [`MemberChanges`] (net ids added and removed), so that
//! storage applies k member changes in O(k) without reading the member
//! list of a large group.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::error::{Result, ScimError};
use crate::filter::{CompValue, CompareOp, Filter};
use crate::json::Object;
use crate::path::AttrPath;
use crate::resource::{Name, check_replace, coerce, coerce_single, holder_mut, parse_resource, set_or_remove, set_sub};
use crate::schema::{AttributeDef, ResourceType, Target};
use crate::urn;
pub use crate::value_path::PatchPath;

/// The most operations one PATCH request may hold. Each operation costs a
/// pass over the resource, so the count bounds a request's CPU time.
/// Identity providers stay far below it: Microsoft Entra ID sends group
/// member changes as a few operations whose `value` arrays carry the
/// members, and those arrays are bounded by the request body limit only.
pub const MAX_PATCH_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Replace,
    Remove,
}

impl PatchOpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Replace => "replace",
            PatchOpKind::Remove => "remove",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    /// Present for add and replace (possibly JSON null); optional for remove.
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    pub operations: Vec<PatchOperation>,
}

/// Look a key up case-insensitively: clients differ on `Operations` /
/// `operations`, `op` / `Op`.
fn get_ci<'a>(obj: &'a Object, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// Refuse an object that names one of `keys` twice, in any case (`path`
/// and `Path`): which one wins would be a guess.
fn refuse_case_twins(obj: &Object, keys: &[&str], what: &str) -> Result<()> {
    for key in keys {
        if obj.keys().filter(|k| k.eq_ignore_ascii_case(key)).nth(1).is_some() {
            return Err(ScimError::invalid_syntax(format!("{what} names '{key}' twice (in different case)")));
        }
    }
    Ok(())
}

impl PatchRequest {
    /// Parse a borrowed body (copies the operation values).
    pub fn parse(body: &Value) -> Result<Self> {
        Self::from_value(body.clone())
    }

    /// Parse an owned body, moving the operation values out of it.
    pub fn from_value(body: Value) -> Result<Self> {
        let Value::Object(mut obj) = body else {
            return Err(ScimError::invalid_syntax("a PatchOp must be a JSON object"));
        };
        refuse_case_twins(&obj, &["schemas", "Operations"], "the PatchOp")?;
        if let Some(schemas) = get_ci(&obj, "schemas") {
            let ok = schemas
                .as_array()
                .is_some_and(|l| l.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn::PATCH_OP))));
            if !ok {
                return Err(ScimError::invalid_value(format!("'schemas' of a PATCH must be [\"{}\"]", urn::PATCH_OP)));
            }
        }
        let Some(Value::Array(ops)) = take_ci(&mut obj, "Operations") else {
            return Err(ScimError::invalid_syntax("a PatchOp needs an 'Operations' array"));
        };
        if ops.is_empty() {
            return Err(ScimError::invalid_value("'Operations' is empty"));
        }
        if ops.len() > MAX_PATCH_OPERATIONS {
            return Err(ScimError::too_many(format!(
                "'Operations' holds {} operations; at most {MAX_PATCH_OPERATIONS} are accepted in one request",
                ops.len()
            )));
        }
        let operations = ops.into_iter().enumerate().map(|(i, op)| parse_operation(i, op)).collect::<Result<_>>()?;
        Ok(Self { operations })
    }
}

/// Remove a key, matched case-insensitively, and return its value.
fn take_ci(obj: &mut Object, key: &str) -> Option<Value> {
    if let Some(v) = obj.shift_remove(key) {
        return Some(v);
    }
    let actual = obj.keys().find(|k| k.eq_ignore_ascii_case(key))?.clone();
    obj.shift_remove(&actual)
}

fn parse_operation(index: usize, op: Value) -> Result<PatchOperation> {
    let n = index + 1;
    let Value::Object(mut obj) = op else {
        return Err(ScimError::invalid_syntax(format!("operation {n} is not a JSON object")));
    };
    refuse_case_twins(&obj, &["op", "path", "value"], &format!("operation {n}"))?;
    let kind = match get_ci(&obj, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("add") => PatchOpKind::Add,
        Some("replace") => PatchOpKind::Replace,
        Some("remove") => PatchOpKind::Remove,
        _ => {
            return Err(ScimError::invalid_syntax(format!(
                "operation {n}: 'op' must be \"add\", \"replace\" or \"remove\""
            )));
        }
    };
    let path = match get_ci(&obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        // A path is taken as written: " userName" is not a path a client
        // means, and trimming it would apply an operation to an attribute
        // the request does not name.
        Some(Value::String(s)) if s.trim() != s => {
            return Err(ScimError::invalid_path(format!(
                "the path '{}' starts or ends with white space",
                s.escape_debug()
            )));
        }
        Some(Value::String(s)) => Some(PatchPath::parse(s)?),
        Some(_) => return Err(ScimError::invalid_path(format!("operation {n}: 'path' must be a string"))),
    };
    let value = take_ci(&mut obj, "value");
    match (kind, &path, &value) {
        (PatchOpKind::Remove, None, _) => {
            Err(ScimError::no_target(format!("operation {n}: 'remove' needs a 'path' (RFC 7644 §3.5.2.2)")))
        }
        (PatchOpKind::Add | PatchOpKind::Replace, _, None) => {
            Err(ScimError::invalid_value(format!("operation {n}: '{}' needs a 'value'", kind.as_str())))
        }
        _ => Ok(PatchOperation { op: kind, path, value }),
    }
}

/// A group member reference: the member's id and, when given, its type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberRef {
    pub value: String,
    /// The member's `type`, when the client said which.
    pub kind: Option<MemberType>,
}

/// What a group member is: a member's `type` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberType {
    User,
    Group,
}

/// The net effect of a PATCH on a group's members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberChanges {
    /// Remove every current member before adding (`replace` of `members`,
    /// or `remove` of `members` without a value).
    pub clear: bool,
    pub add: Vec<MemberRef>,
    pub remove: Vec<String>,
}

impl MemberChanges {
    pub fn is_empty(&self) -> bool {
        !self.clear && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Folds member operations in order into their net effect.
#[derive(Default)]
struct MemberFold {
    clear: bool,
    add: BTreeMap<String, Option<MemberType>>,
    remove: BTreeSet<String>,
}

impl MemberFold {
    fn add(&mut self, m: MemberRef) {
        self.remove.remove(&m.value);
        self.add.insert(m.value, m.kind);
    }
    fn remove(&mut self, id: String) {
        self.add.remove(&id);
        if !self.clear {
            self.remove.insert(id);
        }
    }
    fn clear(&mut self) {
        self.clear = true;
        self.add.clear();
        self.remove.clear();
    }
    fn finish(self) -> MemberChanges {
        MemberChanges {
            clear: self.clear,
            add: self.add.into_iter().map(|(value, kind)| MemberRef { value, kind }).collect(),
            remove: self.remove.into_iter().collect(),
        }
    }
}

/// The result of a PATCH.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    /// The patched resource, validated, without read-only attributes (and,
    /// for a group, without `members`).
    pub resource: Object,
    /// For a group: the membership changes. Always empty for a user.
    pub members: MemberChanges,
    /// Whether anything changed: replays of the same PATCH are no-ops.
    pub changed: bool,
}

struct Ctx<'a> {
    rt: &'a ResourceType,
    doc: Object,
    members: MemberFold,
}

/// Apply a PATCH to `resource` (canonical form; for a group, without its
/// members). Operations apply in order and all-or-nothing: on error nothing
/// is returned to store.
pub fn apply_patch(rt: &ResourceType, resource: &Object, request: &PatchRequest) -> Result<PatchOutcome> {
    let mut ctx = Ctx { rt, doc: resource.clone(), members: MemberFold::default() };
    for op in &request.operations {
        match &op.path {
            None => {
                let Some(Value::Object(map)) = &op.value else {
                    return Err(ScimError::invalid_value(format!(
                        "'{}' without a 'path' needs an object of attributes as its 'value'",
                        op.op.as_str()
                    )));
                };
                for (key, value) in map {
                    apply_keyed(&mut ctx, op.op, key, value)?;
                }
            }
            Some(path) => apply_path(&mut ctx, op.op, path, op.value.as_ref(), true)?,
        }
    }
    let patched = parse_resource(rt, &Value::Object(ctx.doc))?;
    // The stored resource is canonical already: dropping its read-only
    // attributes gives what `patched` is compared with.
    let mut before = resource.clone();
    before.retain(|k, _| rt.core_attribute(k).is_none_or(|a| !a.is_read_only()));
    check_replace(rt, &before, &patched)?;
    let members = ctx.members.finish();
    let changed = before != patched || !members.is_empty();
    Ok(PatchOutcome { resource: patched, members, changed })
}

/// One entry of a path-less value map: the key is an attribute name, a
/// dotted path, a URN-qualified path, or an extension URN.
fn apply_keyed(ctx: &mut Ctx<'_>, kind: PatchOpKind, key: &str, value: &Value) -> Result<()> {
    if key.eq_ignore_ascii_case("schemas") {
        return Ok(());
    }
    let attr = AttrPath::parse(key).map_err(ScimError::invalid_path)?;
    apply_path(ctx, kind, &PatchPath { attr, filter: None, sub: None }, Some(value), false)
}

/// Apply one operation at `path`. `explicit` is false for keys of a value
/// map, where read-only attributes are skipped rather than refused (Okta
/// sends `id` there). An unknown attribute is refused either way: the same
/// change must not succeed or fail by how it is spelled.
fn apply_path(
    ctx: &mut Ctx<'_>,
    kind: PatchOpKind,
    path: &PatchPath,
    value: Option<&Value>,
    explicit: bool,
) -> Result<()> {
    let r = match ctx.rt.resolve(&path.attr) {
        None => {
            return Err(ScimError::invalid_path(format!("'{path}' is not an attribute of a {}", ctx.rt.name)));
        }
        Some(Target::Extension(ext)) => {
            if path.filter.is_some() || path.sub.is_some() {
                return Err(ScimError::invalid_path(format!("'{path}' filters a whole extension")));
            }
            if kind == PatchOpKind::Remove {
                ctx.doc.remove(ext.id);
                return Ok(());
            }
            let Some(Value::Object(map)) = value else {
                return Err(ScimError::invalid_value(format!("the value for '{}' must be an object", ext.id)));
            };
            for (key, v) in map {
                let attr = AttrPath::parse(&format!("{}:{key}", ext.id)).map_err(ScimError::invalid_path)?;
                apply_path(ctx, kind, &PatchPath { attr, filter: None, sub: None }, Some(v), false)?;
            }
            return Ok(());
        }
        Some(Target::Attribute(r)) => r,
    };
    let name = r.display();
    if r.attr.is_read_only() || r.sub.is_some_and(AttributeDef::is_read_only) {
        return if explicit { Err(ScimError::mutability(format!("'{name}' is read-only"))) } else { Ok(()) };
    }
    if ctx.rt.id == "Group" && !r.extension && r.attr.name == "members" {
        return members_op(ctx, kind, r.sub.is_some(), path, value);
    }
    let holder = holder_mut(&mut ctx.doc, r.extension, r.schema.id);
    let result = match &path.filter {
        None => apply_plain(holder, kind, r.attr, r.sub, value, &name),
        Some(filter) => {
            let sub = match &path.sub {
                Some(s) => Some(r.attr.sub(s).ok_or_else(|| {
                    ScimError::invalid_path(format!("'{s}' is not a sub-attribute of '{}'", r.attr.name))
                })?),
                None => None,
            };
            if sub.is_some_and(AttributeDef::is_read_only) {
                return if explicit { Err(ScimError::mutability(format!("'{path}' is read-only"))) } else { Ok(()) };
            }
            apply_filtered(holder, kind, r.attr, filter, sub, value, &name)
        }
    };
    crate::resource::drop_empty_extensions(ctx.rt, &mut ctx.doc);
    result
}

fn non_null(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn apply_plain(
    holder: &mut Object,
    kind: PatchOpKind,
    attr: &AttributeDef,
    sub: Option<&AttributeDef>,
    value: Option<&Value>,
    name: &str,
) -> Result<()> {
    let value = value.unwrap_or(&Value::Null);
    match (sub, kind) {
        (None, PatchOpKind::Remove) => match non_null(Some(value)) {
            Some(v) if attr.multi_valued => remove_values(holder, attr, v, name)?,
            _ => {
                holder.remove(attr.name);
            }
        },
        (None, PatchOpKind::Add) if attr.multi_valued => {
            let Some(Value::Array(new)) = coerce(attr, value, Name::Plain(name))? else { return Ok(()) };
            let list = array_mut(holder, attr.name);
            // Values already present are not added twice; found through a
            // map, so adding n values to n costs O(n), not O(n²).
            let mut at: HashMap<String, usize> = list.iter().enumerate().map(|(i, e)| (e.to_string(), i)).collect();
            let mut touched = Vec::new();
            for v in new {
                match at.get(&v.to_string()) {
                    Some(&i) => touched.push(i),
                    None => {
                        at.insert(v.to_string(), list.len());
                        touched.push(list.len());
                        list.push(v);
                    }
                }
            }
            settle_primary(list, &touched);
        }
        (None, _) if attr.is_complex() && !attr.multi_valued => match coerce(attr, value, Name::Plain(name))? {
            Some(Value::Object(new)) => {
                let slot = holder.entry(attr.name.to_string()).or_insert_with(|| Value::Object(Object::new()));
                match slot {
                    Value::Object(existing) => existing.extend(new),
                    other => *other = Value::Object(new),
                }
            }
            _ if kind == PatchOpKind::Replace => {
                holder.remove(attr.name);
            }
            _ => {}
        },
        (None, PatchOpKind::Add) if value.is_null() => {}
        (None, _) => set_or_remove(holder, attr.name, coerce(attr, value, Name::Plain(name))?),
        (Some(sub), _) => {
            let v = match kind {
                PatchOpKind::Remove => None,
                _ => coerce(sub, value, Name::Plain(name))?,
            };
            if !attr.multi_valued {
                set_sub(holder, attr.name, sub.name, v);
            } else if let Some(Value::Array(list)) = holder.get_mut(attr.name) {
                // `emails.value` without a filter addresses every value.
                for e in list.iter_mut().filter_map(Value::as_object_mut) {
                    set_or_remove(e, sub.name, v.clone());
                }
                list.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
                if list.is_empty() {
                    holder.remove(attr.name);
                }
            } else if let Some(v) = v {
                let mut e = Object::new();
                e.insert(sub.name.to_string(), v);
                holder.insert(attr.name.to_string(), Value::Array(vec![Value::Object(e)]));
            }
        }
    }
    Ok(())
}

/// The multi-valued attribute `name` as a mutable list, created if absent.
fn array_mut<'h>(holder: &'h mut Object, name: &str) -> &'h mut Vec<Value> {
    let slot = holder.entry(name.to_string()).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(list) => list,
        _ => unreachable!("the slot was made an array just above"),
    }
}

/// `remove` with a value on a multi-valued attribute removes the values
/// given (matched by their `value` where they have one), never the rest:
/// Entra removes group members this way.
fn remove_values(holder: &mut Object, attr: &AttributeDef, given: &Value, name: &str) -> Result<()> {
    let Some(Value::Array(given)) = coerce(attr, given, Name::Plain(name))? else { return Ok(()) };
    let case_exact = attr.sub("value").is_some_and(|v| v.case_exact);
    // Two values are the same when their `value`s are (case-insensitively
    // unless the attribute says otherwise), or, without a `value`, when
    // they are equal whole. As a key, so that removing n values from n
    // costs O(n).
    let key = |v: &Value| match v.get("value") {
        Some(Value::String(x)) if case_exact => format!("s:{x}"),
        Some(Value::String(x)) => format!("s:{}", crate::text::fold(x)),
        Some(other) => format!("j:{other}"),
        None => format!("w:{v}"),
    };
    let gone: HashSet<String> = given.iter().map(key).collect();
    if let Some(Value::Array(list)) = holder.get_mut(attr.name) {
        list.retain(|e| !gone.contains(&key(e)));
        if list.is_empty() {
            holder.remove(attr.name);
        }
    }
    Ok(())
}

fn apply_filtered(
    holder: &mut Object,
    kind: PatchOpKind,
    attr: &AttributeDef,
    filter: &Filter,
    sub: Option<&AttributeDef>,
    value: Option<&Value>,
    name: &str,
) -> Result<()> {
    if !(attr.is_complex() && attr.multi_valued) {
        return Err(ScimError::invalid_path(format!(
            "'{name}' is not a multi-valued complex attribute; a value filter '[...]' needs one"
        )));
    }
    filter.validate_element(attr)?;
    let matched: Vec<usize> = match holder.get(attr.name) {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_object().is_some_and(|o| filter.matches_element(attr, o)))
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    };
    if kind == PatchOpKind::Remove {
        // Removing what is not there succeeds: replays stay idempotent.
        if let Some(Value::Array(list)) = holder.get_mut(attr.name) {
            for &i in matched.iter().rev() {
                match sub {
                    None => {
                        list.remove(i);
                    }
                    Some(s) => {
                        if let Some(o) = list.get_mut(i).and_then(Value::as_object_mut) {
                            o.remove(s.name);
                        }
                    }
                }
            }
            list.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
            if list.is_empty() {
                holder.remove(attr.name);
            }
        }
        return Ok(());
    }
    let value = value.unwrap_or(&Value::Null);
    // What to merge into each selected value.
    let update: Object = match sub {
        Some(s) => {
            let mut o = Object::new();
            let v = coerce(s, value, Name::Sub(&Name::Plain(name), s.name))?;
            o.insert(s.name.to_string(), v.unwrap_or(Value::Null));
            o
        }
        None => match value {
            Value::Object(_) => match coerce_single(attr, value, Name::Plain(name))? {
                Some(Value::Object(o)) => o,
                _ => Object::new(),
            },
            _ => return Err(ScimError::invalid_value(format!("the value for '{name}[...]' must be an object"))),
        },
    };
    let list = array_mut(holder, attr.name);
    let mut touched = matched.clone();
    if matched.is_empty() {
        // Entra replaces `emails[type eq "work"].value` on users that have
        // no work email yet: create the value the filter describes.
        let Some(mut seed) = equality_seed(filter, attr) else {
            return Err(ScimError::no_target(format!("no value of '{name}' matches [{filter}]")));
        };
        seed.extend(update.clone());
        touched.push(list.len());
        list.push(Value::Object(seed));
    } else {
        for &i in &matched {
            if let Some(o) = list.get_mut(i).and_then(Value::as_object_mut) {
                o.extend(update.clone());
            }
        }
    }
    for e in list.iter_mut().filter_map(Value::as_object_mut) {
        e.retain(|_, v| !v.is_null());
    }
    list.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
    settle_primary(list, &touched);
    if list.is_empty() {
        holder.remove(attr.name);
    }
    Ok(())
}

/// For a filter made only of `sub eq literal` joined by `and`, the value it
/// describes (`type eq "work"` gives `{"type":"work"}`).
fn equality_seed(filter: &Filter, attr: &AttributeDef) -> Option<Object> {
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value } if path.urn.is_none() && path.sub.is_none() => {
            let sub = attr.sub(&path.name)?;
            let v = match value {
                CompValue::Str(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Num(n) => Value::Number(n.clone()),
                CompValue::Null => return None,
            };
            let mut o = Object::new();
            o.insert(sub.name.to_string(), v);
            Some(o)
        }
        Filter::And(a, b) => {
            let mut o = equality_seed(a, attr)?;
            o.extend(equality_seed(b, attr)?);
            Some(o)
        }
        _ => None,
    }
}

/// RFC 7644 §3.5.2: a value set to `"primary": true` makes every other
/// value non-primary.
fn settle_primary(list: &mut [Value], touched: &[usize]) {
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    let Some(&keep) = touched.iter().rev().find(|&&i| list.get(i).is_some_and(is_primary)) else { return };
    for (i, v) in list.iter_mut().enumerate() {
        if i != keep
            && is_primary(v)
            && let Some(o) = v.as_object_mut()
        {
            o.insert("primary".into(), Value::Bool(false));
        }
    }
}

fn members_op(
    ctx: &mut Ctx<'_>,
    kind: PatchOpKind,
    has_sub: bool,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<()> {
    if has_sub || path.sub.is_some() {
        return Err(ScimError::invalid_path(format!(
            "'{path}': members are added and removed whole, not changed in place"
        )));
    }
    match (kind, &path.filter) {
        (PatchOpKind::Add, None) => {
            for m in member_refs(value)? {
                ctx.members.add(m);
            }
        }
        (PatchOpKind::Replace, None) => {
            let refs = member_refs(value)?;
            ctx.members.clear();
            for m in refs {
                ctx.members.add(m);
            }
        }
        (PatchOpKind::Remove, None) => match non_null(value) {
            // Entra: remove with a value array removes those members only.
            Some(v) => {
                for m in member_refs(Some(v))? {
                    ctx.members.remove(m.value);
                }
            }
            None => ctx.members.clear(),
        },
        (PatchOpKind::Remove, Some(filter)) => {
            let mut ids = Vec::new();
            selected_member_ids(filter, &mut ids)?;
            for id in ids {
                ctx.members.remove(id);
            }
        }
        (_, Some(_)) => {
            return Err(ScimError::invalid_path(format!(
                "'{path}': a member cannot be changed in place; remove it and add the new one"
            )));
        }
    }
    Ok(())
}

/// The member references in a `members` value: each an object with a
/// `value` (the member's id) and optional `type`, or a bare id string.
/// Read directly rather than through schema coercion, which would build a
/// map per member (groups receive hundreds per request) and would silently
/// drop a member that has only read-only parts (`display`).
fn member_refs(value: Option<&Value>) -> Result<Vec<MemberRef>> {
    let raw = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.as_slice(),
        Some(single) => std::slice::from_ref(single),
    };
    raw.iter().map(member_ref).collect()
}

fn member_ref(v: &Value) -> Result<MemberRef> {
    let (id, kind) = match v {
        Value::String(id) => (Some(id.as_str()), None),
        Value::Object(o) => (get_ci(o, "value").and_then(Value::as_str), get_ci(o, "type")),
        _ => (None, None),
    };
    let id = id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ScimError::invalid_value("every member needs a non-empty 'value' (the member's id)"))?;
    let kind = match kind {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.eq_ignore_ascii_case("user") => Some(MemberType::User),
        Some(Value::String(t)) if t.eq_ignore_ascii_case("group") => Some(MemberType::Group),
        Some(other) => {
            return Err(ScimError::invalid_value(format!("a member's 'type' is \"User\" or \"Group\", not {other}")));
        }
    };
    Ok(MemberRef { value: id.to_string(), kind })
}

/// The ids named by `members[value eq "a" or value eq "b"]`.
fn selected_member_ids(filter: &Filter, out: &mut Vec<String>) -> Result<()> {
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value: CompValue::Str(id) }
            if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("value") =>
        {
            out.push(id.clone());
            Ok(())
        }
        Filter::Or(a, b) => {
            selected_member_ids(a, out)?;
            selected_member_ids(b, out)
        }
        _ => Err(ScimError::invalid_filter(format!(
            "members are selected by id: 'members[value eq \"<id>\"]' (optionally joined with 'or'), not [{filter}]"
        ))),
    }
}

/// Take the `members` out of a validated group body (POST / PUT), leaving
/// the attributes that are stored on the group itself.
pub fn take_members(group: &mut Object) -> Result<Vec<MemberRef>> {
    match group.remove("members") {
        Some(Value::Array(list)) => {
            let mut refs: Vec<MemberRef> = list.iter().map(member_ref).collect::<Result<_>>()?;
            refs.sort();
            refs.dedup_by(|a, b| a.value == b.value);
            Ok(refs)
        }
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests;
