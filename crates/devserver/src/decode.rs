//! Decoding request bodies the way Consul's Go decoder does.
//!
//! Consul decodes JSON with Go's `encoding/json`, which matches object keys to struct fields without regard
//! to case, treats `null` as "leave the zero value", and ignores keys it does not know. Serde's derive is
//! stricter, so bodies are parsed into a [`serde_json::Value`] first (malformed JSON is reported with serde's
//! line and column) and then fed to the typed structs through [`CiDeserializer`], which:
//!
//! - renames keys to the struct's field name when they match case-insensitively,
//! - turns `null` into the zero value of strings, numbers, booleans, lists, maps and structs,
//! - records the path of the field at fault (`Service.Port: invalid type: ...`).

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Number, Value};

/// A decoding error with the dotted path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    path: Option<String>,
    msg: String,
}

impl DecodeError {
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() && !path.is_empty() {
            self.path = Some(path.to_owned());
        }
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{p}: {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            path: None,
            msg: msg.to_string(),
        }
    }
}

/// Parses `body` as JSON and decodes it into `T` with Go's leniency (see the module docs).
pub(crate) fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    from_value(value).map_err(|e| e.to_string())
}

/// Decodes an already parsed value into `T` with Go's leniency.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    T::deserialize(CiDeserializer {
        value,
        path: String::new(),
    })
}

/// A deserializer over a JSON value that matches struct keys case-insensitively.
pub(crate) struct CiDeserializer {
    value: Value,
    path: String,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: &Number, visitor: V) -> Result<V::Value, DecodeError> {
    if let Some(u) = n.as_u64() {
        visitor.visit_u64(u)
    } else if let Some(i) = n.as_i64() {
        visitor.visit_i64(i)
    } else {
        visitor.visit_f64(n.as_f64().unwrap_or(0.0))
    }
}

impl<'de> de::Deserializer<'de> for CiDeserializer {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let path = self.path;
        let r = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => visit_number(&n, visitor),
            Value::String(s) => visitor.visit_string(s),
            Value::Array(a) => visitor.visit_seq(CiSeq {
                iter: a.into_iter(),
                path: path.clone(),
                pos: 0,
            }),
            Value::Object(m) => visitor.visit_map(CiMap::new(m, None, path.clone())),
        };
        r.map_err(|e: DecodeError| e.at(&path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        if self.value.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let path = self.path;
        let r = match self.value {
            Value::Null => visitor.visit_map(CiMap::new(Map::new(), Some(fields), path.clone())),
            Value::Object(m) => visitor.visit_map(CiMap::new(m, Some(fields), path.clone())),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        };
        r.map_err(|e: DecodeError| e.at(&path))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let path = self.path;
        let r = match self.value {
            Value::Null => visitor.visit_map(CiMap::new(Map::new(), None, path.clone())),
            Value::Object(m) => visitor.visit_map(CiMap::new(m, None, path.clone())),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        };
        r.map_err(|e: DecodeError| e.at(&path))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let path = self.path;
        let r = match self.value {
            Value::Null => visitor.visit_seq(CiSeq {
                iter: Vec::new().into_iter(),
                path: path.clone(),
                pos: 0,
            }),
            Value::Array(a) => visitor.visit_seq(CiSeq {
                iter: a.into_iter(),
                path: path.clone(),
                pos: 0,
            }),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        };
        r.map_err(|e: DecodeError| e.at(&path))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let path = self.path;
        let r = match self.value {
            Value::Null => visitor.visit_string(String::new()),
            Value::String(s) => visitor.visit_string(s),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        };
        r.map_err(|e: DecodeError| e.at(&path))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let path = self.path;
        let r = match self.value {
            Value::Null => visitor.visit_bool(false),
            Value::Bool(b) => visitor.visit_bool(b),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        };
        r.map_err(|e: DecodeError| e.at(&path))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let path = self.path;
        let r = match self.value {
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            other => Err(de::Error::invalid_type(unexpected(&other), &visitor)),
        };
        r.map_err(|e: DecodeError| e.at(&path))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct tuple
        tuple_struct identifier ignored_any
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => de::Unexpected::Unsigned(u),
            (None, Some(i)) => de::Unexpected::Signed(i),
            _ => de::Unexpected::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct CiSeq {
    iter: std::vec::IntoIter<Value>,
    path: String,
    pos: usize,
}

impl<'de> SeqAccess<'de> for CiSeq {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.iter.next() {
            None => Ok(None),
            Some(value) => {
                let path = format!("{}[{}]", self.path, self.pos);
                self.pos += 1;
                seed.deserialize(CiDeserializer {
                    value,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.at(&path))
            }
        }
    }
}

struct CiMap {
    iter: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
    path: String,
}

impl CiMap {
    fn new(map: Map<String, Value>, fields: Option<&'static [&'static str]>, path: String) -> Self {
        let map = match fields {
            None => map,
            Some(fields) => {
                let mut out = Map::new();
                // Exact matches win over case-insensitive ones, as in Go.
                let mut rest = Vec::new();
                for (k, v) in map {
                    if fields.contains(&k.as_str()) {
                        out.insert(k, v);
                    } else {
                        rest.push((k, v));
                    }
                }
                for (k, v) in rest {
                    match fields.iter().find(|f| f.eq_ignore_ascii_case(&k)) {
                        Some(f) if !out.contains_key(*f) => {
                            out.insert((*f).to_owned(), v);
                        }
                        Some(_) => {}
                        None => {
                            out.insert(k, v);
                        }
                    }
                }
                out
            }
        };
        CiMap {
            iter: map.into_iter(),
            pending: None,
            path,
        }
    }
}

impl<'de> MapAccess<'de> for CiMap {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match self.iter.next() {
            None => Ok(None),
            Some((k, v)) => {
                let key = seed.deserialize(k.clone().into_deserializer()).map(Some);
                self.pending = Some((k, v));
                key
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let (k, value) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("value without a key"))?;
        let path = join(&self.path, &k);
        seed.deserialize(CiDeserializer {
            value,
            path: path.clone(),
        })
        .map_err(|e| e.at(&path))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Inner {
        #[serde(rename = "Port")]
        port: u16,
        #[serde(rename = "Tags")]
        tags: Vec<String>,
    }

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Outer {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Service")]
        service: Option<Inner>,
        #[serde(rename = "Flag")]
        flag: bool,
    }

    #[test]
    fn keys_match_case_insensitively_and_null_is_zero() {
        let v: Outer =
            from_slice(br#"{"name":"a","service":{"port":80,"Tags":null},"Flag":null}"#).unwrap();
        assert_eq!(v.name, "a");
        assert_eq!(
            v.service,
            Some(Inner {
                port: 80,
                tags: vec![]
            })
        );
        assert!(!v.flag);
    }

    #[test]
    fn errors_name_the_field() {
        let err = from_slice::<Outer>(br#"{"Service":{"Port":"x"}}"#).unwrap_err();
        assert!(
            err.starts_with("Service.Port: invalid type: string \"x\""),
            "{err}"
        );
        let err = from_slice::<Outer>(br#"{"Service":{"Tags":["a", 1]}}"#).unwrap_err();
        assert!(err.starts_with("Service.Tags[1]: invalid type"), "{err}");
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let err = from_slice::<Outer>(b"{\n \"Name\": }").unwrap_err();
        assert!(err.contains("line 2 column"), "{err}");
    }
}
