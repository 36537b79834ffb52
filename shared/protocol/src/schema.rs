//! The schema registry: core User, EnterpriseUser, the product's directory
//! extension and Group, with every attribute characteristic of RFC 7643 §2.2
//! and §7, and the resolution of attribute paths against them.

use std::sync::LazyLock;

use crate::path::AttrPath;
use crate::text::TextRule;
use crate::urn;

/// RFC 7643 §2.3 data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition (RFC 7643 §7 "attributes").
#[derive(Debug, Clone)]
pub struct AttributeDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: Vec<AttributeDef>,
    /// What characters a string value may hold (see [`crate::text`]).
    pub text: TextRule,
}

impl AttributeDef {
    pub(crate) fn new(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        Self {
            name,
            ty,
            multi_valued: false,
            description,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: Vec::new(),
            text: TextRule::Free,
        }
    }
    pub(crate) fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    pub(crate) fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub(crate) fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    pub(crate) fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    pub(crate) fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    pub(crate) fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    pub(crate) fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }
    pub(crate) fn refs(mut self, types: &'static [&'static str]) -> Self {
        self.reference_types = types;
        self
    }
    pub(crate) fn subs(mut self, subs: Vec<AttributeDef>) -> Self {
        self.sub_attributes = subs;
        self
    }
    /// A name a person reads (see [`crate::text`]).
    pub(crate) fn name_text(mut self) -> Self {
        self.text = TextRule::Name;
        self
    }
    /// An identifier matched by clients (see [`crate::text`]).
    pub(crate) fn identifier(mut self) -> Self {
        self.text = TextRule::Identifier;
        self
    }

    /// Whether the value may be written but never read back (RFC 7643
    /// §2.2 `returned: never`, such as `password`). Such a value is never
    /// stored, returned, filtered on or logged.
    pub fn is_never_returned(&self) -> bool {
        self.returned == Returned::Never
    }

    /// A sub-attribute by name, case-insensitively (RFC 7643 §2.1).
    pub fn sub(&self, name: &str) -> Option<&AttributeDef> {
        find(&self.sub_attributes, name)
    }

    pub fn is_complex(&self) -> bool {
        self.ty == AttrType::Complex
    }

    /// Whether a client may send this attribute at all.
    pub fn is_read_only(&self) -> bool {
        self.mutability == Mutability::ReadOnly
    }
}

fn find<'a>(attrs: &'a [AttributeDef], name: &str) -> Option<&'a AttributeDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// A schema (RFC 7643 §7).
#[derive(Debug, Clone)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: Vec<AttributeDef>,
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        find(&self.attributes, name)
    }
}

/// A resource type (RFC 7643 §6): a core schema plus extensions.
#[derive(Debug)]
pub struct ResourceType {
    pub id: &'static str,
    pub name: &'static str,
    pub endpoint: &'static str,
    pub description: &'static str,
    pub core: Schema,
    /// Extension schemas and whether each is required.
    pub extensions: Vec<(Schema, bool)>,
}

/// The outcome of resolving an attribute path against a resource type.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// An attribute, optionally one of its sub-attributes.
    Attribute(Resolved<'a>),
    /// A whole extension, named by its URN alone (`"urn:...:enterprise:2.0:User"`).
    Extension(&'a Schema),
}

/// A resolved attribute path with canonical names.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The schema that defines the attribute.
    pub schema: &'a Schema,
    /// Whether that schema is an extension (its attributes live under the URN key).
    pub extension: bool,
    pub attr: &'a AttributeDef,
    pub sub: Option<&'a AttributeDef>,
}

impl<'a> Resolved<'a> {
    /// The definition the path finally names: the sub-attribute if there is one.
    pub fn leaf(&self) -> &'a AttributeDef {
        self.sub.unwrap_or(self.attr)
    }

    /// `urn:attr.sub` with canonical names, for messages.
    pub fn display(&self) -> String {
        let mut s = String::new();
        if self.extension {
            s.push_str(self.schema.id);
            s.push(':');
        }
        s.push_str(self.attr.name);
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(sub.name);
        }
        s
    }
}

