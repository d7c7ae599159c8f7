//! `service-intentions`: who may connect to a destination service (the entry's name).
//!
//! This module checks the shape and the basic rules; precedence and the matching logic live with the
//! Connect work that serves intentions.

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
};

fn validate(body: &Map<String, Value>) -> Result<(), String> {
    let Some(Value::Array(sources)) = body.get("Sources") else {
        return Ok(());
    };
    for (i, s) in sources.iter().enumerate() {
        let name = s.get("Name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            return Err(format!("Sources[{i}].Name is required"));
        }
        let action = s.get("Action").and_then(Value::as_str).unwrap_or_default();
        let has_permissions = s
            .get("Permissions")
            .and_then(Value::as_array)
            .is_some_and(|p| !p.is_empty());
        if has_permissions {
            if !action.is_empty() {
                return Err(format!(
                    "Sources[{i}].Action must be omitted if Permissions are specified"
                ));
            }
        } else if action != "allow" && action != "deny" {
            return Err(format!(
                "Sources[{i}].Action must be set to 'allow' or 'deny'"
            ));
        }
        if let Some(t) = s.get("Type").and_then(Value::as_str)
            && t != "consul"
        {
            return Err(format!("Sources[{i}].Type must be set to 'consul'"));
        }
    }
    Ok(())
}
