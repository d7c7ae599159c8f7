//! `service-intentions`: who may connect to a destination service (the entry's name).
//!
//! Validation is the `connect` crate's ([`ServiceIntentionsEntry::validate`], Consul's rules and wording),
//! preceded by checks of the enum-like fields so a bad `Action` or `Type` gets Consul's message naming the
//! source rather than a decoder error. Normalisation recomputes each source's `Precedence`, upper-cases
//! HTTP methods and orders sources by precedence, as Consul stores them.

use std::cmp::Reverse;

use connect::intention::{ServiceIntentionsEntry, precedence};
use serde_json::{Map, Value};

use super::{Field, Kind, Shape};

const SOURCE: Shape = Shape::Obj(&[
    Field::new("Name", Shape::Str),
    Field::new("Peer", Shape::Str),
    Field::new("Namespace", Shape::Str),
    Field::new("Partition", Shape::Str),
    Field::new("SamenessGroup", Shape::Str),
    Field::new("Action", Shape::Str),
    Field::new("Permissions", Shape::List(&Shape::Any)),
    Field::new("Precedence", Shape::Int),
    Field::new("Type", Shape::Str),
    Field::new("Description", Shape::Str),
    Field::new("LegacyID", Shape::Str),
    Field::new("LegacyMeta", Shape::Map(&Shape::Str)),
    Field::new("LegacyCreateTime", Shape::Any),
    Field::new("LegacyUpdateTime", Shape::Any),
]);

pub(super) const KIND: Kind = Kind {
    name: "service-intentions",
    fields: &[
        Field::new("Sources", Shape::List(&SOURCE)),
        Field::new("JWT", Shape::Any),
    ],
    validate,
    normalize: Some(normalize),
};

fn is_action(v: Option<&Value>) -> bool {
    matches!(v.and_then(Value::as_str), Some("allow" | "deny"))
}

fn validate(body: &Map<String, Value>) -> Result<(), String> {
    if let Some(Value::Array(sources)) = body.get("Sources") {
        for (i, s) in sources.iter().enumerate() {
            match s.get("Action").and_then(Value::as_str) {
                None | Some("" | "allow" | "deny") => {}
                Some(_) => {
                    return Err(format!(
                        "Sources[{i}].Action must be set to 'allow' or 'deny'"
                    ));
                }
            }
            match s.get("Type").and_then(Value::as_str) {
                None | Some("" | "consul") => {}
                Some(_) => return Err(format!("Sources[{i}].Type must be set to 'consul'")),
            }
            if let Some(Value::Array(perms)) = s.get("Permissions") {
                for (j, p) in perms.iter().enumerate() {
                    if !p.is_object() {
                        return Err(format!("Sources[{i}].Permissions[{j}] must be an object"));
                    }
                    if !is_action(p.get("Action")) {
                        return Err(format!(
                            "Sources[{i}].Permissions[{j}].Action must be set to 'allow' or 'deny'"
                        ));
                    }
                }
            }
        }
    }
    let mut entry: ServiceIntentionsEntry =
        serde_json::from_value(Value::Object(body.clone())).map_err(|e| e.to_string())?;
    entry.normalize();
    entry.validate().map_err(|e| e.to_string())
}

fn normalize(body: &mut Map<String, Value>) {
    let dest_ns = body
        .get("Namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let dest_name = body
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(Value::Array(sources)) = body.get_mut("Sources") else {
        return;
    };
    for s in sources.iter_mut() {
        let Value::Object(src) = s else { continue };
        let text = |k: &str| src.get(k).and_then(Value::as_str).unwrap_or_default();
        let prec = precedence(text("Namespace"), text("Name"), &dest_ns, &dest_name);
        src.insert("Precedence".into(), prec.into());
        if !matches!(src.get("Type").and_then(Value::as_str), Some("consul")) {
            src.insert("Type".into(), "consul".into());
        }
        if let Some(Value::Array(perms)) = src.get_mut("Permissions") {
            for p in perms {
                let methods = p
                    .get_mut("HTTP")
                    .and_then(|h| h.get_mut("Methods"))
                    .and_then(Value::as_array_mut);
                for m in methods.into_iter().flatten() {
                    if let Value::String(s) = m {
                        *s = s.to_uppercase();
                    }
                }
            }
        }
    }
    sources.sort_by_key(|s| Reverse(s.get("Precedence").and_then(Value::as_i64).unwrap_or(0)));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::super::decode;

    #[test]
    fn precedence_is_computed_and_sources_ordered() {
        let (_, _, body) = decode(
            json!({"Kind": "service-intentions", "Name": "db", "Sources": [
                {"Name": "*", "Action": "deny"},
                {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/", "Methods": ["get"]}}]}
            ]}),
            None,
        )
        .unwrap();
        let sources = body["Sources"].as_array().unwrap();
        assert_eq!(sources[0]["Name"], "web");
        assert_eq!(sources[0]["Precedence"], 9);
        assert_eq!(sources[0]["Type"], "consul");
        assert_eq!(
            sources[0]["Permissions"][0]["HTTP"]["Methods"],
            json!(["GET"])
        );
        assert_eq!(sources[1]["Precedence"], 8);
    }

    #[test]
    fn consul_wording_for_bad_sources() {
        let err = |v| decode(v, None).unwrap_err();
        assert_eq!(
            err(
                json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "maybe"}]})
            ),
            "Sources[0].Action must be set to 'allow' or 'deny'"
        );
        assert_eq!(
            err(
                json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "allow", "Type": "ldap"}]})
            ),
            "Sources[0].Type must be set to 'consul'"
        );
        assert_eq!(
            err(
                json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Permissions": [{"HTTP": {"PathExact": "/"}}]}]})
            ),
            "Sources[0].Permissions[0].Action must be set to 'allow' or 'deny'"
        );
        assert_eq!(
            err(
                json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "allow"}, {"Name": "web", "Action": "deny"}]})
            ),
            "Sources[1] defines \"web\" more than once"
        );
        assert_eq!(
            err(
                json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "we*", "Action": "allow"}]})
            ),
            "Sources[0].Name: wildcard character '*' cannot be used with partial values"
        );
        assert_eq!(
            err(
                json!({"Kind": "service-intentions", "Name": "*", "Sources": [{"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/"}}]}]})
            ),
            "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations"
        );
    }
}