impl ResourceType {
    /// Every schema of this type, core first.
    pub fn schemas(&self) -> impl Iterator<Item = &Schema> {
        std::iter::once(&self.core).chain(self.extensions.iter().map(|(s, _)| s))
    }

    pub fn extension(&self, urn: &str) -> Option<&Schema> {
        self.extensions.iter().map(|(s, _)| s).find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Whether `urn` names the core schema or one of the extensions.
    pub fn knows_schema(&self, urn: &str) -> bool {
        self.core.id.eq_ignore_ascii_case(urn) || self.extension(urn).is_some()
    }

    /// A top-level attribute of the core schema or a common attribute
    /// (`schemas`, `id`, `externalId`, `meta`, RFC 7643 §3.1).
    pub fn core_attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.core.attribute(name).or_else(|| find(&COMMON, name))
    }

    /// Resolve a path, names case-insensitively. An unqualified name is
    /// looked up in the core schema first, then in the extensions, because
    /// clients do send extension attributes unqualified.
    pub fn resolve(&self, path: &AttrPath) -> Option<Target<'_>> {
        let (schema, extension, attr) = match &path.urn {
            Some(urn) => {
                if path.sub.is_none() {
                    let whole = format!("{urn}:{}", path.name);
                    if let Some(ext) = self.extension(&whole) {
                        return Some(Target::Extension(ext));
                    }
                }
                if self.core.id.eq_ignore_ascii_case(urn) {
                    (&self.core, false, self.core_attribute(&path.name)?)
                } else {
                    let ext = self.extension(urn)?;
                    (ext, true, ext.attribute(&path.name)?)
                }
            }
            None => match self.core_attribute(&path.name) {
                Some(a) => (&self.core, false, a),
                None => self.extensions.iter().find_map(|(s, _)| s.attribute(&path.name).map(|a| (s, true, a)))?,
            },
        };
        let sub = match &path.sub {
            Some(name) => Some(attr.sub(name)?),
            None => None,
        };
        Some(Target::Attribute(Resolved { schema, extension, attr, sub }))
    }

    /// Resolve a path that must name an attribute (not a whole extension).
    pub fn resolve_attribute(&self, path: &AttrPath) -> Option<Resolved<'_>> {
        match self.resolve(path)? {
            Target::Attribute(r) => Some(r),
            Target::Extension(_) => None,
        }
    }
}

use AttrType as T;
use Mutability as M;

fn string(name: &'static str, description: &'static str) -> AttributeDef {
    AttributeDef::new(name, T::String, description)
}

/// The sub-attributes shared by most multi-valued attributes (RFC 7643 §2.4).
fn multi_valued_subs(value_type: AttrType, types: &'static [&'static str]) -> Vec<AttributeDef> {
    vec![
        AttributeDef::new("value", value_type, "The attribute's significant value."),
        string("display", "A human-readable name, primarily used for display purposes."),
        string("type", "A label indicating the attribute's function.").canonical(types),
        AttributeDef::new(
            "primary",
            T::Boolean,
            "Indicates the 'primary' or preferred attribute value; true at most once.",
        ),
    ]
}

