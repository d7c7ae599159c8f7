//! Task metadata documents: decoding the shapes ECS serves, and the values consul-ecs derives
//! (task ID, cluster ARN, region, account, node IP, container lookups, stopped detection).
#![allow(clippy::unwrap_used)]

use consul_ecs_aws::metadata_server::TaskBuilder;
use consul_ecs_aws::task_metadata::{
    Container, DeriveError, FALLBACK_NODE_IP, Health, STOPPED, TaskMetadata,
};

/// A Fargate `/task` response in the documented shape (values invented for this test).
const FARGATE_TASK: &str = r#"{
  "Cluster": "arn:aws:ecs:eu-west-1:210987654321:cluster/payments",
  "TaskARN": "arn:aws:ecs:eu-west-1:210987654321:task/payments/5c3f0d7e9b1a4f2e8d6c4b2a09876543",
  "Family": "billing",
  "Revision": "7",
  "DesiredStatus": "RUNNING",
  "KnownStatus": "RUNNING",
  "Limits": { "CPU": 0.5, "Memory": 1024 },
  "PullStartedAt": "2024-03-01T10:00:01.123456789Z",
  "PullStoppedAt": "2024-03-01T10:00:09.987654321Z",
  "AvailabilityZone": "eu-west-1b",
  "LaunchType": "FARGATE",
  "ClockDrift": { "ClockErrorBound": 0.4, "ClockSynchronizationStatus": "SYNCHRONIZED" },
  "EphemeralStorageMetrics": { "Utilized": 300, "Reserved": 20496 },
  "Containers": [
    {
      "DockerId": "5c3f0d7e9b1a4f2e8d6c4b2a09876543-1122334455",
      "Name": "billing",
      "DockerName": "billing",
      "Image": "210987654321.dkr.ecr.eu-west-1.amazonaws.com/billing:3.1",
      "ImageID": "sha256:0f0e0d0c0b0a09080706050403020100ffeeddccbbaa99887766554433221100",
      "Labels": {
        "com.amazonaws.ecs.cluster": "arn:aws:ecs:eu-west-1:210987654321:cluster/payments",
        "com.amazonaws.ecs.container-name": "billing"
      },
      "DesiredStatus": "RUNNING",
      "KnownStatus": "RUNNING",
      "Limits": { "CPU": 2 },
      "CreatedAt": "2024-03-01T10:00:10.1Z",
      "StartedAt": "2024-03-01T10:00:10.5Z",
      "Type": "NORMAL",
      "ContainerARN": "arn:aws:ecs:eu-west-1:210987654321:container/payments/5c3f0d7e9b1a4f2e8d6c4b2a09876543/0b1c2d3e",
      "Health": { "status": "HEALTHY", "statusSince": "2024-03-01T10:00:40.2Z", "exitCode": 0, "output": "ok" },
      "LogDriver": "awslogs",
      "LogOptions": { "awslogs-group": "/ecs/billing", "awslogs-region": "eu-west-1" },
      "Networks": [
        {
          "NetworkMode": "awsvpc",
          "IPv4Addresses": ["10.20.30.40"],
          "AttachmentIndex": 0,
          "MACAddress": "0a:00:00:00:00:01",
          "IPv4SubnetCIDRBlock": "10.20.30.0/24",
          "DomainNameServers": ["10.20.0.2"],
          "DomainNameSearchList": ["eu-west-1.compute.internal"],
          "PrivateDNSName": "ip-10-20-30-40.eu-west-1.compute.internal",
          "SubnetGatewayIpv4Address": "10.20.30.1/24"
        }
      ],
      "Snapshotter": "overlayfs"
    },
    {
      "DockerId": "5c3f0d7e9b1a4f2e8d6c4b2a09876543-5544332211",
      "Name": "consul-dataplane",
      "DockerName": "consul-dataplane",
      "Image": "hashicorp/consul-dataplane:1.6",
      "ImageID": "",
      "Labels": {},
      "DesiredStatus": "RUNNING",
      "KnownStatus": "RUNNING",
      "Type": "NORMAL",
      "Health": { "status": "UNKNOWN" },
      "Networks": [ { "NetworkMode": "awsvpc", "IPv4Addresses": ["10.20.30.40"] } ]
    }
  ]
}"#;

