//! `mesh`: mesh-wide settings; the only allowed name is `mesh`.

use serde_json::{Map, Value};

use super::{Field, Kind, Shape, fixed_name};

const TLS_DIRECTION: Shape = Shape::Obj(&[
    Field::new("TLSMinVersion", Shape::Str),
    Field::new("TLSMaxVersion", Shape::Str),
    Field::new("CipherSuites", Shape::List(&Shape::Str)),
]);

pub(super) const KIND: Kind = Kind {
    name: "mesh",
    fields: &[
        Field::new(
            "TransparentProxy",
            Shape::Obj(&[Field::new("MeshDestinationsOnly", Shape::Bool)]),
        ),
        Field::new("AllowEnablingPermissiveMutualTLS", Shape::Bool),
        Field::new("ValidateClusters", Shape::Bool),
        Field::new(
            "TLS",
            Shape::Obj(&[
                Field::new("Incoming", TLS_DIRECTION),
                Field::new("Outgoing", TLS_DIRECTION),
            ]),
        ),
        Field::new(
            "HTTP",
            Shape::Obj(&[
                Field::new("SanitizeXForwardedClientCert", Shape::Bool),
                Field::new("Incoming", Shape::Any),
            ]),
        ),
        Field::new(
            "Peering",
            Shape::Obj(&[Field::new("PeerThroughMeshGateways", Shape::Bool)]),
        ),
    ],
    validate,
    normalize: None,
};

fn validate(body: &Map<String, Value>) -> Result<(), String> {
    fixed_name(body, "mesh")
}
