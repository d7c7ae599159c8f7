//! Helpers shared by the integration tests: a dev server with ACLs on, a management client, and
//! tokens and services shaped like the ones ECS tasks create.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use consul_client::acl::{AclToken, AclTokenFilter};
use consul_client::catalog::{AgentService, CatalogRegistration};
use consul_client::{Client, ClientConfig, QueryOptions, Secret, WriteOptions};
use consul_ecs_controller::{SetupInput, reconcile};
use devserver::DevServer;

pub(crate) const MGMT: &str = "6a0fe0a2-54d2-4e7c-9a43-3f0a35c0d1aa";
pub(crate) const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/mesh";

/// A dev server with ACLs on, default deny, and a known management token.
pub(crate) async fn consul() -> (DevServer, Client) {
    let config = devserver::Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        acl: devserver::AclConfig {
            enabled: true,
            default_policy: devserver::DefaultPolicy::Deny,
            bootstrap_token: Some(MGMT.to_owned()),
        },
        ..devserver::Config::default()
    };
    let server = DevServer::start(config).await.unwrap();
    let mut cc = ClientConfig::new(server.http_addr().to_string());
    cc.token = Some(Secret::new(MGMT));
    (server, Client::new(cc).unwrap())
}

pub(crate) fn setup_input(cluster: &str) -> SetupInput {
    SetupInput {
        cluster_arn: cluster.to_owned(),
        account: "123456789012".to_owned(),
        iam_role_path: "/consul-ecs/".to_owned(),
        partition: None,
        node_ip: "10.0.0.9".to_owned(),
    }
}

/// A token whose description is the one Consul writes for a login with task meta.
pub(crate) async fn login_token(consul: &Client, cluster: &str, task: &str) -> String {
    let description = format!(
        "token created via login: {{\"consul.hashicorp.com/cluster\":\"{cluster}\",\"consul.hashicorp.com/task-id\":\"{task}\"}}"
    );
    let token = AclToken {
        description,
        ..AclToken::default()
    };
    consul
        .acl()
        .token_create(&token, &WriteOptions::default())
        .await
        .unwrap()
        .accessor_id
}

/// Registers a service (and its sidecar) of `task` on the cluster's node.
pub(crate) async fn register_task_services(consul: &Client, cluster: &str, task: &str) {
    for (id, name) in [
        (format!("web-{task}"), "web"),
        (format!("web-{task}-sidecar-proxy"), "web-sidecar-proxy"),
    ] {
        register(consul, cluster, &id, name, Some(task)).await;
    }
}

pub(crate) async fn register(
    consul: &Client,
    cluster: &str,
    id: &str,
    name: &str,
    task: Option<&str>,
) {
    let mut meta = BTreeMap::new();
    if let Some(task) = task {
        meta.insert(reconcile::SERVICE_TASK_ID_META.to_owned(), task.to_owned());
    }
    let registration = CatalogRegistration {
        node: cluster.to_owned(),
        address: "10.0.0.9".to_owned(),
        skip_node_update: true,
        service: Some(AgentService {
            id: id.to_owned(),
            service: name.to_owned(),
            meta,
            port: 8080,
            ..AgentService::default()
        }),
        ..CatalogRegistration::default()
    };
    consul
        .catalog()
        .register(&registration, &WriteOptions::default())
        .await
        .unwrap();
}

/// Task IDs that still hold a login token.
pub(crate) async fn token_tasks(consul: &Client) -> Vec<String> {
    let tokens = consul
        .acl()
        .token_list(&AclTokenFilter::default(), &QueryOptions::default())
        .await
        .unwrap()
        .value;
    let mut out: Vec<String> = tokens
        .iter()
        .filter_map(|t| reconcile::login_meta(&t.description).map(|(task, _)| task))
        .collect();
    out.sort();
    out
}

/// Service IDs registered on the node.
pub(crate) async fn service_ids(consul: &Client, cluster: &str) -> Vec<String> {
    let list = consul
        .catalog()
        .node_services(cluster, &QueryOptions::default())
        .await
        .unwrap()
        .value;
    let mut out: Vec<String> = list
        .map(|l| l.services.into_iter().map(|s| s.id).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// A sum of the indexes of every table the controller writes: it moves on any write.
pub(crate) async fn write_index(consul: &Client, cluster: &str) -> u64 {
    let q = QueryOptions::default();
    let acl = consul.acl();
    acl.token_list(&AclTokenFilter::default(), &q)
        .await
        .unwrap()
        .meta
        .last_index
        + acl.policy_list(&q).await.unwrap().meta.last_index
        + acl.role_list(None, &q).await.unwrap().meta.last_index
        + acl.auth_method_list(&q).await.unwrap().meta.last_index
        + acl
            .binding_rule_list(None, &q)
            .await
            .unwrap()
            .meta
            .last_index
        + consul.catalog().nodes(&q).await.unwrap().meta.last_index
        + consul
            .catalog()
            .node_services(cluster, &q)
            .await
            .unwrap()
            .meta
            .last_index
}
