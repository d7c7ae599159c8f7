//! Key/value store endpoints (`/v1/kv`): get, list, keys, put, check-and-set, delete.

use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalog::list;
use crate::client::{Call, require};
use crate::wire::{encode_path, is_default};
use crate::{Client, Error, QueryOptions, QueryResponse, WriteOptions};

/// One key and its value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct KvPair {
    /// The key.
    pub key: String,
    /// Raft index of creation.
    pub create_index: u64,
    /// Raft index of the last change; the index to use for check-and-set.
    pub modify_index: u64,
    /// Number of times the key's lock was acquired.
    pub lock_index: u64,
    /// Opaque flags.
    pub flags: u64,
    /// The value (base64 on the wire); `None` for a key without a value.
    #[serde(with = "base64_value")]
    pub value: Option<Vec<u8>>,
    /// Session holding the lock, if any.
    #[serde(skip_serializing_if = "is_default")]
    pub session: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
}

mod base64_value {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(|e| serde::de::Error::custom(format!("value is not valid base64: {e}")))
        })
        .transpose()
    }
}

/// Key/value endpoints; see [`Client::kv`].
#[derive(Clone, Copy, Debug)]
pub struct Kv<'a> {
    client: &'a Client,
}

impl<'a> Kv<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    fn path(key: &str) -> String {
        format!("/v1/kv/{}", encode_path(key.trim_start_matches('/')))
    }

    /// `GET /v1/kv/:key`; `None` when the key does not exist.
    pub async fn get(
        self,
        key: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<KvPair>>, Error> {
        require("key", key)?;
        let call = Call::new(Method::GET, Self::path(key)).query_options(options);
        let response: QueryResponse<Option<Option<Vec<KvPair>>>> =
            self.client.query_optional(call).await?;
        Ok(response.map(|found| found.flatten().and_then(|pairs| pairs.into_iter().next())))
    }

    /// `GET /v1/kv/:prefix?recurse`: every key under the prefix (empty when there are none).
    pub async fn list(
        self,
        prefix: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<KvPair>>, Error> {
        let call = Call::new(Method::GET, Self::path(prefix))
            .param("recurse", "")
            .query_options(options);
        let response: QueryResponse<Option<Option<Vec<KvPair>>>> =
            self.client.query_optional(call).await?;
        list(response.map(Option::flatten))
    }

    /// `GET /v1/kv/:prefix?keys`: key names under the prefix, up to `separator` if given.
    pub async fn keys(
        self,
        prefix: &str,
        separator: Option<&str>,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<String>>, Error> {
        let mut call = Call::new(Method::GET, Self::path(prefix))
            .param("keys", "")
            .query_options(options);
        if let Some(separator) = separator {
            call = call.param("separator", separator);
        }
        let response: QueryResponse<Option<Option<Vec<String>>>> =
            self.client.query_optional(call).await?;
        list(response.map(Option::flatten))
    }

    /// `PUT /v1/kv/:key`. Returns Consul's answer (`false` when it did not write).
    pub async fn put(
        self,
        key: &str,
        value: impl Into<Bytes>,
        flags: u64,
        options: &WriteOptions,
    ) -> Result<bool, Error> {
        self.write(key, value.into(), flags, None, options).await
    }

    /// `PUT /v1/kv/:key?cas=:index`: writes only if the key's `ModifyIndex` is still `index`
    /// (0: only if the key does not exist). `false` when another write got there first.
    pub async fn cas(
        self,
        key: &str,
        value: impl Into<Bytes>,
        flags: u64,
        index: u64,
        options: &WriteOptions,
    ) -> Result<bool, Error> {
        self.write(key, value.into(), flags, Some(index), options)
            .await
    }

    async fn write(
        self,
        key: &str,
        value: Bytes,
        flags: u64,
        cas: Option<u64>,
        options: &WriteOptions,
    ) -> Result<bool, Error> {
        require("key", key)?;
        let mut call = Call::new(Method::PUT, Self::path(key))
            .write_options(options)
            .raw(value);
        if flags != 0 {
            call = call.param("flags", flags.to_string());
        }
        if let Some(index) = cas {
            call = call.param("cas", index.to_string());
        }
        self.client.call_bool(call).await
    }

    /// `DELETE /v1/kv/:key`.
    pub async fn delete(self, key: &str, options: &WriteOptions) -> Result<bool, Error> {
        require("key", key)?;
        let call = Call::new(Method::DELETE, Self::path(key)).write_options(options);
        self.client.call_bool(call).await
    }

    /// `DELETE /v1/kv/:key?cas=:index`: deletes only if the key's `ModifyIndex` is still `index`.
    pub async fn delete_cas(
        self,
        key: &str,
        index: u64,
        options: &WriteOptions,
    ) -> Result<bool, Error> {
        require("key", key)?;
        let call = Call::new(Method::DELETE, Self::path(key))
            .param("cas", index.to_string())
            .write_options(options);
        self.client.call_bool(call).await
    }

    /// `DELETE /v1/kv/:prefix?recurse`: deletes every key under the prefix.
    pub async fn delete_tree(self, prefix: &str, options: &WriteOptions) -> Result<bool, Error> {
        require("prefix", prefix)?;
        let call = Call::new(Method::DELETE, Self::path(prefix))
            .param("recurse", "")
            .write_options(options);
        self.client.call_bool(call).await
    }
}
