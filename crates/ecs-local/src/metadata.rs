//! The task metadata endpoint of one task, and the document it serves.
//!
//! Each task gets its own [`MetadataServer`] listening *inside* the task's network namespace at
//! `169.254.170.2:80`, as the ECS agent's endpoint appears to containers. A socket belongs to the
//! namespace of the thread that creates it, so the server runs on a dedicated thread that joins the
//! namespace first and drives a single-threaded runtime; the server's document is shared, so the
//! supervisor updates it from anywhere. With host networking the server listens on a free loopback
//! port instead.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use consul_ecs_aws::TaskMetadata;
use consul_ecs_aws::metadata_server::{MetadataServer, TaskBuilder};
use consul_ecs_aws::task_metadata::{Limits, Port};

use crate::network::{METADATA_ADDR, NetworkConfig};
use crate::plan::TaskPlan;
use crate::taskdef::{NetworkMode, TaskDefinition};

/// A running endpoint.
#[derive(Debug)]
pub(crate) struct MetadataEndpoint {
    server: Option<MetadataServer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// `http://169.254.170.2` (or the loopback address with host networking), as containers see it.
    pub(crate) base_url: String,
}

impl MetadataEndpoint {
    /// Starts serving `document`, inside `netns` when given.
    pub(crate) async fn start(
        netns: Option<PathBuf>,
        document: TaskMetadata,
    ) -> std::io::Result<Self> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let addr: SocketAddr = match netns {
            Some(_) => (METADATA_ADDR, 80).into(),
            None => (Ipv4Addr::LOCALHOST, 0).into(),
        };
        let thread = std::thread::Builder::new()
            .name("ecs-local-metadata".to_owned())
            .spawn(move || {
                let runtime = (|| -> std::io::Result<tokio::runtime::Runtime> {
                    if let Some(path) = &netns {
                        let file = std::fs::File::open(path)?;
                        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                            .map_err(std::io::Error::from)?;
                    }
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                })();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let started = MetadataServer::start(addr, document).await;
                    let failed = started.is_err();
                    let _ = ready_tx.send(started);
                    if !failed {
                        // Serve until told to stop (or until the endpoint is dropped).
                        let _ = stop_rx.await;
                    }
                });
            })?;
        let server = ready_rx
            .await
            .map_err(|_| std::io::Error::other("the metadata thread ended early"))??;
        let base_url = match server.addr() {
            SocketAddr::V4(v4) if *v4.ip() == METADATA_ADDR && v4.port() == 80 => {
                format!("http://{METADATA_ADDR}")
            }
            other => format!("http://{other}"),
        };
        Ok(Self {
            server: Some(server),
            stop: Some(stop_tx),
            thread: Some(thread),
            base_url,
        })
    }

    /// The server, for updates.
    pub(crate) fn server(&self) -> Option<&MetadataServer> {
        self.server.as_ref()
    }

    /// Stops serving and waits for the thread.
    pub(crate) async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Everything the document is built from.
pub(crate) struct DocumentInput<'a> {
    pub(crate) def: &'a TaskDefinition,
    pub(crate) plan: &'a TaskPlan,
    pub(crate) task_id: &'a str,
    pub(crate) cluster: &'a str,
    pub(crate) region: &'a str,
    pub(crate) account: &'a str,
    pub(crate) ip: Option<Ipv4Addr>,
    pub(crate) network: &'a NetworkConfig,
    pub(crate) tags: &'a std::collections::BTreeMap<String, String>,
    pub(crate) started_by: Option<&'a str>,
}

/// The task's metadata document before anything has started: every container `PENDING`.
pub(crate) fn build_document(input: &DocumentInput<'_>) -> TaskMetadata {
    let mode = input.def.network_mode;
    let ip = input.ip.unwrap_or(Ipv4Addr::LOCALHOST).to_string();
    let mut builder = TaskBuilder::fargate(input.cluster)
        .region(input.region)
        .account(input.account)
        .family(&input.def.family, input.def.revision)
        .task_id(input.task_id)
        .ip(&ip)
        .network_mode(match mode {
            NetworkMode::Host => "host",
            // One namespace per task: the awsvpc shape describes it best.
            NetworkMode::Awsvpc | NetworkMode::Bridge => "awsvpc",
        });
    if let Some(service) = input.started_by.and_then(|s| s.strip_prefix("ecs-svc/")) {
        builder = builder.service_name(service);
    }
    for container in &input.plan.containers {
        builder = if container.health_check().is_some() {
            builder.container_with_health_check(&container.def.name)
        } else {
            builder.container(&container.def.name)
        };
    }
    let mut document = builder.build();
    document.known_status = "PENDING".to_owned();
    document.launch_type = Some("FARGATE".to_owned());
    document.limits = Some(Limits {
        cpu: input
            .def
            .cpu
            .as_deref()
            .and_then(|c| c.parse::<f64>().ok())
            .and_then(|units| serde_json::Number::from_f64(units / 1024.0)),
        memory: input
            .def
            .memory
            .as_deref()
            .and_then(|m| m.parse::<u64>().ok())
            .map(Into::into),
    });
    if !input.tags.is_empty() {
        document.task_tags = Some(input.tags.clone());
    }
    for (container, plan) in document.containers.iter_mut().zip(&input.plan.containers) {
        container.image = plan.def.image.clone();
        container.known_status = "PENDING".to_owned();
        container.started_at = None;
        container.limits = Some(Limits {
            cpu: Some(0.into()),
            memory: None,
        });
        if !plan.def.port_mappings.is_empty() {
            container.ports = Some(
                plan.def
                    .port_mappings
                    .iter()
                    .map(|p| Port {
                        container_port: Some(u32::from(p.container_port)),
                        protocol: Some(p.protocol.clone()),
                        host_port: Some(u32::from(p.host_port.unwrap_or(p.container_port))),
                        host_ip: input.ip.map(|ip| ip.to_string()),
                    })
                    .collect(),
            );
        }
        if mode != NetworkMode::Host {
            for network in &mut container.networks {
                network.ipv4_subnet_cidr_block = Some(input.network.subnet.to_string());
                network.subnet_gateway_ipv4_address = Some(format!(
                    "{}/{}",
                    input.network.gateway(),
                    input.network.subnet.prefix
                ));
                network.domain_name_servers = None;
                network.mac_address = None;
            }
        }
    }
    document
}

/// The host name a task's containers get: `ip-198-18-0-2`, as on Fargate without a domain.
pub(crate) fn task_hostname(ip: Ipv4Addr) -> String {
    format!("ip-{}", ip.to_string().replace('.', "-"))
}