/// `schemas`, `id`, `externalId` and `meta`: common to every resource
/// (RFC 7643 §3, §3.1). `schemas` is derived from the resource on output,
/// and defined here so that filters can name it (RFC 7644 §3.4.2.2).
static COMMON: LazyLock<Vec<AttributeDef>> = LazyLock::new(|| {
    vec![
        AttributeDef::new("schemas", T::Reference, "The schemas the resource uses.")
            .multi()
            .case_exact()
            .mutability(M::ReadOnly)
            .returned(Returned::Always)
            .refs(&["uri"]),
        string("id", "Unique identifier for the resource, assigned by the service provider.")
            .identifier()
            .case_exact()
            .mutability(M::ReadOnly)
            .returned(Returned::Always)
            .unique(Uniqueness::Server),
        string("externalId", "Identifier of the resource as defined by the provisioning client.")
            .identifier()
            .case_exact(),
        AttributeDef::new("meta", T::Complex, "Resource metadata.").mutability(M::ReadOnly).subs(vec![
            string("resourceType", "The name of the resource type.").case_exact().mutability(M::ReadOnly),
            AttributeDef::new("created", T::DateTime, "When the resource was added.").mutability(M::ReadOnly),
            AttributeDef::new("lastModified", T::DateTime, "When the resource was last changed.")
                .mutability(M::ReadOnly),
            AttributeDef::new("location", T::Reference, "The URI of the resource.")
                .case_exact()
                .mutability(M::ReadOnly)
                .refs(&["uri"]),
            string("version", "The version (ETag) of the resource.").case_exact().mutability(M::ReadOnly),
        ]),
    ]
});

fn user_schema() -> Schema {
    let with_value =
        |name, desc, types| AttributeDef::new(name, T::Complex, desc).multi().subs(multi_valued_subs(T::String, types));
    Schema {
        id: urn::USER,
        name: "User",
        description: "User Account",
        attributes: vec![
            string("userName", "Unique identifier for the User, used by the user to authenticate.")
                .identifier()
                .required()
                .unique(Uniqueness::Server),
            AttributeDef::new("name", T::Complex, "The components of the user's real name.").subs(vec![
                string("formatted", "The full name, formatted for display.").name_text(),
                string("familyName", "The family name of the User.").name_text(),
                string("givenName", "The given name of the User.").name_text(),
                string("middleName", "The middle name(s) of the User.").name_text(),
                string("honorificPrefix", "The honorific prefix(es) of the User.").name_text(),
                string("honorificSuffix", "The honorific suffix(es) of the User.").name_text(),
            ]),
            string("displayName", "The name of the User, suitable for display to end-users.").name_text(),
            string("nickName", "The casual way to address the user.").name_text(),
            AttributeDef::new("profileUrl", T::Reference, "A URI pointing to the user's online profile.")
                .refs(&["external"]),
            string("title", "The user's title, such as \"Vice President\"."),
            string("userType", "The relationship between the organization and the user."),
            string("preferredLanguage", "The user's preferred written or spoken language."),
            string("locale", "The user's default location for localization."),
            string("timezone", "The User's time zone in IANA Time Zone database format."),
            AttributeDef::new("active", T::Boolean, "The User's administrative status."),
            string("password", "The User's cleartext password; never returned.")
                .mutability(M::WriteOnly)
                .returned(Returned::Never),
            with_value("emails", "Email addresses for the user.", &["work", "home", "other"]),
            with_value(
                "phoneNumbers",
                "Phone numbers for the User.",
                &["work", "home", "mobile", "fax", "pager", "other"],
            ),
            with_value(
                "ims",
                "Instant messaging addresses for the User.",
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
            ),
            AttributeDef::new("photos", T::Complex, "URLs of photos of the User.")
                .multi()
                .subs(multi_valued_subs(T::Reference, &["photo", "thumbnail"])),
            AttributeDef::new("addresses", T::Complex, "A physical mailing address for this User.").multi().subs(vec![
                string("formatted", "The full mailing address, formatted for display."),
                string("streetAddress", "The full street address component."),
                string("locality", "The city or locality component."),
                string("region", "The state or region component."),
                string("postalCode", "The zip code or postal code component."),
                string("country", "The country name component."),
                string("type", "A label indicating the attribute's function.").canonical(&["work", "home", "other"]),
                AttributeDef::new("primary", T::Boolean, "The primary mailing address."),
            ]),
            AttributeDef::new("groups", T::Complex, "The groups the user belongs to.")
                .multi()
                .mutability(M::ReadOnly)
                .subs(vec![
                    string("value", "The identifier of the User's group.").case_exact().mutability(M::ReadOnly),
                    AttributeDef::new("$ref", T::Reference, "The URI of the group.")
                        .case_exact()
                        .mutability(M::ReadOnly)
                        .refs(&["User", "Group"]),
                    string("display", "A human-readable name of the group.").mutability(M::ReadOnly),
                    string("type", "Direct or indirect membership.")
                        .mutability(M::ReadOnly)
                        .canonical(&["direct", "indirect"]),
                ]),
            with_value("entitlements", "A list of entitlements for the User.", &[]),
            with_value("roles", "A list of roles for the User.", &[]),
            AttributeDef::new("x509Certificates", T::Complex, "A list of certificates issued to the User.")
                .multi()
                .subs(multi_valued_subs(T::Binary, &[])),
        ],
    }
}

