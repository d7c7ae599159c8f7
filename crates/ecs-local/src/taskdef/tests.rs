//! Task definition reading: fixtures that must be accepted, and refusals that must name their
//! container and field.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;

const MESH_TASK: &str = include_str!("../../tests/data/mesh-task.json");

/// Reads `json` and expects exactly these messages (each is the full `Display` of one error).
fn check(json: &str, expected: &[&str]) {
    let errors = match TaskDefinition::from_json(json) {
        Ok(def) => panic!("accepted: {def:?}"),
        Err(e) => e.errors,
    };
    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(got, expected, "for {json}");
}

fn task(containers: &str) -> String {
    format!(r#"{{"family":"f","volumes":[{{"name":"v"}}],"containerDefinitions":[{containers}]}}"#)
}

#[test]
fn the_mesh_task_shape_is_accepted() {
    let def = TaskDefinition::from_json(MESH_TASK).unwrap();
    assert_eq!(def.family, "web");
    assert_eq!(def.network_mode, NetworkMode::Awsvpc);
    assert_eq!(
        def.task_role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/consul-ecs/web-task")
    );
    let names: Vec<&str> = def.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "web",
            "consul-ecs-mesh-init",
            "consul-dataplane",
            "consul-ecs-health-sync"
        ]
    );
    let web = def.container("web").unwrap();
    assert!(web.essential && web.entry_point.is_none() && web.health_check.is_none());
    assert_eq!(
        web.depends_on,
        [Dependency {
            container_name: "consul-dataplane".into(),
            condition: Condition::Healthy
        }]
    );
    let dataplane = def.container("consul-dataplane").unwrap();
    let check = dataplane.health_check.as_ref().unwrap();
    assert_eq!(
        check.command,
        HealthCommand::Exec(vec![
            "/consul/consul-ecs".into(),
            "net-dial".into(),
            "127.0.0.1:22000".into()
        ])
    );
    assert_eq!(
        (
            check.interval,
            check.timeout,
            check.retries,
            check.start_period
        ),
        (
            Duration::from_secs(5),
            Duration::from_secs(5),
            10,
            Duration::ZERO
        )
    );
    assert_eq!(dataplane.user.as_deref(), Some("5995"));
    assert_eq!(dataplane.stop_timeout, DEFAULT_STOP_TIMEOUT);
    assert_eq!(dataplane.ulimits[0].name, "nofile");
    let init = def.container("consul-ecs-mesh-init").unwrap();
    assert_eq!(init.mount_points.len(), 2);
    assert!(init.mount_points[1].read_only);
    assert!(def.notes.is_empty(), "{:?}", def.notes);
}

#[test]
fn describe_task_definition_output_is_accepted() {
    let json = r#"{"taskDefinition": {"taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/f:3",
        "family": "f", "revision": 3, "status": "ACTIVE", "compatibilities": ["EC2", "FARGATE"],
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
        "registeredAt": "2024-01-01T00:00:00Z", "registeredBy": "arn:aws:iam::1:root",
        "containerDefinitions": [{"name": "a", "image": "x", "memory": 128, "cpu": 10,
          "logConfiguration": {"logDriver": "awslogs", "options": {}}}]},
        "tags": []}"#;
    let def = TaskDefinition::from_json(json).unwrap();
    assert_eq!(def.revision, 3);
    assert_eq!(def.notes.len(), 1, "{:?}", def.notes);
    assert!(def.notes[0].contains("logConfiguration"));
}

#[test]
fn defaults_follow_ecs_and_docker() {
    let json = task(
        r#"{"name":"a","image":"x","healthCheck":{"command":["CMD-SHELL","exit","0"]}},
           {"name":"b","image":"x","essential":false,"healthCheck":{"command":["NONE"]},
            "entryPoint":null,"command":null,"stopTimeout":0.5}"#,
    );
    let def = TaskDefinition::from_json(&json).unwrap();
    let a = def.container("a").unwrap();
    assert!(a.essential);
    let check = a.health_check.as_ref().unwrap();
    assert_eq!(check.command, HealthCommand::Shell("exit 0".into()));
    assert_eq!(check.interval, DEFAULT_HEALTH_INTERVAL);
    assert_eq!(check.timeout, DEFAULT_HEALTH_TIMEOUT);
    assert_eq!(check.retries, DEFAULT_HEALTH_RETRIES);
    let b = def.container("b").unwrap();
    assert!(b.health_check.is_none());
    assert_eq!(b.stop_timeout, Duration::from_millis(500));
    assert!(b.entry_point.is_none() && b.command.is_none());
}

