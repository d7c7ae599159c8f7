//! From a task definition to what each container runs: the program and its arguments (Docker's
//! ENTRYPOINT/CMD rules), the environment, the user, the mounts. Pure apart from reading the image
//! table's programs and /etc/passwd; nothing is started here, so a refused definition leaves
//! nothing behind.

use std::collections::{BTreeMap, BTreeSet};

use crate::Launcher;
use crate::TaskOptions;
use crate::images::ImageMap;
use crate::sys::{ResolvedUser, resolve_user_on_host};
use crate::taskdef::{
    ContainerDefinition, FieldError, HealthCheck, TaskDefError, TaskDefinition, VolumeKind,
};

/// The `PATH` a container gets when its image sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a task runs.
#[derive(Debug, Clone)]
pub(crate) struct TaskPlan {
    pub(crate) containers: Vec<ContainerPlan>,
}

/// What one container runs.
#[derive(Debug, Clone)]
pub(crate) struct ContainerPlan {
    pub(crate) def: ContainerDefinition,
    /// The program and its arguments.
    pub(crate) argv: Vec<String>,
    /// The environment without secrets and ECS variables.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) user: ResolvedUser,
    pub(crate) cwd: String,
    /// Mount points with `volumesFrom` expanded.
    pub(crate) mounts: Vec<PlannedMount>,
}

impl ContainerPlan {
    pub(crate) fn health_check(&self) -> Option<&HealthCheck> {
        self.def.health_check.as_ref()
    }
}

/// A volume mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedMount {
    pub(crate) volume: String,
    pub(crate) kind: VolumeKind,
    pub(crate) container_path: String,
    pub(crate) read_only: bool,
}

/// Plans every container, reporting every problem at once.
pub(crate) fn plan(
    def: &TaskDefinition,
    images: &ImageMap,
    launcher: &Launcher,
    options: &TaskOptions,
) -> Result<TaskPlan, TaskDefError> {
    let mut errors = Vec::new();
    let mut containers = Vec::new();
    for name in options.container_environment.keys() {
        if def.container(name).is_none() {
            errors.push(FieldError {
                container: Some(name.clone()),
                field: "(override)".to_owned(),
                message: "an environment override names a container the task does not have"
                    .to_owned(),
            });
        }
    }
    for container in &def.containers {
        let mut error = |field: &str, message: String| {
            errors.push(FieldError {
                container: Some(container.name.clone()),
                field: field.to_owned(),
                message,
            });
        };
        let image = match images.resolve(&container.image, launcher) {
            Ok(image) => image,
            Err(e) => {
                error("image", e.to_string());
                continue;
            }
        };
        // Docker: a container's entryPoint replaces the image's and drops the image's CMD.
        let (entry, cmd) = match &container.entry_point {
            Some(entry) => (entry.clone(), container.command.clone().unwrap_or_default()),
            None => (
                image.entry_point.clone(),
                container.command.clone().unwrap_or(image.command.clone()),
            ),
        };
        let argv: Vec<String> = entry.into_iter().chain(cmd).collect();
        if argv.first().is_none_or(String::is_empty) {
            error(
                "entryPoint",
                "nothing to run: set entryPoint or command".to_owned(),
            );
            continue;
        }
        let user_spec = container.user.clone().or(image.user.clone());
        let user = match &user_spec {
            None => ResolvedUser::root(),
            Some(spec) => match resolve_user_on_host(spec) {
                Ok(user) => user,
                Err(e) => {
                    error("user", e);
                    continue;
                }
            },
        };
        let cwd = container
            .working_directory
            .clone()
            .or(image.working_directory.clone())
            .unwrap_or_else(|| "/".to_owned());
        let mut env: Vec<(String, String)> = image.environment.clone().into_iter().collect();
        if !env.iter().any(|(k, _)| k == "PATH") {
            // The image's program directory first, as if the image had it on its PATH.
            let program_dir = std::path::Path::new(&image.entry_point[0])
                .parent()
                .map(|p| p.display().to_string())
                .filter(|p| !p.is_empty());
            let path = match program_dir {
                Some(dir) => format!("{dir}:{DEFAULT_PATH}"),
                None => DEFAULT_PATH.to_owned(),
            };
            env.push(("PATH".to_owned(), path));
        }
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".to_owned(), user.home.clone()));
        }
        env.extend(container.environment.iter().cloned());
        env.extend(options.environment.iter().cloned());
        if let Some(overrides) = options.container_environment.get(&container.name) {
            env.extend(overrides.iter().cloned());
        }
        let mounts = match mounts_of(def, container) {
            Ok(mounts) => mounts,
            Err((field, message)) => {
                error(&field, message);
                continue;
            }
        };
        containers.push(ContainerPlan {
            def: container.clone(),
            argv,
            env: dedup_env(env),
            user,
            cwd,
            mounts,
        });
    }
    if errors.is_empty() {
        Ok(TaskPlan { containers })
    } else {
        Err(TaskDefError { errors })
    }
}

