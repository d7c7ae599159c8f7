//! `service-defaults`: per-service protocol, proxy and upstream settings.

use serde_json::{Map, Value};

use super::common::{
    EXPOSE, MESH_GATEWAY, MESH_GATEWAY_MODES, MTLS_MODES, PROXY_MODES, TRANSPARENT_PROXY,
};
use super::{Field, Kind, Shape, get, one_of};

const PASSIVE_HEALTH_CHECK: Shape = Shape::Obj(&[
    Field::new("Interval", Shape::Duration),
    Field::new("MaxFailures", Shape::Int),
    Field::new("EnforcingConsecutive5xx", Shape::Int),
    Field::new("MaxEjectionPercent", Shape::Int),
    Field::new("BaseEjectionTime", Shape::Duration),
    Field::new("Consecutive5xx", Shape::Int),
    Field::new("ConsecutiveGatewayFailure", Shape::Int),
    Field::new("EnforcingConsecutiveGatewayFailure", Shape::Int),
]);

const LIMITS: Shape = Shape::Obj(&[
    Field::new("MaxConnections", Shape::Int),
    Field::new("MaxPendingRequests", Shape::Int),
    Field::new("MaxConcurrentRequests", Shape::Int),
]);

/// The per-upstream settings; overrides add the upstream's identity.
macro_rules! upstream_fields {
    ($($extra:expr),*) => {
        &[
            $($extra,)*
            Field::new("EnvoyListenerJSON", Shape::Str),
            Field::new("EnvoyClusterJSON", Shape::Str),
            Field::new("Protocol", Shape::Str),
            Field::new("ConnectTimeoutMs", Shape::Int),
            Field::new("Limits", LIMITS),
            Field::new("PassiveHealthCheck", PASSIVE_HEALTH_CHECK),
            Field::new("MeshGateway", MESH_GATEWAY),
            Field::new("BalanceOutboundConnections", Shape::Str),
        ]
    };
}

const UPSTREAM_DEFAULTS: Shape = Shape::Obj(upstream_fields!());
const UPSTREAM_OVERRIDE: Shape = Shape::Obj(upstream_fields!(
    Field::new("Name", Shape::Str),
    Field::new("Namespace", Shape::Str),
    Field::new("Partition", Shape::Str),
    Field::new("Peer", Shape::Str)
));

pub(super) const KIND: Kind = Kind {
    name: "service-defaults",
    fields: &[
        Field::new("Protocol", Shape::Str),
        Field::new("Mode", Shape::Str),
        Field::new("TransparentProxy", TRANSPARENT_PROXY),
        Field::new("MutualTLSMode", Shape::Str),
        Field::new("MeshGateway", MESH_GATEWAY),
        Field::new("Expose", EXPOSE),
        Field::new("ExternalSNI", Shape::Str),
        Field::new(
            "UpstreamConfig",
            Shape::Obj(&[
                Field::new("Overrides", Shape::List(&UPSTREAM_OVERRIDE)),
                Field::new("Defaults", UPSTREAM_DEFAULTS),
            ]),
        ),
        Field::new(
            "Destination",
            Shape::Obj(&[
                Field::new("Addresses", Shape::List(&Shape::Str)),
                Field::new("Port", Shape::Int),
            ]),
        ),
        Field::new("MaxInboundConnections", Shape::Int),
        Field::new("LocalConnectTimeoutMs", Shape::Int),
        Field::new("LocalRequestTimeoutMs", Shape::Int),
        Field::new("BalanceInboundConnections", Shape::Str),
        Field::new("RateLimits", Shape::Any),
        Field::new("EnvoyExtensions", Shape::List(&Shape::Any)),
    ],
    validate,
    normalize: None,
};

fn validate(body: &Map<String, Value>) -> Result<(), String> {
    one_of(body, "Mode", PROXY_MODES)?;
    one_of(body, "MutualTLSMode", MTLS_MODES)?;
    one_of(body, "BalanceInboundConnections", &["", "exact_balance"])?;
    if let Some(Value::Object(mg)) = get(body, &["MeshGateway"]) {
        one_of(mg, "Mode", MESH_GATEWAY_MODES).map_err(|e| format!("MeshGateway.{e}"))?;
    }
    if let Some(Value::Array(overrides)) = get(body, &["UpstreamConfig", "Overrides"]) {
        for (i, o) in overrides.iter().enumerate() {
            if o.get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty()
            {
                return Err(format!("UpstreamConfig.Overrides[{i}]: Name is required"));
            }
        }
    }
    Ok(())
}
