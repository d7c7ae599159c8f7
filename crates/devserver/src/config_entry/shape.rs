//! A small description language for config entry fields and the checker that applies it.

use serde_json::{Map, Value};

/// The expected type of a field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// A string.
    Str,
    /// A boolean.
    Bool,
    /// An integer (a JSON number without a fractional part).
    Int,
    /// Any number.
    Float,
    /// A Go duration: a string such as `"10s"` or a number of nanoseconds.
    Duration,
    /// Anything, kept as sent.
    Any,
    /// An object with free keys, each value of the given shape.
    Map(&'static Shape),
    /// A list of the given shape.
    List(&'static Shape),
    /// An object with the given fields.
    Obj(&'static [Field]),
}

/// A named field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The field's name in Consul's spelling.
    pub(crate) name: &'static str,
    /// Its shape.
    pub(crate) shape: Shape,
}

impl Field {
    /// A field.
    pub(crate) const fn new(name: &'static str, shape: Shape) -> Field {
        Field { name, shape }
    }
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

fn key_matches(field: &str, key: &str) -> bool {
    field.eq_ignore_ascii_case(key) || snake(field) == key
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "list".into(),
        Value::Object(_) => "object".into(),
    }
}

/// Checks an object against `fields` and returns it with keys in Consul's spelling, in field order.
pub(crate) fn canonical_object(
    obj: Map<String, Value>,
    fields: &[Field],
    path: &str,
) -> Result<Map<String, Value>, String> {
    let mut found: Vec<Option<Value>> = vec![None; fields.len()];
    for (k, v) in obj {
        let idx = fields
            .iter()
            .position(|f| f.name == k)
            .or_else(|| fields.iter().position(|f| key_matches(f.name, &k)))
            .ok_or_else(|| format!("invalid config key {:?}", join(path, &k)))?;
        if v.is_null() {
            continue;
        }
        let field = &fields[idx];
        let v = canonical(v, &field.shape, &join(path, field.name))?;
        found[idx] = Some(v);
    }
    let mut out = Map::new();
    for (f, v) in fields.iter().zip(found) {
        if let Some(v) = v {
            out.insert(f.name.to_owned(), v);
        }
    }
    Ok(out)
}

/// Checks one value against a shape.
pub(crate) fn canonical(v: Value, shape: &Shape, path: &str) -> Result<Value, String> {
    let bad = |what: &str, v: &Value| Err(format!("{path}: expected {what}, got {}", describe(v)));
    match shape {
        Shape::Any => Ok(v),
        Shape::Str => match v {
            Value::String(_) => Ok(v),
            other => bad("a string", &other),
        },
        Shape::Bool => match v {
            Value::Bool(_) => Ok(v),
            other => bad("a boolean", &other),
        },
        Shape::Int => match &v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v),
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => Ok(v),
            other => bad("an integer", other),
        },
        Shape::Float => match v {
            Value::Number(_) => Ok(v),
            other => bad("a number", &other),
        },
        Shape::Duration => match &v {
            Value::Number(_) => Ok(v),
            Value::String(s) => match crate::duration::parse_go(s) {
                Ok(_) => Ok(v),
                Err(e) => Err(format!("{path}: {e}")),
            },
            other => bad("a duration", other),
        },
        Shape::Map(inner) => match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let x = canonical(x, inner, &join(path, &k))?;
                    out.insert(k, x);
                }
                Ok(Value::Object(out))
            }
            other => bad("an object", &other),
        },
        Shape::List(inner) => match v {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, x)| canonical(x, inner, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => bad("a list", &other),
        },
        Shape::Obj(fields) => match v {
            Value::Object(m) => canonical_object(m, fields, path).map(Value::Object),
            other => bad("an object", &other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_forms() {
        assert_eq!(snake("DestinationServiceName"), "destination_service_name");
        assert_eq!(snake("TLSMinVersion"), "tls_min_version");
        assert_eq!(snake("JSONFormat"), "json_format");
        assert_eq!(snake("EnforcingConsecutive5xx"), "enforcing_consecutive5xx");
    }
}
