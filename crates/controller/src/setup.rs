//! One-time upserts at start: gateway policies and roles, the IAM auth method and its binding rules,
//! the anonymous token's policy and the cluster's synthetic node. Every step reads first and writes
//! only what is missing or different, so a second start writes nothing.

use std::collections::BTreeMap;

use consul_client::acl::{
    ANONYMOUS_TOKEN_ID, AclAuthMethod, AclAuthMethodNamespaceRule, AclBindingRule, AclLink,
    AclPolicy, AclRole, BindingRuleBindType,
};
use consul_client::catalog::CatalogRegistration;
use consul_client::{Client, QueryOptions, WriteOptions};
use serde_json::Value;

use crate::Error;

/// Name of the auth method ECS tasks log in with.
pub const AUTH_METHOD_NAME: &str = "iam-ecs-service-token";
/// API gateway policy name.
pub const API_GATEWAY_POLICY: &str = "consul-ecs-api-gateway-policy";
/// API gateway role name.
pub const API_GATEWAY_ROLE: &str = "consul-ecs-api-gateway-role";
/// Mesh gateway policy name.
pub const MESH_GATEWAY_POLICY: &str = "consul-ecs-mesh-gateway-policy";
/// Mesh gateway role name.
pub const MESH_GATEWAY_ROLE: &str = "consul-ecs-mesh-gateway-role";
/// Terminating gateway role name (no policies: users attach their own).
pub const TERMINATING_GATEWAY_ROLE: &str = "consul-ecs-terminating-gateway-role";
/// Policy linked to the anonymous token in the primary datacenter.
pub const ANONYMOUS_POLICY: &str = "anonymous-token-policy";
/// Node metadata marking the cluster's synthetic node.
pub const SYNTHETIC_NODE_META: &str = "synthetic-node";

const IAM_ENTITY_TAGS: [&str; 3] = [
    "consul.hashicorp.com.gateway-kind",
    "consul.hashicorp.com.namespace",
    "consul.hashicorp.com.service-name",
];

const API_GATEWAY_RULES_OSS: &str = "mesh = \"read\"\n\tnode_prefix \"\" {\n\t\tpolicy = \"read\"\n\t}\n\tservice_prefix \"\" {\n\t\tpolicy = \"read\"\n\t}";
const API_GATEWAY_RULES_ENT: &str = "mesh = \"read\"\nnamespace_prefix \"\" {\n\tnode_prefix \"\" {\n\t\tpolicy = \"read\"\n\t}\n\tservice_prefix \"\" {\n\t\tpolicy = \"read\"\n\t}\n}";
const MESH_GATEWAY_RULES: &str = "mesh = \"write\"\npeering = \"read\"";
const MESH_GATEWAY_RULES_DEFAULT_PARTITION: &str =
    "\npartition_prefix \"\" {\n\tpeering = \"read\"\n}";
const ANONYMOUS_RULES_OSS: &str = "\n    node_prefix \"\" {\n      policy = \"read\"\n    }\n    service_prefix \"\" {\n      policy = \"read\"\n    }";
const ANONYMOUS_RULES_ENT: &str = "\npartition_prefix \"\" {\n  namespace_prefix \"\" {\n    node_prefix \"\" {\n      policy = \"read\"\n    }\n    service_prefix \"\" {\n      policy = \"read\"\n    }\n  }\n}";

/// What the set-up needs to know about the cluster and the controller.
#[derive(Clone, Debug)]
pub struct SetupInput {
    /// The ECS cluster ARN: the synthetic node's name.
    pub cluster_arn: String,
    /// The AWS account of the cluster.
    pub account: String,
    /// `controller.iamRolePath`.
    pub iam_role_path: String,
    /// The partition when partitions are enabled.
    pub partition: Option<String>,
    /// Address of the controller task (the node's address).
    pub node_ip: String,
}

/// The `BoundIAMPrincipalARNs` pattern for a role path: `arn:aws:iam::<account>:role/<path>/*`.
pub fn bound_arn_pattern(account: &str, iam_role_path: &str) -> String {
    let trimmed = iam_role_path.trim_matches('/');
    let path = if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    };
    format!("arn:aws:iam::{account}:role/{path}*")
}

struct Ctx<'a> {
    consul: &'a Client,
    q: QueryOptions,
    w: WriteOptions,
    ent: bool,
    writes: u32,
}