fn enterprise_user_schema() -> Schema {
    Schema {
        id: urn::ENTERPRISE_USER,
        name: "EnterpriseUser",
        description: "Enterprise User",
        attributes: vec![
            string("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
            string("costCenter", "Identifies the name of a cost center."),
            string("organization", "Identifies the name of an organization."),
            string("division", "Identifies the name of a division."),
            string("department", "Identifies the name of a department."),
            AttributeDef::new("manager", T::Complex, "The User's manager.").subs(vec![
                string("value", "The id of the SCIM resource representing the User's manager.")
                    .identifier()
                    .case_exact(),
                AttributeDef::new("$ref", T::Reference, "The URI of the manager's User resource.")
                    .case_exact()
                    .refs(&["User"]),
                string("displayName", "The displayName of the User's manager.").mutability(M::ReadOnly),
            ]),
        ],
    }
}

fn directory_user_schema() -> Schema {
    Schema {
        id: urn::DIRECTORY_USER,
        name: "DirectoryUser",
        description: "Placement of the user in the product, matched from a directory field by the Microsoft Graph pull",
        // Written by the service (the Graph pull), never by a SCIM client:
        // what a user may see in the product is not for the identity
        // provider's connector to set. A client's value is ignored, and a
        // client's PUT or PATCH leaves the service's value as it is.
        // `unit` and `userTypes` are the one unit membership the Graph pull
        // maps, and the types in it (types belong to a unit: none without
        // one); `otherUnits` are memberships the application keeps beside
        // it, which the pull never writes.
        attributes: vec![
            string("unit", "The unit the user belongs to; absent when no unit matched (unassigned).")
                .mutability(Mutability::ReadOnly),
            string("userTypes", "The user types of the user within the unit.").multi().mutability(Mutability::ReadOnly),
            AttributeDef::new(
                "otherUnits",
                AttrType::Complex,
                "Unit memberships the application keeps beside the one the directory gives, with their user types.",
            )
            .multi()
            .mutability(Mutability::ReadOnly)
            // Read-only as a whole; its parts are what the service writes.
            .subs(vec![string("unit", "The unit."), string("userTypes", "The user types within that unit.").multi()]),
        ],
    }
}

fn group_schema() -> Schema {
    Schema {
        id: urn::GROUP,
        name: "Group",
        description: "Group",
        attributes: vec![
            string("displayName", "A human-readable name for the Group.").name_text().required(),
            AttributeDef::new("members", T::Complex, "A list of members of the Group.").multi().subs(vec![
                string("value", "Identifier of the member of this Group.")
                    .identifier()
                    .case_exact()
                    .mutability(M::Immutable),
                AttributeDef::new("$ref", T::Reference, "The URI of the member resource.")
                    .case_exact()
                    .mutability(M::Immutable)
                    .refs(&["User", "Group"]),
                string("display", "A human-readable name of the member.").mutability(M::ReadOnly),
                string("type", "The type of the member.").mutability(M::Immutable).canonical(&["User", "Group"]),
            ]),
        ],
    }
}

static USER_TYPE: LazyLock<ResourceType> = LazyLock::new(|| ResourceType {
    id: "User",
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    core: user_schema(),
    extensions: vec![(enterprise_user_schema(), false), (directory_user_schema(), false)],
});

static GROUP_TYPE: LazyLock<ResourceType> = LazyLock::new(|| ResourceType {
    id: "Group",
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    core: group_schema(),
    extensions: Vec::new(),
});

/// The User resource type.
/// Schema URNs that real clients list in `schemas` without sending any
/// attribute under them: Microsoft Entra ID declares
/// `http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`
/// on every group it creates ("Develop and plan provisioning for a SCIM
/// endpoint", Create Group). They are accepted and dropped; any other
/// unknown URN is still refused.
const DECLARATION_ONLY_PREFIXES: [&str; 1] = ["http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/"];

pub fn is_declaration_only(urn: &str) -> bool {
    DECLARATION_ONLY_PREFIXES.iter().any(|p| urn.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p)))
}

