//! `service-splitter`: weighted traffic splits of a service.

use serde_json::{Map, Value};

use super::{Field, Kind, Shape};

const SPLIT: Shape = Shape::Obj(&[
    Field::new("Weight", Shape::Float),
    Field::new("Service", Shape::Str),
    Field::new("ServiceSubset", Shape::Str),
    Field::new("Namespace", Shape::Str),
    Field::new("Partition", Shape::Str),
    Field::new("RequestHeaders", Shape::Any),
    Field::new("ResponseHeaders", Shape::Any),
]);

pub(super) const KIND: Kind = Kind {
    name: "service-splitter",
    fields: &[Field::new("Splits", Shape::List(&SPLIT))],
    validate,
    normalize: None,
};

fn validate(body: &Map<String, Value>) -> Result<(), String> {
    let Some(Value::Array(splits)) = body.get("Splits") else {
        return Err("Splits: there must be at least one split".into());
    };
    if splits.is_empty() {
        return Err("Splits: there must be at least one split".into());
    }
    let sum: f64 = splits
        .iter()
        .map(|s| s.get("Weight").and_then(Value::as_f64).unwrap_or(0.0))
        .sum();
    if (sum - 100.0).abs() > 0.01 {
        return Err(format!("Splits: the weights must add up to 100, not {sum}"));
    }
    Ok(())
}
