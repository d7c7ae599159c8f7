//! `exported-services`: services a partition shares with peers or other partitions.

use serde_json::{Map, Value};

use super::{Field, Kind, Shape};

const CONSUMER: Shape = Shape::Obj(&[
    Field::new("Partition", Shape::Str),
    Field::new("Peer", Shape::Str),
    Field::new("SamenessGroup", Shape::Str),
]);

const SERVICE: Shape = Shape::Obj(&[
    Field::new("Name", Shape::Str),
    Field::new("Namespace", Shape::Str),
    Field::new("Consumers", Shape::List(&CONSUMER)),
]);

pub(super) const KIND: Kind = Kind {
    name: "exported-services",
    fields: &[Field::new("Services", Shape::List(&SERVICE))],
    validate,
    normalize: None,
};

fn validate(body: &Map<String, Value>) -> Result<(), String> {
    let Some(Value::Array(services)) = body.get("Services") else {
        return Ok(());
    };
    for (i, s) in services.iter().enumerate() {
        if s.get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            return Err(format!("Services[{i}].Name is required"));
        }
    }
    Ok(())
}
