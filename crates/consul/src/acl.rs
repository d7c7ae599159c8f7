//! ACL endpoints (`/v1/acl`): bootstrap, login and logout, tokens, policies, roles, auth methods
//! and binding rules.
//!
//! Reads of a single object return `None` for a 404. Consul answers some reads of objects that
//! do not exist with 403 "ACL not found" instead; see [`Error::is_acl_not_found`].

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::list;
use crate::client::{Call, require};
use crate::config::Secret;
use crate::wire::{
    GoDuration, NanosDuration, encode_segment, is_default, null_default, string_enum,
};
use crate::{Client, Error, QueryOptions, QueryResponse, WriteOptions};

/// Accessor ID of the anonymous token.
pub const ANONYMOUS_TOKEN_ID: &str = "00000000-0000-0000-0000-000000000002";

/// A link to a policy or role, by ID or by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclLink {
    /// ID.
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    /// Name.
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
}

impl AclLink {
    /// A link by name, as consul-ecs writes them.
    pub fn by_name(name: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            name: name.into(),
        }
    }
}

/// A service identity: the privileges a service needs in the catalog and in Connect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclServiceIdentity {
    /// Service name.
    pub service_name: String,
    /// Datacenters it applies in; all when empty.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub datacenters: Vec<String>,
}

/// A node identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclNodeIdentity {
    /// Node name.
    pub node_name: String,
    /// Datacenter.
    pub datacenter: String,
}

/// A templated policy (`builtin/service`, ...) with its variables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclTemplatedPolicy {
    /// Template name.
    pub template_name: String,
    /// Template variables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_variables: Option<AclTemplatedPolicyVariables>,
    /// Datacenters it applies in.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub datacenters: Vec<String>,
}

/// Variables of a templated policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclTemplatedPolicyVariables {
    /// The `name` variable.
    pub name: String,
}

