//! The embedded JSON Schema: compiling it once, validating a document against it, and turning each
//! failure into a [`Violation`] with a dotted path and a message in upstream's wording.
//!
//! Before validation, keys inside the objects that upstream leaves open are given their canonical
//! spelling (see [`canonicalize_open_objects`]).

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::path::{Found, Path, Segment};

/// The schema text, as embedded in the binary.
pub(crate) const SCHEMA_TEXT: &str = include_str!("../schema.json");

/// Compiles the schema on first use.
fn validator() -> Result<&'static Validator, ConfigError> {
    static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();
    let compiled = VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA_TEXT).map_err(|e| e.to_string())?;
        jsonschema::draft7::new(&schema).map_err(|e| e.to_string())
    });
    compiled
        .as_ref()
        .map_err(|message| ConfigError::Schema(message.clone()))
}

/// Every schema violation of `document`, in the validator's order.
pub(crate) fn validate(document: &Value) -> Result<Vec<Found>, ConfigError> {
    let validator = validator()?;
    Ok(validator
        .iter_errors(document)
        .flat_map(|e| describe(&e))
        .collect())
}

/// Turns one validator error into findings (one per unexpected property for `additionalProperties`).
fn describe(error: &ValidationError<'_>) -> Vec<Found> {
    let mut path = Path::root();
    for segment in error.instance_path().segments() {
        path.push(match segment {
            LocationSegment::Property(key) => Segment::Key(key.into_owned()),
            LocationSegment::Index(index) => Segment::Index(index),
        });
    }
    let instance: &Value = error.instance();
    let one = |message: String| {
        vec![Found {
            path: path.clone(),
            message,
        }]
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            one(format!("{name} is required"))
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| Found {
                path: path.clone(),
                message: format!("Additional property {name} is not allowed"),
            })
            .collect(),
        ValidationErrorKind::Type { kind } => one(type_message(&expected_types(kind), instance)),
        ValidationErrorKind::Enum { options } => {
            let allowed = match options.as_array() {
                Some(items) => items
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                None => options.to_string(),
            };
            one(format!("must be one of the following: {allowed}"))
        }
        ValidationErrorKind::Pattern { pattern } => {
            let hint = match path.last_key() {
                Some("name") => {
                    " (a name may hold only lower-case letters, digits, '-' and '_', and must start and \
                     end with a letter or digit)"
                }
                _ => "",
            };
            one(format!("Does not match pattern '{pattern}'{hint}"))
        }
        ValidationErrorKind::MinLength { limit } => one(format!(
            "String length must be greater than or equal to {limit}"
        )),
        ValidationErrorKind::Minimum { limit } => {
            one(format!("Must be greater than or equal to {limit}"))
        }
        ValidationErrorKind::Maximum { limit } => {
            one(format!("Must be less than or equal to {limit}"))
        }
        ValidationErrorKind::UniqueItems => one(match first_duplicate(instance) {
            Some((i, j)) => format!("array items[{i},{j}] must be unique"),
            None => "array items must be unique".to_owned(),
        }),
        _ => one(error.to_string()),
    }
}

fn expected_types(kind: &TypeKind) -> Vec<JsonType> {
    let mut types: Vec<JsonType> = match kind {
        TypeKind::Single(one) => vec![*one],
        TypeKind::Multiple(set) => set.iter().collect(),
    };
    // Name the real type first and `null` last, as the schema lists them.
    types.sort_by_key(|t| *t == JsonType::Null);
    types
}

/// `Invalid type. Expected: integer or null, given: string`.
pub(crate) fn type_message(expected: &[JsonType], given: &Value) -> String {
    let expected = expected
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(" or ");
    format!(
        "Invalid type. Expected: {expected}, given: {}",
        type_name(given)
    )
}

/// The JSON type of a value, telling integers from other numbers.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn first_duplicate(value: &Value) -> Option<(usize, usize)> {
    let items = value.as_array()?;
    items.iter().enumerate().find_map(|(i, a)| {
        items[i + 1..]
            .iter()
            .position(|b| a == b)
            .map(|offset| (i, i + 1 + offset))
    })
}

// === Key spelling in open objects ===

/// The objects the upstream schema leaves open (no `additionalProperties: false`), with the fields that
/// upstream's decoder fills from them. `*` stands for every item of an array.
///
/// Upstream's decoder matches keys to fields without regard to case, so `"PublicListenerPort": 21000`
/// inside `proxy` is used even though the schema never checks it. We rename such keys to their
/// canonical spelling before validation, so they are both checked and used.
const OPEN_OBJECTS: &[(&[&str], &[&str])] = &[
    (
        &["proxy"],
        &[
            "config",
            "localServiceAddress",
            "publicListenerPort",
            "healthCheckPort",
            "upstreams",
            "meshGateway",
            "expose",
        ],
    ),
    (&["proxy", "meshGateway"], &["mode"]),
    (&["proxy", "upstreams", "*", "meshGateway"], &["mode"]),
    (&["proxy", "expose"], &["checks", "paths"]),
    (
        &["proxy", "expose", "paths", "*"],
        &["listenerPort", "path", "localPathPort", "protocol"],
    ),
    (
        &["consulServers", "defaults"],
        &["caCertFile", "tls", "tlsServerName"],
    ),
    (
        &["consulServers", "http"],
        &["port", "https", "tls", "caCertFile", "tlsServerName"],
    ),
    (
        &["consulServers", "grpc"],
        &["port", "tls", "caCertFile", "tlsServerName"],
    ),
    (&["gateway", "proxy"], &["config"]),
];

/// Renames keys of open objects that equal a known field up to ASCII case to that field's spelling.
/// When several spellings of one field appear, the last one in the document wins, as upstream's
/// decoder has it. Unknown keys are left alone (and later ignored).
pub(crate) fn canonicalize_open_objects(document: &mut Value) {
    // Parents come before children in the table, so a renamed `Expose` is found by the rule below it.
    for (path, fields) in OPEN_OBJECTS {
        rename_at(document, path, fields);
    }
}

fn rename_at(value: &mut Value, path: &[&str], fields: &[&str]) {
    match path.split_first() {
        None => {
            if let Value::Object(map) = value {
                canonicalize_keys(map, fields);
            }
        }
        Some((&"*", rest)) => {
            if let Value::Array(items) = value {
                for item in items {
                    rename_at(item, rest, fields);
                }
            }
        }
        Some((key, rest)) => {
            if let Some(child) = value.as_object_mut().and_then(|map| map.get_mut(*key)) {
                rename_at(child, rest, fields);
            }
        }
    }
}

fn canonicalize_keys(map: &mut Map<String, Value>, fields: &[&str]) {
    let needs_work = map
        .keys()
        .any(|key| !fields.contains(&key.as_str()) && canonical(key, fields).is_some());
    if !needs_work {
        return;
    }
    let old = std::mem::take(map);
    for (key, value) in old {
        let key = canonical(&key, fields).map_or(key, str::to_owned);
        map.insert(key, value);
    }
}

fn canonical<'f>(key: &str, fields: &[&'f str]) -> Option<&'f str> {
    fields
        .iter()
        .copied()
        .find(|field| field.eq_ignore_ascii_case(key))
}