pub fn user() -> &'static ResourceType {
    &USER_TYPE
}

/// The Group resource type.
pub fn group() -> &'static ResourceType {
    &GROUP_TYPE
}

/// Every resource type the service serves.
pub fn resource_types() -> [&'static ResourceType; 2] {
    [user(), group()]
}

/// Every schema the service publishes, without duplicates.
pub fn all_schemas() -> Vec<&'static Schema> {
    resource_types().into_iter().flat_map(|rt| rt.schemas()).collect()
}

/// The common attributes (`schemas`, `id`, `externalId`, `meta`).
pub fn common_attributes() -> &'static [AttributeDef] {
    &COMMON
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> AttrPath {
        AttrPath::parse(s).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn resolves_names_case_insensitively_to_canonical_definitions() {
        let r = user().resolve_attribute(&path("UserName")).map(|r| r.display());
        assert_eq!(r.as_deref(), Some("userName"));
        let r = user().resolve_attribute(&path("NAME.GIVENNAME")).map(|r| r.display());
        assert_eq!(r.as_deref(), Some("name.givenName"));
        let r = user().resolve_attribute(&path("emails.Primary")).map(|r| r.display());
        assert_eq!(r.as_deref(), Some("emails.primary"));
    }

    #[test]
    fn resolves_urn_qualified_paths_core_and_extension() {
        let r = user().resolve_attribute(&path("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName"));
        assert_eq!(r.map(|r| (r.extension, r.display())), Some((false, "name.familyName".into())));
        let r =
            user().resolve_attribute(&path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"));
        assert_eq!(
            r.map(|r| (r.extension, r.display())),
            Some((true, format!("{}:manager.value", urn::ENTERPRISE_USER)))
        );
    }

    #[test]
    fn a_bare_extension_urn_resolves_to_the_extension() {
        let t = user().resolve(&path(urn::ENTERPRISE_USER));
        assert!(matches!(t, Some(Target::Extension(s)) if s.id == urn::ENTERPRISE_USER));
    }

    #[test]
    fn unqualified_extension_attribute_falls_back_to_extensions() {
        let r = user().resolve_attribute(&path("employeeNumber"));
        assert_eq!(r.map(|r| r.extension), Some(true));
    }

    #[test]
    fn unknown_names_and_schemas_do_not_resolve() {
        assert!(user().resolve(&path("nope")).is_none());
        assert!(user().resolve(&path("name.nope")).is_none());
        assert!(user().resolve(&path("urn:example:unknown:User:name")).is_none());
        assert!(group().resolve(&path("userName")).is_none());
    }

    #[test]
    fn rfc7643_characteristics_of_key_attributes() {
        let u = user();
        let user_name = u.core_attribute("userName").map(|a| (a.required, a.case_exact, a.uniqueness));
        assert_eq!(user_name, Some((true, false, Uniqueness::Server)));
        let id = u.core_attribute("id").map(|a| (a.mutability, a.returned, a.case_exact));
        assert_eq!(id, Some((M::ReadOnly, Returned::Always, true)));
        let pw = u.core_attribute("password").map(|a| (a.mutability, a.returned));
        assert_eq!(pw, Some((M::WriteOnly, Returned::Never)));
        assert_eq!(u.core_attribute("groups").map(|a| a.mutability), Some(M::ReadOnly));
        assert_eq!(group().core_attribute("displayName").map(|a| a.required), Some(true));
    }
}