/// Keeps the last value of each variable, in first-seen order.
pub(crate) fn dedup_env(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in env {
        if !values.contains_key(&key) {
            order.push(key.clone());
        }
        values.insert(key, value);
    }
    order
        .into_iter()
        .filter_map(|k| values.remove(&k).map(|v| (k, v)))
        .collect()
}

/// A container's mounts: its own mount points, then those of its `volumesFrom` sources
/// (transitively), read-only when either side says so. As with Docker, a container's own mount
/// wins over an inherited one at the same path.
fn mounts_of(
    def: &TaskDefinition,
    container: &ContainerDefinition,
) -> Result<Vec<PlannedMount>, (String, String)> {
    let mut out: Vec<PlannedMount> = Vec::new();
    let mut visited = BTreeSet::new();
    let mut stack = vec![(container, false)];
    while let Some((current, force_ro)) = stack.pop() {
        if !visited.insert(current.name.clone()) {
            continue;
        }
        let own = current.name == container.name;
        for mount in &current.mount_points {
            let Some(volume) = def.volumes.iter().find(|v| v.name == mount.source_volume) else {
                continue;
            };
            if out.iter().any(|m| m.container_path == mount.container_path) {
                if own {
                    return Err((
                        "mountPoints".to_owned(),
                        format!("two mounts use the container path {}", mount.container_path),
                    ));
                }
                continue;
            }
            out.push(PlannedMount {
                volume: volume.name.clone(),
                kind: volume.kind.clone(),
                container_path: mount.container_path.clone(),
                read_only: mount.read_only || force_ro,
            });
        }
        for from in current.volumes_from.iter().rev() {
            if let Some(source) = def.container(&from.source_container) {
                stack.push((source, force_ro || from.read_only));
            }
        }
    }
    // Parents before children, so /a is mounted before /a/b.
    out.sort_by_key(|m| m.container_path.matches('/').count());
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::images::ImageEntry;

    fn launcher() -> Launcher {
        Launcher {
            program: PathBuf::from("/opt/ecsl"),
            args: vec![],
        }
    }

    fn images() -> ImageMap {
        let mut map = ImageMap::empty();
        map.insert(
            "tool",
            ImageEntry {
                entry_point: vec!["/bin/sh".to_owned(), "-c".to_owned()],
                command: vec!["echo image-cmd".to_owned()],
                environment: [
                    ("PATH".to_owned(), "/img".to_owned()),
                    ("A".to_owned(), "img".to_owned()),
                ]
                .into_iter()
                .collect(),
                ..ImageEntry::default()
            },
        );
        map.add_flag("plain=/bin/true").unwrap();
        map
    }

    fn plan_of(json: &str, options: &TaskOptions) -> Result<TaskPlan, TaskDefError> {
        let def = TaskDefinition::from_json(json).unwrap();
        plan(&def, &images(), &launcher(), options)
    }

    #[test]
    fn entrypoint_and_command_follow_docker_rules() {
        let json = r#"{"family":"f","containerDefinitions":[
            {"name":"image-default","image":"tool"},
            {"name":"command-only","image":"tool","command":["echo mine"],"essential":false},
            {"name":"entry-only","image":"tool","entryPoint":["/bin/echo"],"essential":false},
            {"name":"both","image":"tool","entryPoint":["/bin/echo"],"command":["x"],"essential":false}]}"#;
        let plan = plan_of(json, &TaskOptions::default()).unwrap();
        let argv: Vec<Vec<String>> = plan.containers.iter().map(|c| c.argv.clone()).collect();
        assert_eq!(argv[0], ["/bin/sh", "-c", "echo image-cmd"]);
        assert_eq!(argv[1], ["/bin/sh", "-c", "echo mine"]);
        assert_eq!(argv[2], ["/bin/echo"]);
        assert_eq!(argv[3], ["/bin/echo", "x"]);
    }

    #[test]
    fn environment_layers_end_with_the_overrides() {
        let json = r#"{"family":"f","containerDefinitions":[
            {"name":"c","image":"tool","environment":[{"name":"A","value":"def"},{"name":"B","value":"def"}]},
            {"name":"d","image":"plain","essential":false}]}"#;
        let mut options = TaskOptions::default();
        options.environment.push(("B".to_owned(), "all".to_owned()));
        options
            .container_environment
            .insert("c".to_owned(), vec![("C".to_owned(), "c-only".to_owned())]);
        let plan = plan_of(json, &options).unwrap();
        let env: BTreeMap<_, _> = plan.containers[0].env.iter().cloned().collect();
        assert_eq!(env["PATH"], "/img");
        assert_eq!(env["A"], "def");
        assert_eq!(env["B"], "all");
        assert_eq!(env["C"], "c-only");
        assert_eq!(env["HOME"], "/root");
        let d: BTreeMap<_, _> = plan.containers[1].env.iter().cloned().collect();
        assert!(d["PATH"].starts_with("/bin:"), "{d:?}");
        assert!(!d.contains_key("C"));
        options
            .container_environment
            .insert("ghost".to_owned(), vec![]);
        let err = plan_of(json, &options).unwrap_err().to_string();
        assert!(err.contains("\"ghost\""), "{err}");
    }

    #[test]
    fn volumes_from_copies_mounts_transitively_and_read_only_sticks() {
        let json = r#"{"family":"f","volumes":[{"name":"v1"},{"name":"v2","host":{"sourcePath":"/srv"}}],
          "containerDefinitions":[
            {"name":"a","image":"plain","mountPoints":[{"sourceVolume":"v1","containerPath":"/data"}]},
            {"name":"b","image":"plain","essential":false,"volumesFrom":[{"sourceContainer":"a","readOnly":true}],
             "mountPoints":[{"sourceVolume":"v2","containerPath":"/srv/x"}]},
            {"name":"c","image":"plain","essential":false,"volumesFrom":[{"sourceContainer":"b"}]}]}"#;
        let plan = plan_of(json, &TaskOptions::default()).unwrap();
        let c = &plan.containers[2];
        let summary: Vec<(String, bool)> = c
            .mounts
            .iter()
            .map(|m| (m.container_path.clone(), m.read_only))
            .collect();
        assert_eq!(
            summary,
            [("/data".to_owned(), true), ("/srv/x".to_owned(), false)]
        );
        assert_eq!(c.mounts[1].kind, VolumeKind::Host("/srv".to_owned()));
    }

    #[test]
    fn unknown_images_and_users_are_refused_by_container_and_field() {
        let json = r#"{"family":"f","containerDefinitions":[
            {"name":"web","image":"nginx:latest"},
            {"name":"side","image":"plain","essential":false,"user":"no-such-user-anywhere"}]}"#;
        let err = plan_of(json, &TaskOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "container \"web\": image: image \"nginx:latest\" is not in the image map"
            ),
            "{text}"
        );
        assert!(
            text.contains("container \"side\": user: no user named"),
            "{text}"
        );
    }
}