/// An EC2 `/task` response: short cluster name, 64-hex Docker IDs, bridge networking.
const EC2_TASK: &str = r#"{
  "Cluster": "default",
  "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/0123456789abcdef0123456789abcdef",
  "Family": "web",
  "Revision": "24",
  "DesiredStatus": "RUNNING",
  "KnownStatus": "RUNNING",
  "PullStartedAt": "2024-01-02T03:04:05Z",
  "PullStoppedAt": "2024-01-02T03:04:06Z",
  "AvailabilityZone": "us-west-2a",
  "LaunchType": "EC2",
  "VPCID": "vpc-0a1b2c3d",
  "ServiceName": "web-svc",
  "Containers": [
    {
      "DockerId": "aaaabbbbccccddddeeeeffff00001111aaaabbbbccccddddeeeeffff00001111",
      "Name": "web",
      "DockerName": "ecs-web-24-web-d6f9a0b1c2d3e4f5a6b7",
      "Image": "nginx:1.25",
      "ImageID": "sha256:1111",
      "Ports": [ { "ContainerPort": 80, "Protocol": "tcp", "HostPort": 32768, "HostIp": "0.0.0.0" } ],
      "Labels": { "com.amazonaws.ecs.cluster": "default" },
      "DesiredStatus": "RUNNING",
      "KnownStatus": "RUNNING",
      "Limits": { "CPU": 10, "Memory": 128 },
      "CreatedAt": "2024-01-02T03:04:07Z",
      "StartedAt": "2024-01-02T03:04:08Z",
      "Type": "NORMAL",
      "Networks": [ { "NetworkMode": "bridge", "IPv4Addresses": ["172.17.0.5"] } ]
    }
  ]
}"#;

fn task(json: &str) -> TaskMetadata {
    serde_json::from_str(json).unwrap()
}

#[test]
fn fargate_document_decodes_with_the_fields_consul_ecs_reads() {
    let t = task(FARGATE_TASK);
    assert_eq!(t.family, "billing");
    assert_eq!(t.revision, "7");
    assert_eq!(t.availability_zone.as_deref(), Some("eu-west-1b"));
    assert_eq!(t.launch_type.as_deref(), Some("FARGATE"));
    assert_eq!(t.containers.len(), 2);
    let app = t.container("billing").unwrap();
    let health = app.health.as_ref().unwrap();
    assert_eq!(health.status, "HEALTHY");
    assert_eq!(
        health.status_since.as_deref(),
        Some("2024-03-01T10:00:40.2Z")
    );
    assert_eq!(health.exit_code, Some(0));
    assert_eq!(health.output.as_deref(), Some("ok"));
    assert_eq!(app.networks[0].network_mode, "awsvpc");
    assert_eq!(
        app.networks[0].private_dns_name.as_deref(),
        Some("ip-10-20-30-40.eu-west-1.compute.internal")
    );
    assert_eq!(
        app.networks[0].ipv4_subnet_cidr_block.as_deref(),
        Some("10.20.30.0/24")
    );
    assert!(app.is_normal_type());
    assert_eq!(
        t.container("consul-dataplane").unwrap().health_status(),
        "UNKNOWN"
    );
    // Keys we do not model survive in `extra`, at task, container and network level.
    assert!(t.extra.contains_key("ClockDrift"));
    assert!(t.extra.contains_key("EphemeralStorageMetrics"));
    assert_eq!(app.extra["Snapshotter"], "overlayfs");
}

#[test]
fn ec2_document_decodes() {
    let t = task(EC2_TASK);
    assert_eq!(t.cluster, "default");
    assert_eq!(t.vpc_id.as_deref(), Some("vpc-0a1b2c3d"));
    assert_eq!(t.service_name.as_deref(), Some("web-svc"));
    let web = t.container("web").unwrap();
    let ports = web.ports.as_ref().unwrap();
    assert_eq!(ports[0].container_port, Some(80));
    assert_eq!(ports[0].host_port, Some(32768));
    assert_eq!(
        web.health_status(),
        "",
        "no health check means an empty status"
    );
    assert_eq!(t.node_ip(), "172.17.0.5");
}

#[test]
fn documents_round_trip_without_losing_keys() {
    for doc in [FARGATE_TASK, EC2_TASK] {
        let original: serde_json::Value = serde_json::from_str(doc).unwrap();
        let reencoded = serde_json::to_value(task(doc)).unwrap();
        assert_eq!(reencoded, original);
    }
}

