//! CONSUL_ECS_CONFIG_JSON: typed model, defaults and schema validation with errors by JSON path.
