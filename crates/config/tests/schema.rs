//! The embedded schema itself: a valid draft-07 schema, every property described, and every property
//! listed in the README's field reference.

#![allow(clippy::unwrap_used)]

use consul_ecs_config::SCHEMA_JSON;
use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(SCHEMA_JSON).unwrap()
}

/// Every property of the schema as a README-style path (`proxy.upstreams[].localBindPort`), with its
/// definition.
fn properties() -> Vec<(String, Value)> {
    fn walk(prefix: &str, node: &Value, out: &mut Vec<(String, Value)>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                out.push((path.clone(), child.clone()));
                walk(&path, child, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(&format!("{prefix}[]"), items, out);
        }
    }
    let mut out = Vec::new();
    walk("", &schema(), &mut out);
    out
}

#[test]
fn schema_is_a_valid_draft_07_schema() {
    let schema = schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let meta = jsonschema::draft7::meta::validator();
    let errors: Vec<String> = meta.iter_errors(&schema).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And it compiles into a validator.
    jsonschema::draft7::new(&schema).unwrap();
}

#[test]
fn meta_schema_check_catches_a_broken_schema() {
    // The check above can fail: a misspelt type is caught.
    let broken: Value = serde_json::json!({"type": "integr"});
    assert!(!jsonschema::draft7::meta::validator().is_valid(&broken));
}

#[test]
fn every_property_has_a_description() {
    let missing: Vec<String> = properties()
        .into_iter()
        .filter(|(_, def)| def.get("description").and_then(Value::as_str).is_none())
        .map(|(path, _)| path)
        .collect();
    assert!(missing.is_empty(), "no description: {missing:?}");
}

#[test]
fn readme_field_reference_lists_every_property() {
    let readme = include_str!("../README.md");
    let missing: Vec<String> = properties()
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| !readme.contains(&format!("| `{path}` |")))
        .collect();
    assert!(missing.is_empty(), "not in README.md: {missing:?}");
}

#[test]
fn readme_field_reference_lists_no_unknown_property() {
    let readme = include_str!("../README.md");
    let known: Vec<String> = properties().into_iter().map(|(path, _)| path).collect();
    let unknown: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |").map(|(path, _)| path))
        .filter(|path| !known.iter().any(|k| k == path))
        .collect();
    assert!(
        unknown.is_empty(),
        "README.md lists unknown fields: {unknown:?}"
    );
}