#[test]
fn unknown_and_unsupported_fields_name_container_and_field() {
    check(
        &task(r#"{"name":"app","image":"x","linkz":[]}"#),
        &[r#"container "app": linkz: unknown or unsupported field"#],
    );
    check(
        &task(r#"{"name":"app","image":"x","links":["db"]}"#),
        &[
            r#"container "app": links: not supported by ecs-local (links are a bridge-mode Docker feature)"#,
        ],
    );
    check(
        &task(
            r#"{"name":"app","image":"x","healthCheck":{"command":["CMD","true"],"intervals":3}}"#,
        ),
        &[r#"container "app": healthCheck.intervals: unknown or unsupported field"#],
    );
    check(
        &task(
            r#"{"name":"app","image":"x","linuxParameters":{"devices":[{"hostPath":"/dev/fuse"}]}}"#,
        ),
        &[r#"container "app": linuxParameters.devices: not supported by ecs-local (host devices)"#],
    );
    check(
        r#"{"family":"f","proxyConfiguration":{"containerName":"envoy"},
            "containerDefinitions":[{"name":"a","image":"x"}]}"#,
        &[
            "task definition: proxyConfiguration: not supported by ecs-local (App Mesh proxy configuration)",
        ],
    );
    check(
        r#"{"family":"f","volumes":[{"name":"e","efsVolumeConfiguration":{"fileSystemId":"fs-1"}}],
            "containerDefinitions":[{"name":"a","image":"x"}]}"#,
        &[
            "task definition: volumes[0].efsVolumeConfiguration: not supported by ecs-local (EFS volumes)",
        ],
    );
    check(
        r#"{"family":"f","networkMode":"none","containerDefinitions":[{"name":"a","image":"x"}]}"#,
        &[r#"task definition: networkMode: "none" is not supported (use awsvpc, bridge or host)"#],
    );
}

#[test]
fn bad_values_are_refused_with_their_path() {
    check(
        &task(
            r#"{"name":"app","image":"x","healthCheck":{"command":["CMD","true"],"interval":"5s"}}"#,
        ),
        &[r#"container "app": healthCheck.interval: expected a number of seconds, got a string"#],
    );
    check(
        &task(r#"{"name":"app","image":"x","stopTimeout":-1}"#),
        &[
            r#"container "app": stopTimeout: -1 seconds is out of range (at least 0 and at most 86400)"#,
        ],
    );
    check(
        &task(r#"{"name":"app","image":"x","healthCheck":{"command":[]}}"#),
        &[
            r#"container "app": healthCheck.command: must name a command (optionally after "CMD" or "CMD-SHELL")"#,
        ],
    );
    check(
        &task(
            r#"{"name":"app","image":"x","mountPoints":[{"sourceVolume":"v","containerPath":"data"}]}"#,
        ),
        &[r#"container "app": mountPoints[0].containerPath: "data" is not an absolute path"#],
    );
    check(
        &task(
            r#"{"name":"app","image":"x","mountPoints":[{"sourceVolume":"v","containerPath":"/proc/"}]}"#,
        ),
        &[r#"container "app": mountPoints[0].containerPath: "/proc/" cannot be mounted over"#],
    );
    check(
        &task(r#"{"name":"app","image":"x","environment":[{"name":"A=B","value":"1"}]}"#),
        &[r#"container "app": environment[0].name: "A=B" is not a variable name"#],
    );
    check(
        &task(
            r#"{"name":"app","image":"x","ulimits":[{"name":"files","softLimit":1,"hardLimit":2}]}"#,
        ),
        &[r#"container "app": ulimits[0].name: "files" is not a ulimit name"#],
    );
    check(
        &task(r#"{"name":"app","image":"x","portMappings":[{"containerPort":70000}]}"#),
        &[r#"container "app": portMappings[0].containerPort: 70000 is not a port"#],
    );
    check(
        &task(r#"{"name":"../up","image":"x"}"#),
        &[r#"container "../up": name: "../up" is not a name (up to 255 letters, digits, _ and -)"#],
    );
    check(
        r#"{"family":"a b","volumes":[{"name":"v/1"}],"containerDefinitions":[{"name":"a","image":"x"}]}"#,
        &[
            r#"task definition: family: "a b" is not a name (up to 255 letters, digits, _ and -)"#,
            r#"task definition: volumes[0].name: "v/1" is not a name (up to 255 letters, digits, _ and -)"#,
        ],
    );
    check(
        &task(r#"{"image":"x"}"#),
        &[r#"container "containerDefinitions[0]": name: is required"#],
    );
    check(
        "[1]",
        &["task definition: (document): expected a JSON object, got an array"],
    );
    check(
        r#"{"family":"f","containerDefinitions":[]}"#,
        &["task definition: containerDefinitions: must list at least one container"],
    );
}

#[test]
fn dependencies_and_volumes_are_checked_across_containers() {
    check(
        &task(
            r#"{"name":"a","image":"x","dependsOn":[{"containerName":"ghost","condition":"START"}]},
               {"name":"b","image":"x","dependsOn":[{"containerName":"a","condition":"SUCCESS"}]},
               {"name":"c","image":"x","dependsOn":[{"containerName":"a","condition":"HEALTHY"}]},
               {"name":"d","image":"x","dependsOn":[{"containerName":"a","condition":"READY"}]},
               {"name":"e","image":"x","mountPoints":[{"sourceVolume":"nope","containerPath":"/n"}],
                "volumesFrom":[{"sourceContainer":"e"}]}"#,
        ),
        &[
            r#"container "d": dependsOn[0].condition: "READY" is not a condition (START, COMPLETE, SUCCESS or HEALTHY)"#,
            r#"container "a": dependsOn[0].containerName: there is no container named "ghost""#,
            r#"container "b": dependsOn[0].condition: SUCCESS cannot be used with the essential container "a""#,
            r#"container "c": dependsOn[0].condition: HEALTHY needs a health check on container "a""#,
            r#"container "e": mountPoints[0].sourceVolume: there is no task volume named "nope""#,
            r#"container "e": volumesFrom[0].sourceContainer: there is no other container named "e""#,
        ],
    );
    check(
        &task(
            r#"{"name":"a","image":"x","dependsOn":[{"containerName":"b","condition":"START"}]},
               {"name":"b","image":"x","dependsOn":[{"containerName":"a","condition":"START"}]}"#,
        ),
        &["task definition: containerDefinitions: dependsOn forms a cycle: a -> b -> a"],
    );
    check(
        &task(
            r#"{"name":"a","image":"x","essential":false},{"name":"a","image":"y","essential":false}"#,
        ),
        &[
            r#"task definition: containerDefinitions: container name "a" is used twice"#,
            "task definition: containerDefinitions: at least one container must be essential",
        ],
    );
}