/// An ACL token. `secret_id` is a [`Secret`], so `Debug` never shows it. Fields this type does
/// not name are kept in `extra`, so a token read and updated loses nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclToken {
    /// Raft index of creation.
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Public ID.
    #[serde(rename = "AccessorID", skip_serializing_if = "is_default")]
    pub accessor_id: String,
    /// The secret sent as `X-Consul-Token`.
    #[serde(rename = "SecretID", skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<Secret>,
    /// Description.
    #[serde(skip_serializing_if = "is_default")]
    pub description: String,
    /// Linked policies.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub policies: Vec<AclLink>,
    /// Linked roles.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub roles: Vec<AclLink>,
    /// Service identities.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub service_identities: Vec<AclServiceIdentity>,
    /// Node identities.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub node_identities: Vec<AclNodeIdentity>,
    /// Templated policies.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub templated_policies: Vec<AclTemplatedPolicy>,
    /// Valid only in the datacenter that created it.
    #[serde(skip_serializing_if = "is_default")]
    pub local: bool,
    /// Auth method that created it (login tokens).
    #[serde(skip_serializing_if = "is_default")]
    pub auth_method: String,
    /// Lifetime asked for at creation (integer nanoseconds on the wire, as Consul's Go client
    /// sends it).
    #[serde(rename = "ExpirationTTL", skip_serializing_if = "Option::is_none")]
    pub expiration_ttl: Option<NanosDuration>,
    /// Expiry (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// Content hash (base64).
    #[serde(skip_serializing_if = "is_default")]
    pub hash: String,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Namespace of the auth method (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub auth_method_namespace: String,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An ACL policy. List responses leave `rules` empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclPolicy {
    /// ID; set by Consul on creation.
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(skip_serializing_if = "is_default")]
    pub description: String,
    /// Rules in HCL or JSON.
    #[serde(skip_serializing_if = "is_default")]
    pub rules: String,
    /// Datacenters it applies in; all when empty.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub datacenters: Vec<String>,
    /// Content hash (base64).
    #[serde(skip_serializing_if = "is_default")]
    pub hash: String,
    /// Raft index of creation.
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An ACL role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclRole {
    /// ID; set by Consul on creation.
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(skip_serializing_if = "is_default")]
    pub description: String,
    /// Linked policies.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub policies: Vec<AclLink>,
    /// Service identities.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub service_identities: Vec<AclServiceIdentity>,
    /// Node identities.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub node_identities: Vec<AclNodeIdentity>,
    /// Templated policies.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub templated_policies: Vec<AclTemplatedPolicy>,
    /// Content hash (base64).
    #[serde(skip_serializing_if = "is_default")]
    pub hash: String,
    /// Raft index of creation.
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An auth method. List responses leave `config` empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclAuthMethod {
    /// Name.
    pub name: String,
    /// Type (`aws-iam`, `kubernetes`, `jwt`, `oidc`).
    #[serde(rename = "Type")]
    pub method_type: String,
    /// Display name.
    #[serde(skip_serializing_if = "is_default")]
    pub display_name: String,
    /// Description.
    #[serde(skip_serializing_if = "is_default")]
    pub description: String,
    /// Longest lifetime of a token it creates.
    #[serde(rename = "MaxTokenTTL", skip_serializing_if = "Option::is_none")]
    pub max_token_ttl: Option<GoDuration>,
    /// `local` or `global` tokens.
    #[serde(skip_serializing_if = "is_default")]
    pub token_locality: String,
    /// Type-specific settings (for `aws-iam`: `BoundIAMPrincipalARNs`, `EnableIAMEntityDetails`,
    /// `IAMEntityTags`, ...).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub config: Map<String, Value>,
    /// Raft index of creation.
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Rules mapping identities to namespaces (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub namespace_rules: Vec<AclAuthMethodNamespaceRule>,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
    /// Fields this type does not name, kept as received.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A namespace rule of an auth method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclAuthMethodNamespaceRule {
    /// Selector over the verified identity.
    #[serde(skip_serializing_if = "is_default")]
    pub selector: String,
    /// Namespace to bind into (may use `${...}` templates).
    #[serde(skip_serializing_if = "is_default")]
    pub bind_namespace: String,
}

string_enum! {
    /// What a binding rule binds to.
    #[derive(Default)]
    pub enum BindingRuleBindType {
        /// A service identity (`service`).
        #[default]
        Service => "service",
        /// An existing role (`role`).
        Role => "role",
        /// A node identity (`node`).
        Node => "node",
        /// An existing policy (`policy`).
        Policy => "policy",
        /// A templated policy (`templated-policy`).
        TemplatedPolicy => "templated-policy",
    }
}

/// A binding rule of an auth method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclBindingRule {
    /// ID; set by Consul on creation.
    #[serde(rename = "ID", skip_serializing_if = "is_default")]
    pub id: String,
    /// Description.
    #[serde(skip_serializing_if = "is_default")]
    pub description: String,
    /// Auth method name.
    pub auth_method: String,
    /// Selector over the verified identity; matches everything when empty.
    #[serde(skip_serializing_if = "is_default")]
    pub selector: String,
    /// What to bind.
    pub bind_type: BindingRuleBindType,
    /// Name to bind (may use `${...}` templates).
    pub bind_name: String,
    /// Variables of a templated policy binding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_vars: Option<AclTemplatedPolicyVariables>,
    /// Raft index of creation.
    #[serde(skip_serializing_if = "is_default")]
    pub create_index: u64,
    /// Raft index of the last change.
    #[serde(skip_serializing_if = "is_default")]
    pub modify_index: u64,
    /// Namespace (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(skip_serializing_if = "is_default")]
    pub partition: String,
}

/// Body of `POST /v1/acl/login`. The namespace, partition and datacenter go in [`WriteOptions`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AclLoginParams {
    /// Auth method name.
    pub auth_method: String,
    /// Credential for the auth method (for `aws-iam`, the signed-request token).
    pub bearer_token: Secret,
    /// Metadata recorded in the token's description.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "null_default")]
    pub meta: BTreeMap<String, String>,
}

/// Filters for [`Acl::token_list`] (sent as query parameters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclTokenFilter {
    /// Tokens created by this auth method (`?authmethod=`).
    pub auth_method: Option<String>,
    /// Tokens linked to this policy ID (`?policy=`).
    pub policy: Option<String>,
    /// Tokens linked to this role ID (`?role=`).
    pub role: Option<String>,
    /// Tokens with this service identity (`?servicename=`).
    pub service_name: Option<String>,
}