/// Runs every upsert in upstream's order; returns how many writes it made.
pub async fn setup(consul: &Client, input: &SetupInput) -> Result<u32, Error> {
    let mut ctx = Ctx {
        consul,
        q: QueryOptions {
            partition: input.partition.clone(),
            ..QueryOptions::default()
        },
        w: WriteOptions {
            partition: input.partition.clone(),
            ..WriteOptions::default()
        },
        ent: input.partition.is_some(),
        writes: 0,
    };
    let agent = consul
        .agent()
        .self_info()
        .await
        .map_err(|e| Error::consul("reading /v1/agent/self", e))?;
    let datacenter = agent
        .config
        .datacenter
        .clone()
        .filter(|d| !d.is_empty())
        .ok_or(Error::Setup(
            "agent config does not contain Config.Datacenter key".into(),
        ))?;
    let primary = agent
        .primary_datacenter()
        .map(str::to_owned)
        .ok_or(Error::Setup(
            "both Config.PrimaryDatacenter and DebugConfig.PrimaryDatacenter are empty".into(),
        ))?;

    let api_rules = if ctx.ent {
        API_GATEWAY_RULES_ENT
    } else {
        API_GATEWAY_RULES_OSS
    };
    ctx.policy(API_GATEWAY_POLICY, "API Gateway token Policy", api_rules)
        .await?;
    ctx.role(
        API_GATEWAY_ROLE,
        "API Gateway Role for ECS",
        Some(API_GATEWAY_POLICY),
    )
    .await?;
    let mut mesh_rules = MESH_GATEWAY_RULES.to_owned();
    if input.partition.as_deref() == Some("default") {
        mesh_rules.push_str(MESH_GATEWAY_RULES_DEFAULT_PARTITION);
    }
    ctx.policy(
        MESH_GATEWAY_POLICY,
        "Mesh Gateway token Policy",
        &mesh_rules,
    )
    .await?;
    ctx.role(
        MESH_GATEWAY_ROLE,
        "Mesh Gateway Role for ECS",
        Some(MESH_GATEWAY_POLICY),
    )
    .await?;
    ctx.role(
        TERMINATING_GATEWAY_ROLE,
        "Terminating Gateway Role for ECS",
        None,
    )
    .await?;
    ctx.auth_method(&bound_arn_pattern(&input.account, &input.iam_role_path))
        .await?;
    ctx.binding_rules().await?;
    if datacenter == primary {
        ctx.anonymous_policy().await?;
    }
    ctx.node(input).await?;
    Ok(ctx.writes)
}

/// The four binding rules (description, type, selector, bind name).
pub fn binding_rules() -> [(&'static str, BindingRuleBindType, String, &'static str); 4] {
    let kind = |k: &str| format!("entity_tags[\"consul.hashicorp.com.gateway-kind\"] == \"{k}\"");
    [
        (
            "Bind a service identity from IAM role tag for ECS",
            BindingRuleBindType::Service,
            String::new(),
            "${entity_tags.consul.hashicorp.com.service-name}",
        ),
        (
            "Bind a Consul role from IAM role tag for ECS based API gateways",
            BindingRuleBindType::Role,
            kind("api-gateway"),
            API_GATEWAY_ROLE,
        ),
        (
            "Bind a Consul role from IAM role tag for ECS based Terminating gateways",
            BindingRuleBindType::Role,
            kind("terminating-gateway"),
            TERMINATING_GATEWAY_ROLE,
        ),
        (
            "Bind a Consul role from IAM role tag for ECS based mesh gateways",
            BindingRuleBindType::Role,
            kind("mesh-gateway"),
            MESH_GATEWAY_ROLE,
        ),
    ]
}

/// Sorted, de-duplicated strings of a JSON list; non-strings are dropped with a warning.
fn string_list(value: Option<&Value>, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Value::Array(items)) = value {
        for item in items {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => tracing::warn!(key, value = %other, "dropping a non-string entry"),
            }
        }
    }
    out
}

fn merged(existing: &[String], ours: &[String]) -> Vec<String> {
    let mut all: Vec<String> = existing.iter().chain(ours).cloned().collect();
    all.sort();
    all.dedup();
    all
}

