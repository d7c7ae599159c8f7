//! `proxy-defaults`: mesh-wide proxy settings; the only allowed name is `global`.

use serde_json::{Map, Value};

use super::common::{
    ACCESS_LOGS, EXPOSE, MESH_GATEWAY, MESH_GATEWAY_MODES, MTLS_MODES, PROXY_MODES,
    TRANSPARENT_PROXY,
};
use super::{Field, Kind, Shape, fixed_name, get, one_of};

pub(super) const KIND: Kind = Kind {
    name: "proxy-defaults",
    fields: &[
        Field::new("Config", Shape::Map(&Shape::Any)),
        Field::new("Mode", Shape::Str),
        Field::new("TransparentProxy", TRANSPARENT_PROXY),
        Field::new("MutualTLSMode", Shape::Str),
        Field::new("MeshGateway", MESH_GATEWAY),
        Field::new("Expose", EXPOSE),
        Field::new("AccessLogs", ACCESS_LOGS),
        Field::new("EnvoyExtensions", Shape::List(&Shape::Any)),
        Field::new("FailoverPolicy", Shape::Any),
        Field::new("PrioritizeByLocality", Shape::Any),
    ],
    validate,
    normalize: None,
};

fn validate(body: &Map<String, Value>) -> Result<(), String> {
    fixed_name(body, "global")?;
    one_of(body, "Mode", PROXY_MODES)?;
    one_of(body, "MutualTLSMode", MTLS_MODES)?;
    if let Some(Value::Object(mg)) = get(body, &["MeshGateway"]) {
        one_of(mg, "Mode", MESH_GATEWAY_MODES).map_err(|e| format!("MeshGateway.{e}"))?;
    }
    Ok(())
}
