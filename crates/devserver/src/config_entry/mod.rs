//! Config entry kinds: their field shapes and rules, one module per kind.
//!
//! A body is checked against its kind's [`Field`] table: keys match field names without regard to case or
//! in snake_case (as Consul's decoder allows), come out in Consul's spelling, and a key the kind does not
//! have or a value of the wrong type is refused with a message naming the field. Then the kind's own
//! `validate` runs (name rules, allowed values), then its `normalize`, if it has one (intention precedence
//! and source order). Adding a kind means adding a module with a [`Kind`] and listing it in [`KINDS`].

mod exported_services;
mod mesh;
mod proxy_defaults;
mod service_defaults;
mod service_intentions;
mod service_resolver;
mod service_router;
mod service_splitter;
mod shape;

use serde_json::{Map, Value};

pub(crate) use self::shape::{Field, Shape};

/// A config entry kind.
pub(crate) struct Kind {
    /// The kind's name, e.g. `service-defaults`.
    pub(crate) name: &'static str,
    /// The fields besides `Kind`, `Name`, `Namespace`, `Partition` and `Meta`.
    pub(crate) fields: &'static [Field],
    /// Checks the canonical body (after the shape check); the error text is returned as a 400.
    pub(crate) validate: fn(&Map<String, Value>) -> Result<(), String>,
    /// Puts a valid body in canonical form (computed fields, order), if the kind has one.
    pub(crate) normalize: Option<fn(&mut Map<String, Value>)>,
}

/// Every kind this server stores.
pub(crate) const KINDS: &[&Kind] = &[
    &service_defaults::KIND,
    &proxy_defaults::KIND,
    &mesh::KIND,
    &service_intentions::KIND,
    &service_resolver::KIND,
    &service_router::KIND,
    &service_splitter::KIND,
    &exported_services::KIND,
];

/// Looks up a kind by name.
pub(crate) fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// The error for an unknown kind, in Consul's words.
pub(crate) fn unknown_kind(name: &str) -> String {
    format!("invalid config entry kind: {name}")
}

const COMMON: &[Field] = &[
    Field::new("Kind", Shape::Str),
    Field::new("Name", Shape::Str),
    Field::new("Namespace", Shape::Str),
    Field::new("Partition", Shape::Str),
    Field::new("Meta", Shape::Map(&Shape::Str)),
];

/// Index fields a client may echo back; accepted and dropped.
const IGNORED: &[&str] = &["CreateIndex", "ModifyIndex", "Hash"];

/// Checks and canonicalises a config entry body. Returns (kind, name, canonical body).
pub(crate) fn decode(
    body: Value,
    kind_hint: Option<&str>,
) -> Result<(String, String, Map<String, Value>), String> {
    let Value::Object(obj) = body else {
        return Err("config entry must be a JSON object".into());
    };
    let kind_name = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Kind"))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned)
        .or_else(|| kind_hint.map(str::to_owned))
        .ok_or_else(|| "Kind is required".to_owned())?;
    let kind = kind(&kind_name).ok_or_else(|| unknown_kind(&kind_name))?;
    let mut obj = obj;
    obj.retain(|k, _| !IGNORED.iter().any(|i| i.eq_ignore_ascii_case(k)));
    let mut all: Vec<Field> = COMMON.to_vec();
    all.extend_from_slice(kind.fields);
    let mut body = shape::canonical_object(obj, &all, "")?;
    body.insert("Kind".into(), Value::String(kind.name.to_owned()));
    let name = body
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return Err("Name is required".into());
    }
    // Kind and Name first, as Consul renders them.
    let mut ordered = Map::new();
    ordered.insert("Kind".into(), Value::String(kind.name.to_owned()));
    ordered.insert("Name".into(), Value::String(name.clone()));
    for (k, v) in body {
        if k != "Kind" && k != "Name" {
            ordered.insert(k, v);
        }
    }
    (kind.validate)(&ordered)?;
    if let Some(normalize) = kind.normalize {
        normalize(&mut ordered);
    }
    Ok((kind.name.to_owned(), name, ordered))
}

/// A name rule for kinds with a single fixed name.
pub(crate) fn fixed_name(body: &Map<String, Value>, only: &str) -> Result<(), String> {
    let name = body.get("Name").and_then(Value::as_str).unwrap_or_default();
    if name != only {
        return Err(format!(
            "invalid name ({name:?}), only {only:?} is supported"
        ));
    }
    Ok(())
}

/// Checks that a string field, if present, is one of `allowed`.
pub(crate) fn one_of(
    body: &Map<String, Value>,
    field: &str,
    allowed: &[&str],
) -> Result<(), String> {
    match body.get(field).and_then(Value::as_str) {
        Some(v) if !allowed.contains(&v) => Err(format!(
            "{field}: invalid value {v:?}, must be one of {allowed:?}"
        )),
        _ => Ok(()),
    }
}

/// Reads a nested value by path.
pub(crate) fn get<'a>(body: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut cur = body.get(*first)?;
    for p in rest {
        cur = cur.as_object()?.get(*p)?;
    }
    Some(cur)
}

