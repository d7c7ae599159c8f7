//! `service-resolver`: subsets, redirects and failover of a service.

use serde_json::{Map, Value};

use super::{Field, Kind, Shape};

pub(super) const KIND: Kind = Kind {
    name: "service-resolver",
    fields: &[
        Field::new("DefaultSubset", Shape::Str),
        Field::new(
            "Subsets",
            Shape::Map(&Shape::Obj(&[
                Field::new("Filter", Shape::Str),
                Field::new("OnlyPassing", Shape::Bool),
            ])),
        ),
        Field::new(
            "Redirect",
            Shape::Obj(&[
                Field::new("Service", Shape::Str),
                Field::new("ServiceSubset", Shape::Str),
                Field::new("Namespace", Shape::Str),
                Field::new("Partition", Shape::Str),
                Field::new("Datacenter", Shape::Str),
                Field::new("Peer", Shape::Str),
                Field::new("SamenessGroup", Shape::Str),
            ]),
        ),
        Field::new("Failover", Shape::Map(&Shape::Any)),
        Field::new("ConnectTimeout", Shape::Duration),
        Field::new("RequestTimeout", Shape::Duration),
        Field::new("LoadBalancer", Shape::Any),
        Field::new("PrioritizeByLocality", Shape::Any),
    ],
    validate,
    normalize: None,
};

fn validate(body: &Map<String, Value>) -> Result<(), String> {
    if let Some(default) = body.get("DefaultSubset").and_then(Value::as_str)
        && !default.is_empty()
    {
        let known = body
            .get("Subsets")
            .and_then(Value::as_object)
            .is_some_and(|s| s.contains_key(default));
        if !known {
            return Err(format!("DefaultSubset {default:?} is not a valid subset"));
        }
    }
    if body.contains_key("Redirect") && body.contains_key("Subsets") {
        return Err("Redirect and Subsets cannot both be set".into());
    }
    Ok(())
}