#[test]
fn missing_and_null_fields_decode_to_defaults() {
    let t = task(r#"{"TaskARN": null, "Containers": null, "Cluster": null}"#);
    assert_eq!(t.task_arn, "");
    assert!(t.containers.is_empty());
    let t = task(
        r#"{"Containers": [{"Name": "a", "Labels": null, "Networks": null, "Health": {"status": null}}]}"#,
    );
    let a = t.container("a").unwrap();
    assert!(a.networks.is_empty());
    assert_eq!(a.health_status(), "");
    let t = task("{}");
    assert_eq!(t, TaskMetadata::default());
}

#[test]
fn wrong_types_are_errors_naming_the_problem() {
    let err = serde_json::from_str::<TaskMetadata>(r#"{"Containers": "nope"}"#).unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
    let err =
        serde_json::from_str::<TaskMetadata>(r#"{"Containers": [{"Health": 3}]}"#).unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
}

/// (Cluster, TaskARN, expected cluster ARN)
const CLUSTER_ARN_CASES: &[(&str, &str, &str)] = &[
    // Fargate: Cluster is already an ARN and is kept as is.
    (
        "arn:aws:ecs:us-east-1:123456789:cluster/test",
        "arn:aws:ecs:us-east-1:123456789:task/test/abcdef",
        "arn:aws:ecs:us-east-1:123456789:cluster/test",
    ),
    // EC2: a short name is expanded with the task ARN's partition, region and account.
    (
        "test",
        "arn:aws:ecs:us-east-1:123456789:task/test/abcdef",
        "arn:aws:ecs:us-east-1:123456789:cluster/test",
    ),
    (
        "prod",
        "arn:aws-cn:ecs:cn-north-1:000011112222:task/prod/0f0f",
        "arn:aws-cn:ecs:cn-north-1:000011112222:cluster/prod",
    ),
    (
        "gov",
        "arn:aws-us-gov:ecs:us-gov-west-1:999988887777:task/gov/1",
        "arn:aws-us-gov:ecs:us-gov-west-1:999988887777:cluster/gov",
    ),
    // Old-format task ARNs carry no cluster name; the Cluster field supplies it.
    (
        "default",
        "arn:aws:ecs:us-east-2:012345678910:task/9781c248-0edd-4cdb-9a93-f63cb662a5d3",
        "arn:aws:ecs:us-east-2:012345678910:cluster/default",
    ),
    // No Cluster value: take the name from a new-format task ARN.
    (
        "",
        "arn:aws:ecs:ap-south-1:555566667777:task/blue/abc",
        "arn:aws:ecs:ap-south-1:555566667777:cluster/blue",
    ),
];

#[test]
fn cluster_arn_derivation() {
    for (cluster, task_arn, expected) in CLUSTER_ARN_CASES {
        let t = TaskMetadata {
            cluster: (*cluster).to_owned(),
            task_arn: (*task_arn).to_owned(),
            ..TaskMetadata::default()
        };
        assert_eq!(
            t.cluster_arn().as_deref(),
            Ok(*expected),
            "cluster {cluster:?}"
        );
    }
}

#[test]
fn cluster_arn_errors_when_it_cannot_be_built() {
    for (cluster, task_arn) in [
        ("test", ""),
        ("test", "not-an-arn"),
        ("test", "arn:aws:ecs::123:task/test/x"),
        ("", "arn:aws:ecs:us-east-1:123:task/onlyid"),
    ] {
        let t = TaskMetadata {
            cluster: cluster.to_owned(),
            task_arn: task_arn.to_owned(),
            ..TaskMetadata::default()
        };
        assert_eq!(
            t.cluster_arn(),
            Err(DeriveError::ClusterArn {
                cluster: cluster.to_owned(),
                task_arn: task_arn.to_owned()
            })
        );
    }
}

#[test]
fn region_account_and_task_id_come_from_the_task_arn() {
    let cases = [
        (
            "arn:aws:ecs:us-east-1:123456789:task/test/abcdef",
            "us-east-1",
            "123456789",
            "abcdef",
        ),
        (
            "arn:aws:ecs:eu-central-1:210987654321:task/5c3f",
            "eu-central-1",
            "210987654321",
            "5c3f",
        ),
        (
            "arn:aws-cn:ecs:cn-northwest-1:1:task/c/id:with:colons",
            "cn-northwest-1",
            "1",
            "id:with:colons",
        ),
    ];
    for (arn, region, account, id) in cases {
        let t = TaskMetadata {
            task_arn: arn.to_owned(),
            ..TaskMetadata::default()
        };
        assert_eq!(t.region().as_deref(), Ok(region));
        assert_eq!(t.account().as_deref(), Ok(account));
        assert_eq!(t.task_id(), id);
    }
}

#[test]
fn region_and_account_errors_use_upstream_wording() {
    for arn in ["", "garbage", "arn:aws:ecs", "arn:aws:ecs::123:task/x"] {
        let t = TaskMetadata {
            task_arn: arn.to_owned(),
            ..TaskMetadata::default()
        };
        assert_eq!(
            t.region().unwrap_err().to_string(),
            format!("unable to determine AWS region from Task ARN: {arn:?}")
        );
    }
    let t = TaskMetadata {
        task_arn: "arn:aws:ecs:us-east-1::task/x".to_owned(),
        ..TaskMetadata::default()
    };
    assert_eq!(
        t.account().unwrap_err().to_string(),
        "unable to determine AWS account id from Task ARN: \"arn:aws:ecs:us-east-1::task/x\""
    );
}

#[test]
fn node_ip_is_the_first_address_or_loopback() {
    assert_eq!(task(FARGATE_TASK).node_ip(), "10.20.30.40");
    assert_eq!(TaskMetadata::default().node_ip(), FALLBACK_NODE_IP);
    let no_networks = task(r#"{"Containers": [{"Name": "a"}]}"#);
    assert_eq!(no_networks.node_ip(), "127.0.0.1");
    let no_address =
        task(r#"{"Containers": [{"Name": "a", "Networks": [{"IPv4Addresses": []}]}]}"#);
    assert_eq!(no_address.node_ip(), "127.0.0.1");
    // Only the first container counts, as upstream.
    let second_has_ip = task(
        r#"{"Containers": [{"Name": "a"}, {"Name": "b", "Networks": [{"IPv4Addresses": ["10.0.0.9"]}]}]}"#,
    );
    assert_eq!(second_has_ip.node_ip(), "127.0.0.1");
}

fn with_containers(containers: &[(&str, &str, &str)]) -> TaskMetadata {
    TaskMetadata {
        containers: containers
            .iter()
            .map(|(name, desired, known)| Container {
                name: (*name).to_owned(),
                desired_status: (*desired).to_owned(),
                known_status: (*known).to_owned(),
                ..Container::default()
            })
            .collect(),
        ..TaskMetadata::default()
    }
}

#[test]
fn has_container_stopped_needs_every_match_stopped_and_counts_absent_as_stopped() {
    let t = with_containers(&[
        ("app", "RUNNING", "RUNNING"),
        ("consul-dataplane", "STOPPED", "RUNNING"),
        ("done", "STOPPED", "STOPPED"),
        ("twice", "STOPPED", "STOPPED"),
        ("twice", "RUNNING", "RUNNING"),
    ]);
    assert!(!t.has_container_stopped("app"));
    assert!(
        !t.has_container_stopped("consul-dataplane"),
        "desired STOPPED but still known RUNNING is not stopped"
    );
    assert!(t.has_container_stopped("done"));
    assert!(!t.has_container_stopped("twice"));
    assert!(t.has_container_stopped("absent"));
}

#[test]
fn container_lookup_takes_the_first_match() {
    let mut t = with_containers(&[("a", "RUNNING", "RUNNING"), ("a", STOPPED, STOPPED)]);
    t.containers[0].health = Some(Health {
        status: "HEALTHY".into(),
        ..Health::default()
    });
    assert_eq!(t.container("a").unwrap().health_status(), "HEALTHY");
    assert!(t.container("b").is_none());
}

#[test]
fn built_documents_derive_like_real_ones() {
    let fargate = TaskBuilder::fargate("mesh")
        .region("eu-west-1")
        .account("210987654321")
        .task_id("0123456789abcdef0123456789abcdef")
        .ip("10.1.2.3")
        .container_with_health_check("app")
        .container("consul-dataplane")
        .build();
    assert_eq!(
        fargate.cluster,
        "arn:aws:ecs:eu-west-1:210987654321:cluster/mesh"
    );
    assert_eq!(
        fargate.task_arn,
        "arn:aws:ecs:eu-west-1:210987654321:task/mesh/0123456789abcdef0123456789abcdef"
    );
    assert_eq!(fargate.cluster_arn().unwrap(), fargate.cluster);
    assert_eq!(fargate.node_ip(), "10.1.2.3");
    assert_eq!(fargate.container("app").unwrap().health_status(), "UNKNOWN");
    assert_eq!(
        fargate
            .container("consul-dataplane")
            .unwrap()
            .health_status(),
        ""
    );
    assert!(
        fargate.containers[0]
            .docker_id
            .starts_with("0123456789abcdef0123456789abcdef-")
    );
    assert_eq!(
        fargate.containers[0].networks[0]
            .private_dns_name
            .as_deref(),
        Some("ip-10-1-2-3.eu-west-1.compute.internal")
    );

    let ec2 = TaskBuilder::ec2("default")
        .network_mode("bridge")
        .container("web")
        .build();
    assert_eq!(ec2.cluster, "default");
    assert_eq!(ec2.launch_type.as_deref(), Some("EC2"));
    assert_eq!(
        ec2.cluster_arn().unwrap(),
        "arn:aws:ecs:us-east-1:123456789012:cluster/default"
    );
    assert_eq!(ec2.containers[0].docker_id.len(), 64);
    assert_eq!(ec2.node_ip(), "172.17.0.2");
    // A built document survives a JSON round trip unchanged.
    let json = serde_json::to_string(&ec2).unwrap();
    assert_eq!(serde_json::from_str::<TaskMetadata>(&json).unwrap(), ec2);
}