impl Ctx<'_> {
    async fn policy(&mut self, name: &str, description: &str, rules: &str) -> Result<(), Error> {
        let what = || format!("policy {name}");
        let found = self
            .consul
            .acl()
            .policy_read_by_name(name, &self.q)
            .await
            .map_err(|e| Error::consul(what(), e));
        let missing = match found {
            Ok(response) => response.value.is_none(),
            Err(e) if e.is_acl_not_found() => true,
            Err(e) => return Err(e),
        };
        if missing {
            let policy = AclPolicy {
                name: name.to_owned(),
                description: description.to_owned(),
                rules: rules.to_owned(),
                ..AclPolicy::default()
            };
            self.consul
                .acl()
                .policy_create(&policy, &self.w)
                .await
                .map_err(|e| Error::consul(what(), e))?;
            self.writes += 1;
            tracing::info!(name, "created policy");
        }
        Ok(())
    }

    async fn role(
        &mut self,
        name: &str,
        description: &str,
        policy: Option<&str>,
    ) -> Result<(), Error> {
        let what = || format!("role {name}");
        let found = self
            .consul
            .acl()
            .role_read_by_name(name, &self.q)
            .await
            .map_err(|e| Error::consul(what(), e));
        let existing = match found {
            Ok(response) => response.value,
            Err(e) if e.is_acl_not_found() => None,
            Err(e) => return Err(e),
        };
        match existing {
            Some(mut role) => {
                if role.policies.is_empty()
                    && let Some(policy) = policy
                {
                    role.policies = vec![AclLink::by_name(policy)];
                    self.consul
                        .acl()
                        .role_update(&role, &self.w)
                        .await
                        .map_err(|e| Error::consul(what(), e))?;
                    self.writes += 1;
                    tracing::info!(name, "linked policy to existing role");
                }
            }
            None => {
                let role = AclRole {
                    name: name.to_owned(),
                    description: description.to_owned(),
                    policies: policy.map(AclLink::by_name).into_iter().collect(),
                    ..AclRole::default()
                };
                self.consul
                    .acl()
                    .role_create(&role, &self.w)
                    .await
                    .map_err(|e| Error::consul(what(), e))?;
                self.writes += 1;
                tracing::info!(name, "created role");
            }
        }
        Ok(())
    }

    async fn auth_method(&mut self, bound_arn: &str) -> Result<(), Error> {
        let what = || format!("auth method {AUTH_METHOD_NAME}");
        let ours_tags: Vec<String> = IAM_ENTITY_TAGS.iter().map(|t| (*t).to_owned()).collect();
        let ours_arns = vec![bound_arn.to_owned()];
        let found = self
            .consul
            .acl()
            .auth_method_read(AUTH_METHOD_NAME, &self.q)
            .await
            .map_err(|e| Error::consul(what(), e));
        let existing = match found {
            Ok(response) => response.value,
            Err(e) if e.is_acl_not_found() => None,
            Err(e) => return Err(e),
        };
        let mut method = AclAuthMethod {
            name: AUTH_METHOD_NAME.to_owned(),
            method_type: "aws-iam".to_owned(),
            description: "AWS IAM auth method for ECS service tokens".to_owned(),
            ..AclAuthMethod::default()
        };
        if self.ent {
            method.namespace_rules = vec![AclAuthMethodNamespaceRule {
                selector: "entity_tags[\"consul.hashicorp.com.namespace\"] != \"\"".to_owned(),
                bind_namespace: "${entity_tags.consul.hashicorp.com.namespace}".to_owned(),
            }];
        }
        match existing {
            None => {
                let config = &mut method.config;
                config.insert("BoundIAMPrincipalARNs".into(), ours_arns.into());
                config.insert("EnableIAMEntityDetails".into(), true.into());
                config.insert("IAMEntityTags".into(), ours_tags.into());
                self.consul
                    .acl()
                    .auth_method_create(&method, &self.w)
                    .await
                    .map_err(|e| Error::consul(what(), e))?;
                self.writes += 1;
                tracing::info!(name = AUTH_METHOD_NAME, "created auth method");
            }
            Some(current) => {
                let arns = string_list(
                    current.config.get("BoundIAMPrincipalARNs"),
                    "BoundIAMPrincipalARNs",
                );
                let tags = string_list(current.config.get("IAMEntityTags"), "IAMEntityTags");
                let new_arns = merged(&arns, &ours_arns);
                let new_tags = merged(&tags, &ours_tags);
                if new_arns == arns && new_tags == tags {
                    return Ok(());
                }
                // Unlike upstream, keep every other key the operator set (STSEndpoint, ...).
                method.config = current.config.clone();
                method
                    .config
                    .insert("BoundIAMPrincipalARNs".into(), new_arns.into());
                method
                    .config
                    .insert("EnableIAMEntityDetails".into(), true.into());
                method
                    .config
                    .insert("IAMEntityTags".into(), new_tags.into());
                self.consul
                    .acl()
                    .auth_method_update(&method, &self.w)
                    .await
                    .map_err(|e| Error::consul(what(), e))?;
                self.writes += 1;
                tracing::info!(name = AUTH_METHOD_NAME, "merged auth method config");
            }
        }
        Ok(())
    }

    async fn binding_rules(&mut self) -> Result<(), Error> {
        let what = || format!("binding rules of {AUTH_METHOD_NAME}");
        let existing = self
            .consul
            .acl()
            .binding_rule_list(Some(AUTH_METHOD_NAME), &self.q)
            .await
            .map_err(|e| Error::consul(what(), e))?
            .value;
        for (description, bind_type, selector, bind_name) in binding_rules() {
            let mut rule = AclBindingRule {
                description: description.to_owned(),
                auth_method: AUTH_METHOD_NAME.to_owned(),
                selector,
                bind_type,
                bind_name: bind_name.to_owned(),
                ..AclBindingRule::default()
            };
            match existing
                .iter()
                .find(|r| r.bind_name == rule.bind_name && r.description == rule.description)
            {
                Some(current) => {
                    // Upstream rewrites a matching rule every start; we write only a difference.
                    if current.selector == rule.selector && current.bind_type == rule.bind_type {
                        continue;
                    }
                    rule.id = current.id.clone();
                    self.consul
                        .acl()
                        .binding_rule_update(&rule, &self.w)
                        .await
                        .map_err(|e| Error::consul(what(), e))?;
                }
                None => {
                    self.consul
                        .acl()
                        .binding_rule_create(&rule, &self.w)
                        .await
                        .map_err(|e| Error::consul(what(), e))?;
                }
            }
            self.writes += 1;
        }
        Ok(())
    }

    async fn anonymous_policy(&mut self) -> Result<(), Error> {
        let what = || "anonymous token policy".to_owned();
        let (q, w) = if self.ent {
            (
                QueryOptions {
                    partition: Some("default".into()),
                    namespace: Some("default".into()),
                    ..QueryOptions::default()
                },
                WriteOptions {
                    partition: Some("default".into()),
                    namespace: Some("default".into()),
                    ..WriteOptions::default()
                },
            )
        } else {
            (QueryOptions::default(), WriteOptions::default())
        };
        let token = self
            .consul
            .acl()
            .token_read(ANONYMOUS_TOKEN_ID, &q)
            .await
            .map_err(|e| Error::consul(what(), e))?
            .value
            .ok_or_else(|| Error::Setup("the anonymous token does not exist".into()))?;
        if token.policies.iter().any(|p| p.name == ANONYMOUS_POLICY) {
            return Ok(());
        }
        let rules = if self.ent {
            ANONYMOUS_RULES_ENT
        } else {
            ANONYMOUS_RULES_OSS
        };
        let saved = (self.q.clone(), self.w.clone());
        (self.q, self.w) = (q, w.clone());
        let created = self
            .policy(ANONYMOUS_POLICY, "Anonymous token Policy", rules)
            .await;
        (self.q, self.w) = saved;
        created?;
        let mut token = token;
        token.policies.push(AclLink::by_name(ANONYMOUS_POLICY));
        self.consul
            .acl()
            .token_update(&token, &w)
            .await
            .map_err(|e| Error::consul(what(), e))?;
        self.writes += 1;
        tracing::info!("linked the anonymous token policy");
        Ok(())
    }

    async fn node(&mut self, input: &SetupInput) -> Result<(), Error> {
        let what = || "registering the synthetic node".to_owned();
        // Upstream rewrites the node every start; we write only when address or meta differ.
        let current = self
            .consul
            .catalog()
            .node(&input.cluster_arn, &self.q)
            .await
            .map_err(|e| Error::consul(what(), e))?
            .value;
        if let Some(node) = current.and_then(|c| c.node)
            && node.address == input.node_ip
            && node.meta.get(SYNTHETIC_NODE_META).map(String::as_str) == Some("true")
        {
            return Ok(());
        }
        let registration = CatalogRegistration {
            node: input.cluster_arn.clone(),
            address: input.node_ip.clone(),
            node_meta: BTreeMap::from([(SYNTHETIC_NODE_META.to_owned(), "true".to_owned())]),
            partition: input.partition.clone().unwrap_or_default(),
            ..CatalogRegistration::default()
        };
        self.consul
            .catalog()
            .register(&registration, &self.w)
            .await
            .map_err(|e| Error::consul(what(), e))?;
        self.writes += 1;
        Ok(())
    }
}
