//! `service-router`: L7 routes of a service.

use serde_json::{Map, Value};

use super::{Field, Kind, Shape};

const ROUTE: Shape = Shape::Obj(&[
    Field::new("Match", Shape::Any),
    Field::new("Destination", Shape::Any),
]);

pub(super) const KIND: Kind = Kind {
    name: "service-router",
    fields: &[Field::new("Routes", Shape::List(&ROUTE))],
    validate,
    normalize: None,
};

fn validate(_body: &Map<String, Value>) -> Result<(), String> {
    Ok(())
}