/// ACL endpoints; see [`Client::acl`].
#[derive(Clone, Copy, Debug)]
pub struct Acl<'a> {
    client: &'a Client,
}

impl<'a> Acl<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        self,
        path: String,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<T>>, Error> {
        let response: QueryResponse<Option<Option<T>>> = self
            .client
            .query_optional(Call::new(Method::GET, path).query_options(options))
            .await?;
        Ok(response.map(Option::flatten))
    }

    async fn write<B: Serialize, T: serde::de::DeserializeOwned>(
        self,
        path: String,
        body: &B,
        options: &WriteOptions,
    ) -> Result<T, Error> {
        let call = Call::new(Method::PUT, path)
            .write_options(options)
            .json(body)?;
        self.client.call_json(call).await
    }

    async fn delete(self, path: String, options: &WriteOptions) -> Result<(), Error> {
        self.client
            .call_unit(Call::new(Method::DELETE, path).write_options(options))
            .await
    }

    async fn list<T: serde::de::DeserializeOwned>(
        self,
        call: Call<'_>,
    ) -> Result<QueryResponse<Vec<T>>, Error> {
        list(self.client.query(call).await?)
    }

    // === bootstrap, login, logout ===

    /// `PUT /v1/acl/bootstrap`: creates the first management token. With `secret`, that token
    /// gets this secret.
    pub async fn bootstrap(self, secret: Option<&Secret>) -> Result<AclToken, Error> {
        let mut call = Call::new(Method::PUT, "/v1/acl/bootstrap");
        if let Some(secret) = secret {
            #[derive(Serialize)]
            struct Body<'s> {
                #[serde(rename = "BootstrapSecret")]
                bootstrap_secret: &'s str,
            }
            call = call.json(&Body {
                bootstrap_secret: secret.expose(),
            })?;
        }
        self.client.call_json(call).await
    }

    /// `POST /v1/acl/login`: exchanges an auth method credential for a token.
    pub async fn login(
        self,
        params: &AclLoginParams,
        options: &WriteOptions,
    ) -> Result<AclToken, Error> {
        require("login AuthMethod", &params.auth_method)?;
        let call = Call::new(Method::POST, "/v1/acl/login")
            .write_options(options)
            .json(params)?;
        self.client.call_json(call).await
    }

    /// `POST /v1/acl/logout`: destroys the token in use (the client's, or `options.token`),
    /// which must have come from a login.
    pub async fn logout(self, options: &WriteOptions) -> Result<(), Error> {
        self.client
            .call_unit(Call::new(Method::POST, "/v1/acl/logout").write_options(options))
            .await
    }

    // === tokens ===

    /// `PUT /v1/acl/token`.
    pub async fn token_create(
        self,
        token: &AclToken,
        options: &WriteOptions,
    ) -> Result<AclToken, Error> {
        self.write("/v1/acl/token".into(), token, options).await
    }

    /// `GET /v1/acl/token/:accessor_id`.
    pub async fn token_read(
        self,
        accessor_id: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<AclToken>>, Error> {
        require("token AccessorID", accessor_id)?;
        self.read(
            format!("/v1/acl/token/{}", encode_segment(accessor_id)),
            options,
        )
        .await
    }

    /// `GET /v1/acl/token/self`: the token in use.
    pub async fn token_read_self(self, options: &QueryOptions) -> Result<AclToken, Error> {
        let call = Call::new(Method::GET, "/v1/acl/token/self").query_options(options);
        self.client.call_json(call).await
    }

    /// `PUT /v1/acl/token/:accessor_id`; `token.accessor_id` must be set.
    pub async fn token_update(
        self,
        token: &AclToken,
        options: &WriteOptions,
    ) -> Result<AclToken, Error> {
        require("token AccessorID", &token.accessor_id)?;
        let path = format!("/v1/acl/token/{}", encode_segment(&token.accessor_id));
        self.write(path, token, options).await
    }

    /// `DELETE /v1/acl/token/:accessor_id`.
    pub async fn token_delete(
        self,
        accessor_id: &str,
        options: &WriteOptions,
    ) -> Result<(), Error> {
        require("token AccessorID", accessor_id)?;
        self.delete(
            format!("/v1/acl/token/{}", encode_segment(accessor_id)),
            options,
        )
        .await
    }

    /// `GET /v1/acl/tokens`, narrowed by `filter` and by `options.filter`.
    pub async fn token_list(
        self,
        filter: &AclTokenFilter,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<AclToken>>, Error> {
        let mut call = Call::new(Method::GET, "/v1/acl/tokens").query_options(options);
        for (key, value) in [
            ("authmethod", &filter.auth_method),
            ("policy", &filter.policy),
            ("role", &filter.role),
            ("servicename", &filter.service_name),
        ] {
            if let Some(value) = value {
                call = call.param(key, value.as_str());
            }
        }
        self.list(call).await
    }

    // === policies ===

    /// `PUT /v1/acl/policy`; `policy.id` must be empty.
    pub async fn policy_create(
        self,
        policy: &AclPolicy,
        options: &WriteOptions,
    ) -> Result<AclPolicy, Error> {
        require("policy Name", &policy.name)?;
        if !policy.id.is_empty() {
            return Err(Error::InvalidArgument(
                "a new policy cannot have an ID".into(),
            ));
        }
        self.write("/v1/acl/policy".into(), policy, options).await
    }

    /// `GET /v1/acl/policy/:id`.
    pub async fn policy_read(
        self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<AclPolicy>>, Error> {
        require("policy ID", id)?;
        self.read(format!("/v1/acl/policy/{}", encode_segment(id)), options)
            .await
    }

    /// `GET /v1/acl/policy/name/:name`.
    pub async fn policy_read_by_name(
        self,
        name: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<AclPolicy>>, Error> {
        require("policy name", name)?;
        self.read(
            format!("/v1/acl/policy/name/{}", encode_segment(name)),
            options,
        )
        .await
    }

    /// `PUT /v1/acl/policy/:id`; `policy.id` must be set.
    pub async fn policy_update(
        self,
        policy: &AclPolicy,
        options: &WriteOptions,
    ) -> Result<AclPolicy, Error> {
        require("policy ID", &policy.id)?;
        let path = format!("/v1/acl/policy/{}", encode_segment(&policy.id));
        self.write(path, policy, options).await
    }

    /// `DELETE /v1/acl/policy/:id`.
    pub async fn policy_delete(self, id: &str, options: &WriteOptions) -> Result<(), Error> {
        require("policy ID", id)?;
        self.delete(format!("/v1/acl/policy/{}", encode_segment(id)), options)
            .await
    }

    /// `GET /v1/acl/policies` (without rules).
    pub async fn policy_list(
        self,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<AclPolicy>>, Error> {
        self.list(Call::new(Method::GET, "/v1/acl/policies").query_options(options))
            .await
    }

    // === roles ===

    /// `PUT /v1/acl/role`; `role.id` must be empty.
    pub async fn role_create(
        self,
        role: &AclRole,
        options: &WriteOptions,
    ) -> Result<AclRole, Error> {
        require("role Name", &role.name)?;
        if !role.id.is_empty() {
            return Err(Error::InvalidArgument(
                "a new role cannot have an ID".into(),
            ));
        }
        self.write("/v1/acl/role".into(), role, options).await
    }

    /// `GET /v1/acl/role/:id`.
    pub async fn role_read(
        self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<AclRole>>, Error> {
        require("role ID", id)?;
        self.read(format!("/v1/acl/role/{}", encode_segment(id)), options)
            .await
    }

    /// `GET /v1/acl/role/name/:name`.
    pub async fn role_read_by_name(
        self,
        name: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<AclRole>>, Error> {
        require("role name", name)?;
        self.read(
            format!("/v1/acl/role/name/{}", encode_segment(name)),
            options,
        )
        .await
    }

    /// `PUT /v1/acl/role/:id`; `role.id` must be set.
    pub async fn role_update(
        self,
        role: &AclRole,
        options: &WriteOptions,
    ) -> Result<AclRole, Error> {
        require("role ID", &role.id)?;
        let path = format!("/v1/acl/role/{}", encode_segment(&role.id));
        self.write(path, role, options).await
    }

    /// `DELETE /v1/acl/role/:id`.
    pub async fn role_delete(self, id: &str, options: &WriteOptions) -> Result<(), Error> {
        require("role ID", id)?;
        self.delete(format!("/v1/acl/role/{}", encode_segment(id)), options)
            .await
    }

    /// `GET /v1/acl/roles`, optionally only roles linked to a policy ID.
    pub async fn role_list(
        self,
        policy: Option<&str>,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<AclRole>>, Error> {
        let mut call = Call::new(Method::GET, "/v1/acl/roles").query_options(options);
        if let Some(policy) = policy {
            call = call.param("policy", policy);
        }
        self.list(call).await
    }

    // === auth methods ===

    /// `PUT /v1/acl/auth-method`.
    pub async fn auth_method_create(
        self,
        method: &AclAuthMethod,
        options: &WriteOptions,
    ) -> Result<AclAuthMethod, Error> {
        require("auth method Name", &method.name)?;
        self.write("/v1/acl/auth-method".into(), method, options)
            .await
    }

    /// `GET /v1/acl/auth-method/:name`.
    pub async fn auth_method_read(
        self,
        name: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<AclAuthMethod>>, Error> {
        require("auth method name", name)?;
        self.read(
            format!("/v1/acl/auth-method/{}", encode_segment(name)),
            options,
        )
        .await
    }

    /// `PUT /v1/acl/auth-method/:name`.
    pub async fn auth_method_update(
        self,
        method: &AclAuthMethod,
        options: &WriteOptions,
    ) -> Result<AclAuthMethod, Error> {
        require("auth method Name", &method.name)?;
        let path = format!("/v1/acl/auth-method/{}", encode_segment(&method.name));
        self.write(path, method, options).await
    }

    /// `DELETE /v1/acl/auth-method/:name`.
    pub async fn auth_method_delete(self, name: &str, options: &WriteOptions) -> Result<(), Error> {
        require("auth method name", name)?;
        self.delete(
            format!("/v1/acl/auth-method/{}", encode_segment(name)),
            options,
        )
        .await
    }

    /// `GET /v1/acl/auth-methods`.
    pub async fn auth_method_list(
        self,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<AclAuthMethod>>, Error> {
        self.list(Call::new(Method::GET, "/v1/acl/auth-methods").query_options(options))
            .await
    }

    // === binding rules ===

    /// `PUT /v1/acl/binding-rule`; `rule.id` must be empty.
    pub async fn binding_rule_create(
        self,
        rule: &AclBindingRule,
        options: &WriteOptions,
    ) -> Result<AclBindingRule, Error> {
        require("binding rule AuthMethod", &rule.auth_method)?;
        if !rule.id.is_empty() {
            return Err(Error::InvalidArgument(
                "a new binding rule cannot have an ID".into(),
            ));
        }
        self.write("/v1/acl/binding-rule".into(), rule, options)
            .await
    }

    /// `GET /v1/acl/binding-rule/:id`.
    pub async fn binding_rule_read(
        self,
        id: &str,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Option<AclBindingRule>>, Error> {
        require("binding rule ID", id)?;
        self.read(
            format!("/v1/acl/binding-rule/{}", encode_segment(id)),
            options,
        )
        .await
    }

    /// `PUT /v1/acl/binding-rule/:id`; `rule.id` must be set.
    pub async fn binding_rule_update(
        self,
        rule: &AclBindingRule,
        options: &WriteOptions,
    ) -> Result<AclBindingRule, Error> {
        require("binding rule ID", &rule.id)?;
        let path = format!("/v1/acl/binding-rule/{}", encode_segment(&rule.id));
        self.write(path, rule, options).await
    }

    /// `DELETE /v1/acl/binding-rule/:id`.
    pub async fn binding_rule_delete(self, id: &str, options: &WriteOptions) -> Result<(), Error> {
        require("binding rule ID", id)?;
        self.delete(
            format!("/v1/acl/binding-rule/{}", encode_segment(id)),
            options,
        )
        .await
    }

    /// `GET /v1/acl/binding-rules`, optionally only the rules of one auth method.
    pub async fn binding_rule_list(
        self,
        auth_method: Option<&str>,
        options: &QueryOptions,
    ) -> Result<QueryResponse<Vec<AclBindingRule>>, Error> {
        let mut call = Call::new(Method::GET, "/v1/acl/binding-rules").query_options(options);
        if let Some(method) = auth_method {
            call = call.param("authmethod", method);
        }
        self.list(call).await
    }
}