/// The shapes shared by several kinds.
pub(crate) mod common {
    use super::{Field, Shape};

    /// `MeshGateway`.
    pub(crate) const MESH_GATEWAY: Shape = Shape::Obj(&[Field::new("Mode", Shape::Str)]);
    /// `TransparentProxy` of proxy-defaults and service-defaults.
    pub(crate) const TRANSPARENT_PROXY: Shape = Shape::Obj(&[
        Field::new("OutboundListenerPort", Shape::Int),
        Field::new("DialedDirectly", Shape::Bool),
    ]);
    /// `Expose`.
    pub(crate) const EXPOSE: Shape = Shape::Obj(&[
        Field::new("Checks", Shape::Bool),
        Field::new(
            "Paths",
            Shape::List(&Shape::Obj(&[
                Field::new("ListenerPort", Shape::Int),
                Field::new("Path", Shape::Str),
                Field::new("LocalPathPort", Shape::Int),
                Field::new("Protocol", Shape::Str),
                Field::new("ParsedFromCheck", Shape::Bool),
            ])),
        ),
    ]);
    /// `AccessLogs`.
    pub(crate) const ACCESS_LOGS: Shape = Shape::Obj(&[
        Field::new("Enabled", Shape::Bool),
        Field::new("DisableListenerLogs", Shape::Bool),
        Field::new("Type", Shape::Str),
        Field::new("Path", Shape::Str),
        Field::new("JSONFormat", Shape::Str),
        Field::new("TextFormat", Shape::Str),
    ]);
    /// Modes of `MeshGateway.Mode`.
    pub(crate) const MESH_GATEWAY_MODES: &[&str] = &["", "none", "local", "remote"];
    /// Modes of a proxy.
    pub(crate) const PROXY_MODES: &[&str] = &["", "direct", "transparent"];
    /// `MutualTLSMode` values.
    pub(crate) const MTLS_MODES: &[&str] = &["", "strict", "permissive"];
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonicalises_keys_and_orders_kind_and_name_first() {
        let (kind, name, body) = decode(
            json!({"protocol": "http", "name": "web", "kind": "service-defaults", "mesh_gateway": {"mode": "local"}}),
            None,
        )
        .unwrap();
        assert_eq!((kind.as_str(), name.as_str()), ("service-defaults", "web"));
        assert_eq!(
            Value::Object(body),
            json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http", "MeshGateway": {"Mode": "local"}})
        );
    }

    #[test]
    fn refuses_unknown_kinds_fields_and_types() {
        assert_eq!(
            decode(json!({"Kind": "nope", "Name": "x"}), None).unwrap_err(),
            "invalid config entry kind: nope"
        );
        let e = decode(
            json!({"Kind": "service-defaults", "Name": "x", "Bogus": 1}),
            None,
        )
        .unwrap_err();
        assert_eq!(e, "invalid config key \"Bogus\"");
        let e = decode(
            json!({"Kind": "service-defaults", "Name": "x", "Protocol": 5}),
            None,
        )
        .unwrap_err();
        assert!(e.starts_with("Protocol: expected a string"), "{e}");
        let e = decode(
            json!({"Kind": "service-defaults", "Name": "x", "UpstreamConfig": {"Defaults": {"PassiveHealthCheck": {"MaxFailures": "many"}}}}),
            None,
        )
        .unwrap_err();
        assert!(
            e.starts_with(
                "UpstreamConfig.Defaults.PassiveHealthCheck.MaxFailures: expected an integer"
            ),
            "{e}"
        );
        let e = decode(json!({"Kind": "proxy-defaults", "Name": "web"}), None).unwrap_err();
        assert_eq!(e, "invalid name (\"web\"), only \"global\" is supported");
        let e = decode(json!({"Kind": "mesh", "Name": "x"}), None).unwrap_err();
        assert_eq!(e, "invalid name (\"x\"), only \"mesh\" is supported");
        assert_eq!(
            decode(json!({"Kind": "service-defaults"}), None).unwrap_err(),
            "Name is required"
        );
    }

    #[test]
    fn keeps_free_form_maps_as_sent() {
        let cfg = json!({"envoy_prometheus_bind_addr": "0.0.0.0:9102", "Nested": {"a": [1, {"B": null}]}});
        let (_, _, body) = decode(
            json!({"Kind": "proxy-defaults", "Name": "global", "Config": cfg.clone()}),
            None,
        )
        .unwrap();
        assert_eq!(body["Config"], cfg);
    }

    #[test]
    fn intentions_and_splitters_are_checked() {
        let e = decode(json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "maybe"}]}), None)
            .unwrap_err();
        assert!(e.contains("Sources[0].Action"), "{e}");
        decode(json!({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "allow"}]}), None).unwrap();
        let e = decode(
            json!({"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 60}, {"Weight": 30, "ServiceSubset": "v2"}]}),
            None,
        )
        .unwrap_err();
        assert!(e.contains("100"), "{e}");
    }
}
